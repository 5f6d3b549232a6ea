//! Regression tests for inputs the `circuit_breaker_commands` fuzz target found
//! (`fuzz/fuzz_targets/circuit_breaker_commands.rs`).

use std::time::Duration;

use palisade_circuit_breaker::{CircuitBreakerLayer, SlidingWindow, Stats};
use tokio::sync::oneshot;
use tower::{Layer, ServiceExt, service_fn};

fn consistent(stats: &Stats) {
    assert!(stats.failures <= stats.calls, "{stats:?}");
    assert!(stats.slow_calls <= stats.calls, "{stats:?}");
    assert!((0.0..=100.0).contains(&stats.failure_rate), "{stats:?}");
    assert!((0.0..=100.0).contains(&stats.slow_call_rate), "{stats:?}");
}

/// A call the count window counted when it was admitted and that is then cancelled is
/// taken back out of the window. The failures recorded meanwhile must not then outnumber
/// the window's calls (the fuzzer saw `calls: 2, failures: 3`, a failure rate of 150 %).
#[tokio::test]
async fn a_cancelled_call_never_leaves_more_failures_than_calls_in_the_window() {
    for size in 1..=12 {
        let layer = CircuitBreakerLayer::builder("fuzz")
            .sliding_window(SlidingWindow::count(size))
            .minimum_calls(1)
            .without_failure_rate_threshold()
            .consecutive_failures(1_000)
            .slow_call_duration(Duration::from_secs(60))
            .build()
            .unwrap();
        let handle = layer.handle();
        let svc = layer.layer(service_fn(|rx: Option<oneshot::Receiver<()>>| async move {
            match rx {
                Some(rx) => {
                    let _ = rx.await;
                    Ok(())
                }
                None => Err(std::io::Error::other("down")),
            }
        }));
        for failures in 0..=size + 2 {
            handle.reset();
            // Admitted, counted, and left in flight.
            let (_tx, rx) = oneshot::channel();
            let mut pending = Box::pin(svc.clone().oneshot(Some(rx)));
            assert!(futures_poll_once(&mut pending).is_pending());
            for _ in 0..failures {
                assert!(svc.clone().oneshot(None).await.is_err());
                consistent(&handle.stats());
            }
            // Cancelled: its admission is retracted.
            drop(pending);
            consistent(&handle.stats());
        }
    }
}

fn futures_poll_once<F: std::future::Future + Unpin>(fut: &mut F) -> std::task::Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(fut).poll(&mut cx)
}
