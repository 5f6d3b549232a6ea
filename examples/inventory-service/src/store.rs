//! Stock and reservations in SQLite: the only module that speaks SQL.
//!
//! Every change runs in one `BEGIN IMMEDIATE` transaction (it takes SQLite's write lock
//! up front, so two writers never deadlock upgrading a read lock), and the schema's
//! constraints back the rules up: `reserved` never exceeds `on_hand`, and a reservation's
//! primary key is its order id.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use inventory_api::v1::Item;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

/// Why a store operation failed.
#[derive(Debug)]
pub(crate) enum StoreError {
    UnknownSku(String),
    Insufficient {
        sku: String,
        available: u32,
        requested: u32,
    },
    Released,
    Conflict,
    Db(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e)
    }
}

/// A reservation as stored.
#[derive(Debug, Clone)]
pub(crate) struct Reservation {
    pub(crate) reservation_id: String,
    pub(crate) order_id: String,
    pub(crate) items: Vec<Item>,
    pub(crate) created_at: String,
}

/// The stock database.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pool: SqlitePool,
}

/// Connections in the store's pool.
const POOL_SIZE: u32 = 4;

impl Store {
    /// Opens (creating if missing) and migrates the database at `path`.
    pub(crate) async fn open(path: &Path) -> Result<Self, sqlx::Error> {
        let pool = open_pool(path, POOL_SIZE, true).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        // Every connection opened now, after the migrations (connections opening while
        // the first one switches the new file to WAL can get "database is locked"), and
        // kept: the first burst of concurrent requests finds them ready, and memory does
        // not step up later as the pool fills.
        let mut warm = Vec::with_capacity(POOL_SIZE as usize);
        for _ in 0..POOL_SIZE {
            warm.push(pool.acquire().await?);
        }
        drop(warm);
        Ok(Self { pool })
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Units available now for each SKU, in the order asked; `None` for an unknown SKU.
    #[tracing::instrument(name = "sqlite.available", skip_all, fields(skus = skus.len()))]
    pub(crate) async fn available(&self, skus: &[&str]) -> Result<Vec<Option<u32>>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let mut out = Vec::with_capacity(skus.len());
        for sku in skus {
            let row = sqlx::query("SELECT on_hand - reserved FROM stock WHERE sku = ?")
                .bind(*sku)
                .fetch_optional(&mut *conn)
                .await?;
            out.push(row.map(|r| u32::try_from(r.get::<i64, _>(0)).unwrap_or(0)));
        }
        Ok(out)
    }

