//! `Telemetry::init` with a ratio root sampler: the server layer draws a root request's
//! trace id and makes the sampler's decision first, so a dropped root gets no span (only
//! its context: handler logs still carry its trace id), and a kept one is started with
//! that trace id, so the SDK's sampler keeps it too: the sampled share is the ratio, not
//! its square, and every exported trace is one the handler saw as sampled. Its own binary:
//! the subscriber, the provider and the hint are process-wide.
#![cfg(feature = "otlp")]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use opentelemetry::trace::TraceContextExt as _;
use palisade_tracing_layer::telemetry::LogFormat;
use palisade_tracing_layer::{ServerTraceLayer, Telemetry, current_context};
use support::{Buf, Keep};
use tower::{ServiceBuilder, ServiceExt as _};

/// The SDK's `TraceIdRatioBased` rule for ratio 0.5: the lower 64 bits, shifted right by
/// one, below 2^62.
fn kept_at_half(trace_id: &str) -> bool {
    let low = u64::from_str_radix(&trace_id[16..], 16).unwrap();
    (low >> 1) < (1u64 << 62)
}

#[tokio::test(flavor = "current_thread")]
async fn a_ratio_sampler_decides_roots_before_their_span_and_keeps_its_ratio() {
    const REQUESTS: usize = 400;
    let exporter = Keep::default();
    let buf = Buf::default();
    let w = buf.clone();
    let telemetry = Telemetry::builder("ratio-test")
        .vars([
            ("RUST_LOG".to_owned(), "info".to_owned()),
            (
                "OTEL_TRACES_SAMPLER".to_owned(),
                "parentbased_traceidratio".to_owned(),
            ),
            ("OTEL_TRACES_SAMPLER_ARG".to_owned(), "0.5".to_owned()),
        ])
        .simple_span_exporter(exporter.clone())
        .log_format(LogFormat::Json)
        .log_writer(move || w.clone())
        .prometheus(false)
        .shutdown_timeout(Duration::from_secs(3))
        .init()
        .unwrap();

    let svc = ServiceBuilder::new()
        .layer(ServerTraceLayer::http())
        .service_fn(|_req: http::Request<()>| async {
            tracing::info!("handled");
            let cx = current_context();
            let span = cx.span();
            let sc = span.span_context();
            let seen = format!("{} {}", sc.trace_id(), sc.is_sampled());
            Ok::<_, std::convert::Infallible>(http::Response::new(seen))
        });
    let mut sampled = BTreeSet::new();
    let mut dropped = BTreeSet::new();
    for _ in 0..REQUESTS {
        let req = http::Request::get("/orders").body(()).unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        let seen = res.into_body().into_inner();
        let (trace, is_sampled) = seen.split_once(' ').unwrap();
        assert_eq!(trace.len(), 32);
        assert_ne!(trace, "0".repeat(32));
        // The sampler's own rule on the trace id the handler sees.
        assert_eq!(is_sampled == "true", kept_at_half(trace), "{seen}");
        if is_sampled == "true" {
            sampled.insert(trace.to_owned());
        } else {
            dropped.insert(trace.to_owned());
        }
    }
    assert_eq!(
        sampled.len() + dropped.len(),
        REQUESTS,
        "every trace id new"
    );
    // Binomial(400, 0.5): mean 200, sd 10. Deciding twice would keep about 100.
    assert!(
        (140..=260).contains(&sampled.len()),
        "{} of {REQUESTS} sampled at ratio 0.5",
        sampled.len()
    );

    // Exactly the sampled traces are exported, each as its full SERVER span.
    telemetry.force_flush().unwrap();
    let spans = exporter.0.lock().unwrap().clone();
    let exported: BTreeSet<String> = spans
        .iter()
        .map(|s| s.span_context.trace_id().to_string())
        .collect();
    assert_eq!(spans.len(), sampled.len());
    assert_eq!(exported, sampled);
    assert!(spans.iter().all(|s| s.name == "GET"
        && s.attributes.iter().any(|kv| kv.key.as_str() == "url.path")));

    // Every handler log line carries its request's trace id, sampled or not.
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let logged: BTreeSet<String> = logs
        .lines()
        .filter(|l| l.contains("\"handled\""))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["trace_id"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    let all: BTreeSet<String> = sampled.union(&dropped).cloned().collect();
    assert_eq!(logged, all);
    telemetry.shutdown_async().await.unwrap();
}
