//! `shutdown_signal()`: SIGTERM starts the drain, a second SIGTERM skips the rest of
//! the delay. Its own test binary, since it signals its own process.
#![cfg(unix)]

use std::time::Duration;

use palisade_health::{HealthRegistry, Kind, Status};
use tokio::time::timeout;

fn sigterm_self() {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// Waits (bounded) until `f` holds.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn sigterm_drains_and_a_second_one_skips_the_delay() {
    let health = HealthRegistry::builder()
        .without_runtime_heartbeat()
        .drain_delay(Duration::from_secs(3600))
        .build()
        .unwrap();
    // Installs tokio's process-wide SIGTERM handler first, so a signal can never take
    // the default action (killing the test) even if it raced the registry's listener.
    let _guard = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install a SIGTERM handler");
    let shutdown = tokio::spawn(health.shutdown_signal());
    // A second call shares the one listener.
    let again = tokio::spawn(health.shutdown_signal());
    // Let the listener task install its handlers before signalling.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!health.is_draining());

    sigterm_self();
    eventually("drain after SIGTERM", || health.is_draining()).await;
    assert_eq!(health.status(Kind::Readiness), Status::Fail);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!shutdown.is_finished(), "still within the drain delay");

    sigterm_self();
    timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("second signal skips the delay")
        .unwrap();
    timeout(Duration::from_secs(10), again)
        .await
        .unwrap()
        .unwrap();
}
