//! Telemetry of the real binaries: a real Prometheus server scrapes both services, and
//! spans reach a real OTLP receiver (rotel) with the right `service.name`, flushed on
//! SIGTERM.

mod support;

use std::time::Duration;

use palisade_testkit::rotel::{kind, status};
use palisade_testkit::{Prometheus, Rotel, ScrapeTarget, SpanRecord, promtool_check_metrics};
use support::System;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_and_spans_exported() {
    const TEST: &str = "metrics_are_scraped_and_spans_exported";
    let Some(rotel) = Rotel::start(TEST).await else {
        return;
    };
    // JSON logs and SERVER spans made with the tracer directly, as a production
    // deployment may run them; the other system tests keep text logs and `tracing` spans.
    let mut system = System::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rotel.grpc_endpoint.clone()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("PALISADE_LOG_FORMAT", "json".into()),
        ("PALISADE_SERVER_SPANS", "otel".into()),
    ])
    .await;
    let Some(prometheus) = Prometheus::start(
        TEST,
        &[
            ScrapeTarget::new("order-service", system.http.clone(), "/metrics"),
            ScrapeTarget::new("inventory-service", system.admin.clone(), "/metrics"),
        ],
    )
    .await
    else {
        return;
    };

    for i in 0..5 {
        let r = system
            .post_order(
                Some(&format!("obs-{i}")),
                r#"{"items":[{"sku":"HD-0004","quantity":1}]}"#,
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }

    // Both expositions pass promtool's lint (HELP and TYPE for every metric).
    for addr in [&system.http, &system.admin] {
        let body = palisade_testkit::http::get(addr, "/metrics")
            .await
            .unwrap()
            .body;
        promtool_check_metrics(TEST, &body).unwrap_or_else(|e| panic!("{addr}: {e}"));
    }

    // Prometheus scraped both services.
    for job in ["order-service", "inventory-service"] {
        let up = prometheus
            .wait_for_series(
                &format!("up{{job=\"{job}\"}} == 1"),
                Duration::from_secs(20),
            )
            .await;
        assert_eq!(up.len(), 1, "{job}: {up:?}");
        prometheus
            .wait_for_series(
                &format!("palisade_health_check_status{{job=\"{job}\",check=\"sqlite\"}} == 1"),
                Duration::from_secs(20),
            )
            .await;
    }
    // The order service's own outcome counter.
    prometheus
        .wait_for_series(
            "orders_placed_total{job=\"order-service\",outcome=\"created\"} == 5",
            Duration::from_secs(20),
        )
        .await;
    // RED metrics from both services: request counts and durations by route / method.
    prometheus
        .wait_for_series(
            "http_server_request_duration_seconds_count{job=\"order-service\",http_route=\"/orders\",http_request_method=\"POST\",http_response_status_code=\"201\"} >= 5",
            Duration::from_secs(20),
        )
        .await;
    prometheus
        .wait_for_series(
            "rpc_server_call_duration_seconds_count{job=\"inventory-service\",rpc_method=\"inventory.v1.InventoryService/Reserve\",rpc_status_code=\"OK\"} >= 5",
            Duration::from_secs(20),
        )
        .await;
    let p99 = prometheus
        .wait_for_series(
            "histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{job=\"order-service\"}[1m])))",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(p99.len(), 1, "a real histogram, not a summary: {p99:?}");
    let calls = prometheus
        .wait_for_series(
            "palisade_circuit_breaker_calls_total{job=\"order-service\",breaker=\"inventory\",outcome=\"success\"} >= 5",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(calls.len(), 1, "{calls:?}");

    // SIGTERM flushes the batched spans before the processes exit.
    system.orders.sigterm();
    system.inventory.sigterm();
    assert!(
        system
            .orders
            .wait_exit(Duration::from_secs(15))
            .await
            .success()
    );
    assert!(
        system
            .inventory
            .wait_exit(Duration::from_secs(15))
            .await
            .success()
    );
    let spans = rotel
        .wait_for(
            "spans from both services",
            Duration::from_secs(10),
            |spans| {
                let count = |service: &str, name: &str| {
                    spans
                        .iter()
                        .filter(|s| s.service.as_deref() == Some(service) && s.name == name)
                        .count()
                };
                count("inventory-service", "sqlite.reserve") >= 5
                    && count("order-service", "POST /orders") >= 5
            },
        )
        .await;
    let placed = spans
        .iter()
        .filter(|s| s.service.as_deref() == Some("order-service") && s.name == "place_order")
        .count();
    assert_eq!(placed, 5, "one place_order span per order");

    // One trace per order, across both services:
    //   order-service SERVER "POST /orders"
    //     └ place_order
    //         └ order-service CLIENT inventory.v1.InventoryService/Reserve
    //             └ inventory-service SERVER inventory.v1.InventoryService/Reserve
    //                 └ sqlite.reserve
    let by_id = |id: &str| spans.iter().find(|s| s.span_id == id);
    let servers: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| s.service.as_deref() == Some("order-service") && s.kind == kind::SERVER)
        .collect();
    assert_eq!(
        servers.len(),
        5,
        "one SERVER span per POST /orders; probes and /metrics make none"
    );
    for root in servers {
        assert_eq!(root.name, "POST /orders");
        // Made with the tracer (`PALISADE_SERVER_SPANS=otel`), not through
        // tracing-opentelemetry, which adds the code location.
        assert_eq!(root.attr_str("code.file.path"), None, "{root:?}");
        assert_eq!(
            root.parent_span_id, "",
            "the order request starts the trace"
        );
        assert_eq!(root.attr_str("http.request.method"), Some("POST"));
        assert_eq!(root.attr_str("http.route"), Some("/orders"));
        assert_eq!(root.attr_i64("http.response.status_code"), Some(201));
        assert_ne!(root.status.as_deref(), Some(status::ERROR));
        let in_trace: Vec<&SpanRecord> = spans
            .iter()
            .filter(|s| s.trace_id == root.trace_id)
            .collect();
        let client = in_trace
            .iter()
            .find(|s| s.kind == kind::CLIENT && s.name == "inventory.v1.InventoryService/Reserve")
            .unwrap_or_else(|| panic!("no CLIENT span in {in_trace:#?}"));
        assert_eq!(client.service.as_deref(), Some("order-service"));
        assert_eq!(client.attr_str("rpc.system.name"), Some("grpc"));
        assert_eq!(client.attr_str("server.address"), Some("127.0.0.1"));
        let port: i64 = system.grpc.rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!(client.attr_i64("server.port"), Some(port));
        // The CLIENT span descends from the SERVER span, through place_order.
        let place = by_id(&client.parent_span_id).expect("the CLIENT span's parent");
        assert_eq!(place.name, "place_order");
        assert_eq!(place.parent_span_id, root.span_id);
        let server = in_trace
            .iter()
            .find(|s| s.service.as_deref() == Some("inventory-service") && s.kind == kind::SERVER)
            .unwrap_or_else(|| {
                panic!("the trace does not reach the inventory service: {in_trace:#?}")
            });
        assert_eq!(
            server.parent_span_id, client.span_id,
            "the inventory SERVER span's parent is the CLIENT span"
        );
        assert_eq!(server.name, "inventory.v1.InventoryService/Reserve");
        assert_eq!(
            server.attr_str("rpc.method"),
            Some("inventory.v1.InventoryService/Reserve")
        );
        assert_eq!(server.attr_str("rpc.status_code"), Some("OK"));
        assert!(
            in_trace
                .iter()
                .any(|s| s.name == "sqlite.reserve" && s.parent_span_id == server.span_id),
            "the inventory service's own spans are children of its SERVER span"
        );
    }
    let _ = prometheus.log();
}
