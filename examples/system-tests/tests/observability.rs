//! Telemetry of the real binaries: a real Prometheus server scrapes both services, and
//! spans reach a real OTLP receiver (rotel) with the right `service.name`, flushed on
//! SIGTERM.

mod support;

use std::time::Duration;

use palisade_testkit::{Prometheus, Rotel, ScrapeTarget, promtool_check_metrics};
use support::System;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_and_spans_exported() {
    const TEST: &str = "metrics_are_scraped_and_spans_exported";
    let Some(rotel) = Rotel::start(TEST).await else {
        return;
    };
    let mut system = System::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rotel.grpc_endpoint.clone()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
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
                spans.iter().any(|s| {
                    s.service.as_deref() == Some("order-service") && s.name == "place_order"
                }) && spans.iter().any(|s| {
                    s.service.as_deref() == Some("inventory-service") && s.name == "sqlite.reserve"
                })
            },
        )
        .await;
    let placed = spans
        .iter()
        .filter(|s| s.service.as_deref() == Some("order-service") && s.name == "place_order")
        .count();
    assert_eq!(placed, 5, "one place_order span per order");
    let _ = prometheus.log();
}
