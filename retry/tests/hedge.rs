//! Hedged requests (paused time): a slow first attempt is overtaken by the hedge, which wins;
//! the loser is cancelled; fast answers and non-idempotent requests are never hedged.
#![cfg(feature = "http")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use palisade_retry::http::HttpPolicy;
use palisade_retry::{Attempt, HedgeLayer, ReplayBody};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

mod support;
use support::EvenOnly;

const MS: Duration = Duration::from_millis(1);

struct Live(Arc<AtomicU32>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Attempt 1 takes `first`, attempt 2 takes `second`; each answers with its attempt number.
fn replicas(
    first: Duration,
    second: Duration,
    calls: Arc<AtomicU32>,
    live: Arc<AtomicU32>,
) -> impl tower::Service<
    Request<ReplayBody<Full<Bytes>>>,
    Response = Response<u32>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone {
    service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        live.fetch_add(1, Ordering::SeqCst);
        let guard = Live(live.clone());
        let n = Attempt::of(req.extensions()).number();
        let wait = if n == 1 { first } else { second };
        async move {
            tokio::time::sleep(wait).await;
            drop(guard);
            Ok(Response::new(n))
        }
    })
}

fn get(method: Method) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("http://127.0.0.1/stock")
        .body(Full::default())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_attempt_is_overtaken_and_cancelled() {
    let (calls, live) = (Arc::default(), Arc::new(AtomicU32::new(0)));
    let layer = HedgeLayer::with_budget(HttpPolicy::new(), 50 * MS, None).unwrap();
    let svc = layer.layer(replicas(
        Duration::from_secs(5),
        10 * MS,
        calls,
        live.clone(),
    ));
    let t0 = Instant::now();
    // Called directly: `oneshot` would drop the response future as soon as it is ready.
    let fut = svc.clone().ready().await.unwrap().call(get(Method::GET));
    tokio::pin!(fut);
    let res = fut.as_mut().await.unwrap();
    assert_eq!(*res.body(), 2, "the hedge won");
    assert_eq!(t0.elapsed(), 60 * MS);
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the slow first attempt was cancelled when the hedge won, before the future was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fast_answer_is_not_hedged() {
    let (calls, live) = (Arc::new(AtomicU32::new(0)), Arc::default());
    let layer = HedgeLayer::with_budget(HttpPolicy::new(), 50 * MS, None).unwrap();
    let svc = layer.layer(replicas(20 * MS, 20 * MS, calls.clone(), live));
    let res = svc.oneshot(get(Method::GET)).await.unwrap();
    assert_eq!(*res.body(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn the_first_attempt_still_wins_if_it_answers_first() {
    let (calls, live) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let layer = HedgeLayer::with_budget(HttpPolicy::new(), 50 * MS, None).unwrap();
    let svc = layer.layer(replicas(80 * MS, 500 * MS, calls.clone(), live.clone()));
    let t0 = Instant::now();
    // Called directly: `oneshot` would drop the response future as soon as it is ready.
    let fut = svc.clone().ready().await.unwrap().call(get(Method::GET));
    tokio::pin!(fut);
    let res = fut.as_mut().await.unwrap();
    assert_eq!(*res.body(), 1);
    assert_eq!(t0.elapsed(), 80 * MS);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the hedge was cancelled when the first attempt won, before the future was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_post_without_idempotency_key_is_never_hedged() {
    let (calls, live) = (Arc::new(AtomicU32::new(0)), Arc::default());
    let layer = HedgeLayer::with_budget(HttpPolicy::new(), 50 * MS, None).unwrap();
    let svc = layer.layer(replicas(Duration::from_secs(1), MS, calls.clone(), live));
    let res = svc.oneshot(get(Method::POST)).await.unwrap();
    assert_eq!(*res.body(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn hedges_are_limited_by_the_budget() {
    let (calls, live) = (Arc::new(AtomicU32::new(0)), Arc::default());
    // No ratio, a floor of 1 per second over 1 s: one hedge, then none.
    let budget = palisade_retry::Budget::new(0.0, 1, Duration::from_secs(1));
    let layer = HedgeLayer::with_budget(HttpPolicy::new(), 50 * MS, Some(budget)).unwrap();
    let svc = layer.layer(replicas(200 * MS, 10 * MS, calls.clone(), live));
    for expected in [2, 1, 1] {
        let res = svc.clone().oneshot(get(Method::GET)).await.unwrap();
        assert_eq!(*res.body(), expected);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

/// A hedge that cannot be sent (the body was over the limit) never takes from the budget:
/// the next slow request is still hedged.
#[tokio::test(start_paused = true)]
async fn a_hedge_that_cannot_be_replayed_does_not_spend_the_budget() {
    let (calls, live) = (Arc::new(AtomicU32::new(0)), Arc::default());
    let budget = palisade_retry::Budget::new(0.0, 1, Duration::from_secs(1));
    let policy = HttpPolicy::new().body_limit(16);
    let layer = HedgeLayer::with_budget(policy, 50 * MS, Some(budget)).unwrap();
    let svc = layer.layer(replicas(200 * MS, 10 * MS, calls.clone(), live));
    let mut large = get(Method::GET);
    *large.body_mut() = Full::new(Bytes::from_static(&[b'x'; 64]));
    let res = svc.clone().oneshot(large).await.unwrap();
    assert_eq!(*res.body(), 1, "over the limit: never hedged");
    let res = svc.clone().oneshot(get(Method::GET)).await.unwrap();
    assert_eq!(*res.body(), 2, "the budget's one hedge was still there");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn an_invalid_delay_names_the_field() {
    let e = HedgeLayer::new(HttpPolicy::new(), Duration::ZERO).unwrap_err();
    assert_eq!(e.field(), "delay");
}

/// A hedge taken from the budget whose request then cannot be rebuilt gives the unit back:
/// the next slow request is still hedged.
#[tokio::test(start_paused = true)]
async fn a_hedge_taken_but_not_rebuilt_is_given_back_to_the_budget() {
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    // The first two calls are slow, later ones fast; each answers with its call number.
    let inner = service_fn(move |_: u32| {
        let n = c2.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(if n < 2 { 200 * MS } else { 10 * MS }).await;
            Ok::<_, std::io::Error>(n)
        }
    });
    let budget = palisade_retry::Budget::new(0.0, 1, Duration::from_secs(1));
    let layer = HedgeLayer::with_budget(EvenOnly, 50 * MS, Some(budget)).unwrap();
    let svc = layer.layer(inner);
    assert_eq!(
        svc.clone().oneshot(1).await.unwrap(),
        0,
        "odd: never hedged"
    );
    assert_eq!(svc.clone().oneshot(2).await.unwrap(), 2, "the hedge won");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// Attempt 1 fails after 5 ms with 503 (and `retry_after`, when given); attempt 2 answers 200
/// after 10 ms. Returns the status and the number of calls.
async fn first_fails_fast(retry_after: Option<&'static str>) -> (u16, u32, Duration) {
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let inner = service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
        c2.fetch_add(1, Ordering::SeqCst);
        let n = Attempt::of(req.extensions()).number();
        async move {
            tokio::time::sleep(if n == 1 { 5 * MS } else { 10 * MS }).await;
            let mut res = Response::builder().status(if n == 1 { 503 } else { 200 });
            if let (1, Some(after)) = (n, retry_after) {
                res = res.header("retry-after", after);
            }
            Ok::<_, std::io::Error>(res.body(()).unwrap())
        }
    });
    let layer = HedgeLayer::with_budget(HttpPolicy::new(), 50 * MS, None).unwrap();
    let t0 = Instant::now();
    let res = layer.layer(inner).oneshot(get(Method::GET)).await.unwrap();
    (
        res.status().as_u16(),
        calls.load(Ordering::SeqCst),
        t0.elapsed(),
    )
}

/// A retryable failure before the delay is hedged at once, rather than after the delay.
#[tokio::test(start_paused = true)]
async fn a_fast_retryable_failure_is_hedged_at_once() {
    assert_eq!(first_fails_fast(None).await, (200, 2, 15 * MS));
}

/// A failure carrying `Retry-After` is returned as it is: the server asked for time, and a
/// hedge sent at once would ignore it.
#[tokio::test(start_paused = true)]
async fn a_failure_with_retry_after_is_not_hedged() {
    assert_eq!(first_fails_fast(Some("1")).await, (503, 1, 5 * MS));
}

/// gRPC: only the methods declared idempotent are hedged.
#[cfg(feature = "grpc")]
#[tokio::test(start_paused = true)]
async fn grpc_hedges_only_methods_declared_idempotent() {
    use palisade_retry::grpc::GrpcPolicy;
    let cases = [
        (GrpcPolicy::new(), "/inventory.v1.Inventory/CheckStock", 1),
        (
            GrpcPolicy::new()
                .idempotent_methods(["/inventory.v1.Inventory/CheckStock"])
                .unwrap(),
            "/inventory.v1.Inventory/CheckStock",
            2,
        ),
        (
            GrpcPolicy::new()
                .idempotent_methods(["/inventory.v1.Inventory/CheckStock"])
                .unwrap(),
            "/inventory.v1.Inventory/Reserve",
            1,
        ),
        (
            GrpcPolicy::new()
                .idempotent_methods(["/inventory.v1.Inventory/"])
                .unwrap(),
            "/inventory.v1.Inventory/Reserve",
            2,
        ),
    ];
    for (policy, path, winner) in cases {
        let (calls, live) = (Arc::new(AtomicU32::new(0)), Arc::default());
        let layer = HedgeLayer::with_budget(policy, 50 * MS, None).unwrap();
        let svc = layer.layer(replicas(200 * MS, 10 * MS, calls.clone(), live));
        let req = Request::post(format!("http://127.0.0.1{path}"))
            .body(Full::default())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(*res.body(), winner, "{path}");
        assert_eq!(calls.load(Ordering::SeqCst), winner, "{path}");
    }
}

/// A hedge layer with a budget of one hedge per second (no share of the traffic), over a mock
/// the test answers by hand.
fn one_hedge_over_a_mock() -> (
    palisade_retry::Hedge<tower_test::mock::Mock<u32, u32>, EvenOnly>,
    tower_test::mock::Handle<u32, u32>,
) {
    let budget = palisade_retry::Budget::new(0.0, 1, Duration::from_secs(1));
    let layer = HedgeLayer::with_budget(EvenOnly, 50 * MS, Some(budget)).unwrap();
    let (mock, handle) = tower_test::mock::pair::<u32, u32>();
    (layer.layer(mock), handle)
}

/// The budget's one hedge is still there: a slow request is hedged, and the hedge answers.
async fn assert_hedged(
    svc: &palisade_retry::Hedge<tower_test::mock::Mock<u32, u32>, EvenOnly>,
    handle: &mut tower_test::mock::Handle<u32, u32>,
) {
    handle.allow(2);
    let call = tokio::spawn(svc.clone().oneshot(2));
    let (_, slow) = handle.next_request().await.unwrap();
    let hedge = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
    let (_, respond) = hedge
        .expect("the hedge never came: its budget was spent by one never sent")
        .unwrap();
    respond.send_response(7);
    assert_eq!(call.await.unwrap().unwrap(), 7);
    drop(slow);
}

/// A hedge taken from the budget while the inner service is not ready, then not needed (the
/// first attempt answers), gives its unit back.
#[tokio::test(start_paused = true)]
async fn a_hedge_not_sent_because_the_first_answered_is_given_back() {
    let (svc, mut handle) = one_hedge_over_a_mock();
    handle.allow(1);
    let call = tokio::spawn(svc.clone().oneshot(2));
    let (_, respond) = handle.next_request().await.unwrap();
    // Past the hedge delay: the hedge is taken and waits for readiness that does not come.
    tokio::time::sleep(100 * MS).await;
    respond.send_response(1);
    assert_eq!(call.await.unwrap().unwrap(), 1);
    assert_hedged(&svc, &mut handle).await;
}

/// A hedge taken from the budget and still waiting for readiness when the caller gives up
/// (drops the future) gives its unit back.
#[tokio::test(start_paused = true)]
async fn a_hedge_not_sent_because_the_caller_gave_up_is_given_back() {
    let (svc, mut handle) = one_hedge_over_a_mock();
    handle.allow(1);
    let call = tokio::spawn(tokio::time::timeout(100 * MS, svc.clone().oneshot(2)));
    let (_, respond) = handle.next_request().await.unwrap();
    assert!(call.await.unwrap().is_err(), "timed out, hedge unsent");
    drop(respond);
    assert_hedged(&svc, &mut handle).await;
}

/// A hedge whose inner service fails to get ready is not sent and gives its unit back; the
/// first attempt still answers.
#[tokio::test(start_paused = true)]
async fn a_hedge_the_service_fails_to_get_ready_for_is_given_back() {
    let (svc, mut handle) = one_hedge_over_a_mock();
    handle.allow(1);
    let call = tokio::spawn(svc.clone().oneshot(2));
    let (_, respond) = handle.next_request().await.unwrap();
    tokio::time::sleep(100 * MS).await;
    handle.send_error("broken");
    tokio::time::sleep(10 * MS).await;
    respond.send_response(1);
    assert_eq!(call.await.unwrap().unwrap(), 1);
    assert_hedged(&svc, &mut handle).await;
}
