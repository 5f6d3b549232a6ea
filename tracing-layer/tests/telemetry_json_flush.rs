//! Telemetry init on a current-thread runtime: JSON log lines carry the trace id of the
//! request being served, and shutdown flushes every span within the timeout. The server
//! layer makes its SERVER span with the tracer directly (`PALISADE_SERVER_SPANS=otel`): the log line's
//! span id is the SERVER span's, and the handler's event is an event of that span (the
//! span events layer `Telemetry` installs).
#![cfg(feature = "otlp")]

mod support;

use std::time::{Duration, Instant};

use palisade_tracing_layer::telemetry::LogFormat;
use palisade_tracing_layer::{ServerTraceLayer, Telemetry};
use support::{Buf, Keep};
use tower::{ServiceBuilder, ServiceExt as _};

#[tokio::test(flavor = "current_thread")]
async fn json_logs_carry_trace_id_and_shutdown_flushes() {
    let exporter = Keep::default();
    let buf = Buf::default();
    let w = buf.clone();
    let telemetry = Telemetry::builder("json-test")
        .vars([
            ("RUST_LOG".to_owned(), "info".to_owned()),
            ("PALISADE_SERVER_SPANS".to_owned(), "otel".to_owned()),
        ])
        .span_exporter(exporter.clone())
        .log_format(LogFormat::Json)
        .log_writer(move || w.clone())
        .prometheus(false)
        .shutdown_timeout(Duration::from_secs(3))
        .init()
        .unwrap();
    assert!(telemetry.exporting());

    // Made after the init: its SERVER spans are made with the tracer.
    let svc = ServiceBuilder::new()
        .layer(ServerTraceLayer::http())
        .service_fn(|_req: http::Request<()>| async {
            // No `tracing` span: the SERVER span is made with the tracer.
            assert!(tracing::Span::current().is_disabled());
            tracing::info!(order = 7, "serving order");
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        });
    for _ in 0..50 {
        let req = http::Request::get("/orders")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        drop(res);
    }
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let line = logs
        .lines()
        .find(|l| l.contains("serving order"))
        .unwrap_or_else(|| panic!("{logs}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{line}");
    assert_eq!(v["span_id"].as_str().unwrap().len(), 16, "{line}");
    assert_eq!(v["order"], 7);
    assert_eq!(v["level"], "INFO");

    // Batch processor: spans are not exported yet; shutdown flushes every one of them,
    // without blocking this current-thread runtime past the timeout.
    assert!(
        exporter.0.lock().unwrap().len() < 50,
        "not all exported yet"
    );
    let started = Instant::now();
    telemetry.shutdown_async().await.unwrap();
    // After the shutdown, new layers make `tracing` spans again.
    let after = ServiceBuilder::new()
        .layer(ServerTraceLayer::http())
        .service_fn(|_req: http::Request<()>| async {
            assert!(!tracing::Span::current().is_disabled());
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        });
    drop(after.oneshot(http::Request::new(())).await.unwrap());
    assert!(started.elapsed() < Duration::from_secs(4));
    let spans = exporter.0.lock().unwrap();
    assert_eq!(spans.len(), 50);
    assert!(
        spans
            .iter()
            .all(|s| format!("{}", s.span_context.trace_id()) == "4bf92f3577b34da6a3ce929d0e0e4736")
    );
    let span_id = v["span_id"].as_str().unwrap();
    let served = spans
        .iter()
        .find(|s| s.span_context.span_id().to_string() == span_id)
        .unwrap_or_else(|| panic!("no SERVER span {span_id}"));
    assert_eq!(served.span_kind, opentelemetry::trace::SpanKind::Server);
    assert_eq!(served.parent_span_id.to_string(), "00f067aa0ba902b7");
    let event = served.events.iter().next().expect("the handler's event");
    assert_eq!(event.name, "serving order");
    assert!(
        event
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "order" && kv.value == opentelemetry::Value::I64(7)),
        "{event:?}"
    );
}
