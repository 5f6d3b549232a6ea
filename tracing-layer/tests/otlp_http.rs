//! OTLP export (http/protobuf) to a real OTLP receiver (rotel) on loopback: spans arrive with the
//! service name, ids and parent ids.
#![cfg(feature = "otlp")]

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use palisade_testkit::rotel::Rotel;
use palisade_tracing_layer::{ServerTraceLayer, Telemetry};
use tower::{ServiceBuilder, ServiceExt as _};

#[tokio::test(flavor = "current_thread")]
async fn spans_arrive_over_otlp_http() {
    let Some(rotel) = Rotel::start("spans_arrive_over_otlp_http").await else {
        return;
    };
    let t = Telemetry::builder("otlp-http")
        .vars([
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
                rotel.http_endpoint.clone(),
            ),
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(),
                "http/protobuf".to_owned(),
            ),
            (
                "OTEL_RESOURCE_ATTRIBUTES".to_owned(),
                "deployment.environment=test".to_owned(),
            ),
        ])
        .prometheus(false)
        .init()
        .unwrap();
    assert!(t.exporting());
    // Over HTTP/protobuf, the SERVER span made with the tracer directly (the gRPC test
    // has it made through tracing-opentelemetry).
    let tracer = t.tracer_provider().unwrap().tracer("otlp-http");
    let svc = ServiceBuilder::new()
        .layer(ServerTraceLayer::http().otel_tracer(tracer))
        .service_fn(|_req: http::Request<()>| async {
            // The SERVER span is made with the tracer, not a `tracing` span.
            assert!(tracing::Span::current().is_disabled());
            let _child = tracing::info_span!("load order").entered();
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .status(503)
                    .body(String::new())
                    .unwrap(),
            )
        });
    let req = http::Request::get("/orders")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(())
        .unwrap();
    drop(svc.oneshot(req).await.unwrap());
    t.shutdown_async().await.unwrap();

    let spans = rotel
        .wait_for("two spans", Duration::from_secs(20), |s| s.len() >= 2)
        .await;
    let server = spans.iter().find(|s| s.name == "GET").unwrap();
    let child = spans.iter().find(|s| s.name == "load order").unwrap();
    assert_eq!(server.service.as_deref(), Some("otlp-http"));
    assert_eq!(server.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(server.parent_span_id, "00f067aa0ba902b7");
    assert_eq!(server.kind, palisade_testkit::rotel::kind::SERVER);
    assert_eq!(
        server.status.as_deref(),
        Some(palisade_testkit::rotel::status::ERROR)
    );
    assert_eq!(server.attr_str("error.type"), Some("503"));
    let code = &server.attributes["http.response.status_code"];
    assert!(
        code.as_i64() == Some(503) || code.as_str() == Some("503"),
        "{code}"
    );
    assert_eq!(child.trace_id, server.trace_id);
    assert_eq!(child.parent_span_id, server.span_id);
}