    /// Reserves `items` (sorted by SKU, no duplicates) for `order_id`, all or nothing.
    ///
    /// Returns the reservation and whether it already existed (a repeat).
    #[tracing::instrument(name = "sqlite.reserve", skip(self, items), fields(items = items.len()))]
    pub(crate) async fn reserve(
        &self,
        order_id: &str,
        items: &[Item],
    ) -> Result<(Reservation, bool), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existing = sqlx::query(
            "SELECT reservation_id, status, created_at FROM reservations WHERE order_id = ?",
        )
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            if row.get::<String, _>(1) == "released" {
                return Err(StoreError::Released);
            }
            let stored = items_of(&mut tx, order_id).await?;
            if stored != items {
                return Err(StoreError::Conflict);
            }
            let reservation = Reservation {
                reservation_id: row.get(0),
                order_id: order_id.to_owned(),
                items: stored,
                created_at: row.get(2),
            };
            return Ok((reservation, true));
        }
        for item in items {
            let updated = sqlx::query(
                "UPDATE stock SET reserved = reserved + ?1 WHERE sku = ?2 AND on_hand - reserved >= ?1",
            )
            .bind(i64::from(item.quantity))
            .bind(&item.sku)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                // Dropping `tx` rolls back the items already reserved.
                let row = sqlx::query("SELECT on_hand - reserved FROM stock WHERE sku = ?")
                    .bind(&item.sku)
                    .fetch_optional(&mut *tx)
                    .await?;
                return Err(match row {
                    None => StoreError::UnknownSku(item.sku.clone()),
                    Some(r) => StoreError::Insufficient {
                        sku: item.sku.clone(),
                        available: u32::try_from(r.get::<i64, _>(0)).unwrap_or(0),
                        requested: item.quantity,
                    },
                });
            }
        }
        let reservation_id = uuid::Uuid::new_v4().to_string();
        let created_at: String = sqlx::query_scalar(
            "INSERT INTO reservations (order_id, reservation_id, status, created_at) \
             VALUES (?, ?, 'active', strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) RETURNING created_at",
        )
        .bind(order_id)
        .bind(&reservation_id)
        .fetch_one(&mut *tx)
        .await?;
        for item in items {
            sqlx::query("INSERT INTO reservation_items (order_id, sku, quantity) VALUES (?, ?, ?)")
                .bind(order_id)
                .bind(&item.sku)
                .bind(i64::from(item.quantity))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let reservation = Reservation {
            reservation_id,
            order_id: order_id.to_owned(),
            items: items.to_vec(),
            created_at,
        };
        Ok((reservation, false))
    }

    /// Releases the reservation of `order_id`. Returns whether stock was given back.
    ///
    /// Releasing an order that was never reserved stores a tombstone, so a `Reserve` that
    /// arrives later (a slow retry overtaken by the compensation) is refused.
    #[tracing::instrument(name = "sqlite.release", skip(self))]
    pub(crate) async fn release(&self, order_id: &str) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM reservations WHERE order_id = ?")
                .bind(order_id)
                .fetch_optional(&mut *tx)
                .await?;
        let released = match status.as_deref() {
            Some("active") => {
                for item in items_of(&mut tx, order_id).await? {
                    sqlx::query("UPDATE stock SET reserved = reserved - ? WHERE sku = ?")
                        .bind(i64::from(item.quantity))
                        .bind(&item.sku)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(
                    "UPDATE reservations SET status = 'released', \
                     released_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE order_id = ?",
                )
                .bind(order_id)
                .execute(&mut *tx)
                .await?;
                true
            }
            Some(_) => false,
            None => {
                sqlx::query(
                    "INSERT INTO reservations (order_id, reservation_id, status, created_at, released_at) \
                     VALUES (?1, ?2, 'released', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), \
                     strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                )
                .bind(order_id)
                .bind(uuid::Uuid::new_v4().to_string())
                .execute(&mut *tx)
                .await?;
                false
            }
        };
        tx.commit().await?;
        Ok(released)
    }
}

async fn items_of(
    conn: &mut sqlx::SqliteConnection,
    order_id: &str,
) -> Result<Vec<Item>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT sku, quantity FROM reservation_items WHERE order_id = ? ORDER BY sku")
            .bind(order_id)
            .fetch_all(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|r| Item {
            sku: r.get(0),
            quantity: u32::try_from(r.get::<i64, _>(1)).unwrap_or(0),
        })
        .collect())
}

