//! The two real binaries on loopback: orders, idempotent repeats, injected faults that
//! open the breaker and its recovery, and the ledger at the end.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use support::{System, request};

const ONE_KB: &str = r#"{"items":[{"sku":"KB-0001","quantity":1}]}"#;

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_faults_breaker_and_ledger() {
    let system = System::start(&[("ORDER_HEALTH_TOKEN", "e2e".into())]).await;
    let on_hand: BTreeMap<String, u32> = inventory_service::audit::snapshot(&system.inventory_db)
        .await
        .unwrap()
        .stock
        .into_iter()
        .map(|l| (l.sku, l.on_hand))
        .collect();
    let mut accepted = BTreeSet::new();

    // Orders, each sent twice with its key: one order and one reservation each.
    for i in 0..10 {
        let key = format!("e2e-{i}");
        let body = format!(
            r#"{{"items":[{{"sku":"MS-0002","quantity":{}}},{{"sku":"KB-0001","quantity":1}}]}}"#,
            i % 3 + 1
        );
        let first = system.post_order(Some(&key), &body).await;
        assert_eq!(first.status, 201, "{first:?}");
        let again = system.post_order(Some(&key), &body).await;
        assert_eq!(again.status, 201);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(first.json()["id"], again.json()["id"]);
        accepted.insert(first.json()["id"].as_str().unwrap().to_owned());
    }
    let snap = inventory_service::audit::snapshot(&system.inventory_db)
        .await
        .unwrap();
    assert_eq!(snap.active.len(), 10, "repeats never reserve twice");

    // Every inventory call fails: the breaker opens, and orders are refused at once.
    system.set_faults(r#"{"error_rate":1.0}"#).await;
    let mut open = None;
    for _ in 0..40 {
        let r = system.post_order(None, ONE_KB).await;
        assert_eq!(r.status, 503, "{r:?}");
        if r.json()["code"] == "inventory_circuit_open" {
            open = Some(r);
            break;
        }
    }
    let open = open.expect("the breaker opened within 40 failing orders");
    assert!(
        open.header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1))
    );
    let fast = system.post_order(None, ONE_KB).await;
    assert_eq!(fast.json()["code"], "inventory_circuit_open");
    assert!(
        fast.elapsed < Duration::from_millis(100),
        "took {:?}",
        fast.elapsed
    );
    // Readiness reports the open breaker as a warning: still 200, the service answers.
    let auth = [("authorization", "Bearer e2e".to_owned())];
    eventually(
        "readiness to report the breaker open",
        Duration::from_secs(5),
        || async {
            let r = request(&system.http, "GET", "/health/ready", &auth, "").await;
            // `half_open` once the wait has passed: either way not `closed`, and still 200.
            r.status == 200
                && (r.body.contains(r#""observedValue":"open""#)
                    || r.body.contains(r#""observedValue":"half_open""#))
        },
    )
    .await;

    // Faults stop: the breaker half-opens, the trial calls pass, it closes.
    system.set_faults("").await;
    let start = Instant::now();
    loop {
        let r = system.post_order(None, ONE_KB).await;
        if r.status == 201 {
            accepted.insert(r.json()["id"].as_str().unwrap().to_owned());
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "orders never succeeded again: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eventually(
        "readiness to report the breaker closed",
        Duration::from_secs(5),
        || async {
            let r = request(&system.http, "GET", "/health/ready", &auth, "").await;
            r.status == 200 && r.body.contains(r#""observedValue":"closed""#)
        },
    )
    .await;

    // Nothing lost, nothing duplicated.
    eventually(
        "the reconciler to release what failed orders left",
        Duration::from_secs(10),
        || async {
            order_service::audit::snapshot(&system.orders_db)
                .await
                .unwrap()
                .unfinished
                == 0
        },
    )
    .await;
    let orders = order_service::audit::snapshot(&system.orders_db)
        .await
        .unwrap();
    let inventory = inventory_service::audit::snapshot(&system.inventory_db)
        .await
        .unwrap();
    let violations = demo::violations(&orders, &inventory, &on_hand, Some(&accepted));
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(inventory.released > 0, "failed orders were compensated");
}
