//! Paused-time tests of the retry loop: the exact backoff schedule of each kind, the deadline,
//! max attempts, the hook, and cancellation.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_retry::{Backoff, Jitter, RetryIf, RetryLayer};
use proptest::prelude::*;
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

type Calls = Arc<Mutex<Vec<Duration>>>;

/// A service that always fails, recording when each attempt arrived (relative to `t0`).
fn failing(
    t0: Instant,
    calls: Calls,
) -> impl tower::Service<
    u32,
    Response = u32,
    Error = &'static str,
    Future = std::future::Ready<Result<u32, &'static str>>,
> + Clone {
    service_fn(move |_: u32| {
        calls.lock().unwrap().push(t0.elapsed());
        std::future::ready(Err::<u32, _>("down"))
    })
}

fn always() -> RetryIf<fn(&Result<u32, &'static str>) -> bool> {
    RetryIf::new(|r: &Result<u32, &'static str>| r.is_err())
}

async fn schedule(backoff: Backoff, attempts: u32) -> Vec<Duration> {
    let layer = RetryLayer::builder("t", always())
        .backoff(backoff)
        .jitter(Jitter::None)
        .max_delay(Duration::from_secs(1))
        .max_attempts(attempts)
        .without_budget()
        .build()
        .unwrap();
    let calls = Calls::default();
    let t0 = Instant::now();
    let res = layer.layer(failing(t0, calls.clone())).oneshot(1).await;
    assert_eq!(res, Err("down"), "the last attempt's error is returned");
    calls.lock().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn exact_schedule_per_backoff_kind() {
    assert_eq!(
        schedule(Backoff::constant(50 * MS), 4).await,
        [0, 50, 100, 150].map(|m| m * MS)
    );
    assert_eq!(
        schedule(Backoff::linear(10 * MS, 5 * MS), 5).await,
        [0, 10, 25, 45, 70].map(|m| m * MS)
    );
    assert_eq!(
        schedule(Backoff::exponential(100 * MS, 2.0), 6).await,
        // 100, 200, 400, 800, then capped at max_delay = 1 s
        [0, 100, 300, 700, 1500, 2500].map(|m| m * MS)
    );
}

#[tokio::test(start_paused = true)]
async fn one_attempt_means_no_retry() {
    assert_eq!(
        schedule(Backoff::constant(MS), 1).await,
        vec![Duration::ZERO]
    );
}

#[tokio::test(start_paused = true)]
async fn success_is_returned_without_retry() {
    let layer = RetryLayer::builder("t", always()).build().unwrap();
    let n = Arc::new(AtomicU32::new(0));
    let n2 = n.clone();
    let svc = service_fn(move |x: u32| {
        n2.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok::<_, &'static str>(x + 1))
    });
    assert_eq!(layer.layer(svc).oneshot(41).await, Ok(42));
    assert_eq!(n.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn succeeds_on_a_later_attempt() {
    let layer = RetryLayer::builder("t", always())
        .without_budget()
        .seed(7)
        .build()
        .unwrap();
    let n = Arc::new(AtomicU32::new(0));
    let n2 = n.clone();
    let svc = service_fn(move |x: u32| {
        let k = n2.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if k < 2 { Err("flap") } else { Ok(x) })
    });
    assert_eq!(layer.layer(svc).oneshot(5).await, Ok(5));
    assert_eq!(n.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn hook_sees_every_retry_with_reason_and_delay() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let layer = RetryLayer::builder("inventory", always())
        .backoff(Backoff::constant(20 * MS))
        .jitter(Jitter::None)
        .without_budget()
        .on_retry(move |e| {
            s2.lock().unwrap().push((
                e.name().to_owned(),
                e.attempt().number(),
                e.reason(),
                e.delay(),
            ));
        })
        .build()
        .unwrap();
    let _ = layer
        .layer(failing(Instant::now(), Calls::default()))
        .oneshot(1)
        .await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            ("inventory".to_owned(), 2, "predicate", 20 * MS),
            ("inventory".to_owned(), 3, "predicate", 20 * MS),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_deadline_is_not_made() {
    let layer = RetryLayer::builder("t", always())
        .backoff(Backoff::exponential(100 * MS, 2.0))
        .jitter(Jitter::None)
        .max_attempts(10)
        .max_elapsed(Duration::from_secs(1))
        .without_budget()
        .build()
        .unwrap();
    let calls = Calls::default();
    let t0 = Instant::now();
    let res = layer.layer(failing(t0, calls.clone())).oneshot(1).await;
    assert_eq!(res, Err("down"));
    // 0, 100, 300, 700; the next wait (800 ms) would end at 1500 ms > 1 s.
    assert_eq!(*calls.lock().unwrap(), [0, 100, 300, 700].map(|m| m * MS));
    assert_eq!(t0.elapsed(), 700 * MS, "returned at once, without waiting");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever the backoff, jitter and seed, the retries never run past the deadline.
    #[test]
    fn the_deadline_is_never_exceeded(
        base in 0u64..500, factor in 1.0f64..4.0, jitter in 0usize..4, seed in any::<u64>(),
        max_elapsed in 1u64..5_000, attempt_ms in 0u64..50,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async move {
            let jitter = [Jitter::None, Jitter::Full, Jitter::Equal, Jitter::Decorrelated][jitter];
            let layer = RetryLayer::builder("p", always())
                .backoff(Backoff::exponential(Duration::from_millis(base), factor))
                .jitter(jitter)
                .seed(seed)
                .max_attempts(100)
                .max_delay(Duration::from_secs(2))
                .max_elapsed(Duration::from_millis(max_elapsed))
                .without_budget()
                .build()
                .unwrap();
            let svc = service_fn(move |_: u32| async move {
                tokio::time::sleep(Duration::from_millis(attempt_ms)).await;
                Err::<u32, &'static str>("down")
            });
            let t0 = Instant::now();
            let _ = layer.layer(svc).oneshot(1).await;
            // Waits never cross the deadline; only the last attempt itself may (bound it with
            // a per-attempt timeout inside the retry layer).
            assert!(t0.elapsed() <= Duration::from_millis(max_elapsed + attempt_ms));
        });
    }
}

#[tokio::test(start_paused = true)]
async fn seeded_jitter_is_reproducible() {
    async fn run(seed: u64) -> Vec<Duration> {
        let layer = RetryLayer::builder("t", always())
            .jitter(Jitter::Full)
            .seed(seed)
            .max_attempts(5)
            .without_budget()
            .build()
            .unwrap();
        let calls = Calls::default();
        let _ = layer
            .layer(failing(Instant::now(), calls.clone()))
            .oneshot(1)
            .await;
        calls.lock().unwrap().clone()
    }
    assert_eq!(run(42).await, run(42).await);
    assert_ne!(run(42).await, run(43).await);
}

/// Counts live inner futures.
struct Live(Arc<AtomicU32>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_stops_everything() {
    let layer = RetryLayer::builder("t", always())
        .backoff(Backoff::constant(Duration::from_secs(1)))
        .jitter(Jitter::None)
        .max_attempts(10)
        .without_budget()
        .build()
        .unwrap();
    let live = Arc::new(AtomicU32::new(0));
    let calls = Arc::new(AtomicU32::new(0));
    let (l2, c2) = (live.clone(), calls.clone());
    let svc = service_fn(move |_: u32| {
        l2.fetch_add(1, Ordering::SeqCst);
        c2.fetch_add(1, Ordering::SeqCst);
        let guard = Live(l2.clone());
        async move {
            tokio::time::sleep(100 * MS).await;
            drop(guard);
            Err::<u32, &'static str>("down")
        }
    });
    let svc = layer.layer(svc);

    // Dropped while an attempt is in flight: the attempt is dropped with it.
    let mut fut = tokio_test::task::spawn(svc.clone().oneshot(1));
    tokio_test::assert_pending!(fut.poll());
    assert_eq!(live.load(Ordering::SeqCst), 1);
    drop(fut);
    assert_eq!(live.load(Ordering::SeqCst), 0);

    // Dropped while waiting to retry: no further attempt is ever made.
    calls.store(0, Ordering::SeqCst);
    let task = tokio::spawn(svc.oneshot(1));
    tokio::time::sleep(500 * MS).await; // first attempt done at 100 ms, now waiting
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    task.abort();
    let _ = task.await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn invalid_config_names_the_field() {
    let b = || RetryLayer::builder("t", always());
    assert_eq!(
        b().max_attempts(0).build().unwrap_err().field(),
        "max_attempts"
    );
    assert_eq!(
        b().max_attempts(101).build().unwrap_err().field(),
        "max_attempts"
    );
    assert_eq!(
        b().max_delay(Duration::ZERO).build().unwrap_err().field(),
        "max_delay"
    );
    assert_eq!(
        b().max_elapsed(Duration::ZERO).build().unwrap_err().field(),
        "max_elapsed"
    );
    let e = b()
        .backoff(Backoff::exponential(MS, 0.5))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "backoff");
    assert!(e.to_string().contains("1.0"), "{e}");
    let e = b()
        .budget(palisade_retry::Budget::new(
            1.5,
            10,
            Duration::from_secs(10),
        ))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "budget");
    let e = b()
        .budget(palisade_retry::Budget::new(0.2, 10, Duration::ZERO))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "budget");
}

#[test]
fn services_and_futures_are_send_and_layers_clone() {
    fn send<T: Send>(_: &T) {}
    fn clone<T: Clone>(_: &T) {}
    let layer = RetryLayer::builder("t", always()).build().unwrap();
    clone(&layer);
    let mut svc = layer.layer(failing(Instant::now(), Calls::default()));
    send(&svc);
    clone(&svc);
    let fut = tower::Service::call(&mut svc, 1);
    send(&fut);
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_cuts_a_hanging_attempt_and_retries() {
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    // The first attempt hangs; the second answers at once.
    let svc = service_fn(move |x: u32| {
        let n = c2.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                std::future::pending::<()>().await;
            }
            Ok::<u32, std::io::Error>(x)
        }
    });
    let layer = RetryLayer::builder(
        "t",
        RetryIf::new(|r: &Result<u32, tower::BoxError>| {
            r.as_ref()
                .is_err_and(|e| e.is::<tower::timeout::error::Elapsed>())
        }),
    )
    .backoff(Backoff::constant(10 * MS))
    .jitter(Jitter::None)
    .without_budget()
    .attempt_timeout(Duration::from_secs(1))
    .build()
    .unwrap();
    let t0 = Instant::now();
    assert_eq!(layer.layer(svc).oneshot(9).await.unwrap(), 9);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(t0.elapsed(), Duration::from_secs(1) + 10 * MS);
}

#[test]
fn attempt_timeout_is_validated() {
    let e = RetryLayer::builder("t", always())
        .attempt_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "attempt_timeout");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// Against a model: for any sequence of attempt outcomes, the layer makes
    /// `min(first success + 1, max_attempts)` calls and returns the last attempt's result.
    #[test]
    fn calls_and_result_match_the_model(
        outcomes in proptest::collection::vec(any::<bool>(), 1..12),
        max_attempts in 1u32..10,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async move {
            let n = Arc::new(AtomicU32::new(0));
            let (n2, plan) = (n.clone(), outcomes.clone());
            let svc = service_fn(move |_: u32| {
                let k = n2.fetch_add(1, Ordering::SeqCst) as usize;
                let ok = plan.get(k).copied().unwrap_or(true);
                std::future::ready(if ok { Ok(k as u32) } else { Err("down") })
            });
            let layer = RetryLayer::builder("m", always())
                .max_attempts(max_attempts)
                .seed(1)
                .without_budget()
                .build()
                .unwrap();
            let got = layer.layer(svc).oneshot(0).await;
            let first_ok = outcomes.iter().position(|&o| o).unwrap_or(outcomes.len());
            let calls = (first_ok as u32 + 1).min(max_attempts);
            assert_eq!(n.load(Ordering::SeqCst), calls);
            let last = calls as usize - 1;
            let expected = if outcomes.get(last).copied().unwrap_or(true) { Ok(last as u32) } else { Err("down") };
            assert_eq!(got, expected);
        });
    }
}

