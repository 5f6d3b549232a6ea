//! End to end with a real `palisade-circuit-breaker` inside the retry layer: an open breaker's
//! rejection is retried only after its `retry_after`, within the deadline; otherwise it is
//! returned at once.
#![cfg(all(feature = "http", feature = "circuit-breaker"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use palisade_circuit_breaker::error::CircuitOpen;
use palisade_circuit_breaker::{CircuitBreakerLayer, State};
use palisade_retry::http::HttpPolicy;
use palisade_retry::{Backoff, Jitter, ReplayBody, RetryLayer};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// Refuses the first `failures` connections, then answers 200.
fn downstream(
    failures: u32,
    calls: Arc<AtomicU32>,
) -> impl tower::Service<
    Request<ReplayBody<Full<Bytes>>>,
    Response = Response<Full<Bytes>>,
    Error = std::io::Error,
    Future = std::future::Ready<Result<Response<Full<Bytes>>, std::io::Error>>,
> + Clone {
    service_fn(move |_: Request<ReplayBody<Full<Bytes>>>| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if n < failures {
            Err(std::io::ErrorKind::ConnectionRefused.into())
        } else {
            Ok(Response::new(Full::new(Bytes::new())))
        })
    })
}

fn get() -> Request<Full<Bytes>> {
    Request::get("http://127.0.0.1/stock")
        .body(Full::default())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_is_retried_after_its_retry_after() {
    let breaker = CircuitBreakerLayer::builder("inventory")
        .consecutive_failures(2)
        .permitted_calls_in_half_open(1)
        .wait_duration(Duration::from_secs(1))
        .build()
        .unwrap();
    let handle = breaker.handle();
    let reasons = Arc::new(std::sync::Mutex::new(Vec::new()));
    let r2 = reasons.clone();
    let retry = RetryLayer::builder("inventory", HttpPolicy::new())
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .jitter(Jitter::None)
        .max_attempts(5)
        .without_budget()
        .on_retry(move |e| r2.lock().unwrap().push((e.reason(), e.delay())))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let svc = ServiceBuilder::new()
        .layer(retry)
        .layer(breaker)
        .service(downstream(2, calls.clone()));
    let t0 = Instant::now();
    let res = svc.oneshot(get()).await;
    assert!(res.is_ok(), "{:?}", res.err());
    // Two refused attempts opened the breaker; the rejection was waited out (~1 s), and the
    // half-open probe succeeded: downstream saw 3 calls, never one into the open circuit.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(t0.elapsed() >= Duration::from_secs(1));
    let reasons = reasons.lock().unwrap();
    assert_eq!(reasons[0].0, "connection error");
    assert_eq!(reasons[1].0, "connection error");
    assert_eq!(reasons[2].0, "circuit open");
    assert!(
        reasons[2].1 >= Duration::from_millis(900),
        "{:?}",
        reasons[2].1
    );
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_past_the_deadline_is_returned_at_once() {
    let breaker = CircuitBreakerLayer::builder("inventory")
        .consecutive_failures(1)
        .wait_duration(Duration::from_secs(30))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let retry = RetryLayer::builder("inventory", HttpPolicy::new())
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .jitter(Jitter::None)
        .max_elapsed(Duration::from_secs(5))
        .without_budget()
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(retry)
        .layer(breaker)
        .service(downstream(100, calls.clone()));
    let t0 = Instant::now();
    let err = svc.oneshot(get()).await.unwrap_err();
    let open = err
        .downcast_ref::<CircuitOpen>()
        .expect("the breaker's rejection");
    assert!(open.retry_after().unwrap() > Duration::from_secs(5));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no retry storm into the open circuit"
    );
    assert_eq!(t0.elapsed(), Duration::from_millis(10));
    assert!(palisade_retry::find_circuit_open(&*err).is_some());
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_longer_than_max_delay_is_returned_at_once() {
    let breaker = CircuitBreakerLayer::builder("inventory")
        .consecutive_failures(1)
        .wait_duration(Duration::from_secs(30))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let retry = RetryLayer::builder("inventory", HttpPolicy::new())
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .jitter(Jitter::None)
        .max_delay(Duration::from_millis(250))
        .without_budget()
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(retry)
        .layer(breaker)
        .service(downstream(100, calls.clone()));
    let t0 = Instant::now();
    let err = svc.oneshot(get()).await.unwrap_err();
    assert!(err.is::<CircuitOpen>(), "{err}");
    // The refused attempt was retried once after 10 ms and found the breaker open: the
    // rejection is not retried early (max_delay 250 ms < 30 s), nor hammered.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(t0.elapsed(), Duration::from_millis(10));
}

/// The breaker rejects without reading the body: the untouched body goes with the retry, and
/// the downstream receives it whole.
#[tokio::test(start_paused = true)]
async fn a_rejected_request_with_a_body_is_retried_with_its_body() {
    use http_body_util::BodyExt;
    let breaker = CircuitBreakerLayer::builder("inventory")
        .consecutive_failures(1)
        .wait_duration(Duration::from_millis(100))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let b2 = bodies.clone();
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let downstream = service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
        let (b2, n) = (b2.clone(), c2.fetch_add(1, Ordering::SeqCst));
        async move {
            let Ok(body) = req.into_body().collect().await;
            b2.lock().unwrap().push(body.to_bytes());
            if n == 0 {
                Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
            } else {
                Ok(Response::new(Full::new(Bytes::new())))
            }
        }
    });
    let retry = RetryLayer::builder("inventory", HttpPolicy::new())
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .jitter(Jitter::None)
        .max_attempts(4)
        .without_budget()
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(retry)
        .layer(breaker)
        .service(downstream);
    let req = Request::put("http://127.0.0.1/stock/7")
        .body(Full::new(Bytes::from_static(b"{\"qty\":2}")))
        .unwrap();
    // 1: reset (opens the breaker); 2: rejected unread after 10 ms; 3: after retry_after, the
    // half-open probe succeeds with the same body.
    assert!(svc.oneshot(req).await.is_ok());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 2);
    assert!(bodies.iter().all(|b| b == "{\"qty\":2}"));
}
