//! Per-request overhead of `palisade-tracing-layer`'s server layer over a bare axum
//! handler (the `Router` called as a `Service`, no network), against tower-http's
//! `TraceLayer` with tracing-opentelemetry and against axum-tracing-opentelemetry, all in
//! the same run:
//!
//! - `tracing_layer/unsampled/*`: every request carries a `traceparent` whose sampled flag
//!   is off (the caller decided not to sample) and the provider's sampler drops every
//!   trace. `palisade` has what `Telemetry::init` sets for its default sampler (the hint
//!   `ParentBasedTraceIdOnly` and the sampler's ratio: no span at all, only the request's
//!   context), `palisade_always_off` the hint for `always_off`, `palisade_trace_id_only`
//!   the hint `TraceIdOnly` without the ratio (a lean span, attributes added only if the
//!   sampler records it: what a dropped root costs on a provider built by hand without
//!   `RootIdGenerator`), `palisade_no_hint` none;
//! - `tracing_layer/sampled/*`: root requests, every trace sampled, spans batch-exported
//!   to a no-op sink, as a service runs (the batch worker shares the cores and, once its
//!   queue is full, drops spans cheaply: these figures vary between runs);
//! - `tracing_layer/sampled_inline/*`: the same, exported by the simple processor (each
//!   span's whole cost on the measured thread: the stable comparison). In both sampled
//!   groups `palisade` has the hint and the ratio (each request decided, and kept, before
//!   its span: the full span at once), `palisade_no_hint` none.
//!
//! Each iteration sends `GET /orders/42` and reads the response body to its end (the
//! palisade span ends there). A `TRACE` level filter, so tower-http's DEBUG spans exist.
//!
//! Results, with the targets met and missed: `benches/README.md`
//! (`bash benches/run.sh tracing_layer`). `floor_one_otel_span` (one tracing span with only a
//! name and kind through tracing-opentelemetry) is the floor for any layer built on
//! tracing-opentelemetry: it builds every span and its attributes before the SDK's sampler
//! runs at span start, which is why the layer needs the sampling hint to start a lean span
//! (no attributes) and add the attributes only once the sampler has recorded it.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use palisade_tracing_layer::telemetry::RootIdGenerator;
use palisade_tracing_layer::{SamplingHint, ServerTraceLayer, set_sampling_hint};
use tower::ServiceExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// How sampled spans leave the process.
#[derive(Clone, Copy, PartialEq)]
enum Export {
    /// The batch processor, as a service runs: its worker thread shares the cores.
    Batch,
    /// The simple processor: each span's whole cost on the measured thread.
    Inline,
}

fn provider(sampled: bool, export: Export) -> SdkTracerProvider {
    let sampler = if sampled {
        Sampler::AlwaysOn
    } else {
        Sampler::AlwaysOff
    };
    let b = SdkTracerProvider::builder().with_sampler(sampler);
    match export {
        Export::Batch => b.with_batch_exporter(palisade_benches::DropExporter),
        Export::Inline => b.with_simple_exporter(palisade_benches::DropExporter),
    }
    .build()
}

fn routes() -> Router {
    Router::new().route("/orders/{id}", get(|| async { "ok" }))
}

fn apps(tracer: opentelemetry_sdk::trace::SdkTracer) -> Vec<(&'static str, Router)> {
    vec![
        ("bare_axum", routes()),
        (
            // With the sampling hint the telemetry init sets for its sampler.
            "palisade",
            routes().route_layer(ServerTraceLayer::http().metrics(false)),
        ),
        (
            // The same, the SERVER span made with the tracer directly (`otel_tracer`).
            "palisade_otel_tracer",
            routes().route_layer(ServerTraceLayer::http().metrics(false).otel_tracer(tracer)),
        ),
        (
            // The hint for `always_off` (unsampled group only).
            "palisade_always_off",
            routes().route_layer(ServerTraceLayer::http().metrics(false)),
        ),
        (
            // The hint for `traceidratio` (unsampled group only).
            "palisade_trace_id_only",
            routes().route_layer(ServerTraceLayer::http().metrics(false)),
        ),
        (
            // No hint: every span built with its attributes.
            "palisade_no_hint",
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

/// A `traceparent` whose sampled flag is off.
const UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

async fn one(app: &Router, sampled: bool) {
    let mut req = http::Request::get("/orders/42")
        .header("user-agent", "bench/1.0")
        .body(Body::empty())
        .unwrap();
    if !sampled {
        req.headers_mut()
            .insert("traceparent", http::HeaderValue::from_static(UNSAMPLED));
    }
    let res = app.clone().oneshot(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap();
    black_box(body);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (group, sampled, export) in [
        ("unsampled", false, Export::Inline),
        ("sampled", true, Export::Batch),
        ("sampled_inline", true, Export::Inline),
    ] {
        let provider = {
            let _enter = rt.enter();
            provider(sampled, export)
        };
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
            .with(palisade_tracing_layer::otel_layer(provider.tracer("bench")))
            .with(palisade_tracing_layer::span_events_layer());
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut g = c.benchmark_group(format!("tracing_layer/{group}"));
        for (name, app) in apps(provider.tracer("bench")) {
            set_sampling_hint(match name {
                "palisade_no_hint" => SamplingHint::Unknown,
                "palisade_always_off" | "palisade_trace_id_only" if sampled => continue,
                "palisade_always_off" => SamplingHint::AlwaysOff,
                "palisade_trace_id_only" => SamplingHint::TraceIdOnly,
                _ => SamplingHint::ParentBasedTraceIdOnly,
            });
            // `Telemetry::init` also announces its sampler's ratio: 1 in the sampled group
            // (every request decided, and kept, before its span), 0 in the unsampled one.
            let announced = matches!(name, "palisade" | "palisade_otel_tracer");
            RootIdGenerator::set_root_ratio(announced.then_some(if sampled { 1.0 } else { 0.0 }));
            g.bench_function(name, |b| b.to_async(&rt).iter(|| one(&app, sampled)));
        }
        set_sampling_hint(SamplingHint::Unknown);
        RootIdGenerator::set_root_ratio(None);
        g.finish();
        let _ = provider.shutdown_with_timeout(Duration::from_secs(5));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
