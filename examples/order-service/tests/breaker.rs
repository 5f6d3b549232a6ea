//! The inventory breaker end to end, in-process with real time: injected faults open it,
//! new orders then get fast `503` + `Retry-After` with nothing half-made, and it closes
//! again once the faults stop.

mod support;

use std::time::{Duration, Instant};

use inventory_service::FaultSettings;
use order_service::BreakerState;
use palisade_testkit::TempDir;
use support::{Inventory, Orders, eventually};

const ONE_KB: &str = r#"{"items":[{"sku":"KB-0001","quantity":1}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_open_the_breaker_and_recovery_closes_it() {
    let dir = TempDir::new("orders-breaker");
    let inv = Inventory::start(&dir, 0).await;
    let orders = Orders::start(&dir, inv.grpc, |c| {
        c.try_timeout = Duration::from_millis(200);
        c.breaker_wait = Duration::from_millis(400);
    })
    .await;
    let confirmed = orders.post(Some("before-faults"), ONE_KB).await;
    assert_eq!(confirmed.status, 201);

    inv.faults
        .set(FaultSettings {
            error_rate: 1.0,
            latency_ms: 0,
        })
        .unwrap();
    // Failing orders (and their failing compensations) fill the window until it trips.
    let mut open = None;
    for _ in 0..30 {
        let r = orders.post(None, ONE_KB).await;
        assert_eq!(r.status, 503, "{r:?}");
        if r.json()["code"] == "inventory_circuit_open" {
            open = Some(r);
            break;
        }
    }
    let open = open.expect("the breaker opened within 30 failing orders");
    assert!(open.header("retry-after").is_some());
    assert_eq!(orders.breaker.state(), BreakerState::Open);

    // While open: answered at once, without calling inventory.
    let injected = inv.faults.injected();
    let start = Instant::now();
    let r = orders.post(Some("while-open"), ONE_KB).await;
    let elapsed = start.elapsed();
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["code"], "inventory_circuit_open");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(elapsed < Duration::from_millis(100), "took {elapsed:?}");
    assert_eq!(
        inv.faults.injected(),
        injected,
        "an open breaker sends nothing"
    );
    // A finished request is still replayed from the database.
    let replay = orders.post(Some("before-faults"), ONE_KB).await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.json(), confirmed.json());

    // Faults stop: after the wait the trial calls succeed and the breaker closes.
    inv.faults.set(FaultSettings::default()).unwrap();
    eventually(
        "an order to succeed again",
        Duration::from_secs(10),
        || async { orders.post(None, ONE_KB).await.status == 201 },
    )
    .await;
    eventually("the breaker to close", Duration::from_secs(5), || async {
        orders.breaker.state() == BreakerState::Closed
    })
    .await;
    let path: Vec<(BreakerState, BreakerState)> = orders
        .breaker_log
        .transitions()
        .iter()
        .map(|t| (t.from, t.to))
        .collect();
    assert_eq!(
        path.first(),
        Some(&(BreakerState::Closed, BreakerState::Open)),
        "{path:?}"
    );
    assert_eq!(
        path.last(),
        Some(&(BreakerState::HalfOpen, BreakerState::Closed)),
        "{path:?}"
    );

    // Nothing was lost or duplicated: once the reconciler has released what the failed
    // orders left behind, every confirmed order holds exactly its reservation.
    eventually(
        "the reconciler to finish",
        Duration::from_secs(10),
        || async { orders.snapshot().await.unfinished == 0 },
    )
    .await;
    let o = orders.snapshot().await;
    let s = inv.snapshot().await;
    let held: Vec<_> = s.active.iter().map(|r| (&r.order_id, &r.items)).collect();
    let placed: Vec<_> = o.confirmed.iter().map(|o| (&o.id, &o.items)).collect();
    assert_eq!(held, placed);
    assert!(s.violations().is_empty(), "{:?}", s.violations());
    orders.stop().await;
    inv.stop().await;
}
