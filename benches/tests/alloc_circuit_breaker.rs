//! Zero allocations per call on the circuit breaker's closed path (and a bounded number on
//! the rejection path, which boxes its error).

use palisade_benches::{allocation_counter, drive};
use palisade_circuit_breaker::{CircuitBreakerLayer, SlidingWindow};
use tower::{Layer, Service, service_fn};

fn call<S: Service<u64>>(svc: &mut S) -> Result<S::Response, S::Error> {
    drive(async {
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
        svc.call(1).await
    })
}

fn bare() -> impl Service<u64, Response = u64, Error = std::io::Error> + Clone {
    service_fn(|x: u64| std::future::ready(Ok::<_, std::io::Error>(x)))
}

const CALLS: u64 = 10_000;

fn allocations_per_call(case: &str, svc: &mut impl Service<u64>) -> u64 {
    // Warm up: the window leaves its cold phase (fewer than `minimum_calls` calls).
    for _ in 0..100 {
        let _ = call(svc);
    }
    let info = allocation_counter::measure(|| {
        for _ in 0..CALLS {
            let _ = call(svc);
        }
    });
    palisade_benches::report_allocations(case, info.count_total as f64 / CALLS as f64);
    info.count_total
}

#[test]
fn closed_path_allocates_nothing_per_call_with_the_default_window() {
    let layer = CircuitBreakerLayer::builder("alloc").build().unwrap();
    let mut svc = layer.layer(bare());
    assert_eq!(
        allocations_per_call("circuit_breaker closed, count window", &mut svc),
        0
    );
}

#[test]
fn closed_path_allocates_nothing_with_the_other_windows_either() {
    for window in [
        SlidingWindow::exact_count(100),
        SlidingWindow::time(std::time::Duration::from_secs(10), 10),
    ] {
        let layer = CircuitBreakerLayer::builder("alloc")
            .sliding_window(window)
            .build()
            .unwrap();
        let mut svc = layer.layer(bare());
        let case = format!("circuit_breaker closed, {window:?}");
        assert_eq!(allocations_per_call(&case, &mut svc), 0, "{window:?}");
    }
}

/// A zero-sized error: boxing it into the breaker's `BoxError` allocates nothing, so the
/// count below is the breaker's own.
#[derive(Debug)]
struct Fail;

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fail")
    }
}

impl std::error::Error for Fail {}

#[test]
fn failures_below_the_threshold_allocate_nothing() {
    let layer = CircuitBreakerLayer::builder("alloc")
        .failure_rate_threshold(100.0)
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(|x: u64| {
        std::future::ready(if x.is_multiple_of(2) {
            Ok(x)
        } else {
            Err(Fail)
        })
    }));
    let failing_half = |svc: &mut _, i: u64| {
        drive(async {
            std::future::poll_fn(|cx| Service::poll_ready(svc, cx)).await?;
            Service::call(svc, i).await
        })
    };
    for i in 0..100 {
        let _ = failing_half(&mut svc, i);
    }
    let info = allocation_counter::measure(|| {
        for i in 0..CALLS {
            let _ = drive(async {
                std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
                svc.call(i).await
            });
        }
    });
    palisade_benches::report_allocations(
        "circuit_breaker closed, failures below threshold",
        info.count_total as f64 / CALLS as f64,
    );
    assert_eq!(info.count_total, 0);
    assert_eq!(layer_state(&svc), palisade_circuit_breaker::State::Closed);
}

fn layer_state<S, C, F>(
    svc: &palisade_circuit_breaker::CircuitBreaker<S, C, F>,
) -> palisade_circuit_breaker::State {
    svc.handle().state()
}

#[test]
fn rejection_allocates_only_its_boxed_error() {
    let layer = CircuitBreakerLayer::builder("alloc").build().unwrap();
    layer.handle().force_open();
    let mut svc = layer.layer(bare());
    let info = allocation_counter::measure(|| {
        for _ in 0..CALLS {
            assert!(call(&mut svc).is_err());
        }
    });
    palisade_benches::report_allocations(
        "circuit_breaker open (rejection)",
        info.count_total as f64 / CALLS as f64,
    );
    assert_eq!(
        info.count_total, CALLS,
        "one Box<CircuitOpen> per rejection"
    );
}
