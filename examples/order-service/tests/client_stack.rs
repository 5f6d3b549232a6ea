//! The client stack's order, seen in the spans: every attempt is its own CLIENT span in
//! the request's trace (`http.request.resend_count` on resends), and while the breaker is
//! open nothing is sent and no CLIENT span is made.

mod support;

use std::time::Duration;

use inventory_service::FaultSettings;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use palisade_testkit::TempDir;
use support::{Inventory, Orders};
use tracing_subscriber::layer::SubscriberExt as _;

const ONE_KB: &str = r#"{"items":[{"sku":"KB-0001","quantity":1}]}"#;

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

fn is_server(s: &SpanData) -> bool {
    s.span_kind == SpanKind::Server && s.name == "POST /orders"
}

/// The spans exported, once the order service's SERVER span is among them: it ends when
/// the server has sent the body's end, which the client may read a moment before.
async fn spans_with_the_server_span(exporter: &InMemorySpanExporter) -> Vec<SpanData> {
    for _ in 0..500 {
        let spans = exporter.get_finished_spans().unwrap();
        if spans.iter().any(is_server) {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    exporter.get_finished_spans().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_is_a_client_span_and_an_open_breaker_sends_nothing() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = TempDir::new("orders-client-stack");
    let inv = Inventory::start(&dir, 0).await;
    let orders = Orders::start(&dir, inv.grpc, |c| c.max_attempts = 3).await;

    // Every attempt fails: three Reserve attempts, then three Release attempts.
    inv.faults
        .set(FaultSettings {
            error_rate: 1.0,
            latency_ms: 0,
        })
        .unwrap();
    let r = orders.post(None, ONE_KB).await;
    assert_eq!(r.status, 503, "{r:?}");
    let spans = spans_with_the_server_span(&exporter).await;
    let server = spans
        .iter()
        .find(|s| is_server(s))
        .expect("a SERVER span for the request");
    let trace = server.span_context.trace_id();
    let attempts = |method: &str| -> Vec<&SpanData> {
        let mut v: Vec<&SpanData> = spans
            .iter()
            // The reconciler's later releases are traces of their own.
            .filter(|s| {
                s.span_kind == SpanKind::Client
                    && s.name == method
                    && s.span_context.trace_id() == trace
            })
            .collect();
        v.sort_by_key(|s| s.start_time);
        v
    };
    for method in [
        "inventory.v1.InventoryService/Reserve",
        "inventory.v1.InventoryService/Release",
    ] {
        let tries = attempts(method);
        assert_eq!(tries.len(), 3, "{method}: one CLIENT span per attempt");
        let resends: Vec<Option<String>> = tries
            .iter()
            .map(|s| attr(s, "http.request.resend_count"))
            .collect();
        assert_eq!(
            resends,
            [None, Some("1".into()), Some("2".into())],
            "{method}"
        );
        for s in &tries {
            assert_eq!(
                s.span_context.trace_id(),
                trace,
                "attempts belong to the request's trace"
            );
            assert_eq!(attr(s, "rpc.status_code").as_deref(), Some("UNAVAILABLE"));
        }
        // The inventory service's SERVER spans are children of the attempts.
        for attempt in &tries {
            let id = attempt.span_context.span_id();
            assert!(
                spans.iter().any(|s| s.span_kind == SpanKind::Server
                    && s.name == method
                    && s.parent_span_id == id),
                "{method}: the attempt reached the inventory service in the same trace"
            );
        }
    }

    // Force the breaker open: the request is refused at once; nothing is sent.
    inv.faults.set(FaultSettings::default()).unwrap();
    exporter.reset();
    orders.breaker.force_open();
    let r = orders.post(None, ONE_KB).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["code"], "inventory_circuit_open");
    let spans = spans_with_the_server_span(&exporter).await;
    assert!(spans.iter().any(is_server));
    assert!(
        !spans.iter().any(|s| s.span_kind == SpanKind::Client),
        "no CLIENT span while the breaker is open: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    orders.breaker.reset();
    tokio::time::timeout(Duration::from_secs(5), async {
        while orders.post(None, ONE_KB).await.status != 201 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("orders flow again once the breaker is reset");
    orders.stop().await;
    inv.stop().await;
}
