//! `ORDER_MIDDLEWARE=off` / `INVENTORY_MIDDLEWARE=off`, the baseline `benches/load.sh`
//! measures the Palisade layers against: orders are still placed, but no health endpoint
//! is served and the inventory client neither retries nor breaks.

mod support;

use std::time::Duration;

use inventory_service::FaultSettings;
use order_service::BreakerState;
use palisade_testkit::TempDir;
use support::{Inventory, Orders, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_middleware_orders_are_placed_with_no_layer_in_the_way() {
    let dir = TempDir::new("orders-middleware-off");
    let inv = Inventory::start_with(&dir, 0, |c| c.middleware = false).await;
    let orders = Orders::start(&dir, inv.grpc, |c| {
        c.middleware = false;
        // No reconciler pass during the test: it would add releases to the count below.
        c.reconcile_interval = Duration::from_secs(600);
    })
    .await;

    let placed = orders
        .post(None, r#"{"items":[{"sku":"KB-0001","quantity":2}]}"#)
        .await;
    assert_eq!(placed.status, 201, "{placed:?}");
    let id = placed.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(orders.get(&format!("/orders/{id}")).await.status, 200);

    // No health layer on either service.
    assert_eq!(
        request(&orders.addr, "GET", "/health/ready", &[], "")
            .await
            .status,
        404
    );
    let admin = inv.admin.to_string();
    assert_eq!(
        request(&admin, "GET", "/health/ready", &[], "")
            .await
            .status,
        404
    );

    // Every call fails: one attempt each (no retry), and no breaker opens however many fail.
    inv.faults
        .set(FaultSettings {
            error_rate: 1.0,
            latency_ms: 0,
        })
        .unwrap();
    let before = inv.faults.injected();
    for _ in 0..20 {
        let r = orders
            .post(None, r#"{"items":[{"sku":"KB-0001","quantity":1}]}"#)
            .await;
        assert_eq!(r.status, 503, "{r:?}");
    }
    // One reserve per order and at most one compensating release: a single attempt each
    // (the retry layer would make up to three of each).
    let injected = inv.faults.injected() - before;
    assert!(
        (20..=40).contains(&injected),
        "{injected} failed calls for 20 orders"
    );
    assert_eq!(orders.breaker.state(), BreakerState::Closed);
    assert_eq!(orders.retry_stats.retries(), 0);

    orders.stop().await;
    inv.stop().await;
}
