//! Loom models of the breaker's atomics and decision lock.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p palisade-circuit-breaker --release --test loom`
#![cfg(loom)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use loom::thread;
use palisade_circuit_breaker::error::BoxError;
use palisade_circuit_breaker::{CircuitBreakerLayer, SlidingWindow, State, loom_set_now};
use tower::{Layer, Service, service_fn};

fn poll_once<F: Future>(fut: &mut Pin<Box<F>>) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    fut.as_mut().poll(&mut cx)
}

/// An inner service answering at once: `true` fails, `false` succeeds.
fn instant() -> impl Service<bool, Response = (), Error = std::io::Error, Future: Send> + Clone {
    service_fn(|fail: bool| {
        std::future::ready(if fail {
            Err(std::io::Error::other("down"))
        } else {
            Ok(())
        })
    })
}

/// An inner service whose calls never finish (they hold their permit until dropped).
fn hanging() -> impl Service<bool, Response = (), Error = std::io::Error, Future: Send> + Clone {
    service_fn(|_: bool| std::future::pending::<Result<(), std::io::Error>>())
}

fn call<S>(svc: &mut S, fail: bool) -> Poll<Result<(), BoxError>>
where
    S: Service<bool, Response = (), Error = BoxError>,
{
    let mut fut = Box::pin(svc.call(fail));
    poll_once(&mut fut)
}

#[test]
fn concurrent_failures_trip_exactly_once() {
    loom::model(|| {
        loom_set_now(0);
        let opens = std::sync::Arc::new(AtomicUsize::new(0));
        let layer = CircuitBreakerLayer::builder("loom")
            .sliding_window(SlidingWindow::count(2))
            .minimum_calls(2)
            .on_state_change({
                let opens = opens.clone();
                move |t| {
                    if t.to() == State::Open {
                        opens.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
            .build()
            .unwrap();
        let handle = layer.handle();
        let svc = layer.layer(instant());
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let mut svc = svc.clone();
                thread::spawn(move || {
                    let _ = call(&mut svc, true);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(handle.state(), State::Open);
        assert_eq!(opens.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn half_open_never_admits_more_than_its_permit() {
    loom::model(|| {
        loom_set_now(0);
        let layer = CircuitBreakerLayer::builder("loom")
            .sliding_window(SlidingWindow::count(1))
            .minimum_calls(1)
            .wait_duration(std::time::Duration::from_nanos(10))
            .permitted_calls_in_half_open(1)
            .without_max_wait_in_half_open()
            .build()
            .unwrap();
        let handle = layer.handle();
        let mut trip = layer.layer(instant());
        assert!(matches!(call(&mut trip, true), Poll::Ready(Err(_))));
        assert_eq!(handle.state(), State::Open);
        loom_set_now(10);

        let svc = layer.layer(hanging());
        let admitted = std::sync::Arc::new(AtomicUsize::new(0));
        let held = std::sync::Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let mut svc = svc.clone();
                let (admitted, held) = (admitted.clone(), held.clone());
                thread::spawn(move || {
                    let mut fut = Box::pin(svc.call(false));
                    if poll_once(&mut fut).is_pending() {
                        admitted.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(held.fetch_add(1, Ordering::SeqCst), 0, "two trials at once");
                        // Hold the permit while the other thread tries.
                        thread::yield_now();
                        held.fetch_sub(1, Ordering::SeqCst);
                    }
                    drop(fut);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // One admitted at a time; the second may follow once the first gave its permit back.
        let n = admitted.load(Ordering::SeqCst);
        assert!((1..=2).contains(&n), "{n}");
        // Both trials were dropped: the permit is back and the breaker still half-open.
        assert_eq!(handle.state(), State::HalfOpen);
        let mut again = layer.layer(hanging());
        let mut fut = Box::pin(again.call(false));
        assert!(
            poll_once(&mut fut).is_pending(),
            "the permit was not leaked"
        );
    });
}

#[test]
fn a_trial_outcome_and_a_cancelled_trial_race_without_leaking() {
    loom::model(|| {
        loom_set_now(0);
        let layer = CircuitBreakerLayer::builder("loom")
            .sliding_window(SlidingWindow::count(1))
            .minimum_calls(1)
            .wait_duration(std::time::Duration::from_nanos(10))
            .permitted_calls_in_half_open(2)
            .without_max_wait_in_half_open()
            .build()
            .unwrap();
        let handle = layer.handle();
        let mut trip = layer.layer(instant());
        let _ = call(&mut trip, true);
        loom_set_now(10);
        assert_eq!(handle.state(), State::HalfOpen);

        let mut ok = layer.layer(instant());
        let mut hang = layer.layer(hanging());
        let t1 = thread::spawn(move || {
            let _ = call(&mut ok, false);
        });
        let t2 = thread::spawn(move || {
            let mut fut = Box::pin(hang.call(false));
            let _ = poll_once(&mut fut);
            drop(fut);
        });
        t1.join().unwrap();
        t2.join().unwrap();
        // One success of two permits, the other cancelled: half-open still (the success
        // alone cannot close: 0 + 1 remaining failure would be 50 %), or closed if the
        // cancelled trial came back first and the success... never opened.
        let state = handle.state();
        assert!(
            matches!(state, State::HalfOpen | State::Closed),
            "{state:?}"
        );
        if state == State::HalfOpen {
            let mut again = layer.layer(instant());
            assert!(call(&mut again, false).is_ready());
            assert_eq!(handle.state(), State::Closed);
        }
    });
}
