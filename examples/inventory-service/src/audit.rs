//! A consistent snapshot of stock and reservations, for the admin port, the demo's
//! end-of-run checks and the end-to-end tests.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use sqlx::Row;

use crate::store::open_pool;

/// One SKU's stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockLevel {
    /// The SKU.
    pub sku: String,
    /// Its display name.
    pub name: String,
    /// Units in the warehouse.
    pub on_hand: u32,
    /// Units held by active reservations.
    pub reserved: u32,
    /// Units that can still be reserved (`on_hand - reserved`).
    pub available: u32,
}

/// An active (not released) reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveReservation {
    /// The order it belongs to.
    pub order_id: String,
    /// Its id.
    pub reservation_id: String,
    /// SKU to quantity.
    pub items: BTreeMap<String, u32>,
}

/// Stock and reservations, read in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InventorySnapshot {
    /// Every SKU, sorted.
    pub stock: Vec<StockLevel>,
    /// Every active reservation, sorted by order id.
    pub active: Vec<ActiveReservation>,
    /// How many reservations were released (tombstones included).
    pub released: u64,
}

impl InventorySnapshot {
    /// Checks that the stock arithmetic balances: for every SKU, `reserved` equals the sum
    /// of the active reservations' quantities and never exceeds `on_hand`.
    ///
    /// Returns one line per violation; empty when everything balances.
    pub fn violations(&self) -> Vec<String> {
        let mut held: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &self.active {
            for (sku, q) in &r.items {
                *held.entry(sku.as_str()).or_default() += u64::from(*q);
            }
        }
        let mut out = Vec::new();
        for s in &self.stock {
            let sum = held.remove(s.sku.as_str()).unwrap_or(0);
            if sum != u64::from(s.reserved) {
                out.push(format!(
                    "{}: reserved column says {} but active reservations hold {sum}",
                    s.sku, s.reserved
                ));
            }
            if s.reserved > s.on_hand {
                out.push(format!(
                    "{}: {} reserved exceeds {} on hand",
                    s.sku, s.reserved, s.on_hand
                ));
            }
        }
        for (sku, sum) in held {
            out.push(format!("{sku}: {sum} units reserved for an unknown sku"));
        }
        out
    }
}

/// Reads a snapshot of the inventory database at `db_path`.
///
/// # Errors
///
/// The database cannot be opened or read.
pub async fn snapshot(db_path: &Path) -> Result<InventorySnapshot, sqlx::Error> {
    let pool = open_pool(db_path, 1, false).await?;
    let snap = read(&pool).await;
    pool.close().await;
    snap
}

pub(crate) async fn read(pool: &sqlx::SqlitePool) -> Result<InventorySnapshot, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let stock = sqlx::query("SELECT sku, name, on_hand, reserved FROM stock ORDER BY sku")
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| {
            let on_hand = u32::try_from(r.get::<i64, _>(2)).unwrap_or(0);
            let reserved = u32::try_from(r.get::<i64, _>(3)).unwrap_or(0);
            StockLevel {
                sku: r.get(0),
                name: r.get(1),
                on_hand,
                reserved,
                available: on_hand.saturating_sub(reserved),
            }
        })
        .collect();
    let rows = sqlx::query(
        "SELECT r.order_id, r.reservation_id, i.sku, i.quantity \
         FROM reservations r JOIN reservation_items i ON i.order_id = r.order_id \
         WHERE r.status = 'active' ORDER BY r.order_id, i.sku",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut active: Vec<ActiveReservation> = Vec::new();
    for r in rows {
        let order_id: String = r.get(0);
        if active.last().is_none_or(|a| a.order_id != order_id) {
            active.push(ActiveReservation {
                order_id,
                reservation_id: r.get(1),
                items: BTreeMap::new(),
            });
        }
        if let Some(a) = active.last_mut() {
            a.items
                .insert(r.get(2), u32::try_from(r.get::<i64, _>(3)).unwrap_or(0));
        }
    }
    let released: i64 =
        sqlx::query_scalar("SELECT count(*) FROM reservations WHERE status = 'released'")
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(InventorySnapshot {
        stock,
        active,
        released: u64::try_from(released).unwrap_or(0),
    })
}
