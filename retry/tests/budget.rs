//! The retry budget under sustained failure, through the service: retries stay within the
//! budget over a long run, and the budget refills after recovery.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use palisade_retry::{Backoff, Budget, Jitter, RetryIf, RetryLayer};
use tower::{Layer, ServiceExt, service_fn};

mod support;
use support::{EvenOnly, one_retry_budget};

#[tokio::test(start_paused = true)]
async fn retries_stay_within_budget_and_refill_after_recovery() {
    let failing = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicU32::new(0));
    let (f2, c2) = (failing.clone(), calls.clone());
    let inner = service_fn(move |_: u32| {
        c2.fetch_add(1, Ordering::SeqCst);
        let fail = f2.load(Ordering::SeqCst);
        std::future::ready(if fail { Err("down") } else { Ok(()) })
    });
    let layer = RetryLayer::builder(
        "budget",
        RetryIf::new(|r: &Result<(), &'static str>| r.is_err()),
    )
    .backoff(Backoff::constant(Duration::ZERO))
    .jitter(Jitter::None)
    .max_attempts(3)
    .budget(Budget::new(0.2, 1, Duration::from_secs(10)))
    .build()
    .unwrap();
    // Several clones, as tower makes per connection: they share one budget.
    let services: Vec<_> = (0..4).map(|_| layer.layer(inner.clone())).collect();

    // 60 s of sustained failure at 100 requests per second.
    let mut requests = 0u32;
    for _sec in 0..60 {
        for i in 0..100 {
            let _ = services[i % 4].clone().oneshot(1).await;
            requests += 1;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let retries = calls.load(Ordering::SeqCst) - requests;
    // Budget: 20 % of requests + 1/s floor = 20 + 1 per second; without it: 200 per second.
    let allowed = 0.2f64.mul_add(f64::from(requests), 60.0 + 20.0) as u32;
    assert!(retries <= allowed, "{retries} retries > {allowed}");
    assert!(
        retries >= (0.2 * f64::from(requests)) as u32 - 200,
        "the budget is used: {retries}"
    );

    // Recovery: successes refill it; a later failure is retried again.
    failing.store(false, Ordering::SeqCst);
    for _sec in 0..11 {
        for i in 0..100 {
            services[i % 4].clone().oneshot(1).await.unwrap();
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    failing.store(true, Ordering::SeqCst);
    let before = calls.load(Ordering::SeqCst);
    let _ = services[0].clone().oneshot(1).await;
    assert_eq!(
        calls.load(Ordering::SeqCst) - before,
        3,
        "retried again after recovery"
    );
}

/// A failure that cannot be retried (the body was over the limit, so it cannot be sent again)
/// neither takes from the budget nor counts as refused by it: the budget's one retry is still
/// there for a request that can be retried, and `budget_exhausted` counts only the retries
/// the budget stopped.
#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn a_failure_that_cannot_be_replayed_leaves_the_budget_alone() {
    use bytes::Bytes;
    use http::{Method, Request, Response, StatusCode};
    use http_body_util::{BodyExt, Full};
    use palisade_retry::ReplayBody;
    use palisade_retry::http::HttpPolicy;

    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    // 503 to every PUT, and to the first GET; 200 after that.
    let inner = service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
        let n = c2.fetch_add(1, Ordering::SeqCst);
        async move {
            let method = req.method().clone();
            req.into_body().collect().await?;
            let mut res = Response::new(());
            if method == Method::PUT || n == 5 {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(res)
        }
    });
    let layer = one_retry_budget("replayable", HttpPolicy::new().body_limit(16));
    let svc = layer.layer(inner);
    let put = |body: &'static [u8]| {
        let mut put = Request::new(Full::new(Bytes::from_static(body)));
        *put.method_mut() = Method::PUT;
        put
    };
    for _ in 0..5 {
        let res = svc.clone().oneshot(put(&[b'x'; 64])).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5, "over the limit: sent once");
    assert_eq!(
        layer.stats().budget_exhausted(),
        0,
        "not replayable, not refused"
    );
    let get = Request::new(Full::new(Bytes::new()));
    let res = svc.clone().oneshot(get).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the budget's one retry was still there"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 7);
    // The budget is spent now: a replayable failure is refused, and counted.
    let res = svc.clone().oneshot(put(b"small")).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::SeqCst), 8);
    assert_eq!(
        layer.stats().budget_exhausted(),
        1,
        "replayable, and refused"
    );
}

