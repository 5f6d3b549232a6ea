//! Bad configuration yields a `ConfigError` naming the field, never a panic.

use std::time::Duration;

use palisade_circuit_breaker::{CircuitBreakerLayer, Outcome, SlidingWindow};

fn field_of(b: palisade_circuit_breaker::Builder) -> &'static str {
    b.build().expect_err("must be rejected").field()
}

fn base() -> palisade_circuit_breaker::Builder {
    CircuitBreakerLayer::builder("cfg")
}

#[test]
fn every_invalid_setting_is_named() {
    let s = Duration::from_secs(1);
    let cases: Vec<(palisade_circuit_breaker::Builder, &str)> = vec![
        (CircuitBreakerLayer::builder(""), "name"),
        (CircuitBreakerLayer::builder("x".repeat(257)), "name"),
        (
            base().sliding_window(SlidingWindow::count(0)),
            "sliding_window",
        ),
        (
            base().sliding_window(SlidingWindow::count(1_000_001)),
            "sliding_window",
        ),
        (
            base().sliding_window(SlidingWindow::exact_count(0)),
            "sliding_window",
        ),
        (
            base().sliding_window(SlidingWindow::exact_count(100_001)),
            "sliding_window",
        ),
        (
            base().sliding_window(SlidingWindow::time(s, 0)),
            "sliding_window",
        ),
        (
            base().sliding_window(SlidingWindow::time(s, 1001)),
            "sliding_window",
        ),
        (
            base().sliding_window(SlidingWindow::time(Duration::ZERO, 1)),
            "sliding_window",
        ),
        (
            base().sliding_window(SlidingWindow::time(Duration::from_millis(9), 10)),
            "sliding_window",
        ),
        (
            base().sliding_window(SlidingWindow::time(Duration::MAX, 10)),
            "sliding_window",
        ),
        (base().minimum_calls(0), "minimum_calls"),
        (
            base()
                .sliding_window(SlidingWindow::count(10))
                .minimum_calls(11),
            "minimum_calls",
        ),
        (base().failure_rate_threshold(0.0), "failure_rate_threshold"),
        (
            base().failure_rate_threshold(-1.0),
            "failure_rate_threshold",
        ),
        (
            base().failure_rate_threshold(100.5),
            "failure_rate_threshold",
        ),
        (
            base().failure_rate_threshold(f64::NAN),
            "failure_rate_threshold",
        ),
        (
            base().slow_call_rate_threshold(f64::INFINITY),
            "slow_call_rate_threshold",
        ),
        (
            base().slow_call_duration(Duration::ZERO),
            "slow_call_duration",
        ),
        (base().consecutive_failures(0), "consecutive_failures"),
        (base().wait_duration(Duration::ZERO), "wait_duration"),
        (
            base().wait_duration_multiplier(0.5),
            "wait_duration_multiplier",
        ),
        (
            base().wait_duration_multiplier(f64::NAN),
            "wait_duration_multiplier",
        ),
        (
            base().wait_duration(s * 10).max_wait_duration(s),
            "max_wait_duration",
        ),
        (base().wait_duration_jitter(1.5), "wait_duration_jitter"),
        (base().wait_duration_jitter(-0.1), "wait_duration_jitter"),
        (
            base().permitted_calls_in_half_open(0),
            "permitted_calls_in_half_open",
        ),
        (
            base().permitted_calls_in_half_open(1001),
            "permitted_calls_in_half_open",
        ),
        (
            base().max_wait_in_half_open(Duration::ZERO),
            "max_wait_in_half_open",
        ),
        (
            base().cancelled_outcome(Outcome::Success),
            "cancelled_outcome",
        ),
        (
            base().without_failure_rate_threshold(),
            "failure_rate_threshold",
        ),
    ];
    for (builder, field) in cases {
        assert_eq!(field_of(builder), field);
    }
}

#[test]
fn the_message_gives_the_allowed_range_and_the_value() {
    let err = base().failure_rate_threshold(150.0).build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid circuit breaker config: `failure_rate_threshold` must be a percentage in (0, 100], got 150"
    );
    let err = base().permitted_calls_in_half_open(0).build().unwrap_err();
    assert!(err.message().contains("[1, 1000]"), "{err}");
    assert!(err.message().contains("got 0"), "{err}");
}

#[test]
fn defaults_and_edge_values_are_accepted() {
    base().build().unwrap();
    base()
        .sliding_window(SlidingWindow::count(1))
        .minimum_calls(1)
        .failure_rate_threshold(100.0)
        .permitted_calls_in_half_open(1000)
        .wait_duration_multiplier(1000.0)
        .wait_duration_jitter(1.0)
        .build()
        .unwrap();
    // The largest waits stay representable (no float-to-duration overflow on trips).
    base()
        .wait_duration(Duration::MAX)
        .max_wait_duration(Duration::MAX)
        .wait_duration_multiplier(1000.0)
        .build()
        .unwrap();
    base()
        .without_failure_rate_threshold()
        .consecutive_failures(1)
        .build()
        .unwrap();
    base()
        .without_failure_rate_threshold()
        .slow_call_duration(Duration::from_millis(1))
        .build()
        .unwrap();
    base()
        .sliding_window(SlidingWindow::time(Duration::from_millis(1), 1))
        .minimum_calls(1_000_000)
        .without_max_wait_in_half_open()
        .cancelled_outcome(Outcome::Failure)
        .build()
        .unwrap();
}

#[test]
fn layers_services_and_futures_are_send_sync_and_clone() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn clone<T: Clone>(_: &T) {}
    let layer = base().build().unwrap();
    send_sync(&layer);
    clone(&layer);
    let handle = layer.handle();
    send_sync(&handle);
    clone(&handle);
    let svc = tower::Layer::layer(
        &layer,
        tower::service_fn(|x: u8| async move { Ok::<_, std::io::Error>(x) }),
    );
    send_sync(&svc);
    clone(&svc);
    let mut svc = svc;
    let fut = tower::Service::call(&mut svc, 1);
    fn send<T: Send>(_: &T) {}
    send(&fut);
}
