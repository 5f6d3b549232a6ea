//! The HTTP servers `benches/load.sh` puts under load, each with and without Palisade:
//!
//! ```text
//! load_target server-bare  ADDR            GET /hello -> "hello" (axum, no middleware)
//! load_target server-full  ADDR            the same behind Health -> ServerTrace + metrics
//! load_target front-bare   ADDR UPSTREAM   GET /hello calls UPSTREAM/hello (hyper-util client)
//! load_target front-full   ADDR UPSTREAM   the same; server stack as server-full, client stack
//!                                          Retry -> CircuitBreaker -> ClientTrace -> Timeout
//! ```
//!
//! `front-*` in front of `server-*` has the shape of the examples' order-service calling
//! inventory-service (one downstream call per request), without their SQLite and gRPC work,
//! so the ratio shows the middleware and not the database.
//!
//! The full variants run as the example services do: a parent-based sampler (always on, or
//! sampling the share of root traces in `LOAD_SAMPLE_RATIO`, 0 to 1) with a batch span
//! processor (exporting to a sink that drops the spans: no collector is needed),
//! the tracing-opentelemetry subscriber at INFO, and a real Prometheus recorder served on
//! `/metrics`. The process prints `listening on ADDR` once it accepts connections and runs
//! until killed.
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, Uri};
use axum::routing::get;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use palisade_circuit_breaker::CircuitBreakerLayer;
use palisade_circuit_breaker::http::HttpClassifier;
use palisade_health::HealthRegistry;
use palisade_retry::RetryLayer;
use palisade_retry::http::HttpPolicy;
use palisade_tracing_layer::{ClientTraceLayer, ServerTraceLayer};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder, ServiceExt as _};
use tracing_subscriber::layer::SubscriberExt as _;

type Upstream = BoxCloneSyncService<Request<Body>, axum::response::Response, BoxError>;

const USAGE: &str =
    "usage: load_target server-bare|server-full ADDR | front-bare|front-full ADDR UPSTREAM";

/// Installs what a service with the full stack runs with; returns the provider to keep.
fn telemetry() -> (SdkTracerProvider, Router) {
    let ratio = std::env::var("LOAD_SAMPLE_RATIO").ok().map(|r| {
        r.parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .expect("LOAD_SAMPLE_RATIO is a number from 0 to 1")
    });
    let root = ratio.map_or(Sampler::AlwaysOn, Sampler::TraceIdRatioBased);
    // As `Telemetry::init` builds it: the layer decides ratio-sampled roots first.
    palisade_tracing_layer::telemetry::RootIdGenerator::set_root_ratio(Some(ratio.unwrap_or(1.0)));
    let provider = SdkTracerProvider::builder()
        .with_id_generator(palisade_tracing_layer::telemetry::RootIdGenerator::default())
        .with_sampler(Sampler::ParentBased(Box::new(root)))
        .with_batch_exporter(palisade_benches::DropExporter)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(palisade_tracing_layer::otel_layer(provider.tracer("load")))
        .with(palisade_tracing_layer::span_events_layer());
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
    // What the telemetry init tells the layers about its samplers.
    palisade_tracing_layer::set_sampling_hint(
        palisade_tracing_layer::SamplingHint::ParentBasedTraceIdOnly,
    );
    let handle = palisade_tracing_layer::metrics::install_prometheus().expect("one recorder");
    (
        provider,
        palisade_tracing_layer::metrics::metrics_router(handle),
    )
}

fn client(full: bool) -> Upstream {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let to_axum = |res: http::Response<hyper::body::Incoming>| res.map(Body::new);
    if !full {
        let c = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build::<_, Body>(http);
        return BoxCloneSyncService::new(c.map_response(to_axum).map_err(BoxError::from));
    }
    let c = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build::<_, palisade_retry::ReplayBody<Body>>(http);
    let breaker = CircuitBreakerLayer::builder("upstream")
        .with_classifier(HttpClassifier::new())
        .build()
        .expect("valid breaker");
    let retry = RetryLayer::builder("upstream", HttpPolicy::new())
        .build()
        .expect("valid retry");
    let stack = ServiceBuilder::new()
        .layer(retry)
        .layer(breaker)
        .layer(ClientTraceLayer::http())
        .timeout(Duration::from_secs(2))
        .service(c)
        .map_response(move |res| res.map(Body::new))
        .map_err(BoxError::from);
    BoxCloneSyncService::new(stack)
}

async fn front(State((upstream, base)): State<(Upstream, Uri)>) -> (StatusCode, Body) {
    let req = Request::get(&base)
        .body(Body::empty())
        .expect("valid request");
    match upstream.oneshot(req).await {
        Ok(res) => {
            let status = res.status();
            (status, res.into_body())
        }
        Err(e) => (StatusCode::BAD_GATEWAY, Body::from(e.to_string())),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(addr) = args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()) else {
        eprintln!("{USAGE}");
        return std::process::ExitCode::from(2);
    };
    let mode = args[0].as_str();
    let full = mode.ends_with("-full");
    let upstream = args
        .get(2)
        .and_then(|up| format!("http://{up}/hello").parse::<Uri>().ok());
    let app = match (mode, upstream, args.len()) {
        ("server-bare" | "server-full", None, 2) => {
            Router::new().route("/hello", get(|| async { "hello" }))
        }
        ("front-bare" | "front-full", Some(base), 3) => Router::new()
            .route("/hello", get(front))
            .with_state((client(full), base)),
        _ => {
            eprintln!("{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut _provider = None;
    let app = if full {
        let (provider, metrics) = telemetry();
        let health = HealthRegistry::builder().build().expect("valid registry");
        // LOAD_SERVER_SPANS=otel: the SERVER span made with the tracer directly.
        let layer = match std::env::var("LOAD_SERVER_SPANS").as_deref() {
            Ok("otel") => ServerTraceLayer::http().otel_tracer(provider.tracer("load")),
            _ => ServerTraceLayer::http(),
        };
        _provider = Some(provider);
        app.route_layer(layer).merge(metrics).layer(health.layer())
    } else {
        app
    };
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    println!("listening on {}", listener.local_addr().expect("bound"));
    axum::serve(listener, app).await.expect("serve");
    std::process::ExitCode::SUCCESS
}
