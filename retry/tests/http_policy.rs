//! The HTTP policy with an in-process inner service (paused time): statuses, idempotency,
//! `Retry-After`, connection errors, and the `Attempt` in every resend's extensions (none on the
//! first attempt).
#![cfg(feature = "http")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_retry::http::HttpPolicy;
use palisade_retry::{Attempt, Backoff, Jitter, ReplayBody, RetryLayer};
use tokio::time::Instant;
use tower::{BoxError, Layer, ServiceExt, service_fn};

type Seen = Arc<Mutex<Vec<(u32, Duration, Bytes)>>>;

/// A server stand-in: answers with `statuses` in turn (the last one repeats), recording the
/// attempt number, arrival time and body of each request.
fn server(
    statuses: Vec<(u16, Option<String>)>,
    seen: Seen,
) -> impl tower::Service<
    Request<ReplayBody<Full<Bytes>>>,
    Response = Response<Full<Bytes>>,
    Error = BoxError,
    Future = impl Send,
> + Clone {
    let t0 = Instant::now();
    service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
        let seen = seen.clone();
        let statuses = statuses.clone();
        async move {
            let carried = req.extensions().get::<Attempt>().copied();
            let attempt = Attempt::of(req.extensions());
            // The first attempt goes out untouched; every resend says which one it is.
            assert_eq!(carried.is_some(), attempt.is_retry(), "{carried:?}");
            let body = req.into_body().collect().await?.to_bytes();
            let n = {
                let mut s = seen.lock().unwrap();
                s.push((attempt.number(), t0.elapsed(), body));
                s.len()
            };
            let (status, retry_after) = statuses[(n - 1).min(statuses.len() - 1)].clone();
            let mut res = Response::new(Full::new(Bytes::from_static(b"resp")));
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            if let Some(v) = retry_after {
                res.headers_mut().insert("retry-after", v.parse().unwrap());
            }
            Ok::<_, BoxError>(res)
        }
    })
}

fn layer() -> palisade_retry::Builder<HttpPolicy> {
    RetryLayer::builder("http", HttpPolicy::new())
        .backoff(Backoff::constant(Duration::from_millis(100)))
        .jitter(Jitter::None)
        .without_budget()
}

