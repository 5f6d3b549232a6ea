//! A gRPC client stream over a real tonic server on 127.0.0.1: the server sheds the first two
//! calls with a trailers-only `UNAVAILABLE` before reading a message, while the client is still
//! streaming. Each retry sends the stream again from its first message and then continues it;
//! the call that is served gets every message once, in order, with
//! `grpc-previous-rpc-attempts`.
#![cfg(feature = "grpc")]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::StreamExt;
use http::uri::PathAndQuery;
use palisade_retry::grpc::{GrpcPolicy, tonic_body};
use palisade_retry::{Backoff, Jitter, RetryLayer};
use tokio::sync::mpsc;
use tonic::codec::Streaming;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_prost::ProstCodec;
use tower::ServiceBuilder;

/// Shared by every call the server takes.
#[derive(Clone, Default)]
struct Upload {
    calls: Arc<Mutex<u32>>,
    /// The messages each served call read, and its `grpc-previous-rpc-attempts`.
    served: Arc<Mutex<Vec<(Option<String>, Vec<String>)>>>,
    /// The rest of the client's stream, sent only when a call is about to be served: until
    /// then the client is mid-stream whenever it is answered.
    rest: Arc<Mutex<Option<mpsc::UnboundedSender<HealthCheckRequest>>>>,
}

impl Upload {
    async fn handle(
        self,
        req: Request<Streaming<HealthCheckRequest>>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            *calls
        };
        if n <= 2 {
            // Shed before reading: a trailers-only answer to a stream still being sent.
            return Err(Status::unavailable("shedding load"));
        }
        if let Some(tx) = self.rest.lock().unwrap().take() {
            for sku in ["sku-2", "sku-3"] {
                tx.send(message(sku)).unwrap();
            }
        }
        let previous = req
            .metadata()
            .get("grpc-previous-rpc-attempts")
            .map(|v| v.to_str().unwrap().to_owned());
        let mut stream = req.into_inner();
        let mut read = Vec::new();
        while let Some(m) = stream.message().await? {
            read.push(m.service);
        }
        self.served.lock().unwrap().push((previous, read));
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }
}

impl NamedService for Upload {
    const NAME: &'static str = "test.Upload";
}

impl tower::Service<http::Request<tonic::body::Body>> for Upload {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let handler = tower::service_fn(move |r| this.clone().handle(r));
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<
                HealthCheckResponse,
                HealthCheckRequest,
            >::default());
            Ok(grpc.client_streaming(handler, req).await)
        })
    }
}

fn message(sku: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: sku.to_owned(),
    }
}

#[tokio::test]
async fn a_client_stream_shed_mid_stream_is_sent_again_from_its_first_message() {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = Upload {
        rest: Arc::new(Mutex::new(Some(tx))),
        ..Upload::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server.clone())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let retry = RetryLayer::builder("upload", GrpcPolicy::new())
        .backoff(Backoff::constant(Duration::from_millis(50)))
        .jitter(Jitter::None)
        .without_budget()
        .build()
        .unwrap();
    let stack = ServiceBuilder::new()
        .layer(retry)
        .layer(tonic_body())
        .service(channel);
    let mut client = tonic::client::Grpc::new(stack);
    client.ready().await.unwrap();
    // The first message at once; the rest when the server is ready to read them.
    let messages = futures_util::stream::iter([message("sku-1")])
        .chain(tokio_stream::wrappers::UnboundedReceiverStream::new(rx));
    let call = client.client_streaming(
        Request::new(messages),
        PathAndQuery::from_static("/test.Upload/Put"),
        ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default(),
    );
    let res = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(res.into_inner().status, ServingStatus::Serving as i32);
    assert_eq!(*server.calls.lock().unwrap(), 3);
    assert_eq!(
        *server.served.lock().unwrap(),
        [(
            Some("2".to_owned()),
            vec!["sku-1".to_owned(), "sku-2".to_owned(), "sku-3".to_owned()]
        )]
    );
}
