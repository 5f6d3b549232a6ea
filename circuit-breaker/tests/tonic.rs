//! A tonic client over a real loopback channel: UNAVAILABLE trips the breaker, NOT_FOUND does
//! not, and a failure carried in the trailers (after a streamed message) counts too.
#![cfg(all(feature = "grpc", not(loom)))]

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use palisade_circuit_breaker::grpc::{GrpcClassifier, UnavailableResponse};
use palisade_circuit_breaker::{CircuitBreakerLayer, SlidingWindow, State};
use tokio_stream::Stream;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::ServiceBuilder;

const SERVING: u8 = 0;
const UNAVAILABLE: u8 = 1;
const NOT_FOUND: u8 = 2;

#[derive(Clone)]
struct Scripted {
    mode: Arc<AtomicU8>,
    calls: Arc<AtomicUsize>,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for Scripted {
    async fn check(
        &self,
        _req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.mode.load(Ordering::SeqCst) {
            UNAVAILABLE => Err(Status::unavailable("backend down")),
            NOT_FOUND => Err(Status::not_found("no such service")),
            _ => Ok(Response::new(HealthCheckResponse {
                status: ServingStatus::Serving as i32,
            })),
        }
    }

    type WatchStream = WatchStream;

    /// One message, then UNAVAILABLE in the trailers.
    async fn watch(
        &self,
        _req: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let items = vec![
            Ok(HealthCheckResponse {
                status: ServingStatus::Serving as i32,
            }),
            Err(Status::unavailable("lost the backend mid-stream")),
        ];
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }
}

async fn start(server: Scripted) -> (Channel, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        Server::builder()
            .add_service(HealthServer::new(server))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = rx.await;
                },
            )
            .await
            .unwrap();
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (channel, tx)
}

fn check() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

#[tokio::test]
async fn unavailable_trips_the_breaker_and_not_found_does_not() {
    let server = Scripted {
        mode: Arc::new(AtomicU8::new(NOT_FOUND)),
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let (channel, _shutdown) = start(server.clone()).await;
    let breaker = CircuitBreakerLayer::builder("health")
        .with_classifier(GrpcClassifier::grpc())
        .with_fallback(UnavailableResponse)
        .sliding_window(SlidingWindow::count(10))
        .minimum_calls(5)
        .failure_rate_threshold(50.0)
        .wait_duration(Duration::from_secs(20))
        .build()
        .unwrap();
    let handle = breaker.handle();
    let mut client = HealthClient::new(ServiceBuilder::new().layer(breaker).service(channel));

    for _ in 0..10 {
        let status = client.check(check()).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
    }
    assert_eq!(handle.state(), State::Closed, "NOT_FOUND is a client error");
    assert_eq!(handle.stats().failures, 0);

    server.mode.store(SERVING, Ordering::SeqCst);
    let ok = client.check(check()).await.unwrap().into_inner();
    assert_eq!(ok.status, ServingStatus::Serving as i32);

    server.mode.store(UNAVAILABLE, Ordering::SeqCst);
    let mut n = 0;
    while handle.state() == State::Closed {
        let status = client.check(check()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        n += 1;
        assert!(n <= 10, "should have tripped");
    }
    assert_eq!(handle.state(), State::Open);
    let served = server.calls.load(Ordering::SeqCst);

    // Open: the client gets UNAVAILABLE with a pushback, and the server sees nothing.
    server.mode.store(SERVING, Ordering::SeqCst);
    let status = client.check(check()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("health"), "{}", status.message());
    let pushback: u64 = status
        .metadata()
        .get("grpc-retry-pushback-ms")
        .expect("pushback")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(pushback > 19_000 && pushback <= 20_000, "{pushback}");
    assert_eq!(server.calls.load(Ordering::SeqCst), served);
}

#[tokio::test]
async fn a_failure_in_the_trailers_counts_once_the_stream_ends() {
    let server = Scripted {
        mode: Arc::new(AtomicU8::new(SERVING)),
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let (channel, _shutdown) = start(server).await;
    let breaker = CircuitBreakerLayer::builder("watch")
        .with_classifier(GrpcClassifier::grpc())
        .sliding_window(SlidingWindow::count(2))
        .minimum_calls(1)
        .build()
        .unwrap();
    let handle = breaker.handle();
    let mut client = HealthClient::new(ServiceBuilder::new().layer(breaker).service(channel));

    let mut stream = client.watch(check()).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    // The headers said nothing: the outcome waits for the trailers.
    assert_eq!(handle.stats().total_failures, 0);
    assert_eq!(handle.state(), State::Closed);
    let err = stream.message().await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(handle.stats().total_failures, 1);
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test]
async fn the_rejection_converts_to_unavailable_status() {
    use palisade_circuit_breaker::error::CircuitOpen;
    let open = CircuitOpen::new(
        Arc::from("inventory"),
        State::Open,
        Some(Duration::from_micros(1500)),
    );
    let status = tonic::Status::from(open);
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "2"
    );
    let source = std::error::Error::source(&status).unwrap();
    assert!(source.downcast_ref::<CircuitOpen>().is_some());
}
