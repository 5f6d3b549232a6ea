//! Against a real HTTP/2 server on 127.0.0.1 (the `h2` crate hyper and tonic are built on)
//! that reads each request whole and refuses the first streams with `RST_STREAM`
//! (`REFUSED_STREAM`): the server did not process them, so the request is sent again, with
//! the same body, through a real hyper-util client and a real tonic channel. Any other reset
//! is a connection error: retried only when the request may be repeated.
#![cfg(feature = "http2")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use palisade_retry::{Backoff, Jitter, RetryLayer};

/// What the server does with the first `refuse` streams; later ones are answered.
#[derive(Clone)]
struct Server {
    refuse: usize,
    reason: h2::Reason,
    grpc: bool,
    /// Path and whole body of every request, refused or not.
    seen: Arc<Mutex<Vec<(String, Bytes)>>>,
}

impl Server {
    fn new(refuse: usize, reason: h2::Reason, grpc: bool) -> Self {
        Self {
            refuse,
            reason,
            grpc,
            seen: Arc::default(),
        }
    }

    fn seen(&self) -> Vec<(String, Bytes)> {
        self.seen.lock().unwrap().clone()
    }

    async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = self.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(socket).await else {
                        return;
                    };
                    // Accepting drives the connection; each stream is answered in its own task.
                    while let Some(Ok((req, respond))) = conn.accept().await {
                        tokio::spawn(server.clone().answer(req, respond));
                    }
                });
            }
        });
        addr
    }

    async fn answer(
        self,
        req: http::Request<h2::RecvStream>,
        mut respond: h2::server::SendResponse<Bytes>,
    ) {
        let path = req.uri().path().to_owned();
        let mut body = req.into_body();
        let mut whole = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            whole.extend_from_slice(&chunk);
        }
        let n = {
            let mut seen = self.seen.lock().unwrap();
            seen.push((path, Bytes::from(whole)));
            seen.len()
        };
        if n <= self.refuse {
            respond.send_reset(self.reason);
            return;
        }
        if !self.grpc {
            let _ = respond.send_response(http::Response::new(()), true);
            return;
        }
        let head = http::Response::builder()
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let mut stream = respond.send_response(head, false).unwrap();
        // One message: uncompressed, 2 bytes, HealthCheckResponse { status: SERVING }.
        stream
            .send_data(Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 0x01]), false)
            .unwrap();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        stream.send_trailers(trailers).unwrap();
    }
}

fn layer<P>(policy: P, reasons: Arc<Mutex<Vec<&'static str>>>) -> RetryLayer<P> {
    RetryLayer::builder("h2", policy)
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .jitter(Jitter::None)
        .max_attempts(4)
        .without_budget()
        .on_retry(move |e| reasons.lock().unwrap().push(e.reason()))
        .build()
        .unwrap()
}

mod http_client {
    use super::*;
    use http::{Method, Request, StatusCode};
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use palisade_retry::ReplayBody;
    use palisade_retry::http::HttpPolicy;
    use tower::{Layer, ServiceExt};

    async fn call(
        server: &Server,
        method: Method,
    ) -> (
        Result<StatusCode, hyper_util::client::legacy::Error>,
        Vec<&'static str>,
    ) {
        let addr = server.start().await;
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http::<ReplayBody<Full<Bytes>>>();
        let reasons = Arc::new(Mutex::new(Vec::new()));
        let svc = layer(HttpPolicy::new(), reasons.clone()).layer(client);
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{addr}/stock"))
            .body(Full::new(Bytes::from_static(b"{\"sku\":\"abc\"}")))
            .unwrap();
        let res = svc.oneshot(req).await.map(|r| r.status());
        let reasons = reasons.lock().unwrap().clone();
        (res, reasons)
    }

