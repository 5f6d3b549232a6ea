//! An axum router over real TCP on 127.0.0.1: a failing downstream trips the breaker, then
//! the route answers `503` with `Retry-After` without calling downstream.
#![cfg(all(feature = "http", not(loom)))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::routing::get;
use palisade_circuit_breaker::http::{HttpClassifier, handle_error};
use palisade_circuit_breaker::{CircuitBreakerLayer, SlidingWindow, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceBuilder;

/// Sends `GET path` and returns the status code and the response head.
async fn get_raw(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let head = text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    (status, head)
}

async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn failing_downstream_trips_and_the_route_answers_503_with_retry_after() {
    let hits = Arc::new(AtomicUsize::new(0));
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let breaker = CircuitBreakerLayer::builder("downstream")
        .with_classifier(HttpClassifier::new())
        .sliding_window(SlidingWindow::count(10))
        .minimum_calls(4)
        .failure_rate_threshold(50.0)
        .wait_duration(Duration::from_secs(30))
        .build()
        .unwrap();
    let handle = breaker.handle();
    let app = Router::new()
        .route(
            "/stock",
            get({
                let (hits, healthy) = (hits.clone(), healthy.clone());
                move || async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    if healthy.load(Ordering::SeqCst) {
                        (StatusCode::OK, "in stock")
                    } else {
                        (StatusCode::INTERNAL_SERVER_ERROR, "database down")
                    }
                }
            }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(handle_error))
                .layer(breaker),
        );
    let addr = serve(app).await;

    // 404s are the client's problem: no trip however many.
    for _ in 0..10 {
        assert_eq!(get_raw(addr, "/missing").await.0, 404);
    }
    assert_eq!(handle.state(), State::Closed);

    // The 404s were successes: of the last 10 calls, 5 failures make 50 %.
    for _ in 0..4 {
        assert_eq!(get_raw(addr, "/stock").await.0, 500);
    }
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(get_raw(addr, "/stock").await.0, 500);
    assert_eq!(handle.state(), State::Open);
    assert_eq!(hits.load(Ordering::SeqCst), 5);

    healthy.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let (status, head) = get_raw(addr, "/stock").await;
        assert_eq!(status, 503);
        assert!(head.contains("\r\nretry-after: 30\r\n"), "{head}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        5,
        "downstream not called while open"
    );
    assert_eq!(handle.stats().total_rejected, 3);

    // Recovery by hand (time-driven recovery is tested with paused time elsewhere).
    handle.force_closed();
    assert_eq!(get_raw(addr, "/stock").await.0, 200);
}

#[tokio::test]
async fn rejection_response_fallback_answers_503_without_an_error_handler_message() {
    use palisade_circuit_breaker::http::RejectionResponse;
    let breaker = CircuitBreakerLayer::builder("fallback")
        .with_classifier(HttpClassifier::new().too_many_requests(true))
        .with_fallback(RejectionResponse)
        .sliding_window(SlidingWindow::count(2))
        .minimum_calls(2)
        .wait_duration(Duration::from_millis(1500))
        .build()
        .unwrap();
    let handle = breaker.handle();
    let app = Router::new()
        .route("/busy", get(|| async { StatusCode::TOO_MANY_REQUESTS }))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(handle_error))
                .layer(breaker),
        );
    let addr = serve(app).await;
    assert_eq!(get_raw(addr, "/busy").await.0, 429);
    assert_eq!(get_raw(addr, "/busy").await.0, 429);
    assert_eq!(
        handle.state(),
        State::Open,
        "429 counts with too_many_requests(true)"
    );
    let (status, head) = get_raw(addr, "/busy").await;
    assert_eq!(status, 503);
    assert!(
        head.contains("\r\nretry-after: 2\r\n"),
        "rounded up: {head}"
    );
}
