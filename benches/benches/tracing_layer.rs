//! Per-request overhead of `palisade-tracing-layer`'s server layer over a bare axum
//! handler (the `Router` called as a `Service`, no network), against tower-http's
//! `TraceLayer` with tracing-opentelemetry and against axum-tracing-opentelemetry, all in
//! the same run:
//!
//! - `tracing_layer/unsampled/*`: a tracer provider whose sampler drops every trace;
//! - `tracing_layer/sampled/*`: every trace sampled, spans batch-exported to a no-op sink.
//!
//! Each iteration sends `GET /orders/42` and reads the response body to its end (the
//! palisade span ends there). A `TRACE` level filter, so tower-http's DEBUG spans exist.
//!
//! Measured on the 2-core development machine (shared with other builds, ±20 %),
//! `cargo bench -p palisade-benches --bench tracing_layer -- --warm-up-time 1
//! --measurement-time 3`, median per request and overhead over the same run's bare axum:
//!
//! ```text
//!                      bare axum   palisade        tower-http TraceLayer   axum-tracing-otel
//! unsampled             0.87 µs    4.31 (+3.4)     5.35 (+4.5)             4.33 (+3.5)
//! sampled (batch, no-op) 0.92 µs   6.49 (+5.6)     11.6 (+10.7)            7.69 (+6.8)
//! ```
//!
//! Sampled overhead: 0.52x tower-http's, 0.82x axum-tracing-opentelemetry's (target
//! 0.7x). Unsampled: +3.4 µs (target 1 µs, not met): tracing-opentelemetry builds the
//! span's attributes before the SDK's sampler runs at span start. A span started with the
//! OpenTelemetry API after a sampling decision is the planned fix; an attempt that took
//! the decision first through `span.context()` and set attributes afterwards was slower
//! when sampled (+7.3 µs) and no faster unsampled, so it was not kept.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use palisade_tracing_layer::ServerTraceLayer;
use tower::ServiceExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[derive(Debug)]
struct NoopExporter;

impl SpanExporter for NoopExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

fn provider(sampled: bool) -> SdkTracerProvider {
    let sampler = if sampled {
        Sampler::AlwaysOn
    } else {
        Sampler::AlwaysOff
    };
    SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_batch_exporter(NoopExporter)
        .build()
}

fn routes() -> Router {
    Router::new().route("/orders/{id}", get(|| async { "ok" }))
}

fn apps() -> Vec<(&'static str, Router)> {
    vec![
        ("bare_axum", routes()),
        (
            "palisade",
            routes().route_layer(ServerTraceLayer::http().metrics(false)),
        ),
        (
            // The floor for any layer built on tracing-opentelemetry: one span with a
            // name and kind, created and closed, no attributes, no propagation.
            "floor_one_otel_span",
            routes().route_layer(tower::util::MapRequestLayer::new(
                |req: http::Request<Body>| {
                    let span = tracing::info_span!(
                        "request",
                        otel.name = "GET /orders/{id}",
                        otel.kind = "server"
                    );
                    drop(span);
                    req
                },
            )),
        ),
        (
            "tower_http_trace",
            routes().layer(tower_http::trace::TraceLayer::new_for_http()),
        ),
        (
            "axum_tracing_opentelemetry",
            routes().layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default()),
        ),
    ]
}

async fn one(app: &Router) {
    let req = http::Request::get("/orders/42")
        .header("user-agent", "bench/1.0")
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap();
    black_box(body);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (group, sampled) in [("unsampled", false), ("sampled", true)] {
        let provider = provider(sampled);
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut g = c.benchmark_group(format!("tracing_layer/{group}"));
        for (name, app) in apps() {
            g.bench_function(name, |b| b.to_async(&rt).iter(|| one(&app)));
        }
        g.finish();
        let _ = provider.shutdown_with_timeout(Duration::from_secs(5));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
