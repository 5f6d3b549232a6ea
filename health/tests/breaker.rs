//! A real `palisade-circuit-breaker` breaker as a readiness check.
#![cfg(feature = "circuit-breaker")]

mod support;

use std::time::Duration;

use palisade_circuit_breaker::{CircuitBreakerLayer, State};
use palisade_health::checks::BreakerCheck;
use palisade_health::{Details, HealthRegistry, Kind, Status};
use support::{advance, get, settle};
use tower::{Layer, Service, ServiceExt, service_fn};

fn registry() -> HealthRegistry {
    HealthRegistry::builder()
        .without_runtime_heartbeat()
        .details(Details::always())
        .build()
        .unwrap()
}

/// A breaker over a dependency that always fails: two failures open it for 30 s.
fn failing_breaker() -> (
    CircuitBreakerLayer,
    impl Service<(), Response = (), Error = palisade_circuit_breaker::error::BoxError>,
) {
    let layer = CircuitBreakerLayer::builder("inventory")
        .consecutive_failures(2)
        .wait_duration(Duration::from_secs(30))
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|()| async {
        Err::<(), _>(std::io::Error::other("down"))
    }));
    (layer, svc)
}

fn entry(body: &serde_json::Value) -> &serde_json::Value {
    &body["checks"]["inventory:state"][0]
}

#[tokio::test(start_paused = true)]
async fn open_breaker_warns_by_default_with_its_state_as_observed_value() {
    let (layer, mut svc) = failing_breaker();
    let health = registry();
    health
        .register(BreakerCheck::new(layer.handle()).into_check())
        .unwrap();
    settle().await;
    let p = get(&health, "/health/ready").await;
    assert_eq!(p.status, 200);
    let body = p.json();
    assert_eq!(body["status"], "pass");
    assert_eq!(entry(&body)["status"], "pass");
    assert_eq!(entry(&body)["observedValue"], "closed");
    assert_eq!(entry(&body)["componentType"], "component");

    for _ in 0..2 {
        let _ = svc.ready().await.unwrap().call(()).await;
    }
    assert_eq!(layer.handle().state(), State::Open);
    // The check follows the transition at once, not at its next interval.
    settle().await;
    let p = get(&health, "/health/ready").await;
    assert_eq!(p.status, 200, "open only warns by default");
    let body = p.json();
    assert_eq!(body["status"], "warn");
    assert_eq!(entry(&body)["status"], "warn");
    assert_eq!(entry(&body)["observedValue"], "open");
    assert_eq!(
        entry(&body)["output"],
        "circuit breaker \"inventory\" is open"
    );

    // Half-open after the wait: still a warning.
    advance(Duration::from_secs(30)).await;
    let body = get(&health, "/health/ready").await.json();
    assert_eq!(entry(&body)["observedValue"], "half_open", "{body}");
    assert_eq!(body["status"], "warn");

    layer.handle().disable();
    advance(Duration::from_secs(1)).await;
    let body = get(&health, "/health/ready").await.json();
    assert_eq!(entry(&body)["observedValue"], "disabled");
    assert_eq!(body["status"], "pass");
}

#[tokio::test(start_paused = true)]
async fn open_breaker_fails_readiness_when_configured() {
    let (layer, mut svc) = failing_breaker();
    let health = registry();
    health
        .register(
            BreakerCheck::new(layer.handle())
                .open_status(Status::Fail)
                .into_check(),
        )
        .unwrap();
    settle().await;
    assert_eq!(health.status(Kind::Readiness), Status::Pass);
    for _ in 0..2 {
        let _ = svc.ready().await.unwrap().call(()).await;
    }
    advance(Duration::from_secs(1)).await;
    let p = get(&health, "/health/ready").await;
    assert_eq!(p.status, 503);
    assert_eq!(entry(&p.json())["observedValue"], "open");

    layer.handle().force_closed();
    settle().await;
    assert_eq!(health.status(Kind::Readiness), Status::Pass);
    layer.handle().force_open();
    settle().await;
    let body = get(&health, "/health/ready").await.json();
    assert_eq!(body["status"], "fail");
    assert_eq!(entry(&body)["observedValue"], "forced_open");
}

#[test]
fn status_for_each_state() {
    let layer = CircuitBreakerLayer::builder("x").build().unwrap();
    let check = BreakerCheck::new(layer.handle());
    assert_eq!(check.status_for(State::Closed), Status::Pass);
    assert_eq!(check.status_for(State::Disabled), Status::Pass);
    assert_eq!(check.status_for(State::HalfOpen), Status::Warn);
    assert_eq!(check.status_for(State::Open), Status::Warn);
    assert_eq!(check.status_for(State::ForcedOpen), Status::Warn);
    let check = check.open_status(Status::Fail);
    assert_eq!(check.status_for(State::Open), Status::Fail);
    assert_eq!(check.status_for(State::ForcedOpen), Status::Fail);
    assert_eq!(check.status_for(State::HalfOpen), Status::Warn);
}
