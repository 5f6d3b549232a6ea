//! A fast, lock-free circuit breaker for tower services, with HTTP and gRPC awareness.
//!
//! A circuit breaker stops calling a dependency that keeps failing, so that callers fail
//! fast instead of piling up behind timeouts, and the dependency gets room to recover.
//! [`CircuitBreakerLayer`] is a [`tower::Layer`](tower_layer::Layer) that works around any
//! [`Service`](tower_service::Service): axum routers and handlers, tonic channels, hyper
//! clients.
//!
//! # Overview
//!
//! - **Closed**: calls pass; their outcomes go into a [`SlidingWindow`] (the last `n`
//!   calls, or the last `n` seconds). When the window holds at least `minimum_calls` and
//!   the failure rate (or the slow-call rate) reaches its threshold, or after
//!   `consecutive_failures` failures in a row, the breaker **opens**.
//! - **Open**: calls are rejected at once, without calling the inner service, with a
//!   [`CircuitOpen`](error::CircuitOpen) error saying which breaker and how long until it
//!   half-opens. Optionally a [`Fallback`] answers instead. After `wait_duration` (which
//!   can grow on each re-open, with a cap and jitter) the breaker **half-opens**.
//! - **Half-open**: exactly `permitted_calls_in_half_open` trial calls pass, concurrent
//!   callers included; their outcome closes or re-opens the breaker. A trial that never
//!   finishes is counted as failed after `max_wait_in_half_open`, and its late outcome is
//!   ignored.
//! - **Disabled** and **ForcedOpen** are set by hand through a [`CircuitBreakerHandle`],
//!   which also reads the state and [`Stats`] and subscribes to transitions.
//!
//! What counts as a failure is pluggable ([`Classify`]): by default every `Err`; any
//! predicate over `Result<&Res, &E>` with [`classify_fn`]; with feature `http`, tower-http's
//! status classifiers (5xx by default); with feature `grpc`, the `grpc-status` of headers or
//! trailers. [`KeyedCircuitBreakerLayer`] keeps one breaker per key (host, route, gRPC
//! method).
//!
//! # Cost
//!
//! With the default window, a call through a closed breaker costs one atomic load to
//! admit it and one plain store to a counter stripe owned by the calling service clone;
//! its response future holds no reference count (a success has nothing left to record;
//! only a failure, an ignored or a cancelled call looks the breaker up). No lock, no
//! allocation, no boxed future, and the clock is read only when the configuration needs
//! it (a time window or slow-call detection). Decisions (on failures) sum the stripes
//! under the breaker's internal lock, taken by one deciding thread at a time: the others
//! leave a request on an atomic counter and return without waiting. Each clone of the
//! service owns its stripe, so threads with their own clones (tower clones a service per
//! connection or task) share no written memory on the success path. With a `metrics`
//! recorder installed, each call also increments a counter in the recorder (and its
//! future holds a reference to the breaker to do so). See
//! `benches/` in the repository for the measurements against tower-resilience, failsafe
//! and recloser.
//!
//! # Example
//!
//! An axum route whose downstream fails: after enough failures the breaker opens and the
//! route answers `503 Service Unavailable` with `Retry-After`, without calling downstream.
//!
//! ```
//! use std::time::Duration;
//! use axum::{
//!     Router, body::Body, error_handling::HandleErrorLayer,
//!     http::{Request, StatusCode, header::RETRY_AFTER},
//!     response::IntoResponse,
//! };
//! use palisade_circuit_breaker::{CircuitBreakerLayer, SlidingWindow, State};
//! use palisade_circuit_breaker::error::{BoxError, CircuitOpen};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let breaker = CircuitBreakerLayer::builder("inventory")
//!     .sliding_window(SlidingWindow::count(10))
//!     .minimum_calls(5)
//!     .failure_rate_threshold(50.0)
//!     .wait_duration(Duration::from_secs(10))
//!     .build()?;
//! let handle = breaker.handle();
//!
//! // The downstream call, failing: a stand-in for a client of the inventory service.
//! let downstream = service_fn(|_req: Request<Body>| async {
//!     Err::<axum::response::Response, _>(std::io::Error::other("inventory is down"))
//! });
//!
//! // Turn the breaker's errors into responses. (Feature `http` ships this as
//! // `palisade_circuit_breaker::http::handle_error`.)
//! async fn handle_error(err: BoxError) -> axum::response::Response {
//!     match err.downcast_ref::<CircuitOpen>() {
//!         Some(open) => {
//!             // Round up, so that a client retrying on time finds the breaker half-open.
//!             let secs = open.retry_after().map_or(1, |d| d.as_secs_f64().ceil() as u64);
//!             (StatusCode::SERVICE_UNAVAILABLE, [(RETRY_AFTER, secs.to_string())]).into_response()
//!         }
//!         None => StatusCode::BAD_GATEWAY.into_response(),
//!     }
//! }
//!
//! let stock = ServiceBuilder::new()
//!     .layer(HandleErrorLayer::new(handle_error))
//!     .layer(breaker)
//!     .service(downstream);
//! let app = Router::new().route_service("/stock", stock);
//!
//! for _ in 0..5 {
//!     let res = app.clone().oneshot(Request::get("/stock").body(Body::empty())?).await?;
//!     assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
//! }
//! // Open now: the next call is answered at once, without calling downstream.
//! let res = app.oneshot(Request::get("/stock").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(res.headers()[RETRY_AFTER], "10");
//! assert_eq!(handle.state(), State::Open);
//! # Ok(())
//! # }
//! ```
//!
//! To tell a rejection from the inner service's own errors, downcast the error to
//! [`CircuitOpen`](error::CircuitOpen); see the [`error`] module.
//!
//! # Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `http` | [`http::HttpClassifier`] over tower-http's `classify` (5xx are failures, 429 optional), [`http::handle_error`] and [`http::RejectionResponse`] for `503` + `Retry-After` |
//! | `grpc` | [`grpc::GrpcClassifier`]: `grpc-status` from headers (trailers-only) or trailers; [`grpc::UnavailableResponse`]; `From<CircuitOpen> for tonic::Status` with `grpc-retry-pushback-ms` |
//! | `metrics` | `palisade_circuit_breaker_*` instruments through the `metrics` facade |
//! | `tracing` | a `tracing` event on every transition |
//! | `full` | all of the above |
//!
//! No feature is on by default.
//!
//! The repository's `examples/` wire the breaker into an order service calling an
//! inventory service over gRPC.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod breaker;
mod classify;
mod config;
pub mod error;
mod fallback;
pub mod future;
mod handle;
mod keyed;
mod layer;
pub mod observe;
mod permit;
#[cfg(not(loom))]
mod registry;
mod service;
mod state;
mod sync;
mod window;

#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;

#[cfg(loom)]
#[doc(hidden)]
pub use breaker::loom_set_now;
pub use classify::{
    Classify, ClassifyFn, ClassifyResponse, ErrorsAsFailures, Outcome, classify_fn,
};
pub use config::{Builder, SlidingWindow};
pub use fallback::{
    Fallback, FallbackFn, FallbackService, NoFallback, Oneshot, fallback_fn, fallback_service,
};
pub use handle::{CircuitBreakerHandle, Stats, Transition};
pub use keyed::{KeyedBuilder, KeyedCircuitBreaker, KeyedCircuitBreakerLayer};
pub use layer::CircuitBreakerLayer;
pub use permit::Permit;
pub use service::CircuitBreaker;
pub use state::State;
