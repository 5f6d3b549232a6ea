//! Against a real axum server on 127.0.0.1, through a real hyper-util client: a flapping
//! endpoint gets byte-identical bodies on every attempt (streamed or of known size); a body
//! over the limit is sent once; a refused connection is retried; a hedge carries the same
//! body and the slow first attempt is cancelled.
#![cfg(feature = "http")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::put;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade_retry::http::HttpPolicy;
use palisade_retry::{Backoff, Jitter, ReplayBody, RetryLayer};
use tower::{Layer, ServiceExt};

#[derive(Clone, Default)]
struct Flapping {
    bodies: Arc<Mutex<Vec<Bytes>>>,
}

async fn handler(State(s): State<Flapping>, body: Bytes) -> StatusCode {
    let n = {
        let mut b = s.bodies.lock().unwrap();
        b.push(body);
        b.len()
    };
    if n <= 2 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn start() -> (String, Flapping) {
    let state = Flapping::default();
    let app = axum::Router::new()
        .route("/stock", put(handler))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/stock"), state)
}

fn chunked(chunks: Vec<&'static [u8]>) -> Body {
    Body::from_stream(futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c))),
    ))
}

fn layer(policy: HttpPolicy) -> RetryLayer<HttpPolicy> {
    RetryLayer::builder("axum", policy)
        .backoff(Backoff::constant(Duration::from_millis(5)))
        .jitter(Jitter::None)
        .without_budget()
        .build()
        .unwrap()
}

const ORDER: &[u8] = b"{\"sku\":\"abc\",\"qty\":3}";

/// PUTs `body` (which holds [`ORDER`]) to the flapping endpoint: answered on the third
/// attempt, and the server got the same bytes each time.
async fn put_until_answered(body: Body) {
    let (url, state) = start().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Body>>();
    let svc = layer(HttpPolicy::new()).layer(client);
    let res = svc
        .oneshot(Request::put(&url).body(body).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let bodies = state.bodies.lock().unwrap();
    assert_eq!(bodies.len(), 3);
    for b in bodies.iter() {
        assert_eq!(&b[..], ORDER);
    }
}

#[tokio::test]
async fn flapping_endpoint_gets_identical_bodies_and_succeeds_on_the_third_attempt() {
    put_until_answered(chunked(vec![b"{\"sku\":", b"\"abc\",", b"\"qty\":3}"])).await;
}

/// A body of known size (`Body::from(bytes)`, like `Full`): hyper stops reading it once it
/// says it has ended, without polling for the end; it is replayed all the same.
#[tokio::test]
async fn a_body_of_known_size_is_replayed() {
    put_until_answered(Body::from(ORDER)).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_sent_once_and_not_retried() {
    let (url, state) = start().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Body>>();
    let svc = layer(HttpPolicy::new().body_limit(16)).layer(client);
    // No size hint: the limit is found while streaming.
    let req = Request::put(&url)
        .body(chunked(vec![b"0123456789", b"0123456789", b"0123456789"]))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let bodies = state.bodies.lock().unwrap();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0].len(), 30, "sent whole, once");
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let retries = Arc::new(AtomicU32::new(0));
    let r2 = retries.clone();
    let layer = RetryLayer::builder("axum", HttpPolicy::new())
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .without_budget()
        .on_retry(move |e| {
            assert_eq!(e.reason(), "connection error");
            r2.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Body>>();
    let err = layer
        .layer(client.clone())
        .oneshot(
            Request::get(format!("http://{addr}/"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(retries.load(Ordering::SeqCst), 2);

    // With a body: nothing was sent, so the untouched body goes with each retry.
    let err = layer
        .layer(client)
        .oneshot(
            Request::put(format!("http://{addr}/"))
                .body(chunked(vec![b"qty=1"]))
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(retries.load(Ordering::SeqCst), 4);
}

/// A hedge through a real client: the first attempt's handler holds its answer until the
/// hedge arrives (or 10 s pass), so the hedge, sent after 100 ms with the body hyper has
/// already written whole, answers first; the first attempt is cancelled (its connection
/// dropped, its handler with it).
#[tokio::test]
async fn a_hedge_carries_the_same_body_and_the_loser_is_cancelled() {
    use palisade_retry::HedgeLayer;
    use tokio::sync::Notify;

    #[derive(Clone, Default)]
    struct Slow {
        bodies: Arc<Mutex<Vec<Bytes>>>,
        hedge_arrived: Arc<Notify>,
        first_cancelled: Arc<Notify>,
    }
    /// Notifies when dropped while still armed: the handler did not run to its end.
    struct OnDrop(Option<Arc<Notify>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            if let Some(n) = self.0.take() {
                n.notify_one();
            }
        }
    }
    async fn slow(State(s): State<Slow>, body: Bytes) -> &'static str {
        let n = {
            let mut b = s.bodies.lock().unwrap();
            b.push(body);
            b.len()
        };
        if n > 1 {
            s.hedge_arrived.notify_one();
            return "hedge";
        }
        let mut cancelled = OnDrop(Some(s.first_cancelled.clone()));
        let _ = tokio::time::timeout(Duration::from_secs(10), s.hedge_arrived.notified()).await;
        // Give the hedge's answer time to win; the handler is dropped before this ends when
        // the client gives up on the first attempt.
        let _ = tokio::time::timeout(Duration::from_secs(10), std::future::pending::<()>()).await;
        cancelled.0 = None;
        "first"
    }

    let state = Slow::default();
    let app = axum::Router::new()
        .route("/stock", put(slow))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/stock", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let hedge =
        HedgeLayer::with_budget(HttpPolicy::new(), Duration::from_millis(100), None).unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Body>>();
    let req = Request::put(&url).body(Body::from(ORDER)).unwrap();
    let res = hedge.layer(client).oneshot(req).await.unwrap();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"hedge");
    // Bounded: the first handler's own timeout ends it within 20 s whatever happens.
    tokio::time::timeout(Duration::from_secs(20), state.first_cancelled.notified())
        .await
        .expect("the first attempt was cancelled");
    let bodies = state.bodies.lock().unwrap();
    assert_eq!(bodies.len(), 2);
    assert_eq!(&bodies[0][..], ORDER);
    assert_eq!(&bodies[1][..], ORDER);
}
