//! Against a real HTTP/1.1 server on 127.0.0.1 that reads a request and closes the
//! connection without answering (what a client sees when it reuses a keep-alive connection
//! the server has just closed), through a real hyper-util client: hyper reports an incomplete
//! message, a connection error, so an idempotent request is sent again and a POST without
//! `Idempotency-Key` is not.
#![cfg(feature = "http")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade_retry::http::HttpPolicy;
use palisade_retry::{Backoff, Jitter, ReplayBody, RetryLayer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Layer, ServiceExt};

/// Serves `http://127.0.0.1:port/`: the first `hang_up` requests are read whole and the
/// connection closed without a byte of answer; later ones get `200 OK`. Counts requests.
async fn start(hang_up: usize) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                // One bodiless request per connection: its head ends with an empty line.
                while !head.ends_with(b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if counted.fetch_add(1, Ordering::SeqCst) < hang_up {
                    return; // dropped: closed without an answer
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (format!("http://{addr}/"), requests)
}

async fn call(url: &str, method: Method) -> (Result<StatusCode, String>, Vec<&'static str>) {
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let seen = reasons.clone();
    let layer = RetryLayer::builder("closed", HttpPolicy::new())
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .jitter(Jitter::None)
        .without_budget()
        .on_retry(move |e| seen.lock().unwrap().push(e.reason()))
        .build()
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Empty<Bytes>>>();
    let req = Request::builder()
        .method(method)
        .uri(url)
        .body(Empty::new())
        .unwrap();
    let res = layer
        .layer(client)
        .oneshot(req)
        .await
        .map(|r| r.status())
        .map_err(|e| format!("{e:?}"));
    let reasons = reasons.lock().unwrap().clone();
    (res, reasons)
}

#[tokio::test]
async fn a_connection_closed_without_an_answer_is_retried() {
    let (url, requests) = start(2).await;
    let (res, reasons) = call(&url, Method::GET).await;
    assert_eq!(res.unwrap(), StatusCode::OK);
    assert_eq!(reasons, ["connection error", "connection error"]);
    assert_eq!(requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_post_without_idempotency_key_is_not_retried() {
    let (url, requests) = start(1).await;
    let (res, reasons) = call(&url, Method::POST).await;
    let err = res.unwrap_err();
    assert!(err.contains("IncompleteMessage"), "{err}");
    assert!(reasons.is_empty(), "{reasons:?}");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

/// A client made of hyper's own connections (`hyper::client::conn`, one per attempt), whose
/// error type is `hyper::Error` itself: the incomplete message is recognised all the same.
#[tokio::test]
async fn hyper_conn_errors_are_recognised() {
    let (url, requests) = start(2).await;
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut senders = Vec::new();
    for _ in 0..3 {
        let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(&addr).await.unwrap());
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        senders.push(sender);
    }
    let senders = Arc::new(Mutex::new(senders));
    let client = tower::service_fn(move |req: Request<ReplayBody<Empty<Bytes>>>| {
        let sender = senders.lock().unwrap().pop();
        async move {
            let mut sender: hyper::client::conn::http1::SendRequest<_> =
                sender.expect("a connection per attempt");
            sender.send_request(req).await
        }
    });
    let layer = RetryLayer::builder("conn", HttpPolicy::new())
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .jitter(Jitter::None)
        .without_budget()
        .build()
        .unwrap();
    let req = Request::get(&url).body(Empty::<Bytes>::new()).unwrap();
    let res = layer.layer(client).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    assert_eq!(layer.stats().retries(), 2);
}
