//! Arbitrary breaker configurations and command sequences: calls that succeed, fail or stay
//! in flight, in-flight calls finished or cancelled in any order, and the handle's manual
//! state changes. The breaker must never panic, and its observable rules must hold:
//! a rejected call never reaches the inner service, ForcedOpen rejects everything,
//! Disabled admits everything, and the window's statistics stay consistent.
#![no_main]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use palisade_circuit_breaker::error::{BoxError, CircuitOpen};
use palisade_circuit_breaker::{CircuitBreakerLayer, SlidingWindow, State};
use tokio::sync::oneshot;
use tower::{Layer, ServiceExt, service_fn};

/// What the inner service does with one request.
enum Req {
    Ok,
    Fail,
    /// Stays in flight until the sender sends the outcome (`true` = success) or is dropped.
    Later(oneshot::Receiver<bool>),
}

type CallFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

fn poll_once<T>(fut: &mut Pin<Box<dyn Future<Output = T> + Send>>) -> Poll<T> {
    fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

fn builder(u: &mut Unstructured<'_>) -> ArbResult<Option<CircuitBreakerLayer>> {
    let window = match u.int_in_range(0..=2u8)? {
        0 => SlidingWindow::count(u.int_in_range(0..=300u64)?),
        1 => SlidingWindow::exact_count(u.int_in_range(0..=300u64)?),
        _ => SlidingWindow::time(
            Duration::from_millis(u.int_in_range(0..=20_000u64)?),
            u.int_in_range(0..=70u32)?,
        ),
    };
    let mut b = CircuitBreakerLayer::builder("fuzz")
        .sliding_window(window)
        .minimum_calls(u.int_in_range(0..=200u64)?)
        .failure_rate_threshold(f64::from(u.int_in_range(0..=110u8)?) - 5.0)
        .slow_call_duration(Duration::from_millis(u.int_in_range(0..=1_000u64)?))
        .slow_call_rate_threshold(f64::from(u.int_in_range(0..=110u8)?) - 5.0)
        .permitted_calls_in_half_open(u.int_in_range(0..=10u32)?)
        // Either the wait is over at once (half-open on the next call) or never in this run.
        .wait_duration(if u.arbitrary()? {
            Duration::from_nanos(1)
        } else {
            Duration::from_secs(3_600)
        })
        .wait_duration_multiplier(f64::from(u.int_in_range(0..=40u8)?) / 10.0)
        .wait_duration_jitter(f64::from(u.int_in_range(0..=12u8)?) / 10.0)
        .max_wait_in_half_open(Duration::from_millis(u.int_in_range(0..=10u64)?));
    if u.arbitrary()? {
        b = b.consecutive_failures(u.int_in_range(0..=20u32)?);
    }
    if u.arbitrary()? {
        b = b.without_failure_rate_threshold();
    }
    // Invalid configurations must be refused with an error, never a panic.
    Ok(b.build().ok())
}

fn run(u: &mut Unstructured<'_>) -> ArbResult<()> {
    let Some(layer) = builder(u)? else {
        return Ok(());
    };
    let handle = layer.handle();
    let reached = Arc::new(AtomicUsize::new(0));
    let inner = {
        let reached = reached.clone();
        service_fn(move |req: Req| {
            reached.fetch_add(1, Ordering::SeqCst);
            async move {
                let ok = match req {
                    Req::Ok => true,
                    Req::Fail => false,
                    Req::Later(rx) => rx.await.unwrap_or(false),
                };
                if ok {
                    Ok(())
                } else {
                    Err(std::io::Error::other("inner failure"))
                }
            }
        })
    };
    let svc = layer.layer(inner);
    let mut in_flight: Vec<(Option<oneshot::Sender<bool>>, CallFuture)> = Vec::new();

    for _ in 0..u.int_in_range(0..=400u16)? {
        if u.is_empty() {
            break;
        }
        match u.int_in_range(0..=9u8)? {
            0..=3 => {
                let (req, tx) = match u.int_in_range(0..=2u8)? {
                    0 => (Req::Ok, None),
                    1 => (Req::Fail, None),
                    _ => {
                        let (tx, rx) = oneshot::channel();
                        (Req::Later(rx), Some(tx))
                    }
                };
                let state = handle.state();
                let before = reached.load(Ordering::SeqCst);
                let mut fut: CallFuture = Box::pin(svc.clone().oneshot(req));
                match poll_once(&mut fut) {
                    Poll::Ready(Err(e)) if e.is::<CircuitOpen>() => {
                        assert_eq!(
                            reached.load(Ordering::SeqCst),
                            before,
                            "a rejected call reached the inner service"
                        );
                        assert_ne!(state, State::Disabled, "Disabled rejected a call");
                    }
                    Poll::Ready(_) => {
                        assert_ne!(state, State::ForcedOpen, "ForcedOpen admitted a call");
                    }
                    Poll::Pending => {
                        assert_ne!(state, State::ForcedOpen, "ForcedOpen admitted a call");
                        in_flight.push((tx, fut));
                    }
                }
            }
            4 if !in_flight.is_empty() => {
                // Finish one in-flight call with an outcome, or drop its sender.
                let i = u.choose_index(in_flight.len())?;
                let (tx, mut fut) = in_flight.swap_remove(i);
                if let Some(tx) = tx {
                    if u.arbitrary()? {
                        let _ = tx.send(u.arbitrary()?);
                    }
                }
                let _ = poll_once(&mut fut);
            }
            5 if !in_flight.is_empty() => {
                // Cancel an in-flight call: its permit must be given back.
                let i = u.choose_index(in_flight.len())?;
                drop(in_flight.swap_remove(i));
            }
            6 => handle.force_open(),
            7 => handle.force_closed(),
            8 => handle.disable(),
            _ => handle.reset(),
        }
        let stats = handle.stats();
        assert!(stats.failures <= stats.calls, "{stats:?}");
        assert!(stats.slow_calls <= stats.calls, "{stats:?}");
        assert!((0.0..=100.0).contains(&stats.failure_rate), "{stats:?}");
        assert!((0.0..=100.0).contains(&stats.slow_call_rate), "{stats:?}");
        assert!(stats.total_failures <= stats.total_calls, "{stats:?}");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
