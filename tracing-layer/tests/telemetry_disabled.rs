//! `OTEL_SDK_DISABLED=true` disables export even with an endpoint; nothing fails, and
//! dropping the guard returns at once.
#![cfg(feature = "otlp")]

use std::time::{Duration, Instant};

use palisade_tracing_layer::Telemetry;

#[tokio::test(flavor = "current_thread")]
async fn sdk_disabled_exports_nothing() {
    let port = palisade_testkit::free_port();
    let t = Telemetry::builder("disabled")
        .vars([
            ("OTEL_SDK_DISABLED".to_owned(), "true".to_owned()),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
                format!("http://127.0.0.1:{port}"),
            ),
        ])
        .prometheus(false)
        .init()
        .unwrap();
    assert!(!t.exporting());
    assert!(t.tracer_provider().is_none());
    tracing::info_span!("work").in_scope(|| tracing::info!("nothing exported"));
    let started = Instant::now();
    drop(t);
    assert!(started.elapsed() < Duration::from_millis(500));
}
