//! Orders in SQLite: the only module that speaks SQL.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::model::{Line, Order};

/// What claiming an order found.
#[derive(Debug)]
pub(crate) enum Claim {
    /// A new pending order was stored under this id.
    New(String),
    /// The key is already used by a confirmed order for the same request.
    Replay(Order),
    /// The key is already used by a different request.
    KeyReused,
    /// The key's first request is still being processed (or compensated).
    InProgress,
}

/// The orders database.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pool: SqlitePool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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

    /// Claims a new order for `lines` (canonical: sorted by SKU), under `key` if given.
    /// `request` is the canonical request text compared on a repeated key.
    pub(crate) async fn claim(
        &self,
        key: Option<&str>,
        request: &str,
        lines: &[Line],
    ) -> Result<Claim, sqlx::Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(key) = key
            && let Some(found) = self.existing_in(&mut tx, key, request).await?
        {
            return Ok(found);
        }
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO orders (id, idempotency_key, request, status, claimed_at_ms, created_at) \
             VALUES (?, ?, ?, 'pending', ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        )
        .bind(&id)
        .bind(key)
        .bind(request)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        for line in lines {
            sqlx::query("INSERT INTO order_items (order_id, sku, quantity) VALUES (?, ?, ?)")
                .bind(&id)
                .bind(&line.sku)
                .bind(i64::from(line.quantity))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Claim::New(id))
    }

    /// What a repeated `key` finds, without claiming anything: `None` when the key is new.
    pub(crate) async fn existing(
        &self,
        key: &str,
        request: &str,
    ) -> Result<Option<Claim>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        self.existing_in(&mut conn, key, request).await
    }

    async fn existing_in(
        &self,
        conn: &mut sqlx::SqliteConnection,
        key: &str,
        request: &str,
    ) -> Result<Option<Claim>, sqlx::Error> {
        let Some(row) =
            sqlx::query("SELECT id, request, status FROM orders WHERE idempotency_key = ?")
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?
        else {
            return Ok(None);
        };
        let (id, stored, status): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        if stored != request {
            return Ok(Some(Claim::KeyReused));
        }
        if status != "confirmed" {
            return Ok(Some(Claim::InProgress));
        }
        Ok(Some(match self.get_in(conn, &id).await? {
            Some(order) => Claim::Replay(order),
            None => Claim::InProgress,
        }))
    }

    /// Marks a pending order confirmed with its reservation. Returns the stored order, or
    /// `None` if the row is no longer pending (the reconciler took it over).
    pub(crate) async fn confirm(
        &self,
        id: &str,
        reservation_id: &str,
    ) -> Result<Option<Order>, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE orders SET status = 'confirmed', reservation_id = ? WHERE id = ? AND status = 'pending'",
        )
        .bind(reservation_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get(id).await
    }

    /// Marks an unconfirmed order `aborting`: it can no longer be confirmed, and its
    /// reservation must be released. Returns false if the order is confirmed or gone.
    pub(crate) async fn take_over(&self, id: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE orders SET status = 'aborting' WHERE id = ? AND status IN ('pending', 'aborting')",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes an unconfirmed order whose reservation was released; frees its key.
    pub(crate) async fn forget(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM orders WHERE id = ? AND status != 'confirmed'")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Orders the reconciler must compensate: every `aborting` one, and `pending` ones
    /// claimed more than `grace` ago (their request died: a crash, a lost task).
    pub(crate) async fn unfinished(
        &self,
        grace: Duration,
        limit: u32,
    ) -> Result<Vec<String>, sqlx::Error> {
        let cutoff = now_ms().saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
        sqlx::query_scalar(
            "SELECT id FROM orders WHERE status = 'aborting' \
             OR (status = 'pending' AND claimed_at_ms <= ?) ORDER BY claimed_at_ms LIMIT ?",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
    }

    /// A confirmed order.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<Order>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        self.get_in(&mut conn, id).await
    }

    async fn get_in(
        &self,
        conn: &mut sqlx::SqliteConnection,
        id: &str,
    ) -> Result<Option<Order>, sqlx::Error> {
        let Some(row) = sqlx::query(
            "SELECT id, reservation_id, created_at FROM orders WHERE id = ? AND status = 'confirmed'",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        else {
            return Ok(None);
        };
        let items =
            sqlx::query("SELECT sku, quantity FROM order_items WHERE order_id = ? ORDER BY sku")
                .bind(id)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .map(|r| Line {
                    sku: r.get(0),
                    quantity: u32::try_from(r.get::<i64, _>(1)).unwrap_or(0),
                })
                .collect();
        Ok(Some(Order {
            id: row.get(0),
            status: "confirmed",
            items,
            reservation_id: row.get(1),
            created_at: row.get(2),
        }))
    }
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

    #[derive(Debug, Clone)]
    enum Op {
        Claim(Option<u8>, u8),
        Confirm(u8),
        TakeOver(u8),
        Forget(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (prop::option::of(0u8..4), 0u8..2).prop_map(|(k, r)| Op::Claim(k, r)),
            2 => (0u8..8).prop_map(Op::Confirm),
            1 => (0u8..8).prop_map(Op::TakeOver),
            1 => (0u8..8).prop_map(Op::Forget),
        ]
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum St {
        Pending,
        Aborting,
        Confirmed,
    }

    #[derive(Debug, Clone)]
    struct Row {
        key: Option<u8>,
        request: u8,
        status: St,
    }

    fn lines(request: u8) -> Vec<Line> {
        vec![Line {
            sku: "KB-0001".to_owned(),
            quantity: u32::from(request) + 1,
        }]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Claims, confirmations, take-overs and deletions agree with a simple model: a
        /// key is claimed once, a repeat is replayed only when confirmed and identical, a
        /// taken-over order can no longer be confirmed, and a confirmed one is never lost.
        #[test]
        fn store_agrees_with_model(ops in prop::collection::vec(op(), 1..40)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let dir = palisade_testkit::TempDir::new("orders-store");
                let store = Store::open(&dir.path().join("orders.db")).await.unwrap();
                let mut ids: Vec<String> = Vec::new();
                let mut model: HashMap<String, Row> = HashMap::new();
                for op in ops {
                    match op {
                        Op::Claim(key, request) => {
                            let key_s = key.map(|k| format!("key-{k}"));
                            let req = crate::model::canonical(&lines(request));
                            let got = store.claim(key_s.as_deref(), &req, &lines(request)).await.unwrap();
                            let existing = key.and_then(|k| model.iter().find(|(_, r)| r.key == Some(k)));
                            match (existing, got) {
                                (None, Claim::New(id)) => {
                                    model.insert(id.clone(), Row { key, request, status: St::Pending });
                                    ids.push(id);
                                }
                                (Some((_, row)), Claim::KeyReused) => prop_assert_ne!(row.request, request),
                                (Some((_, row)), Claim::InProgress) => {
                                    prop_assert_eq!(row.request, request);
                                    prop_assert_ne!(row.status, St::Confirmed);
                                }
                                (Some((id, row)), Claim::Replay(order)) => {
                                    prop_assert_eq!(row.request, request);
                                    prop_assert_eq!(row.status, St::Confirmed);
                                    prop_assert_eq!(&order.id, id);
                                }
                                (e, got) => prop_assert!(false, "model {e:?}, store {got:?}"),
                            }
                        }
                        Op::Confirm(slot) => {
                            let Some(id) = ids.get(slot as usize) else { continue };
                            let got = store.confirm(id, "res").await.unwrap();
                            match model.get_mut(id) {
                                Some(row) if row.status == St::Pending => {
                                    prop_assert!(got.is_some());
                                    row.status = St::Confirmed;
                                }
                                _ => prop_assert!(got.is_none()),
                            }
                        }
                        Op::TakeOver(slot) => {
                            let Some(id) = ids.get(slot as usize) else { continue };
                            let got = store.take_over(id).await.unwrap();
                            match model.get_mut(id) {
                                Some(row) if row.status != St::Confirmed => {
                                    prop_assert!(got);
                                    row.status = St::Aborting;
                                }
                                _ => prop_assert!(!got),
                            }
                        }
                        Op::Forget(slot) => {
                            let Some(id) = ids.get(slot as usize) else { continue };
                            store.forget(id).await.unwrap();
                            if model.get(id).is_some_and(|r| r.status != St::Confirmed) {
                                model.remove(id);
                            }
                        }
                    }
                }
                let snap = crate::audit::snapshot(&dir.path().join("orders.db")).await.unwrap();
                let confirmed: Vec<&String> = {
                    let mut v: Vec<&String> = model.iter().filter(|(_, r)| r.status == St::Confirmed).map(|(id, _)| id).collect();
                    v.sort();
                    v
                };
                let stored: Vec<&String> = snap.confirmed.iter().map(|o| &o.id).collect();
                prop_assert_eq!(stored, confirmed);
                let unfinished = model.values().filter(|r| r.status != St::Confirmed).count() as u64;
                prop_assert_eq!(snap.unfinished, unfinished);
                Ok(())
            })?;
        }
    }
}