/// Opens a WAL-mode pool on `path`, creating the file if missing and `create` is set.
pub(crate) async fn open_pool(
    path: &Path,
    max: u32,
    create: bool,
) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
        // A small page cache per connection (SQLite's default is 2 MiB, filled as the
        // database grows): resident memory stays flat under sustained load, so the soak
        // test's memory check (end within 10 % of warm-up) measures leaks, not the cache.
        .pragma("cache_size", "-64");
    // Idle connections are kept (see `Store::open`, which opens them all).
    SqlitePoolOptions::new()
        .max_connections(max)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    const SKUS: [(&str, u32); 3] = [("KB-0001", 5000), ("LT-0006", 25), ("MN-0003", 2000)];

    #[derive(Debug, Clone)]
    enum Op {
        Reserve(u8, Vec<(u8, u32)>),
        Release(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..6, prop::collection::vec((0u8..3, 1u32..15), 1..3))
                .prop_map(|(o, i)| Op::Reserve(o, i)),
            (0u8..6).prop_map(Op::Release),
        ]
    }

    /// The model: per order, None = never seen, Some(None) = released, Some(Some(items)) = active.
    #[derive(Default)]
    struct Model {
        orders: HashMap<u8, Option<Vec<Item>>>,
        reserved: HashMap<&'static str, u32>,
    }

    fn items(raw: &[(u8, u32)]) -> Vec<Item> {
        let mut m: HashMap<&str, u32> = HashMap::new();
        for (s, q) in raw {
            *m.entry(SKUS[*s as usize].0).or_default() += q;
        }
        let mut v: Vec<Item> = m
            .into_iter()
            .map(|(sku, quantity)| Item {
                sku: sku.to_owned(),
                quantity,
            })
            .collect();
        v.sort_by(|a, b| a.sku.cmp(&b.sku));
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Random reserves and releases agree with a simple model: idempotent repeats,
        /// conflicts, tombstones, all-or-nothing reservations, and stock never oversold.
        #[test]
        fn store_agrees_with_model(ops in prop::collection::vec(op(), 1..40)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let dir = palisade_testkit::TempDir::new("inventory-store");
                let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
                let mut model = Model::default();
                for op in ops {
                    match op {
                        Op::Reserve(o, raw) => {
                            let items = items(&raw);
                            let id = format!("order-{o}");
                            let got = store.reserve(&id, &items).await;
                            match model.orders.get(&o) {
                                Some(Some(held)) if *held == items => {
                                    let (r, replayed) = got.unwrap();
                                    prop_assert!(replayed);
                                    prop_assert_eq!(r.items, items);
                                }
                                Some(Some(_)) => prop_assert!(matches!(got, Err(StoreError::Conflict))),
                                Some(None) => prop_assert!(matches!(got, Err(StoreError::Released))),
                                None => {
                                    let fits = items.iter().all(|i| {
                                        let cap = SKUS.iter().find(|s| s.0 == i.sku).unwrap().1;
                                        model.reserved.get(i.sku.as_str()).copied().unwrap_or(0) + i.quantity <= cap
                                    });
                                    if fits {
                                        let (_, replayed) = got.unwrap();
                                        prop_assert!(!replayed);
                                        for i in &items {
                                            let sku = SKUS.iter().find(|s| s.0 == i.sku).unwrap().0;
                                            *model.reserved.entry(sku).or_default() += i.quantity;
                                        }
                                        model.orders.insert(o, Some(items));
                                    } else {
                                        prop_assert!(matches!(got, Err(StoreError::Insufficient { .. })), "{got:?}");
                                    }
                                }
                            }
                        }
                        Op::Release(o) => {
                            let released = store.release(&format!("order-{o}")).await.unwrap();
                            let was = model.orders.insert(o, None);
                            match was {
                                Some(Some(items)) => {
                                    prop_assert!(released);
                                    for i in &items {
                                        let sku = SKUS.iter().find(|s| s.0 == i.sku).unwrap().0;
                                        *model.reserved.get_mut(sku).unwrap() -= i.quantity;
                                    }
                                }
                                _ => prop_assert!(!released),
                            }
                        }
                    }
                }
                let snap = crate::audit::read(store.pool()).await.unwrap();
                prop_assert!(snap.violations().is_empty(), "{:?}", snap.violations());
                for (sku, _) in SKUS {
                    let level = snap.stock.iter().find(|s| s.sku == sku).unwrap();
                    prop_assert_eq!(level.reserved, model.reserved.get(sku).copied().unwrap_or(0));
                }
                let active = model.orders.values().filter(|v| v.is_some()).count();
                prop_assert_eq!(snap.active.len(), active);
                Ok(())
            })?;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reserves_never_oversell() {
        let dir = palisade_testkit::TempDir::new("inventory-store");
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        // LT-0006 has 25 units: 40 concurrent orders of 1 unit, each sent twice.
        let mut tasks = Vec::new();
        for n in 0..80 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let item = Item {
                    sku: "LT-0006".to_owned(),
                    quantity: 1,
                };
                store.reserve(&format!("order-{}", n % 40), &[item]).await
            }));
        }
        let mut fresh = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok((_, false)) => fresh += 1,
                Ok((_, true)) | Err(StoreError::Insufficient { .. }) => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(fresh, 25);
        let snap = crate::audit::read(store.pool()).await.unwrap();
        assert!(snap.violations().is_empty(), "{:?}", snap.violations());
        assert_eq!(snap.active.len(), 25);
    }
}
