//! A caller that decided not to sample (`traceparent` flag 00), with the parent-based
//! sampler and the hint `Telemetry::init` sets for it: the server layer makes no span for
//! the request, only its context. The order's work, which the service runs in a task of
//! its own, must stay in that unsampled trace: no span of the order is exported, not even
//! as a trace of its own.

mod support;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider};
use palisade_testkit::TempDir;
use support::{Inventory, Orders, request};
use tracing_subscriber::layer::SubscriberExt as _;

const ONE_KB: &str = r#"{"items":[{"sku":"KB-0001","quantity":1}]}"#;
const UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_caller_gets_no_span_anywhere() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_simple_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    example_telemetry::set_sampling_hint(example_telemetry::SamplingHint::ParentBased);

    let dir = TempDir::new("orders-unsampled-caller");
    let inv = Inventory::start(&dir, 0).await;
    let orders = Orders::start(&dir, inv.grpc, |_| {}).await;
    let post = |traceparent: &'static str| {
        let headers = vec![
            ("content-type", "application/json".to_owned()),
            ("traceparent", traceparent.to_owned()),
        ];
        let addr = orders.addr.clone();
        async move { request(&addr, "POST", "/orders", &headers, ONE_KB).await }
    };

    let r = post(UNSAMPLED).await;
    assert_eq!(r.status, 201, "{r:?}");
    // The same request sampled, to know when everything the first one did has ended.
    let r = post(SAMPLED).await;
    assert_eq!(r.status, 201, "{r:?}");
    let mut spans = Vec::new();
    for _ in 0..500 {
        spans = exporter.get_finished_spans().unwrap();
        if spans.iter().any(|s| s.name == "POST /orders") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let server = spans
        .iter()
        .find(|s| s.name == "POST /orders")
        .expect("the sampled request's SERVER span");
    // The order's spans: the request's own task, the inventory call, the inventory's work.
    let order_work = [
        "place_order",
        "inventory.v1.InventoryService/Reserve",
        "sqlite.reserve",
    ];
    let names: Vec<_> = spans
        .iter()
        .filter(|s| order_work.contains(&s.name.as_ref()))
        .map(|s| (s.name.as_ref(), s.span_context.trace_id()))
        .collect();
    let trace = server.span_context.trace_id();
    assert_eq!(
        names.len(),
        4,
        "place_order, Reserve CLIENT and SERVER, sqlite.reserve of the sampled request \
         only: {names:#?}"
    );
    assert!(names.iter().all(|(_, t)| *t == trace), "{names:#?}");
    let place = spans.iter().find(|s| s.name == "place_order").unwrap();
    assert_eq!(place.parent_span_id, server.span_context.span_id());
    orders.stop().await;
    inv.stop().await;
}
