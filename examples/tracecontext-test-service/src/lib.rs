//! The test service of the W3C Trace Context test harness (`w3c/trace-context`,
//! folder `test/`): `POST /test` receives a JSON array of `{ "url": ..., "arguments": [...] }`
//! and, for each element in order, POSTs `arguments` as JSON to `url` with the propagated
//! context (a CLIENT span, hence a fresh span id, per call), answering 200 once every call
//! has finished.
//!
//! Run it with `TRACECONTEXT_ADDR=127.0.0.1:5000 cargo run -p tracecontext-test-service`
//! (or `--addr 127.0.0.1:5000`) and point the harness at it:
//! `STRICT_LEVEL=2 python test/test.py http://127.0.0.1:5000/test`.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use palisade_tracing_layer::{ClientTraceLayer, ServerTraceLayer};
use serde::Deserialize;
use tower::{Service as _, ServiceBuilder, ServiceExt as _};
use tracing_subscriber::layer::SubscriberExt as _;

/// One call the harness asks for.
#[derive(Debug, Deserialize)]
pub struct Call {
    /// Where to POST.
    pub url: String,
    /// The JSON body to POST.
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// A `tracing` subscriber with the OpenTelemetry bridge (parent-based, always-on root
/// sampler, nothing exported): spans get ids, unsampled parents stay unsampled.
pub fn subscriber() -> impl tracing::Subscriber + Send + Sync {
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .build();
    tracing_subscriber::registry().with(
        tracing_opentelemetry::layer().with_tracer(provider.tracer("tracecontext-test-service")),
    )
}

/// The service's router.
pub fn app() -> Router {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    Router::new()
        .route(
            "/test",
            post(move |Json(calls): Json<Vec<Call>>| {
                let client = client.clone();
                async move {
                    let mut svc = ServiceBuilder::new()
                        .layer(ClientTraceLayer::http())
                        .service(client);
                    for call in calls {
                        let body = serde_json::to_vec(&call.arguments).unwrap_or_default();
                        let Ok(req) = http::Request::post(&call.url)
                            .header(http::header::CONTENT_TYPE, "application/json")
                            .body(Full::new(Bytes::from(body)))
                        else {
                            tracing::warn!(url = %call.url, "invalid url");
                            continue;
                        };
                        match svc.ready().await {
                            Ok(s) => match s.call(req).await {
                                Ok(res) => {
                                    let _ = res.into_body().collect().await;
                                }
                                Err(e) => {
                                    tracing::warn!(url = %call.url, error = %e, "call failed")
                                }
                            },
                            Err(e) => tracing::warn!(error = %e, "client not ready"),
                        }
                    }
                    http::StatusCode::OK
                }
            }),
        )
        .route_layer(ServerTraceLayer::http())
}

/// The address from `--addr ADDR` or `TRACECONTEXT_ADDR` (default `127.0.0.1:5000`).
///
/// # Errors
///
/// An address that does not parse.
pub fn address(args: impl IntoIterator<Item = String>) -> Result<SocketAddr, String> {
    let mut args = args.into_iter();
    let mut addr = std::env::var("TRACECONTEXT_ADDR").ok();
    while let Some(a) = args.next() {
        if a == "--addr" {
            addr = args.next();
        } else if let Some(v) = a.strip_prefix("--addr=") {
            addr = Some(v.to_owned());
        }
    }
    let addr = addr.unwrap_or_else(|| "127.0.0.1:5000".to_owned());
    addr.parse()
        .map_err(|e| format!("invalid address {addr:?} (--addr / TRACECONTEXT_ADDR): {e}"))
}