/// Retries every error, 100 ms apart, within a 1 s deadline, without a budget.
fn errors_for_a_second()
-> RetryLayer<RetryIf<impl Fn(&Result<u32, tower::BoxError>) -> bool + Clone>> {
    RetryLayer::builder(
        "t",
        RetryIf::new(|r: &Result<u32, tower::BoxError>| r.is_err()),
    )
    .backoff(Backoff::constant(100 * MS))
    .jitter(Jitter::None)
    .max_elapsed(Duration::from_secs(1))
    .without_budget()
    .build()
    .unwrap()
}

/// The deadline holds while the inner service gets ready for a retry: a service that stays
/// not ready (a concurrency limit, a full buffer) does not hold the caller past it; the
/// failed result that decided the retry is returned.
#[tokio::test(start_paused = true)]
async fn the_deadline_holds_while_the_inner_service_gets_ready() {
    let layer = errors_for_a_second();
    let (mock, mut handle) = tower_test::mock::pair::<u32, u32>();
    // One call, then never ready again.
    handle.allow(1);
    let server = tokio::spawn(async move {
        let (_, respond) = handle.next_request().await.unwrap();
        respond.send_error("down");
        handle // kept alive, so the service stays open and not ready
    });
    let t0 = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(60), layer.layer(mock).oneshot(1))
        .await
        .expect("returned by the deadline, not left waiting for readiness");
    assert_eq!(res.unwrap_err().to_string(), "down");
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    assert_eq!(
        layer.stats().retries(),
        0,
        "decided, never sent: no retry made"
    );
    drop(server.await.unwrap());
}

