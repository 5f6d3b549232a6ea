//! Allocations per request through `palisade-tracing-layer`'s server layer: none beyond
//! the bare service without a subscriber, a bounded number with tracing-opentelemetry
//! (unsampled and sampled), fewer with the span made by the tracer directly; parsing a
//! valid `traceparent` allocates nothing.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use palisade_benches::{allocation_counter, drive};
use palisade_tracing_layer::ServerTraceLayer;
use palisade_tracing_layer::propagation::parse_traceparent;
use tower::{Layer, Service, service_fn};
use tracing_subscriber::layer::SubscriberExt as _;

type Body = Full<Bytes>;

fn bare() -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone {
    service_fn(|_req: Request<Body>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(Full::new(
            Bytes::from_static(b"ok"),
        ))))
    })
}

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn call<S, B>(svc: &mut S)
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    drive(async {
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        let req = Request::get("/orders/42")
            .header("traceparent", TP)
            .body(Full::default())
            .unwrap();
        let res = svc.call(req).await.unwrap();
        let _ = res.into_body().collect().await.unwrap();
    });
}

const CALLS: u64 = 2_000;

fn per_call<S, B>(case: &str, svc: &mut S) -> f64
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    for _ in 0..100 {
        call(svc);
    }
    let info = allocation_counter::measure(|| {
        for _ in 0..CALLS {
            call(svc);
        }
    });
    let per_call = info.count_total as f64 / CALLS as f64;
    palisade_benches::report_allocations(case, per_call);
    per_call
}

fn with_otel<T>(sampled: bool, f: impl FnOnce(&SdkTracerProvider) -> T) -> T {
    let provider = SdkTracerProvider::builder()
        .with_sampler(if sampled {
            Sampler::AlwaysOn
        } else {
            Sampler::AlwaysOff
        })
        .with_simple_exporter(palisade_benches::DropExporter)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(palisade_tracing_layer::otel_layer(provider.tracer("alloc")));
    tracing::subscriber::with_default(subscriber, || f(&provider))
}

#[test]
fn valid_traceparent_parses_without_allocating() {
    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            std::hint::black_box(parse_traceparent(std::hint::black_box(TP)).unwrap());
        }
    });
    assert_eq!(info.count_total, 0);
}

#[test]
fn server_layer_allocations_per_request() {
    let bare_allocs = per_call("tracing_layer bare service_fn", &mut bare());
    let layer = ServerTraceLayer::http().metrics(false);
    let untraced = per_call("tracing_layer, no subscriber", &mut layer.layer(bare()));
    assert_eq!(untraced, bare_allocs, "nothing extra without a subscriber");
    let unsampled = with_otel(false, |_| {
        per_call("tracing_layer, unsampled", &mut layer.layer(bare()))
    });
    let sampled = with_otel(true, |_| {
        per_call("tracing_layer, sampled", &mut layer.layer(bare()))
    });
    // The SERVER span made with the tracer directly (`otel_tracer`).
    let direct = with_otel(true, |provider| {
        let layer = layer.clone().otel_tracer(provider.tracer("alloc"));
        per_call(
            "tracing_layer, sampled, otel_tracer",
            &mut layer.layer(bare()),
        )
    });
    assert!(unsampled - bare_allocs <= 13.0, "{unsampled}");
    assert!(sampled - bare_allocs <= 14.0, "{sampled}");
    assert!(direct - bare_allocs <= 8.0, "{direct}");
}