    #[tokio::test]
    async fn a_refused_stream_is_sent_again_with_the_same_body() {
        let server = Server::new(2, h2::Reason::REFUSED_STREAM, false);
        let (res, reasons) = call(&server, Method::PUT).await;
        assert_eq!(res.unwrap(), StatusCode::OK);
        assert_eq!(reasons, ["refused stream", "refused stream"]);
        let seen = server.seen();
        assert_eq!(seen.len(), 3);
        for (path, body) in &seen {
            assert_eq!(path, "/stock");
            assert_eq!(&body[..], b"{\"sku\":\"abc\"}");
        }
    }

    /// Another reset leaves the outcome unknown: an idempotent request is retried as after a
    /// lost connection.
    #[tokio::test]
    async fn another_reset_is_a_connection_error() {
        let server = Server::new(1, h2::Reason::INTERNAL_ERROR, false);
        let (res, reasons) = call(&server, Method::GET).await;
        assert_eq!(res.unwrap(), StatusCode::OK);
        assert_eq!(reasons, ["connection error"]);
        assert_eq!(server.seen().len(), 2);
    }

    /// The HTTP policy keeps nothing of a POST without `Idempotency-Key`: it is not sent
    /// again, even refused.
    #[tokio::test]
    async fn a_post_without_idempotency_key_is_still_sent_once() {
        let server = Server::new(1, h2::Reason::REFUSED_STREAM, false);
        let (res, reasons) = call(&server, Method::POST).await;
        let err = res.unwrap_err();
        assert!(reasons.is_empty(), "{reasons:?}");
        assert_eq!(server.seen().len(), 1, "{err:?}");
    }
}

#[cfg(feature = "grpc")]
mod grpc {
    use super::*;
    use palisade_retry::grpc::{GrpcPolicy, tonic_body};
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
    use tower::ServiceBuilder;

    async fn check(
        server: &Server,
        policy: GrpcPolicy,
    ) -> (
        Result<HealthCheckResponse, tonic::Status>,
        Vec<&'static str>,
    ) {
        let addr = server.start().await;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let reasons = Arc::new(Mutex::new(Vec::new()));
        let stack = ServiceBuilder::new()
            .layer(layer(policy, reasons.clone()))
            .layer(tonic_body())
            .service(channel);
        let res = HealthClient::new(stack)
            .check(HealthCheckRequest {
                service: "inventory".into(),
            })
            .await
            .map(tonic::Response::into_inner);
        let reasons = reasons.lock().unwrap().clone();
        (res, reasons)
    }

    /// gRFC A6's transparent retry: the server did not process the call, so even a method not
    /// declared idempotent is sent again, byte-identical.
    #[tokio::test]
    async fn a_refused_stream_is_retried_for_any_method() {
        let server = Server::new(1, h2::Reason::REFUSED_STREAM, true);
        let (res, reasons) = check(&server, GrpcPolicy::new()).await;
        assert_eq!(res.unwrap().status, ServingStatus::Serving as i32);
        assert_eq!(reasons, ["refused stream"]);
        let seen = server.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], seen[1]);
        assert_eq!(seen[0].0, "/grpc.health.v1.Health/Check");
    }

    /// Another reset: the call may have been processed, so only an idempotent method is
    /// retried (as UNAVAILABLE).
    #[tokio::test]
    async fn another_reset_is_retried_only_for_idempotent_methods() {
        let server = Server::new(1, h2::Reason::INTERNAL_ERROR, true);
        let (res, reasons) = check(&server, GrpcPolicy::new()).await;
        assert!(res.is_err());
        assert!(reasons.is_empty(), "{reasons:?}");
        assert_eq!(server.seen().len(), 1);

        let server = Server::new(1, h2::Reason::INTERNAL_ERROR, true);
        let idempotent = GrpcPolicy::new()
            .idempotent_methods(["/grpc.health.v1.Health/Check"])
            .unwrap();
        let (res, reasons) = check(&server, idempotent).await;
        assert_eq!(res.unwrap().status, ServingStatus::Serving as i32);
        assert_eq!(reasons, ["connection error"]);
        assert_eq!(server.seen().len(), 2);
    }
}
