//! Background tasks stop, and an in-flight check is cancelled (its future dropped),
//! when the last clone of the registry is dropped.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use palisade_health::{Check, HealthCheck, Outcome};
use support::{PASS, Scripted, advance, settle};

/// Hangs, and records when its future is dropped.
#[derive(Clone, Default)]
struct Hangs {
    started: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Check for Hangs {
    async fn check(&self) -> Outcome {
        self.started.fetch_add(1, Ordering::SeqCst);
        let _guard = SetOnDrop(Arc::clone(&self.dropped));
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_registry_stops_checks_and_cancels_in_flight_runs() {
    let health = palisade_health::HealthRegistry::builder().build().unwrap();
    let pass = Scripted::new(PASS);
    let hangs = Hangs::default();
    health
        .register(HealthCheck::readiness("db", pass.clone()).interval(Duration::from_secs(1)))
        .unwrap();
    health
        .register(HealthCheck::readiness("slow", hangs.clone()).timeout(Duration::from_secs(60)))
        .unwrap();
    let layer = health.layer();
    settle().await;
    assert_eq!(pass.runs(), 1);
    assert_eq!(hangs.started.load(Ordering::SeqCst), 1);

    // A layer keeps the registry alive.
    drop(health);
    advance(Duration::from_secs(1)).await;
    assert_eq!(pass.runs(), 2);
    assert!(!hangs.dropped.load(Ordering::SeqCst));

    drop(layer);
    settle().await;
    assert!(
        hangs.dropped.load(Ordering::SeqCst),
        "the hung run was cancelled"
    );
    advance(Duration::from_secs(10)).await;
    assert_eq!(pass.runs(), 2, "no more runs");
}
