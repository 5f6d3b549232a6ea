//! With a parent-based sampler and the sampling hint that says so, a request whose parent
//! is not sampled gets a lean SERVER span: none of its attributes are built. Its own test
//! binary: the hint is process-wide, and `tracing`'s callsite interest is shared by the
//! tests of one binary.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use palisade_benches::{allocation_counter, drive};
use palisade_tracing_layer::{SamplingHint, ServerTraceLayer, set_sampling_hint};
use tower::{Layer, Service, ServiceExt as _, service_fn};
use tracing_subscriber::layer::SubscriberExt as _;

const UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
const CALLS: u64 = 2_000;

/// Allocations per request through the server layer, parent not sampled.
fn per_call(case: &str) -> f64 {
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
            let req = Request::get("/orders/42")
                .header("traceparent", UNSAMPLED)
                .body(Full::default())
                .unwrap();
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

#[test]
fn an_unsampled_parent_with_the_parent_based_hint_builds_no_attributes() {
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_simple_exporter(palisade_benches::DropExporter)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(palisade_tracing_layer::otel_layer(provider.tracer("alloc")));
    let (full, lean) = tracing::subscriber::with_default(subscriber, || {
        set_sampling_hint(SamplingHint::Unknown);
        let full = per_call("tracing_layer, unsampled parent, no hint");
        set_sampling_hint(SamplingHint::ParentBased);
        let lean = per_call("tracing_layer, unsampled parent, parent-based hint");
        (full, lean)
    });
    // The attributes' copies (path, scheme, user agent, name, ...) are gone.
    assert!(lean + 5.0 <= full, "lean {lean}, full {full}");
}
