//! The order service's health endpoints: readiness from its database, details only for
//! the configured token, and drain on shutdown.

mod support;

use std::time::Duration;

use palisade_testkit::TempDir;
use support::{Inventory, Orders, eventually, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_details_and_drain() {
    let dir = TempDir::new("orders-health");
    let inv = Inventory::start(&dir, 0).await;
    let orders = Orders::start(&dir, inv.grpc, |c| {
        c.health_token = Some("s3cret".to_owned());
        c.drain_delay = Duration::from_millis(300);
    })
    .await;
    let addr = orders.addr.clone();
    eventually("readiness to pass", Duration::from_secs(5), || async {
        request(&addr, "GET", "/health/ready", &[], "").await.status == 200
    })
    .await;
    let public = request(&addr, "GET", "/health/ready", &[], "").await;
    assert_eq!(
        public.header("content-type"),
        Some("application/health+json")
    );
    assert!(
        !public.body.contains("sqlite"),
        "details are hidden: {}",
        public.body
    );
    let auth = [("authorization", "Bearer s3cret".to_owned())];
    let private = request(&addr, "GET", "/health/ready", &auth, "").await;
    assert!(
        private.body.contains("sqlite"),
        "details for the token: {}",
        private.body
    );
    assert_eq!(
        request(&addr, "GET", "/health/live", &[], "").await.status,
        200
    );

    // Drain: readiness fails at once, the API still serves during the delay.
    orders.health_drain();
    let r = request(&addr, "GET", "/health/ready", &[], "").await;
    assert_eq!(r.status, 503);
    let r = orders
        .post(None, r#"{"items":[{"sku":"KB-0001","quantity":1}]}"#)
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    orders.wait().await;
    inv.stop().await;
}
