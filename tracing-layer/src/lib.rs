//! W3C trace-context propagation, OpenTelemetry spans and RED metrics as tower layers
//! for axum, tonic and hyper.
//!
//! - [`ServerTraceLayer`]: a SERVER span per request (semantic conventions v1.44),
//!   parented by the propagated context, the parent of everything the handler logs
//!   through `tracing`; ends when the response body ends.
//! - [`ClientTraceLayer`]: a CLIENT span per attempt, with `traceparent`, `tracestate`
//!   and `baggage` injected.
//! - [`propagation`]: a spec-exact W3C Trace Context Level 2 and Baggage propagator.
//! - [`metrics`] (feature `metrics`): RED metrics and a Prometheus recorder with the
//!   semconv buckets; a `/metrics` router with feature `axum`.
//! - [`telemetry`] (feature `otlp`): one call that sets up logs, OTLP export, sampling,
//!   propagation and metrics from the `OTEL_*` variables.
//!
//! ```
//! use palisade_tracing_layer::{ClientTraceLayer, ServerTraceLayer};
//! use tower::{ServiceBuilder, ServiceExt as _};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Server side: wrap the handler (an axum Router uses `.route_layer(ServerTraceLayer::http())`).
//! let server = ServiceBuilder::new()
//!     .layer(ServerTraceLayer::http().trust_remote(true))
//!     .service_fn(|_req: http::Request<String>| async {
//!         tracing::info!("handled"); // a child of the SERVER span
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
//!     });
//! let res = server.oneshot(http::Request::new(String::new())).await.unwrap();
//! assert_eq!(res.status(), 200);
//!
//! // Client side: a CLIENT span per attempt, context injected into the request.
//! let client = ServiceBuilder::new()
//!     .layer(ClientTraceLayer::http())
//!     .service_fn(|req: http::Request<String>| async move {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(format!("{:?}", req.headers())))
//!     });
//! let req = http::Request::get("http://127.0.0.1:1/orders").body(String::new()).unwrap();
//! let _ = client.oneshot(req).await.unwrap();
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
pub mod client;
mod context;
mod grpc;
pub mod metrics;
pub mod propagation;
pub mod propagators;
pub mod server;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub mod telemetry;

pub use body::TracedBody;
pub use client::{ClientTrace, ClientTraceLayer};
pub use context::{
    SpanEventsLayer, current_context, in_current_context, otel_layer, span_events_layer,
};
pub use propagation::W3cPropagator;
pub use server::{SamplingHint, ServerTrace, ServerTraceLayer, sampling_hint, set_sampling_hint};
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub use telemetry::{Telemetry, TelemetryError};