/// A retry whose wait ended before the deadline but whose task is polled only after it (a
/// busy runtime) is not sent: the failed result is returned.
#[tokio::test(start_paused = true)]
async fn a_retry_polled_past_the_deadline_is_not_sent() {
    let layer = errors_for_a_second();
    let (mock, mut handle) = tower_test::mock::pair::<u32, u32>();
    handle.allow(2);
    let mut svc = layer.layer(mock);
    std::future::poll_fn(|cx| tower::Service::poll_ready(&mut svc, cx))
        .await
        .unwrap();
    let mut call = tokio_test::task::spawn(tower::Service::call(&mut svc, 1));
    assert!(call.poll().is_pending());
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_error("down");
    assert!(call.poll().is_pending(), "waiting out the backoff");
    // The wait ends at 100 ms; the task is next polled at 1.5 s.
    tokio::time::advance(Duration::from_millis(1500)).await;
    let res = match call.poll() {
        std::task::Poll::Ready(res) => res,
        std::task::Poll::Pending => panic!("returned at once, past the deadline"),
    };
    assert_eq!(res.unwrap_err().to_string(), "down");
    assert_eq!(layer.stats().retries(), 0);
    assert!(
        handle.poll_request().is_pending(),
        "no second request was sent"
    );
}

/// A deadline too far to represent is none: waiting for readiness after a backoff is not cut
/// short by the backoff's spent wait.
#[tokio::test(start_paused = true)]
async fn an_unrepresentable_deadline_does_not_cut_readiness_short() {
    type BoxError = tower::BoxError;
    let layer = RetryLayer::builder("t", RetryIf::new(|r: &Result<u32, BoxError>| r.is_err()))
        .max_attempts(2)
        .backoff(Backoff::constant(100 * MS))
        .jitter(Jitter::None)
        .max_elapsed(Duration::MAX)
        .without_budget()
        .build()
        .unwrap();
    let (mock, mut handle) = tower_test::mock::pair::<u32, u32>();
    handle.allow(1);
    let call = tokio::spawn(layer.layer(mock).oneshot(1));
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_error("down");
    // Past the backoff, the service is not ready for a second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!call.is_finished(), "still waiting for readiness");
    handle.allow(1);
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response(7);
    assert_eq!(call.await.unwrap().unwrap(), 7);
}

