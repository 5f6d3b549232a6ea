//! A server that answers before it has read the request body (a load-shedding 503, a gRPC
//! trailers-only UNAVAILABLE): the failed attempt still holds the body when its answer
//! arrives. If the transport lets the body go during the backoff, the retry sends what was read
//! and then the rest — the whole body, once; if it does not, the answer is returned and the
//! retry goes back to the budget. In-process with paused time, then through a real hyper-util
//! client and axum server on 127.0.0.1.
#![cfg(feature = "http")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade_retry::http::HttpPolicy;
use palisade_retry::{Backoff, Budget, Jitter, ReplayBody, RetryLayer};
use tokio::sync::mpsc;
use tower::{BoxError, Layer, ServiceExt, service_fn};

type Frames =
    futures_util::stream::Iter<std::vec::IntoIter<Result<http_body::Frame<Bytes>, std::io::Error>>>;
type Streamed = StreamBody<Frames>;

fn streamed(chunks: &[&'static str]) -> Streamed {
    let frames: Vec<_> = chunks
        .iter()
        .map(|c| Ok(http_body::Frame::data(Bytes::from_static(c.as_bytes()))))
        .collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

fn put(body: Streamed) -> Request<Streamed> {
    let mut req = Request::new(body);
    *req.method_mut() = Method::PUT;
    req
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::default());
    *res.status_mut() = code;
    res
}

/// Where the inner service parks the body of an attempt it answered without finishing it, as
/// a transport still sending it does.
type Held = Arc<Mutex<Option<ReplayBody<Streamed>>>>;

/// A service that, on its first call, reads one frame, parks the body in `held` and answers
/// 503; afterwards it reads the whole body and answers 200. It records what each call read.
fn answers_early(
    held: Held,
    seen: Arc<Mutex<Vec<Bytes>>>,
) -> impl tower::Service<
    Request<ReplayBody<Streamed>>,
    Response = Response<Full<Bytes>>,
    Error = BoxError,
    Future = impl Send,
> + Clone {
    service_fn(move |req: Request<ReplayBody<Streamed>>| {
        let (held, seen) = (held.clone(), seen.clone());
        async move {
            let mut body = req.into_body();
            if seen.lock().unwrap().is_empty() {
                let first = body.frame().await.unwrap()?.into_data().unwrap();
                seen.lock().unwrap().push(first);
                *held.lock().unwrap() = Some(body);
                return Ok::<_, BoxError>(status(StatusCode::SERVICE_UNAVAILABLE));
            }
            let all = body.collect().await?.to_bytes();
            seen.lock().unwrap().push(all);
            Ok(status(StatusCode::OK))
        }
    })
}

fn builder() -> palisade_retry::Builder<HttpPolicy> {
    RetryLayer::builder("early", HttpPolicy::new())
        .backoff(Backoff::constant(Duration::from_millis(100)))
        .jitter(Jitter::None)
}

#[tokio::test(start_paused = true)]
async fn a_body_let_go_during_the_wait_is_sent_whole() {
    let (held, seen) = (Held::default(), Arc::default());
    let svc = builder()
        .without_budget()
        .build()
        .unwrap()
        .layer(answers_early(held.clone(), Arc::clone(&seen)));
    let call = tokio::spawn(svc.oneshot(put(streamed(&["ab", "cd", "ef"]))));
    // The transport lets the body go 30 ms into the 100 ms wait.
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(
        held.lock().unwrap().take().is_some(),
        "parked by the first attempt"
    );
    let res = call.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(*seen.lock().unwrap(), ["ab", "abcdef"]);
}

#[tokio::test(start_paused = true)]
async fn a_body_still_held_after_the_wait_returns_the_answer_and_the_retry() {
    let (held, seen) = (Held::default(), Arc::<Mutex<Vec<Bytes>>>::default());
    // One retry in the window and no share of the traffic: a retry not given back would
    // leave none for the next request.
    let layer = builder()
        .budget(Budget::new(0.0, 1, Duration::from_secs(10)))
        .build()
        .unwrap();
    let svc = layer.layer(answers_early(held.clone(), Arc::clone(&seen)));
    let t0 = tokio::time::Instant::now();
    let res = svc
        .clone()
        .oneshot(put(streamed(&["ab", "cd"])))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(100),
        "decided after the wait"
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "sent once");
    assert_eq!(layer.stats().retries(), 0);
    // Let go too late: the next request (answered early again) gets the retry back.
    drop(held.lock().unwrap().take());
    seen.lock().unwrap().clear();
    let call = tokio::spawn(svc.oneshot(put(streamed(&["x", "y"]))));
    tokio::time::sleep(Duration::from_millis(30)).await;
    drop(held.lock().unwrap().take());
    let res = call.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(*seen.lock().unwrap(), ["x", "xy"]);
    assert_eq!(layer.stats().budget_exhausted(), 0);
}

/// A server that sheds its first `early` requests with 503 without reading their bodies, then
/// reads the body of the next one: before it does, it sends the rest of the upload down
/// `rest`, so that the upload is still unfinished whenever it is answered early.
#[derive(Clone)]
struct Shedding {
    early: usize,
    calls: Arc<Mutex<usize>>,
    rest: Arc<Mutex<Option<mpsc::UnboundedSender<Bytes>>>>,
    read: Arc<Mutex<Vec<Bytes>>>,
}

async fn shed(State(s): State<Shedding>, body: Body) -> StatusCode {
    let n = {
        let mut calls = s.calls.lock().unwrap();
        *calls += 1;
        *calls
    };
    if n <= s.early {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if let Some(tx) = s.rest.lock().unwrap().take() {
        for chunk in ["\"qty\":", "3}"] {
            tx.send(Bytes::from_static(chunk.as_bytes())).unwrap();
        }
    }
    let bytes = axum::body::to_bytes(body, 1024).await.unwrap();
    s.read.lock().unwrap().push(bytes);
    StatusCode::OK
}

#[tokio::test]
async fn an_upload_answered_before_it_was_read_is_sent_again_whole() {
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let state = Shedding {
        early: 2,
        calls: Arc::default(),
        rest: Arc::new(Mutex::new(Some(tx))),
        read: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/stock", axum::routing::put(shed))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // An upload whose first chunk is ready and whose rest comes when the server asks for it.
    let upload = async_stream_body(Bytes::from_static(b"{\"sku\":\"abc\","), async move {
        let mut rest = Vec::new();
        while let Some(chunk) = rx.recv().await {
            rest.push(chunk);
        }
        rest
    });
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Body>>();
    let svc = RetryLayer::builder("upload", HttpPolicy::new())
        .backoff(Backoff::constant(Duration::from_millis(50)))
        .jitter(Jitter::None)
        .without_budget()
        .build()
        .unwrap()
        .layer(client);
    let req = Request::put(format!("http://{addr}/stock"))
        .body(upload)
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), svc.oneshot(req))
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(*state.calls.lock().unwrap(), 3);
    assert_eq!(
        *state.read.lock().unwrap(),
        [Bytes::from_static(b"{\"sku\":\"abc\",\"qty\":3}")]
    );
}

/// A body that yields `first`, then the chunks `rest` resolves to (each as its own frame).
fn async_stream_body(
    first: Bytes,
    rest: impl std::future::Future<Output = Vec<Bytes>> + Send + 'static,
) -> Body {
    use futures_util::StreamExt;
    let first = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) });
    let rest = futures_util::stream::once(rest)
        .flat_map(|chunks| futures_util::stream::iter(chunks.into_iter().map(Ok)));
    Body::from_stream(first.chain(rest))
}
