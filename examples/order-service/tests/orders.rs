//! The order service against a real inventory service, both in-process on loopback.

mod support;

use std::time::Duration;

use palisade_testkit::{TempDir, free_port};
use support::{Inventory, Orders, eventually};

const ONE_KB: &str = r#"{"items":[{"sku":"KB-0001","quantity":1}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneshot_place_get_replay_and_reject() {
    let dir = TempDir::new("orders-oneshot");
    let inv = Inventory::start(&dir, 0).await;
    let orders = Orders::start(&dir, inv.grpc, |_| {}).await;

    // Items are merged and sorted; the answer is 201 with a Location.
    let r = orders
        .post(None, r#"{"items":[{"sku":"MS-0002","quantity":1},{"sku":"KB-0001","quantity":2},{"sku":"MS-0002","quantity":1}]}"#)
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let order = r.json();
    let id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(order["status"], "confirmed");
    assert_eq!(
        order["items"],
        serde_json::json!([{"sku":"KB-0001","quantity":2},{"sku":"MS-0002","quantity":2}])
    );
    assert_eq!(r.header("location"), Some(format!("/orders/{id}").as_str()));
    let got = orders.get(&format!("/orders/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), order);

    // The same Idempotency-Key twice: one order, one reservation, the same answer.
    let first = orders.post(Some("key-1"), ONE_KB).await;
    let again = orders.post(Some("key-1"), ONE_KB).await;
    assert_eq!((first.status, again.status), (201, 201));
    assert_eq!(first.json(), again.json());
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    // Reusing the key for another request is refused.
    let reused = orders
        .post(
            Some("key-1"),
            r#"{"items":[{"sku":"KB-0001","quantity":2}]}"#,
        )
        .await;
    assert_eq!(reused.status, 422);
    assert_eq!(reused.json()["code"], "idempotency_key_reused");
    assert_eq!(
        reused.header("content-type"),
        Some("application/problem+json")
    );

    // Not enough stock: 409 naming the SKU; nothing stays reserved or stored.
    let r = orders
        .post(
            None,
            r#"{"items":[{"sku":"KB-0001","quantity":1},{"sku":"LT-0006","quantity":26}]}"#,
        )
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.json()["code"], "insufficient_stock");
    assert_eq!(r.json()["sku"], "LT-0006");
    let r = orders
        .post(None, r#"{"items":[{"sku":"NOPE-1","quantity":1}]}"#)
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (422, Some("unknown_sku"))
    );

    // Malformed requests never reach the inventory service.
    for (key, body, status) in [
        (None, "{", 400),
        (None, r#"{"items":[{"sku":"KB-0001","quantity":-1}]}"#, 422),
        (
            None,
            r#"{"items":[{"sku":"KB-0001","quantity":1}],"extra":1}"#,
            422,
        ),
        (None, r#"{"items":[]}"#, 422),
        (None, r#"{"items":[{"sku":"kb","quantity":1}]}"#, 422),
        (Some("bad key"), ONE_KB, 400),
    ] {
        let r = orders.post(key, body).await;
        assert_eq!(r.status, status, "{body}: {r:?}");
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{body}"
        );
    }
    assert_eq!(orders.get("/orders/nope").await.status, 404);

    // Orders and reservations agree exactly.
    eventually("no unfinished orders", Duration::from_secs(5), || async {
        orders.snapshot().await.unfinished == 0
    })
    .await;
    let o = orders.snapshot().await;
    let s = inv.snapshot().await;
    assert_eq!(o.confirmed.len(), 2);
    assert_eq!(s.active.len(), 2);
    for (order, res) in o.confirmed.iter().zip(&s.active) {
        assert_eq!(order.id, res.order_id);
        assert_eq!(order.reservation_id, res.reservation_id);
        assert_eq!(order.items, res.items);
    }
    assert!(s.violations().is_empty(), "{:?}", s.violations());
    orders.stop().await;
    inv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_repeats_of_one_key_reserve_once() {
    let dir = TempDir::new("orders-concurrent");
    let inv = Inventory::start(&dir, 0).await;
    let orders = std::sync::Arc::new(Orders::start(&dir, inv.grpc, |_| {}).await);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let orders = orders.clone();
        tasks.push(tokio::spawn(async move {
            orders.post(Some("same-key"), ONE_KB).await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => {
                ids.insert(r.json()["id"].as_str().unwrap().to_owned());
            }
            409 => assert_eq!(r.json()["code"], "request_in_progress"),
            other => panic!("unexpected {other}: {r:?}"),
        }
    }
    assert_eq!(ids.len(), 1);
    let s = inv.snapshot().await;
    assert_eq!(s.active.len(), 1);
    let kb = s.stock.iter().find(|l| l.sku == "KB-0001").unwrap();
    assert_eq!(kb.reserved, 1);
    std::sync::Arc::into_inner(orders).unwrap().stop().await;
    inv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_down_gives_503_and_the_reconciler_cleans_up() {
    let dir = TempDir::new("orders-down");
    let port = free_port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let orders = Orders::start(&dir, addr, |c| {
        c.try_timeout = Duration::from_millis(200);
        c.deadline = Duration::from_millis(600);
        c.breaker_wait = Duration::from_millis(300);
    })
    .await;

    let r = orders.post(Some("k-down"), ONE_KB).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.json()["code"], "inventory_unavailable");
    // Nothing confirmed; the claim waits for its release (the release failed too).
    let o = orders.snapshot().await;
    assert!(o.confirmed.is_empty());
    assert_eq!(o.unfinished, 1);
    // The same key meanwhile: in progress, not a second order.
    assert_eq!(orders.post(Some("k-down"), ONE_KB).await.status, 409);

    // Inventory comes up: the reconciler releases (a tombstone) and frees the key.
    let inv = Inventory::start(&dir, port).await;
    eventually(
        "the reconciler to compensate",
        Duration::from_secs(10),
        || async { orders.snapshot().await.unfinished == 0 },
    )
    .await;
    let s = inv.snapshot().await;
    assert!(s.active.is_empty());
    assert_eq!(s.released, 1);
    let r = orders.post(Some("k-down"), ONE_KB).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(inv.snapshot().await.active.len(), 1);
    orders.stop().await;
    inv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_store_after_reserving_releases_the_reservation() {
    let dir = TempDir::new("orders-compensate");
    let inv = Inventory::start(&dir, 0).await;
    let orders = Orders::start(&dir, inv.grpc, |_| {}).await;
    // Make the order database refuse to confirm, as a full disk would.
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&orders.db)
            .connect()
            .await
            .unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse_confirm BEFORE UPDATE OF status ON orders \
             WHEN NEW.status = 'confirmed' BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let r = orders.post(Some("k-store"), ONE_KB).await;
    assert_eq!(r.status, 500, "{r:?}");
    // The reservation that was made is released, and the claim is gone.
    let s = inv.snapshot().await;
    assert!(s.active.is_empty(), "{s:?}");
    assert_eq!(s.released, 1);
    assert!(s.violations().is_empty());
    let o = orders.snapshot().await;
    assert!(o.confirmed.is_empty());
    assert_eq!(o.unfinished, 0);
    orders.stop().await;
    inv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_leave_nothing_half_made() {
    let dir = TempDir::new("orders-timeouts");
    let inv = Inventory::start(&dir, 0).await;
    let orders = Orders::start(&dir, inv.grpc, |c| {
        c.try_timeout = Duration::from_millis(100);
        c.max_attempts = 2;
        c.deadline = Duration::from_millis(600);
        c.breaker_wait = Duration::from_millis(300);
    })
    .await;
    // Every attempt outlives its timeout: the client gives up while the server may still
    // reserve. Whatever the server did, the order must end up neither confirmed nor
    // holding stock.
    inv.faults
        .set(inventory_service::FaultSettings {
            error_rate: 0.0,
            latency_ms: 150,
        })
        .unwrap();
    for i in 0..3 {
        let r = orders.post(Some(&format!("slow-{i}")), ONE_KB).await;
        assert_eq!(r.status, 503, "{r:?}");
        // Timeouts count against the breaker, which may open on the way.
        let code = r.json()["code"].clone();
        assert!(
            code == "inventory_unavailable" || code == "inventory_circuit_open",
            "{r:?}"
        );
    }
    inv.faults
        .set(inventory_service::FaultSettings::default())
        .unwrap();
    eventually(
        "the reconciler to release everything",
        Duration::from_secs(10),
        || async { orders.snapshot().await.unfinished == 0 },
    )
    .await;
    // Late reserves that arrive after the release are refused by its tombstone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let o = orders.snapshot().await;
    let s = inv.snapshot().await;
    assert!(o.confirmed.is_empty());
    assert!(s.active.is_empty(), "stock still held: {:?}", s.active);
    assert!(s.stock.iter().all(|l| l.reserved == 0));
    // The keys are free again: the same requests now succeed, once each.
    for i in 0..3 {
        assert_eq!(
            orders.post(Some(&format!("slow-{i}")), ONE_KB).await.status,
            201
        );
    }
    assert_eq!(inv.snapshot().await.active.len(), 3);
    orders.stop().await;
    inv.stop().await;
}
