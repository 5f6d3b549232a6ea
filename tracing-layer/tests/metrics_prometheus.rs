//! RED metrics through a Prometheus recorder: semconv histogram buckets, labels without raw
//! paths, HELP lines; `promtool check metrics` and a real Prometheus server scrape it.

#![cfg(all(feature = "metrics", feature = "axum"))]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use palisade_testkit::prometheus::{Prometheus, ScrapeTarget, promtool_check_metrics};
use palisade_tracing_layer::ServerTraceLayer;
use palisade_tracing_layer::metrics::{describe_on, metrics_router, prometheus_builder};

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "current_thread")]
async fn red_metrics_exposed_as_semconv_histograms() {
    let recorder = prometheus_builder().build_recorder();
    describe_on(&recorder);
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let app = Router::new()
        .route(
            "/orders/{id}",
            get(
                |axum::extract::Path(id): axum::extract::Path<u32>| async move {
                    if id == 0 {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                },
            ),
        )
        .route_layer(ServerTraceLayer::http())
        .merge(metrics_router(handle.clone()));
    let addr = serve(app).await;
    let a = addr.to_string();
    for path in ["/orders/1", "/orders/2", "/orders/0"] {
        palisade_testkit::http::get(&a, path).await.unwrap();
    }
    let res = palisade_testkit::http::get(&a, "/metrics").await.unwrap();
    let text = res.body.clone();
    assert!(
        text.contains(
            "# HELP http_server_request_duration_seconds Duration of HTTP server requests."
        ),
        "{text}"
    );
    assert!(
        text.contains("# TYPE http_server_request_duration_seconds histogram"),
        "{text}"
    );
    for le in ["0.005", "0.075", "2.5", "10", "+Inf"] {
        assert!(
            text.contains(&format!("le=\"{le}\"")),
            "bucket {le} missing: {text}"
        );
    }
    let ok_count = text
        .lines()
        .find(|l| {
            l.starts_with("http_server_request_duration_seconds_count")
                && l.contains("http_route=\"/orders/{id}\"")
                && l.contains("http_response_status_code=\"200\"")
                && l.contains("http_request_method=\"GET\"")
                && l.contains("url_scheme=\"http\"")
        })
        .unwrap_or_else(|| panic!("no count line: {text}"));
    assert!(ok_count.ends_with(" 2"), "{ok_count}");
    assert!(text.contains("http_response_status_code=\"500\""), "{text}");
    assert!(!text.contains("/orders/1"), "raw path in labels: {text}");
    assert!(text.contains("http_server_active_requests"), "{text}");
    // The scrape itself is not traced or counted (excluded by default).
    assert!(!text.contains("http_route=\"/metrics\""), "{text}");

    match promtool_check_metrics("red_metrics_exposed_as_semconv_histograms", &text) {
        Ok(_) => {}
        Err(out) => panic!("promtool check metrics failed: {out}\n{text}"),
    }

    if let Some(prom) = Prometheus::start(
        "red_metrics_exposed_as_semconv_histograms",
        &[ScrapeTarget::new("orders", a.clone(), "/metrics")],
    )
    .await
    {
        let series = prom
            .wait_for_series(
                "http_server_request_duration_seconds_bucket{http_route=\"/orders/{id}\",le=\"0.005\"}",
                Duration::from_secs(30),
            )
            .await;
        assert!(!series.is_empty(), "{}", prom.log());
    }
}

#[tokio::test(flavor = "current_thread")]
async fn client_and_rpc_metrics() {
    use palisade_tracing_layer::ClientTraceLayer;
    use tower::{ServiceBuilder, ServiceExt as _};

    let recorder = prometheus_builder().build_recorder();
    describe_on(&recorder);
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let grpc = ServiceBuilder::new()
        .layer(ClientTraceLayer::grpc("http://127.0.0.1:50051"))
        .layer(ServerTraceLayer::grpc())
        .service_fn(|_req: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .header("grpc-status", "14")
                    .body(String::new())
                    .unwrap(),
            )
        });
    let res = grpc
        .oneshot(http::Request::post("/pkg.Orders/Get").body(()).unwrap())
        .await
        .unwrap();
    drop(res);
    let http_client = ServiceBuilder::new()
        .layer(ClientTraceLayer::http())
        .service_fn(|_req: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .status(404)
                    .body(String::new())
                    .unwrap(),
            )
        });
    let res = http_client
        .oneshot(
            http::Request::get("http://127.0.0.1:1/orders/7?x=1")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    drop(res);
    // palisade-retry's histogram (described by the retry layer) is a histogram, not a summary.
    metrics::describe_histogram!(
        "palisade_retry_attempts_per_request",
        "Attempts sent per request"
    );
    metrics::histogram!("palisade_retry_attempts_per_request", "retry" => "inventory").record(2.0);

    let text = handle.render();
    assert!(!text.contains("quantile="), "a summary: {text}");
    for needle in [
        "# TYPE palisade_retry_attempts_per_request histogram",
        "palisade_retry_attempts_per_request_bucket{retry=\"inventory\",le=\"1\"} 0",
        "palisade_retry_attempts_per_request_bucket{retry=\"inventory\",le=\"2\"} 1",
        "# HELP rpc_server_call_duration_seconds",
        "# HELP rpc_client_call_duration_seconds",
        "# HELP http_client_request_duration_seconds",
        "rpc_server_call_duration_seconds_count{rpc_service=\"pkg.Orders\",rpc_method=\"pkg.Orders/Get\",rpc_status_code=\"UNAVAILABLE\"} 1",
        "rpc_client_call_duration_seconds_count{rpc_service=\"pkg.Orders\",rpc_method=\"pkg.Orders/Get\",rpc_status_code=\"UNAVAILABLE\"} 1",
        "http_client_request_duration_seconds_count{http_request_method=\"GET\",url_scheme=\"http\",http_response_status_code=\"404\"} 1",
    ] {
        assert!(text.contains(needle), "{needle} missing: {text}");
    }
    assert!(!text.contains("/orders/7"), "raw path in labels: {text}");
    if let Err(out) = promtool_check_metrics("client_and_rpc_metrics", &text) {
        panic!("promtool: {out}\n{text}");
    }
}