fn req(method: Method, body: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("http://127.0.0.1/orders")
        .header("x-trace", "abc")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

async fn run(
    builder: palisade_retry::Builder<HttpPolicy>,
    statuses: Vec<(u16, Option<String>)>,
    request: Request<Full<Bytes>>,
) -> (u16, Vec<(u32, Duration, Bytes)>) {
    let seen = Seen::default();
    let svc = builder
        .build()
        .unwrap()
        .layer(server(statuses, seen.clone()));
    let res = svc.oneshot(request).await.unwrap();
    let s = seen.lock().unwrap().clone();
    (res.status().as_u16(), s)
}

#[tokio::test(start_paused = true)]
async fn flapping_get_succeeds_on_the_third_attempt_with_attempt_numbers() {
    let (status, seen) = run(
        layer(),
        vec![(503, None), (503, None), (200, None)],
        req(Method::GET, ""),
    )
    .await;
    assert_eq!(status, 200);
    let attempts: Vec<u32> = seen.iter().map(|s| s.0).collect();
    assert_eq!(attempts, [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn retried_statuses_and_not_retried_ones() {
    for s in [429, 502, 503, 504] {
        let (_, seen) = run(layer(), vec![(s, None), (200, None)], req(Method::GET, "")).await;
        assert_eq!(seen.len(), 2, "status {s} is retried");
    }
    for s in [200, 400, 404, 500, 501] {
        let (status, seen) = run(layer(), vec![(s, None)], req(Method::GET, "")).await;
        assert_eq!((status, seen.len()), (s, 1), "status {s} is not retried");
    }
}

#[tokio::test(start_paused = true)]
async fn post_without_idempotency_key_is_never_retried() {
    for m in [Method::POST, Method::PATCH] {
        let (status, seen) = run(
            layer(),
            vec![(503, None), (200, None)],
            req(m.clone(), "order"),
        )
        .await;
        assert_eq!((status, seen.len()), (503, 1), "{m} without a key");
    }
}

#[tokio::test(start_paused = true)]
async fn post_with_idempotency_key_is_retried_with_the_same_body_and_headers() {
    let mut r = req(Method::POST, "{\"sku\":\"a\",\"qty\":2}");
    r.headers_mut()
        .insert("idempotency-key", "k-1".parse().unwrap());
    let seen = Seen::default();
    let headers = Arc::new(Mutex::new(Vec::new()));
    let h2 = headers.clone();
    let inner = server(vec![(503, None), (503, None), (201, None)], seen.clone());
    let inner = tower::util::MapRequest::new(inner, move |r: Request<ReplayBody<Full<Bytes>>>| {
        h2.lock()
            .unwrap()
            .push((r.method().clone(), r.uri().clone(), r.headers().clone()));
        r
    });
    let res = layer()
        .build()
        .unwrap()
        .layer(inner)
        .oneshot(r)
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for s in seen.iter() {
        assert_eq!(s.2, "{\"sku\":\"a\",\"qty\":2}");
    }
    for (m, u, h) in headers.lock().unwrap().iter() {
        assert_eq!(m, Method::POST);
        assert_eq!(u, "http://127.0.0.1/orders");
        assert_eq!(h["idempotency-key"], "k-1");
        assert_eq!(h["x-trace"], "abc");
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_delta_seconds_is_honoured() {
    let (_, seen) = run(
        layer(),
        vec![(503, Some("3".into())), (200, None)],
        req(Method::GET, ""),
    )
    .await;
    assert_eq!(seen[1].1, Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_is_honoured() {
    let when = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(5));
    let (_, seen) = run(
        layer(),
        vec![(503, Some(when)), (200, None)],
        req(Method::GET, ""),
    )
    .await;
    // HTTP-dates have one-second resolution.
    assert!(
        seen[1].1 >= Duration::from_secs(4) && seen[1].1 <= Duration::from_secs(5),
        "{:?}",
        seen[1].1
    );
}

#[tokio::test(start_paused = true)]
async fn a_hint_shorter_than_the_backoff_does_not_shorten_it() {
    let b = layer().backoff(Backoff::constant(Duration::from_secs(2)));
    let (_, seen) = run(
        b,
        vec![(503, Some("1".into())), (200, None)],
        req(Method::GET, ""),
    )
    .await;
    assert_eq!(seen[1].1, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn garbage_retry_after_is_ignored() {
    for garbage in ["soon", "-3", "1.5", "Mon, 99 Jan 2024 00:00:00 GMT", ""] {
        let (status, seen) = run(
            layer(),
            vec![(503, Some(garbage.into())), (200, None)],
            req(Method::GET, ""),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            seen[1].1,
            Duration::from_millis(100),
            "{garbage:?}: the backoff applies"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn huge_retry_after_is_capped_by_max_delay() {
    let b = layer().max_delay(Duration::from_secs(7));
    let (_, seen) = run(
        b,
        vec![(429, Some("99999999999999999999999".into())), (200, None)],
        req(Method::GET, ""),
    )
    .await;
    assert_eq!(seen[1].1, Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn a_hint_past_the_deadline_returns_the_response_as_is() {
    let b = layer().max_elapsed(Duration::from_secs(10));
    let t0 = Instant::now();
    let (status, seen) = run(
        b,
        vec![(503, Some("30".into())), (200, None)],
        req(Method::GET, ""),
    )
    .await;
    assert_eq!((status, seen.len()), (503, 1));
    assert_eq!(t0.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn connection_errors_are_retried_other_errors_are_not() {
    for (kind, retried) in [
        (std::io::ErrorKind::ConnectionRefused, true),
        (std::io::ErrorKind::ConnectionReset, true),
        (std::io::ErrorKind::TimedOut, true),
        (std::io::ErrorKind::PermissionDenied, false),
    ] {
        let calls = Arc::new(Mutex::new(0));
        let c2 = calls.clone();
        let svc = service_fn(move |_: Request<ReplayBody<Full<Bytes>>>| {
            *c2.lock().unwrap() += 1;
            // Wrapped, as a client stack would: found by walking `source()`.
            let err: BoxError = Box::new(Wrapped(std::io::Error::from(kind)));
            std::future::ready(Err::<Response<Full<Bytes>>, _>(err))
        });
        let res = layer()
            .build()
            .unwrap()
            .layer(svc)
            .oneshot(req(Method::GET, ""))
            .await;
        assert!(res.is_err());
        assert_eq!(
            *calls.lock().unwrap(),
            if retried { 3 } else { 1 },
            "{kind:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn tower_timeouts_inside_are_retried() {
    let calls = Arc::new(Mutex::new(0));
    let c2 = calls.clone();
    let slow = service_fn(move |_: Request<ReplayBody<Full<Bytes>>>| {
        *c2.lock().unwrap() += 1;
        async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::new())))
        }
    });
    let svc = tower::ServiceBuilder::new()
        .layer(layer().build().unwrap())
        .timeout(Duration::from_secs(1))
        .service(slow);
    let err = svc.oneshot(req(Method::GET, "")).await.unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>());
    assert_eq!(*calls.lock().unwrap(), 3);
}

#[derive(Debug)]
struct Wrapped(std::io::Error);
impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("client error")
    }
}
impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_limit_is_sent_once() {
    let b = RetryLayer::builder("http", HttpPolicy::new().body_limit(8))
        .jitter(Jitter::None)
        .without_budget();
    let (status, seen) = run(
        b,
        vec![(503, None), (200, None)],
        req(Method::PUT, "0123456789"),
    )
    .await;
    assert_eq!((status, seen.len()), (503, 1));
    assert_eq!(seen[0].2, "0123456789", "sent whole");
}
