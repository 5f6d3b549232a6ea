//! The response-body wrapper records the outcome at the trailers or the end of the stream;
//! a body error is a failure; a body dropped before its end is a cancelled call.
#![cfg(feature = "grpc")]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use palisade_circuit_breaker::grpc::GrpcClassifier;
use palisade_circuit_breaker::http::HttpClassifier;
use palisade_circuit_breaker::{CircuitBreakerLayer, SlidingWindow, State};
use tower::{Layer, Service, ServiceExt, service_fn};

type Frames = Vec<Result<Frame<Bytes>, std::io::Error>>;
type Body = StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>>;

fn trailers(code: &str) -> Frame<Bytes> {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", code.parse().unwrap());
    Frame::trailers(t)
}

/// An inner gRPC-ish service: each request is the list of body frames to answer with.
fn inner()
-> impl Service<http::Request<Frames>, Response = Response<Body>, Error = Infallible> + Clone {
    service_fn(|req: http::Request<Frames>| async move {
        let frames = req.into_body();
        let mut res = Response::new(StreamBody::new(stream::iter(frames)));
        res.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        Ok::<_, Infallible>(res)
    })
}

fn layer() -> palisade_circuit_breaker::CircuitBreakerLayer<GrpcClassifier> {
    CircuitBreakerLayer::builder("body")
        .with_classifier(GrpcClassifier::grpc())
        .sliding_window(SlidingWindow::count(100))
        .minimum_calls(1)
        .failure_rate_threshold(100.0)
        .wait_duration(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn request(frames: Frames) -> http::Request<Frames> {
    http::Request::new(frames)
}

#[tokio::test]
async fn the_outcome_waits_for_the_trailers() {
    let layer = layer();
    let handle = layer.handle();
    let mut svc = layer.layer(inner());
    let frames = vec![
        Ok(Frame::data(Bytes::from_static(b"x"))),
        Ok(trailers("14")),
    ];
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(frames))
        .await
        .unwrap();
    assert_eq!(
        handle.stats().total_failures,
        0,
        "not decided before the trailers"
    );
    let collected = res.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "14");
    assert_eq!(handle.stats().total_failures, 1);
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test]
async fn ok_trailers_and_client_error_trailers_are_successes() {
    let layer = layer();
    let handle = layer.handle();
    let mut svc = layer.layer(inner());
    for code in ["0", "5", "3"] {
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(b"x"))),
            Ok(trailers(code)),
        ];
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(request(frames))
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
    }
    let stats = handle.stats();
    assert_eq!((stats.calls, stats.failures), (3, 0));
}

#[tokio::test]
async fn a_body_error_is_a_failure() {
    let layer = layer();
    let handle = layer.handle();
    let mut svc = layer.layer(inner());
    let frames = vec![
        Ok(Frame::data(Bytes::from_static(b"x"))),
        Err(std::io::Error::other("connection reset")),
    ];
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(frames))
        .await
        .unwrap();
    assert!(res.into_body().collect().await.is_err());
    assert_eq!(handle.stats().total_failures, 1);
}

#[tokio::test]
async fn a_body_dropped_before_its_end_is_a_cancelled_call() {
    let layer = layer();
    let handle = layer.handle();
    let mut svc = layer.layer(inner());
    let frames = vec![
        Ok(Frame::data(Bytes::from_static(b"x"))),
        Ok(trailers("14")),
    ];
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(frames))
        .await
        .unwrap();
    let mut body = res.into_body();
    let _first = body.frame().await.unwrap().unwrap();
    drop(body);
    let stats = handle.stats();
    assert_eq!(
        (stats.calls, stats.failures),
        (0, 0),
        "cancelled: taken out again"
    );
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test]
async fn http_5xx_is_a_failure_without_waiting_for_the_body() {
    let layer = CircuitBreakerLayer::builder("http")
        .with_classifier(HttpClassifier::new())
        .minimum_calls(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(service_fn(|_: http::Request<()>| async {
        let mut res = Response::new(String::from("boom"));
        *res.status_mut() = http::StatusCode::BAD_GATEWAY;
        Ok::<_, Infallible>(res)
    }));
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap();
    assert_eq!(res.status(), http::StatusCode::BAD_GATEWAY);
    assert_eq!(handle.state(), State::Open);
}
