//! The confirmed orders, read straight from the database, for the demo's end-of-run
//! checks and the end-to-end tests.

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::Row;

use crate::store::open_pool;

/// A confirmed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedOrder {
    /// The order id (also the reservation's order id in the inventory service).
    pub id: String,
    /// The inventory reservation it holds.
    pub reservation_id: String,
    /// SKU to quantity.
    pub items: BTreeMap<String, u32>,
}

/// The orders database's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrdersSnapshot {
    /// Every confirmed order, sorted by id.
    pub confirmed: Vec<ConfirmedOrder>,
    /// Orders claimed but neither confirmed nor compensated yet (`pending` or `aborting`).
    pub unfinished: u64,
}

/// Reads the orders database at `db_path`.
///
/// # Errors
///
/// The database cannot be opened or read.
pub async fn snapshot(db_path: &Path) -> Result<OrdersSnapshot, sqlx::Error> {
    let pool = open_pool(db_path, 1, false).await?;
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT o.id, o.reservation_id, i.sku, i.quantity FROM orders o \
         JOIN order_items i ON i.order_id = o.id WHERE o.status = 'confirmed' ORDER BY o.id, i.sku",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut confirmed: Vec<ConfirmedOrder> = Vec::new();
    for r in rows {
        let id: String = r.get(0);
        if confirmed.last().is_none_or(|o| o.id != id) {
            confirmed.push(ConfirmedOrder {
                id,
                reservation_id: r.get(1),
                items: BTreeMap::new(),
            });
        }
        if let Some(o) = confirmed.last_mut() {
            o.items
                .insert(r.get(2), u32::try_from(r.get::<i64, _>(3)).unwrap_or(0));
        }
    }
    let unfinished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE status != 'confirmed'")
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    pool.close().await;
    Ok(OrdersSnapshot {
        confirmed,
        unfinished: u64::try_from(unfinished).unwrap_or(0),
    })
}