/// A retry taken from the budget whose request then cannot be rebuilt is given back: the
/// budget's one retry is still there for the next request that can be retried.
#[tokio::test(start_paused = true)]
async fn a_retry_taken_but_not_rebuilt_is_given_back_to_the_budget() {
    let calls = Arc::new(AtomicU32::new(0));
    let even_failed = Arc::new(AtomicBool::new(false));
    let (c2, e2) = (calls.clone(), even_failed.clone());
    // Odd requests always fail; an even one fails once, then succeeds.
    let inner = service_fn(move |n: u32| {
        c2.fetch_add(1, Ordering::SeqCst);
        let fail = !n.is_multiple_of(2) || !e2.swap(true, Ordering::SeqCst);
        std::future::ready(if fail { Err("down") } else { Ok(()) })
    });
    let layer = one_retry_budget("given-back", EvenOnly);
    let svc = layer.layer(inner);
    for _ in 0..5 {
        assert_eq!(svc.clone().oneshot(1).await, Err("down"));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        5,
        "odd requests are sent once"
    );
    assert_eq!(
        svc.clone().oneshot(2).await,
        Ok(()),
        "the one retry was still there"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 7);
    assert_eq!(layer.stats().budget_exhausted(), 0);
    assert_eq!(layer.stats().retries(), 1);
}

/// A layer of two attempts with a budget of one retry per second, and a 100 ms wait before
/// the retry.
fn one_waited_retry<E>() -> (
    RetryLayer<RetryIf<fn(&Result<(), E>) -> bool>>,
    Arc<AtomicU32>,
) {
    let layer = RetryLayer::builder(
        "dropped",
        RetryIf::new(Result::is_err as fn(&Result<(), E>) -> bool),
    )
    .max_attempts(2)
    .backoff(Backoff::constant(Duration::from_millis(100)))
    .jitter(Jitter::None)
    .budget(Budget::new(0.0, 1, Duration::from_secs(1)))
    .build()
    .unwrap();
    (layer, Arc::new(AtomicU32::new(0)))
}

/// A request dropped while waiting to retry gives its retry back to the budget: the next
/// failing request in the same window is still retried.
#[tokio::test(start_paused = true)]
async fn a_retry_dropped_before_it_is_sent_is_given_back() {
    let (layer, calls) = one_waited_retry::<&'static str>();
    let c2 = calls.clone();
    let svc = layer.layer(service_fn(move |()| {
        c2.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err::<(), _>("down"))
    }));
    let dropped = tokio::time::timeout(Duration::from_millis(50), svc.clone().oneshot(())).await;
    assert!(dropped.is_err(), "still waiting to retry when dropped");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(svc.clone().oneshot(()).await, Err("down"));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the second request was retried"
    );
    assert_eq!(layer.stats().budget_exhausted(), 0);
}

/// A retry whose inner service fails to get ready is not sent: its retry goes back to the
/// budget, and the readiness error is returned.
#[tokio::test(start_paused = true)]
async fn a_retry_the_service_fails_to_get_ready_for_is_given_back() {
    let (layer, _) = one_waited_retry::<tower::BoxError>();
    let (mock, mut handle) = tower_test::mock::pair::<(), ()>();
    let svc = layer.layer(mock);
    handle.allow(1);
    let call = tokio::spawn(svc.clone().oneshot(()));
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_error("down");
    // Waiting 100 ms, then not ready: the readiness check fails.
    tokio::time::sleep(Duration::from_millis(150)).await;
    handle.send_error("broken");
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.to_string(), "broken");
    // The budget's one retry is still there.
    handle.allow(2);
    let call = tokio::spawn(svc.clone().oneshot(()));
    for attempt in 1..=2 {
        let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
        let (_, respond) = next
            .unwrap_or_else(|_| panic!("attempt {attempt} never came: the retry was refused"))
            .unwrap();
        respond.send_error("down");
    }
    assert_eq!(call.await.unwrap().unwrap_err().to_string(), "down");
    assert_eq!(layer.stats().budget_exhausted(), 0);
    // The first request's retry was never sent: not counted.
    assert_eq!(layer.stats().retries(), 1);
}
