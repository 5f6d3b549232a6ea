//! Many tasks on one breaker, on a multi-threaded runtime: one Closed→Open transition per
//! trip, half-open never admits more than its permits, and no permit leaks after a storm of
//! dropped futures.
//!
//! Nothing here waits for real time: the breakers wait 1 ns before half-opening (so the
//! next call after a trip is a trial), and calls are cancelled by dropping their futures.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use palisade_circuit_breaker::{CircuitBreaker, CircuitBreakerLayer, SlidingWindow, State};
use tower::{Layer, Service, ServiceExt, service_fn};

#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
    calls: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An inner service that fails or succeeds as asked, after `delay`, tracking concurrency.
fn inner(
    gauge: Arc<Gauge>,
) -> impl Service<(bool, Duration), Response = (), Error = std::io::Error, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(move |(fail, delay): (bool, Duration)| {
        let gauge = gauge.clone();
        async move {
            gauge.enter();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            gauge.leave();
            if fail {
                Err(std::io::Error::other("down"))
            } else {
                Ok(())
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_transition_per_trip_under_a_failure_storm() {
    let opens = Arc::new(AtomicUsize::new(0));
    let layer = CircuitBreakerLayer::builder("storm")
        .sliding_window(SlidingWindow::count(50))
        .minimum_calls(10)
        .failure_rate_threshold(50.0)
        .wait_duration(Duration::from_nanos(1))
        .permitted_calls_in_half_open(4)
        .on_state_change({
            let opens = opens.clone();
            move |t| {
                if t.from() == State::Closed && t.to() == State::Open {
                    opens.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
        .build()
        .unwrap();
    let handle = layer.handle();
    let gauge = Arc::new(Gauge::default());
    let svc = layer.layer(inner(gauge.clone()));

    for round in 1..=3 {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let mut svc = svc.clone();
                tokio::spawn(async move {
                    for _ in 0..20 {
                        let _ = svc
                            .ready()
                            .await
                            .unwrap()
                            .call((true, Duration::ZERO))
                            .await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // Open, or half-open again (the failing storm's trials re-open it).
        // (A storm whose failures were recorded while the decider lagged once left the
        // window at 26 % and the breaker closed: see `Snapshots::advance`.)
        assert_ne!(
            handle.state(),
            State::Closed,
            "round {round}: {:?}",
            handle.stats()
        );
        assert_eq!(
            opens.load(Ordering::SeqCst),
            round,
            "one Closed→Open per trip"
        );
        // Recover through half-open with successes.
        let mut s = svc.clone();
        for _ in 0..100 {
            if handle.state() == State::Closed {
                break;
            }
            let _ = s.ready().await.unwrap().call((false, Duration::ZERO)).await;
        }
        assert_eq!(handle.state(), State::Closed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_never_admits_more_than_its_permits() {
    const PERMITS: usize = 3;
    let layer = CircuitBreakerLayer::builder("probe")
        .sliding_window(SlidingWindow::count(4))
        .minimum_calls(4)
        .wait_duration(Duration::from_nanos(1))
        .permitted_calls_in_half_open(PERMITS as u32)
        .build()
        .unwrap();
    let handle = layer.handle();
    let gauge = Arc::new(Gauge::default());
    let svc = layer.layer(inner(gauge.clone()));
    let mut s = svc.clone();
    for _ in 0..4 {
        let _ = s.ready().await.unwrap().call((true, Duration::ZERO)).await;
    }
    assert_ne!(handle.state(), State::Closed);
    let before = gauge.calls.load(Ordering::SeqCst);

    // 200 concurrent callers race for the permits; admitted trials wait at a gate.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let gated = {
        let (gauge, gate) = (gauge.clone(), gate.clone());
        service_fn(move |_: (bool, Duration)| {
            let (gauge, gate) = (gauge.clone(), gate.clone());
            async move {
                gauge.enter();
                gate.acquire().await.unwrap().forget();
                gauge.leave();
                Ok::<(), std::io::Error>(())
            }
        })
    };
    let svc = CircuitBreaker::new(gated, &layer);
    let rejected = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let mut svc = svc.clone();
            let rejected = rejected.clone();
            tokio::spawn(async move {
                let r = svc
                    .ready()
                    .await
                    .unwrap()
                    .call((false, Duration::ZERO))
                    .await;
                if r.is_err() {
                    rejected.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Wait (bounded) until every caller is either rejected or inside the inner service.
    for _ in 0..1_000_000 {
        if rejected.load(Ordering::SeqCst) + gauge.now.load(Ordering::SeqCst) == 200 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let trials = gauge.calls.load(Ordering::SeqCst) - before;
    assert_eq!(trials, PERMITS, "exactly the permits were admitted");
    assert_eq!(rejected.load(Ordering::SeqCst), 200 - PERMITS);
    assert_eq!(handle.state(), State::HalfOpen);
    gate.add_permits(PERMITS);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(gauge.max.load(Ordering::SeqCst) <= PERMITS);
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_permit_leaks_after_a_storm_of_dropped_futures() {
    const PERMITS: usize = 2;
    let layer = CircuitBreakerLayer::builder("drops")
        .sliding_window(SlidingWindow::count(2))
        .minimum_calls(2)
        .wait_duration(Duration::from_nanos(1))
        .permitted_calls_in_half_open(PERMITS as u32)
        .build()
        .unwrap();
    let handle = layer.handle();
    let gauge = Arc::new(Gauge::default());
    let svc = layer.layer(inner(gauge.clone()));
    let mut s = svc.clone();
    for _ in 0..2 {
        let _ = s.ready().await.unwrap().call((true, Duration::ZERO)).await;
    }
    assert_eq!(handle.state(), State::HalfOpen);

    // A storm of callers whose futures are dropped mid-flight (timeouts), many times over.
    for _ in 0..20 {
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let mut svc = svc.clone();
                tokio::spawn(async move {
                    let fut = svc
                        .ready()
                        .await
                        .unwrap()
                        .call((false, Duration::from_secs(60)));
                    // Poll once (the trial starts and waits), then drop it mid-flight.
                    assert!(fut.now_or_never().is_none_or(|r| r.is_err()));
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            handle.state(),
            State::HalfOpen,
            "cancelled trials decide nothing"
        );
    }
    // Every permit came back: PERMITS fresh trials are admitted and close the breaker.
    let mut admitted = 0;
    for _ in 0..PERMITS {
        if s.ready()
            .await
            .unwrap()
            .call((false, Duration::ZERO))
            .await
            .is_ok()
        {
            admitted += 1;
        }
    }
    assert_eq!(admitted, PERMITS);
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_successes_on_many_clones_are_all_counted() {
    let layer = CircuitBreakerLayer::builder("count")
        .sliding_window(SlidingWindow::count(1_000_000))
        .minimum_calls(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(inner(Arc::new(Gauge::default())));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                for _ in 0..500 {
                    svc.ready()
                        .await
                        .unwrap()
                        .call((false, Duration::ZERO))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let stats = handle.stats();
    assert_eq!(stats.total_calls, 64 * 500);
    assert_eq!(stats.calls, 64 * 500);
    assert_eq!(stats.failures, 0);
}
