//! Retries with backoff, jitter, retry budgets and safe body replay for tower services.
//!
//! `tower::retry` needs `Req: Clone` (an `http::Request` with a body is not), and no tower
//! retry honours `Retry-After`, gRPC pushback, idempotency or retry budgets. This crate's
//! [`RetryLayer`] does, for HTTP (hyper, axum, reqwest-free hyper-util clients), gRPC (tonic) and
//! any `tower::Service`:
//!
//! - **backoff** constant, linear or exponential, capped by `max_delay`, with AWS-style
//!   [jitter](Jitter) (none, full, equal, decorrelated) from a seedable generator;
//! - a **deadline** across all attempts and waits ([`max_elapsed`](Builder::max_elapsed)), and
//!   gRPC's own: a call's `grpc-timeout` bounds all its attempts, each retry carrying the
//!   time left (gRFC A6);
//! - a **retry budget**, on by default (20 % of requests + 10/s over 10 s, shared by all
//!   clones, lock-free; see [`budget`]): no retry storm when a dependency goes down;
//! - **what is retried** is a [`Policy`]: [`RetryIf`] (any `Clone` request, a predicate on the
//!   result), [`http::HttpPolicy`] (connection errors, timeouts, 429/502/503/504, idempotent
//!   methods or an `Idempotency-Key`, `Retry-After` in both forms) and [`grpc::GrpcPolicy`]
//!   (UNAVAILABLE by default, `grpc-retry-pushback-ms`, `grpc-previous-rpc-attempts`; a
//!   timeout or a connection lost mid-call only for methods declared idempotent, a stream the
//!   server refused for every method);
//! - **body replay** without `Clone`: the body is kept as it is sent, up to a limit
//!   (64 KiB), and re-sent byte-identical — also when the server answered before reading all
//!   of it (what was sent, then the rest); a body over the limit, or a gRPC call whose
//!   response has started, is never retried (see [`ReplayBody`]);
//! - **breaker-aware** (feature `circuit-breaker`): a `palisade-circuit-breaker` rejection is
//!   retried only after its `retry_after`, within budget and deadline, else returned at once;
//! - **visible attempts**: every resend carries an [`Attempt`] in its extensions, read with
//!   [`Attempt::of`] (the first attempt carries none, so the success path allocates nothing;
//!   the client trace layer records `http.request.resend_count` from it), an [`on_retry`](Builder::on_retry)
//!   hook, [`Stats`] counters, `tracing` events and `metrics` (see [`observe`]);
//! - **hedged requests** for idempotent reads ([`HedgeLayer`]): a second attempt after a
//!   delay, the first answer wins, the other is cancelled; budgeted too;
//! - **cancellation-safe, no boxing**: the [response future](future::ResponseFuture) is a
//!   pin-projected state machine; dropping it drops the attempt in flight and any wait.
//!
//! The layer adds no error type: when it gives up it returns the last attempt's result as is.
//!
//! # Example
//!
//! A client stack, outermost first: `Retry -> CircuitBreaker -> (client trace) ->
//! (per-try timeout) -> client`. Retry sits outside the breaker so that every attempt passes
//! it, and a rejection by an open breaker is waited out rather than hammered.
//! (Needs the features `http` and `circuit-breaker`.)
//!
#![cfg_attr(all(feature = "http", feature = "circuit-breaker"), doc = "```")]
#![cfg_attr(
    not(all(feature = "http", feature = "circuit-breaker")),
    doc = "```ignore"
)]
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use palisade_circuit_breaker::CircuitBreakerLayer;
//! use palisade_retry::{Attempt, Backoff, ReplayBody, RetryLayer, http::HttpPolicy};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // A stand-in for an HTTP client: 503 twice, then 200.
//! let calls = Arc::new(AtomicU32::new(0));
//! let c = calls.clone();
//! let client = service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
//!     let attempt = Attempt::of(req.extensions()).number();
//!     assert_eq!(attempt, c.fetch_add(1, Ordering::SeqCst) + 1);
//!     async move {
//!         // A client sends the whole body; the retry layer keeps a copy as it goes.
//!         let Ok(body) = req.into_body().collect().await;
//!         let body = body.to_bytes();
//!         assert_eq!(body, "{\"qty\":3}");
//!         let mut res = Response::new(Full::new(Bytes::new()));
//!         if attempt < 3 {
//!             *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
//!         }
//!         Ok::<_, std::io::Error>(res)
//!     }
//! });
//!
//! let retry = RetryLayer::builder("inventory", HttpPolicy::new())
//!     .max_attempts(3)
//!     .backoff(Backoff::exponential(Duration::from_millis(10), 2.0))
//!     .max_elapsed(Duration::from_secs(2))
//!     .build()?;
//! let breaker = CircuitBreakerLayer::builder("inventory").build()?;
//! let stack = ServiceBuilder::new().layer(retry).layer(breaker).service(client);
//!
//! let req = Request::put("http://inventory/stock/42")
//!     .body(Full::new(Bytes::from_static(b"{\"qty\":3}")))?;
//! let res = stack.oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! # Ok(())
//! # }
//! ```
//!
//! For tonic, see [`grpc`](crate::grpc#tonic-channels): the retry layer takes
//! `http::Request<tonic::body::Body>`, and [`grpc::tonic_body`] maps the replay body back for a
//! `Channel`.
//!
//! # Feature flags
//!
//! | feature           | what it adds                                                        |
//! |-------------------|---------------------------------------------------------------------|
//! | `http`            | [`http::HttpPolicy`], [`ReplayBody`], error recognition              |
//! | `grpc`            | [`grpc::GrpcPolicy`], [`grpc::tonic_body`] (implies `http`)          |
//! | `metrics`         | `palisade_retry_*` instruments (see [`observe`])                     |
//! | `tracing`         | an event per retry and per exhausted budget                         |
//! | `circuit-breaker` | `palisade-circuit-breaker`'s `CircuitOpen` honoured (with `http`)    |
//! | `full`            | all of the above                                                    |
//!
//! The examples in the repository's `examples/` put this layer around the order service's
//! inventory client.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attempt;
pub mod backoff;
#[cfg(feature = "http")]
mod body;
pub mod budget;
#[cfg(feature = "http")]
mod classify;
mod config;
pub mod error;
pub mod future;
pub mod hedge;
mod layer;
pub mod observe;
pub mod policy;
mod service;

#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;

pub use attempt::Attempt;
pub use backoff::{Backoff, Jitter};
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use body::ReplayBody;
pub use budget::Budget;
#[cfg(all(feature = "http", feature = "circuit-breaker"))]
pub use classify::find_circuit_open;
pub use config::{AttemptTimeout, Builder, NoTimeout, TimeoutKind};
pub use error::ConfigError;
pub use hedge::{Hedge, HedgeLayer};
pub use layer::RetryLayer;
pub use observe::{RetryEvent, Stats};
pub use policy::{Decision, Policy, Replay, RetryIf};
pub use service::Retry;
