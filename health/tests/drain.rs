//! Graceful drain with a real axum server on loopback, the drain delay in paused time,
//! and shutdown hooks.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use palisade_health::{HealthCheck, HealthRegistry, HookOutcome, Kind, Status};
use palisade_testkit::http;
use support::{PASS, Scripted, advance, settle};
use tokio::sync::Notify;
use tokio::time::{Instant, timeout};

const BOUND: Duration = Duration::from_secs(10);

/// After `drain()`: readiness answers 503 at once, a slow in-flight request still
/// completes with 200, new requests are still served during the delay, and the
/// server stops only after the delay (and after the in-flight request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_on_a_real_axum_server() {
    let delay = Duration::from_millis(300);
    let health = HealthRegistry::builder()
        .drain_delay(delay)
        .build()
        .unwrap();
    health
        .register(HealthCheck::readiness("db", Scripted::new(PASS)))
        .unwrap();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let app = {
        let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
        Router::new()
            .route(
                "/slow",
                get(move || async move {
                    entered.notify_one();
                    release.notified().await;
                    "slow done"
                }),
            )
            .route("/orders", get(|| async { "[]" }))
            .layer(health.layer())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = health.drained();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .unwrap();
        Instant::now()
    });

    // Wait (bounded) for the check's first run.
    for _ in 0..200 {
        if health.status(Kind::Readiness) == Status::Pass {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(http::get(&addr, "/health/ready").await.unwrap().status, 200);

    let slow = tokio::spawn({
        let addr = addr.clone();
        async move { http::get(&addr, "/slow").await }
    });
    timeout(BOUND, entered.notified()).await.unwrap();

    let t0 = Instant::now();
    health.drain();
    health.drain(); // idempotent
    assert!(health.is_draining());
    let ready = http::get(&addr, "/health/ready").await.unwrap();
    assert_eq!(ready.status, 503, "readiness fails at once");
    assert_eq!(ready.body, r#"{"status":"fail"}"#);
    assert_eq!(
        http::get(&addr, "/health/live").await.unwrap().status,
        200,
        "draining is not dead"
    );
    let orders = http::get(&addr, "/orders").await.unwrap();
    assert_eq!(
        (orders.status, orders.body.as_str()),
        (200, "[]"),
        "new requests still served"
    );
    assert!(!server.is_finished());

    timeout(BOUND, health.drained()).await.unwrap();
    assert!(t0.elapsed() >= delay);
    // The server is shutting down gracefully but waits for the in-flight request.
    assert!(!server.is_finished());
    release.notify_one();
    let slow = timeout(BOUND, slow).await.unwrap().unwrap().unwrap();
    assert_eq!((slow.status, slow.body.as_str()), (200, "slow done"));
    let stopped = timeout(BOUND, server).await.unwrap().unwrap();
    assert!(
        stopped - t0 >= delay,
        "stopped {:?} after drain",
        stopped - t0
    );
}

#[tokio::test(start_paused = true)]
async fn drained_resolves_exactly_after_the_delay() {
    let health = HealthRegistry::builder()
        .without_runtime_heartbeat()
        .drain_delay(Duration::from_secs(5))
        .build()
        .unwrap();
    let early = tokio::spawn(health.drained());
    settle().await;
    assert_eq!(health.status(Kind::Readiness), Status::Pass);
    advance(Duration::from_secs(60)).await;
    assert!(!early.is_finished(), "nothing resolves before drain()");

    health.drain();
    assert_eq!(health.status(Kind::Readiness), Status::Fail, "at once");
    let late = tokio::spawn(health.drained());
    advance(Duration::from_millis(4999)).await;
    assert!(!early.is_finished() && !late.is_finished());
    advance(Duration::from_millis(1)).await;
    assert!(early.is_finished() && late.is_finished());
    // A future made after the drain finished resolves at once.
    timeout(Duration::from_millis(1), health.drained())
        .await
        .unwrap();
    assert_eq!(health.status(Kind::Readiness), Status::Fail, "stays failed");
}

#[tokio::test(start_paused = true)]
async fn hooks_run_in_order_and_survive_panics_and_hangs_within_the_budget() {
    let health = HealthRegistry::builder()
        .without_runtime_heartbeat()
        .shutdown_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let push = |name: &'static str| {
        let order = Arc::clone(&order);
        move || order.lock().unwrap().push(name)
    };
    let first = push("flush");
    health.on_shutdown("flush", move || async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        first();
    });
    health.on_shutdown("boom", || async { panic!("hook panicked") });
    let blocking = push("blocking");
    health.on_shutdown_blocking("blocking", blocking);
    health.on_shutdown("hang", std::future::pending::<()>);
    health.on_shutdown("after", || async {});

    let start = Instant::now();
    let report = health.run_shutdown_hooks().await;
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(3),
        "bounded by the budget"
    );
    let got: Vec<(&str, HookOutcome)> = report
        .hooks
        .iter()
        .map(|h| (h.name.as_str(), h.outcome))
        .collect();
    assert_eq!(
        got,
        [
            ("flush", HookOutcome::Completed),
            ("boom", HookOutcome::Panicked),
            ("blocking", HookOutcome::Completed),
            ("hang", HookOutcome::TimedOut),
            ("after", HookOutcome::TimedOut),
        ]
    );
    assert_eq!(report.hooks[0].elapsed, Duration::from_secs(1));
    assert!(!report.all_completed());
    assert_eq!(*order.lock().unwrap(), ["flush", "blocking"]);

    // Each hook runs once: a second call runs only hooks registered since.
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    health.on_shutdown("late", move || async move {
        r.fetch_add(1, Ordering::SeqCst);
    });
    let report = health.run_shutdown_hooks().await;
    assert_eq!(report.hooks.len(), 1);
    assert!(report.all_completed());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(health.run_shutdown_hooks().await.hooks.is_empty());
}
