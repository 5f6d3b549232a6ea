//! The whole stacks against bare, in the same run, as the example services compose them:
//!
//! - `stacks/client/*`: `Retry → CircuitBreaker → ClientTrace → Timeout` (HTTP policy, HTTP
//!   classifier, CLIENT span with `traceparent` injected and client metrics, 1 s per-try
//!   timeout) around an in-memory service answering 200, against that service bare. One
//!   `GET` with an empty body per iteration, its response body read to the end.
//! - `stacks/server_{unsampled,sampled}/*`: `Health → ServerTrace + metrics` (the probe
//!   paths answered by the health layer, a SERVER span and the `http.server.*` metrics into
//!   a real Prometheus recorder) around an axum router, against the bare router. One
//!   `GET /orders/42` with a `traceparent` per iteration (the sampled variant's parent is
//!   sampled, the unsampled one's is not; the provider is parent-based, as in production);
//!   `palisade_full_server_stack_otel_tracer` makes its SERVER span with the tracer
//!   directly (`ServerTraceLayer::otel_tracer`).
//!
//! A current-thread tokio runtime drives both sides (the timeout and the health registry
//! need one). No network: the end-to-end numbers under load are `benches/load.sh`'s.
//! Results: `benches/README.md`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt as _, Empty};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use palisade_circuit_breaker::CircuitBreakerLayer;
use palisade_circuit_breaker::http::HttpClassifier;
use palisade_health::HealthRegistry;
use palisade_retry::http::HttpPolicy;
use palisade_retry::{ReplayBody, RetryLayer};
use palisade_tracing_layer::{ClientTraceLayer, ServerTraceLayer};
use tower::{BoxError, ServiceBuilder, ServiceExt as _, service_fn};
use tracing_subscriber::layer::SubscriberExt as _;

const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

fn get_request<B: Default>(uri: &'static str, traceparent: &'static str) -> Request<B> {
    Request::get(uri)
        .header("user-agent", "bench/1.0")
        .header("traceparent", traceparent)
        .body(B::default())
        .unwrap()
}

/// Benches one call per iteration: `request()` sent through a clone of `svc`, the response
/// body read to the end.
fn bench_calls<S, B, RB>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    rt: &tokio::runtime::Runtime,
    svc: &S,
    request: impl Fn() -> Request<B>,
) where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: std::fmt::Debug,
    RB: http_body::Body,
    RB::Error: std::fmt::Debug,
{
    g.bench_function(name, |b| {
        b.to_async(rt).iter(|| async {
            let res = svc.clone().oneshot(request()).await.unwrap();
            black_box(res.into_body().collect().await.unwrap());
        });
    });
}

/// An in-memory dependency answering 200 with an empty body.
fn inner<B>() -> impl tower::Service<
    Request<B>,
    Response = Response<Empty<Bytes>>,
    Error = BoxError,
    Future = std::future::Ready<Result<Response<Empty<Bytes>>, BoxError>>,
> + Clone {
    service_fn(|req: Request<B>| {
        black_box(&req);
        std::future::ready(Ok::<_, BoxError>(Response::new(Empty::<Bytes>::new())))
    })
}

fn client(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let _enter = rt.enter();
    let bare = inner::<Empty<Bytes>>();
    let breaker = CircuitBreakerLayer::builder("bench")
        .with_classifier(HttpClassifier::new())
        .build()
        .unwrap();
    let retry = RetryLayer::builder("bench", HttpPolicy::new())
        .build()
        .unwrap();
    let full = ServiceBuilder::new()
        .layer(retry)
        .layer(breaker)
        .layer(ClientTraceLayer::http())
        .timeout(Duration::from_secs(1))
        .service(inner::<ReplayBody<Empty<Bytes>>>());

    let mut g = c.benchmark_group("stacks/client");
    let request = || get_request::<Empty<Bytes>>("http://127.0.0.1:8081/stock", SAMPLED);
    bench_calls(&mut g, "bare_service_fn", rt, &bare, request);
    bench_calls(&mut g, "palisade_full_client_stack", rt, &full, request);
    g.finish();
}

fn server(c: &mut Criterion, rt: &tokio::runtime::Runtime, provider: &SdkTracerProvider) {
    let _enter = rt.enter();
    let routes = || Router::new().route("/orders/{id}", get(|| async { "ok" }));
    let health = HealthRegistry::builder().build().unwrap();
    let bare = routes();
    let full = routes()
        .route_layer(ServerTraceLayer::http())
        .layer(health.layer());
    // The same, the SERVER span made with the tracer (`PALISADE_SERVER_SPANS=otel`).
    let full_otel = routes()
        .route_layer(ServerTraceLayer::http().otel_tracer(provider.tracer("bench")))
        .layer(health.layer());
    for (group, traceparent) in [("unsampled", UNSAMPLED), ("sampled", SAMPLED)] {
        let mut g = c.benchmark_group(format!("stacks/server_{group}"));
        let request = || get_request::<Body>("/orders/42", traceparent);
        bench_calls(&mut g, "bare_axum", rt, &bare, request);
        bench_calls(&mut g, "palisade_full_server_stack", rt, &full, request);
        bench_calls(
            &mut g,
            "palisade_full_server_stack_otel_tracer",
            rt,
            &full_otel,
            request,
        );
        g.finish();
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // As in a service: a real Prometheus recorder, a parent-based sampler; spans exported
    // by the simple processor, so each sampled span's whole cost (its data, the export
    // call) is paid on the measured thread. A batch processor's worker would share the
    // cores and, once its queue is full, drop spans cheaply: figures that vary by 2x.
    let _handle = palisade_tracing_layer::metrics::install_prometheus().unwrap();
    let provider = {
        let _enter = rt.enter();
        SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .with_simple_exporter(palisade_benches::DropExporter)
            .build()
    };
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(palisade_tracing_layer::otel_layer(provider.tracer("bench")))
        .with(palisade_tracing_layer::span_events_layer());
    let _guard = tracing::subscriber::set_default(subscriber);
    // What the telemetry init tells the layers about its samplers.
    palisade_tracing_layer::set_sampling_hint(
        palisade_tracing_layer::SamplingHint::ParentBasedTraceIdOnly,
    );
    // ... and the ratio of its root sampler (`AlwaysOn`): every request decided first.
    palisade_tracing_layer::telemetry::RootIdGenerator::set_root_ratio(Some(1.0));
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );

    client(c, &rt);
    server(c, &rt, &provider);
    let _ = provider.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
