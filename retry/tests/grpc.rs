//! A real tonic server on 127.0.0.1 answering UNAVAILABLE, called through a tonic-generated
//! client (`HealthClient`) over `Retry -> tonic_body -> Channel`: retried with
//! `grpc-previous-rpc-attempts` on each retry; pushback honoured; the caller's `grpc-timeout`
//! bounds the whole call, each retry carrying the time left.
#![cfg(feature = "grpc")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_retry::grpc::{GrpcPolicy, parse_grpc_timeout, tonic_body};
use palisade_retry::{Backoff, Jitter, RetryLayer};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::ServiceBuilder;

#[derive(Clone, Default)]
struct Flaky {
    unavailable: usize,
    pushback: Option<&'static str>,
    seen: Arc<Mutex<Vec<(Option<String>, String)>>>,
    /// Each call's `grpc-timeout`.
    timeouts: Arc<Mutex<Vec<Option<Duration>>>>,
}

#[tonic::async_trait]
impl Health for Flaky {
    async fn check(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let previous = req
            .metadata()
            .get("grpc-previous-rpc-attempts")
            .map(|v| v.to_str().unwrap().to_owned());
        let timeout = req.metadata().get("grpc-timeout").map(|v| {
            let v = http::HeaderValue::from_bytes(v.as_bytes()).unwrap();
            parse_grpc_timeout(&v).expect("a well-formed grpc-timeout")
        });
        self.timeouts.lock().unwrap().push(timeout);
        let n = {
            let mut s = self.seen.lock().unwrap();
            s.push((previous, req.into_inner().service));
            s.len()
        };
        if n <= self.unavailable {
            let mut status = Status::unavailable("warming up");
            if let Some(p) = self.pushback {
                status
                    .metadata_mut()
                    .insert("grpc-retry-pushback-ms", p.parse().unwrap());
            }
            return Err(status);
        }
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

async fn start(svc: Flaky) -> tonic::transport::Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(HealthServer::new(svc))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn retry(delays: Arc<Mutex<Vec<Duration>>>) -> RetryLayer<GrpcPolicy> {
    RetryLayer::builder("inventory", GrpcPolicy::new())
        .backoff(Backoff::constant(Duration::from_millis(2)))
        .jitter(Jitter::None)
        .max_attempts(4)
        .without_budget()
        .on_retry(move |e| delays.lock().unwrap().push(e.delay()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn unavailable_is_retried_with_previous_attempts_header() {
    let server = Flaky {
        unavailable: 2,
        ..Flaky::default()
    };
    let seen = server.seen.clone();
    let channel = start(server).await;
    let stack = ServiceBuilder::new()
        .layer(retry(Arc::default()))
        .layer(tonic_body())
        .service(channel);
    let mut client = HealthClient::new(stack);
    let res = client
        .check(HealthCheckRequest {
            service: "inventory.v1.Stock".into(),
        })
        .await
        .unwrap();
    assert_eq!(res.into_inner().status, ServingStatus::Serving as i32);
    let seen = seen.lock().unwrap();
    assert_eq!(
        *seen,
        vec![
            (None, "inventory.v1.Stock".to_owned()),
            (Some("1".to_owned()), "inventory.v1.Stock".to_owned()),
            (Some("2".to_owned()), "inventory.v1.Stock".to_owned()),
        ],
        "the same message each time, with grpc-previous-rpc-attempts on each retry"
    );
}

#[tokio::test]
async fn attempts_run_out_and_the_last_status_is_returned() {
    let server = Flaky {
        unavailable: 10,
        ..Flaky::default()
    };
    let seen = server.seen.clone();
    let channel = start(server).await;
    let stack = ServiceBuilder::new()
        .layer(retry(Arc::default()))
        .layer(tonic_body())
        .service(channel);
    let err = HealthClient::new(stack)
        .check(HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert_eq!(seen.lock().unwrap().len(), 4, "max_attempts");
}

#[tokio::test]
async fn pushback_is_honoured_and_negative_pushback_stops_retries() {
    for (pushback, calls, delay) in [
        ("30", 2, Some(Duration::from_millis(30))),
        ("-1", 1, None),
        ("soon", 1, None),
    ] {
        let server = Flaky {
            unavailable: 1,
            pushback: Some(pushback),
            ..Flaky::default()
        };
        let seen = server.seen.clone();
        let channel = start(server).await;
        let delays = Arc::new(Mutex::new(Vec::new()));
        let stack = ServiceBuilder::new()
            .layer(retry(delays.clone()))
            .layer(tonic_body())
            .service(channel);
        let _ = HealthClient::new(stack)
            .check(HealthCheckRequest::default())
            .await;
        assert_eq!(seen.lock().unwrap().len(), calls, "pushback {pushback:?}");
        assert_eq!(delays.lock().unwrap().first().copied(), delay);
    }
}

#[tokio::test]
async fn the_callers_timeout_bounds_the_call_and_each_retry_carries_the_time_left() {
    let server = Flaky {
        unavailable: usize::MAX,
        ..Flaky::default()
    };
    let seen = server.timeouts.clone();
    let channel = start(server).await;
    let backoff = Duration::from_millis(150);
    let layer = RetryLayer::builder("inventory", GrpcPolicy::new())
        .backoff(Backoff::constant(backoff))
        .jitter(Jitter::None)
        .max_attempts(10)
        .without_budget()
        .build()
        .unwrap();
    let stack = ServiceBuilder::new()
        .layer(layer)
        .layer(tonic_body())
        .service(channel);
    let mut request = Request::new(HealthCheckRequest::default());
    let timeout = Duration::from_millis(700);
    request.set_timeout(timeout);
    let t0 = std::time::Instant::now();
    let err = HealthClient::new(stack).check(request).await.unwrap_err();
    let elapsed = t0.elapsed();
    // The last answer; or, on a machine so loaded that the last retry went out with almost
    // no time left, the channel's own timeout on it (the time left it carried).
    assert!(
        matches!(
            err.code(),
            tonic::Code::Unavailable | tonic::Code::Cancelled
        ),
        "{err:?}"
    );
    // Without the deadline: 10 attempts, at least 1.35 s.
    assert!(
        elapsed < timeout + Duration::from_millis(100),
        "the call ended with its timeout: {elapsed:?}"
    );
    let seen = seen.lock().unwrap();
    // 700 ms with 150 ms waits: at most 5 attempts (sent at >= 0, 150, 300, 450, 600 ms);
    // at least 2 however slow the machine (the first answer takes far less than 550 ms).
    assert!((2..=5).contains(&seen.len()), "{seen:?}");
    assert!(seen[0].is_some_and(|t| t <= timeout), "{seen:?}");
    for pair in seen.windows(2) {
        let (a, b) = (pair[0].unwrap(), pair[1].unwrap());
        assert!(
            b + backoff <= a,
            "each retry carries less time, by the wait at least: {seen:?}"
        );
    }
}

/// In-process: a response whose status is left for the trailers has started streaming: the
/// call is committed and never retried; a trailers-only UNAVAILABLE is.
#[tokio::test]
async fn a_committed_response_is_never_retried() {
    use bytes::Bytes;
    use http_body_util::Full;
    use palisade_retry::{Attempt, ReplayBody};
    use std::sync::atomic::{AtomicU32, Ordering};
    use tower::{Layer, ServiceExt, service_fn};

    for (trailers_only, calls_expected) in [(false, 1), (true, 2)] {
        let calls = Arc::new(AtomicU32::new(0));
        let c2 = calls.clone();
        let svc = service_fn(move |req: http::Request<ReplayBody<Full<Bytes>>>| {
            let n = c2.fetch_add(1, Ordering::SeqCst) + 1;
            assert_eq!(Attempt::of(req.extensions()).number(), n);
            assert_eq!(req.extensions().get::<Attempt>().is_some(), n > 1);
            let previous = req.headers().get("grpc-previous-rpc-attempts").cloned();
            assert_eq!(previous.is_some(), n > 1);
            let mut res = http::Response::new(Full::new(Bytes::from_static(b"\0\0\0\0\0")));
            res.headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
            if trailers_only {
                res.headers_mut()
                    .insert("grpc-status", "14".parse().unwrap());
            }
            std::future::ready(Ok::<_, std::io::Error>(res))
        });
        let layer = RetryLayer::builder("inventory", GrpcPolicy::new())
            .backoff(Backoff::constant(Duration::ZERO))
            .max_attempts(2)
            .without_budget()
            .build()
            .unwrap();
        let req = http::Request::post("http://127.0.0.1/grpc.health.v1.Health/Check")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let _ = layer.layer(svc).oneshot(req).await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            calls_expected,
            "trailers-only: {trailers_only}"
        );
    }
}

/// How many calls a request to `path` makes through a three-attempt retry, when every attempt
/// ends in `outcome()`.
async fn calls_for<F>(policy: GrpcPolicy, path: &str, outcome: F) -> u32
where
    F: Fn() -> Result<http::Response<()>, tower::BoxError> + Send + Sync + 'static,
{
    use bytes::Bytes;
    use http_body_util::Full;
    use palisade_retry::ReplayBody;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tower::{Layer, ServiceExt, service_fn};

    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let outcome = Arc::new(outcome);
    let svc = service_fn(move |_: http::Request<ReplayBody<Full<Bytes>>>| {
        c2.fetch_add(1, Ordering::SeqCst);
        std::future::ready(outcome())
    });
    let layer = RetryLayer::builder("inventory", policy)
        .backoff(Backoff::constant(Duration::ZERO))
        .max_attempts(3)
        .without_budget()
        .build()
        .unwrap();
    let req = http::Request::post(format!("http://127.0.0.1{path}"))
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap();
    let _ = layer.layer(svc).oneshot(req).await;
    calls.load(Ordering::SeqCst)
}

const RESERVE: &str = "/inventory.v1.Inventory/Reserve";
const CHECK: &str = "/inventory.v1.Inventory/CheckStock";

fn io(kind: std::io::ErrorKind) -> tower::BoxError {
    Box::new(std::io::Error::from(kind))
}

/// A timeout or a connection lost mid-call may have been processed: retried only for a
/// method declared idempotent, and only when its code (DEADLINE_EXCEEDED, UNAVAILABLE) is
/// retried. A refused connection sent nothing: retried for every method.
#[tokio::test]
async fn unknown_outcomes_are_retried_only_for_idempotent_methods() {
    use std::io::ErrorKind as K;
    use tonic::Code;
    let timeout = || Err(Box::new(tower::timeout::error::Elapsed::new()) as tower::BoxError);
    let reset = || Err(io(K::ConnectionReset));
    let refused = || Err(io(K::ConnectionRefused));
    let checks = || GrpcPolicy::new().idempotent_methods([CHECK]).unwrap();
    let with_deadline = || {
        checks()
            .with_codes([Code::Unavailable, Code::DeadlineExceeded])
            .unwrap()
    };

    assert_eq!(calls_for(with_deadline(), RESERVE, timeout).await, 1);
    assert_eq!(calls_for(with_deadline(), CHECK, timeout).await, 3);
    assert_eq!(
        calls_for(checks(), CHECK, timeout).await,
        1,
        "DEADLINE_EXCEEDED is not in the default codes"
    );
    assert_eq!(calls_for(GrpcPolicy::new(), CHECK, reset).await, 1);
    assert_eq!(calls_for(checks(), RESERVE, reset).await, 1);
    assert_eq!(calls_for(checks(), CHECK, reset).await, 3);
    let everything = GrpcPolicy::new().idempotent_methods(["/"]).unwrap();
    assert_eq!(calls_for(everything, RESERVE, reset).await, 3);
    assert_eq!(calls_for(GrpcPolicy::new(), RESERVE, refused).await, 3);
}

/// A proxy's HTTP error without `grpc-status` is read as the gRPC spec maps it: 502, 503,
/// 504 and 429 are UNAVAILABLE (retried), 404 is UNIMPLEMENTED (not); a 200 without a status
/// in its headers is a committed call.
#[tokio::test]
async fn a_proxy_error_is_mapped_to_its_grpc_code() {
    for (status, calls) in [
        (503, 3),
        (502, 3),
        (504, 3),
        (429, 3),
        (404, 1),
        (500, 1),
        (200, 1),
    ] {
        let respond = move || {
            Ok(http::Response::builder()
                .status(status)
                .header("content-type", "text/html")
                .body(())
                .unwrap())
        };
        assert_eq!(
            calls_for(GrpcPolicy::new(), RESERVE, respond).await,
            calls,
            "HTTP {status}"
        );
    }
}

#[test]
fn idempotent_methods_are_validated() {
    for bad in [
        "",
        "inventory.v1.Inventory/Reserve",
        "//Reserve",
        "/a/b/c",
        "/inventory",
    ] {
        let e = GrpcPolicy::new().idempotent_methods([bad]).unwrap_err();
        assert_eq!(e.field(), "idempotent_methods", "{bad:?}");
    }
    let p = GrpcPolicy::new()
        .idempotent_methods(["/a.B/Get", "/c.D/"])
        .unwrap();
    assert!(p.is_idempotent("/a.B/Get"));
    assert!(!p.is_idempotent("/a.B/Put"));
    assert!(!p.is_idempotent("/a.B/GetMore"));
    assert!(p.is_idempotent("/c.D/Anything"));
    assert!(!p.is_idempotent("/c.DE/Anything"));
}

/// A real tonic channel to a port nobody listens on: the refused connection sent nothing, so
/// even a method not declared idempotent is retried, and the last error is returned.
#[tokio::test]
async fn a_refused_connection_is_retried_for_any_method() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let delays = Arc::new(Mutex::new(Vec::new()));
    let stack = ServiceBuilder::new()
        .layer(retry(delays.clone()))
        .layer(tonic_body())
        .service(channel);
    let mut client = HealthClient::new(stack);
    let status = client
        .check(HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(delays.lock().unwrap().len(), 3, "four attempts in all");
}
