//! With a sampling hint, a request the sampler does not record costs less: with a
//! parent-based hint, a request whose parent is not sampled gets no span at all (only its
//! context); with `TraceIdOnly`, a root request a ratio sampler drops gets a lean span (no
//! attributes built). Its own test binary: the hint is process-wide, and
//! `tracing`'s callsite interest is shared by the tests of one binary.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use palisade_benches::{allocation_counter, drive};
use palisade_tracing_layer::telemetry::RootIdGenerator;
use palisade_tracing_layer::{SamplingHint, ServerTraceLayer, set_sampling_hint};
use tower::{Layer, Service, ServiceExt as _, service_fn};
use tracing_subscriber::layer::SubscriberExt as _;

const UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
const CALLS: u64 = 2_000;

/// Allocations per request through the server layer, parent not sampled (or none).
fn per_call(case: &str, traceparent: Option<&str>) -> f64 {
    let mut svc =
        ServerTraceLayer::http()
            .metrics(false)
            .layer(service_fn(|_req: Request<Full<Bytes>>| {
                std::future::ready(Ok::<_, Infallible>(Response::new(Full::new(
                    Bytes::from_static(b"ok"),
                ))))
            }));
    let mut call = || {
        drive(async {
            let mut req = Request::get("/orders/42")
                .header("user-agent", "bench/1.0")
                .body(Full::default())
                .unwrap();
            if let Some(tp) = traceparent {
                req.headers_mut()
                    .insert("traceparent", http::HeaderValue::from_str(tp).unwrap());
            }
            let res = svc.ready().await.unwrap().call(req).await.unwrap();
            let _ = res.into_body().collect().await.unwrap();
        });
    };
    for _ in 0..100 {
        call();
    }
    let info = allocation_counter::measure(|| {
        for _ in 0..CALLS {
            call();
        }
    });
    let n = info.count_total as f64 / CALLS as f64;
    palisade_benches::report_allocations(case, n);
    n
}

/// One test: the hint and the root ratio are process-wide, so the cases run in turn.
#[test]
fn unsampled_requests_build_no_span_or_no_attributes() {
    an_unsampled_parent_with_a_parent_based_hint_builds_no_span();
    an_unsampled_root_with_the_trace_id_only_hint_builds_no_attributes();
}

fn an_unsampled_parent_with_a_parent_based_hint_builds_no_span() {
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_simple_exporter(palisade_benches::DropExporter)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(palisade_tracing_layer::otel_layer(provider.tracer("alloc")));
    let (full, fast, fast_default) = tracing::subscriber::with_default(subscriber, || {
        set_sampling_hint(SamplingHint::Unknown);
        let full = per_call("tracing_layer, unsampled parent, no hint", Some(UNSAMPLED));
        set_sampling_hint(SamplingHint::ParentBased);
        let fast = per_call(
            "tracing_layer, unsampled parent, parent-based hint",
            Some(UNSAMPLED),
        );
        set_sampling_hint(SamplingHint::ParentBasedTraceIdOnly);
        let fast_default = per_call(
            "tracing_layer, unsampled parent, Telemetry::init's default hint",
            Some(UNSAMPLED),
        );
        (full, fast, fast_default)
    });
    // No span at all: neither the attributes' copies (path, scheme, user agent, name, ...)
    // nor tracing-opentelemetry's span data; only the request's context.
    assert!(fast + 12.0 <= full, "no span {fast}, full {full}");
    assert!(
        fast_default + 12.0 <= full,
        "no span {fast_default}, full {full}"
    );
}

fn an_unsampled_root_with_the_trace_id_only_hint_builds_no_attributes() {
    // A ratio sampler that keeps no root, as a 1 % sampler drops 99 of 100.
    // The provider takes root trace ids from the layer, as `Telemetry::init` builds it.
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            0.0,
        ))))
        .with_id_generator(RootIdGenerator::default())
        .with_simple_exporter(palisade_benches::DropExporter)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(palisade_tracing_layer::otel_layer(provider.tracer("alloc")));
    let (full, lean, parent, decided) = tracing::subscriber::with_default(subscriber, || {
        set_sampling_hint(SamplingHint::Unknown);
        let full = per_call("tracing_layer, unsampled root, no hint", None);
        set_sampling_hint(SamplingHint::TraceIdOnly);
        let lean = per_call("tracing_layer, unsampled root, trace-id-only hint", None);
        let parent = per_call(
            "tracing_layer, unsampled parent, trace-id-only hint",
            Some(UNSAMPLED),
        );
        // The root ratio announced: the layer decides the root itself, no span at all.
        set_sampling_hint(SamplingHint::ParentBasedTraceIdOnly);
        RootIdGenerator::set_root_ratio(Some(0.0));
        let decided = per_call(
            "tracing_layer, unsampled root, Telemetry::init's hint and root ratio",
            None,
        );
        RootIdGenerator::set_root_ratio(None);
        (full, lean, parent, decided)
    });
    assert!(lean + 5.0 <= full, "lean {lean}, full {full}");
    assert!(parent + 5.0 <= full, "lean {parent}, full {full}");
    assert!(decided + 3.0 <= lean, "no span {decided}, lean {lean}");
}
