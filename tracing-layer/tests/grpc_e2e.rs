//! gRPC through a real tonic server and channel on loopback, and a status sent in
//! trailers.

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt as _, StreamBody};
use opentelemetry::trace::{SpanKind, Status};
use palisade_tracing_layer::{ClientTraceLayer, ServerTraceLayer};
use support::{attr_str, find, otel};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::{ServiceBuilder, ServiceExt as _};

#[tokio::test(flavor = "current_thread")]
async fn tonic_server_and_channel_one_trace_and_status_rules() {
    let otel = otel();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders", ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(ServerTraceLayer::grpc().clear_excluded_paths())
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    let endpoint = format!("http://{addr}");
    let channel = tonic::transport::Channel::from_shared(endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(ClientTraceLayer::grpc(&endpoint))
        .service(channel);
    let mut client = HealthClient::new(svc);

    let ok = client
        .check(HealthCheckRequest {
            service: "orders".to_owned(),
        })
        .await
        .unwrap();
    assert_eq!(ok.into_inner().status, ServingStatus::Serving as i32);
    let spans = otel.spans();
    let name = "grpc.health.v1.Health/Check";
    let server = spans
        .iter()
        .find(|s| s.name == name && s.span_kind == SpanKind::Server)
        .unwrap();
    let client_span = spans
        .iter()
        .find(|s| s.name == name && s.span_kind == SpanKind::Client)
        .unwrap();
    assert_eq!(
        server.span_context.trace_id(),
        client_span.span_context.trace_id()
    );
    assert_eq!(server.parent_span_id, client_span.span_context.span_id());
    for s in [server, client_span] {
        assert_eq!(attr_str(s, "rpc.system.name").as_deref(), Some("grpc"));
        assert_eq!(attr_str(s, "rpc.method").as_deref(), Some(name));
        assert_eq!(attr_str(s, "rpc.status_code").as_deref(), Some("OK"));
        assert_eq!(s.status, Status::Unset);
    }
    assert_eq!(
        attr_str(client_span, "server.address").as_deref(),
        Some("127.0.0.1")
    );

    // NOT_FOUND: not a server error by the conventions, an error on the client.
    otel.exporter.reset();
    let err = client
        .check(HealthCheckRequest {
            service: "unknown".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let spans = otel.spans();
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    let client_span = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap();
    assert_eq!(
        attr_str(server, "rpc.status_code").as_deref(),
        Some("NOT_FOUND")
    );
    assert_eq!(server.status, Status::Unset);
    assert_eq!(
        attr_str(client_span, "rpc.status_code").as_deref(),
        Some("NOT_FOUND")
    );
    assert!(matches!(client_span.status, Status::Error { .. }));
    assert_eq!(
        attr_str(client_span, "error.type").as_deref(),
        Some("NOT_FOUND")
    );
}

type Frames = Vec<Result<http_body::Frame<Bytes>, Infallible>>;

fn trailers_body(
    code: &str,
) -> StreamBody<
    futures_util::stream::Iter<std::vec::IntoIter<Result<http_body::Frame<Bytes>, Infallible>>>,
> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", code.parse().unwrap());
    let frames: Frames = vec![
        Ok(http_body::Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
        Ok(http_body::Frame::trailers(trailers)),
    ];
    StreamBody::new(futures_util::stream::iter(frames))
}

#[tokio::test(flavor = "current_thread")]
async fn status_in_trailers_is_seen_on_server_and_client() {
    for (code, name, server_error) in [
        ("0", "OK", false),
        ("14", "UNAVAILABLE", true),
        ("5", "NOT_FOUND", false),
    ] {
        let otel = otel();
        let server = ServiceBuilder::new()
            .layer(ServerTraceLayer::grpc())
            .service_fn(move |_req: http::Request<()>| async move {
                Ok::<_, Infallible>(http::Response::new(trailers_body(code)))
            });
        let client = ServiceBuilder::new()
            .layer(ClientTraceLayer::grpc("http://127.0.0.1:50051"))
            .service(server);
        let req = http::Request::post("/pkg.Orders/Get").body(()).unwrap();
        let res = client.oneshot(req).await.unwrap();
        assert!(otel.spans().is_empty(), "spans end with the body");
        let collected = res.into_body().collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], code);
        let spans = otel.spans();
        assert_eq!(spans.len(), 2);
        let s = spans
            .iter()
            .find(|s| s.span_kind == SpanKind::Server)
            .unwrap();
        let c = spans
            .iter()
            .find(|s| s.span_kind == SpanKind::Client)
            .unwrap();
        assert_eq!(s.name, "pkg.Orders/Get");
        assert_eq!(attr_str(s, "rpc.status_code").as_deref(), Some(name));
        assert_eq!(attr_str(c, "rpc.status_code").as_deref(), Some(name));
        assert_eq!(
            matches!(s.status, Status::Error { .. }),
            server_error,
            "{name}"
        );
        assert_eq!(
            matches!(c.status, Status::Error { .. }),
            code != "0",
            "{name}"
        );
        let _ = find(&spans, "pkg.Orders/Get");
    }
}