/// Counts its drops: a failed result that may hold a connection open.
#[derive(Debug)]
struct Held(Arc<AtomicU32>);
impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Without a deadline, a failed result is dropped when its retry is decided, not held open
/// through the wait; with one, it is kept (it is what the deadline returns) until the retry
/// is sent.
#[tokio::test(start_paused = true)]
async fn a_failed_result_is_held_through_the_wait_only_with_a_deadline() {
    for deadline in [None, Some(Duration::from_secs(10))] {
        let dropped = Arc::new(AtomicU32::new(0));
        let mut builder =
            RetryLayer::builder("t", RetryIf::new(|r: &Result<u32, Held>| r.is_err()))
                .max_attempts(2)
                .backoff(Backoff::constant(100 * MS))
                .jitter(Jitter::None)
                .without_budget();
        if let Some(d) = deadline {
            builder = builder.max_elapsed(d);
        }
        let d2 = dropped.clone();
        let svc = builder.build().unwrap().layer(service_fn(move |n: u32| {
            std::future::ready(if n == 0 { Err(Held(d2.clone())) } else { Ok(n) })
        }));
        let call = tokio::spawn(svc.oneshot(0));
        tokio::time::sleep(50 * MS).await;
        let held = u32::from(deadline.is_some());
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            1 - held,
            "deadline {deadline:?}"
        );
        assert!(call.await.unwrap().is_err());
        assert_eq!(dropped.load(Ordering::SeqCst), 2);
    }
}
