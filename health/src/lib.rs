//! Liveness, readiness and startup endpoints with background checks and graceful
//! drain, for axum, tonic and hyper.
//!
//! # Overview
//!
//! Orchestrators decide from health endpoints whether to route traffic to a process
//! and whether to restart it. Getting them wrong causes outages: a liveness probe that
//! checks the database restarts every replica when the database blips; a readiness
//! probe that runs its checks inline lets a probe storm hit the database. This crate:
//!
//! - answers `GET`/`HEAD` on `/health/live`, `/health/ready` and `/health/startup` in a
//!   [tower layer](HealthLayer) in front of your axum router, tonic server or hyper
//!   service, and passes every other request through untouched;
//! - runs named [checks](HealthCheck) in the **background** on their interval, each with
//!   a timeout; probes answer from the cached results, so a probe never causes
//!   dependency I/O (10,000 probes in one interval run a check once). A hung check
//!   times out and reports `fail`, a panicking one reports `fail` and keeps being run,
//!   and a result older than its staleness bound counts as `fail`. A check may also ask
//!   to run at once when something changes ([`Check::changed`]), as the circuit-breaker
//!   check does;
//! - keeps **liveness** free of dependencies: its built-in check only notices a stalled
//!   tokio runtime;
//! - gates `/health/ready` and `/health/startup` on the [startup](Kind::Startup) checks
//!   until they have passed once, while liveness passes;
//! - writes `application/health+json` as in the IETF draft "Health Check Response
//!   Format for HTTP APIs" (200 for `pass`/`warn`, 503 for `fail`), with details hidden
//!   unless [configured](Details);
//! - [drains](HealthRegistry::drain) on SIGTERM: readiness (HTTP and gRPC) fails at once,
//!   requests are still served for a delay while load balancers catch up, then the
//!   shutdown future resolves, then shutdown hooks (flush OpenTelemetry) run within a
//!   bounded time. See the [`drain`] module for the order and why;
//! - serves `grpc.health.v1` (`Check`, `Watch`, `List`) from the same registry (feature
//!   `grpc`), so `/health/ready` and gRPC health never disagree.
//!
//! A probe reads one pre-rendered snapshot: no lock, no check, two small allocations
//! (the response's header map), about 0.25 µs however many checks there are and however
//! slow (see `benches/benches/health.rs`). Requests to other paths pay a method and
//! path comparison.
//!
//! # Example
//!
//! An axum service with an SQLite-style ping as a readiness check, graceful shutdown on
//! SIGTERM or Ctrl-C, and a shutdown hook:
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::{Router, routing::get};
//! use palisade_health::{HealthCheck, HealthRegistry, check_fn};
//!
//! # async fn ping_database() -> Result<(), std::io::Error> { Ok(()) }
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let health = HealthRegistry::builder()
//!         .release_id(env!("CARGO_PKG_VERSION"))
//!         .drain_delay(Duration::from_secs(5))
//! #       .drain_delay(Duration::from_millis(10))
//!         .build()?;
//!
//!     // Runs every 5 s in the background; probes read the cached result.
//!     health.register(
//!         HealthCheck::readiness("sqlite", check_fn(|| async { ping_database().await }))
//!             .interval(Duration::from_secs(5))
//!             .timeout(Duration::from_secs(1)),
//!     )?;
//!     health.on_shutdown("flush-telemetry", || async { /* provider.shutdown() */ });
//!
//!     let app = Router::new()
//!         .route("/orders", get(|| async { "[]" }))
//!         .layer(health.layer());
//!
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! #   health.drain();
//!     axum::serve(listener, app)
//!         .with_graceful_shutdown(health.shutdown_signal())
//!         .await?;
//!     health.run_shutdown_hooks().await;
//!     Ok(())
//! }
//! ```
//!
//! With tonic, put the same layer on the server and serve gRPC health from the same
//! registry (feature `grpc`). `accept_http1` lets HTTP/1.1 probes (Kubernetes
//! `httpGet`) reach the layer; Kubernetes' native `grpc` probes use the gRPC service:
//!
#![cfg_attr(feature = "grpc", doc = "```no_run")]
#![cfg_attr(not(feature = "grpc"), doc = "```ignore")]
//! # use std::time::Duration;
//! # use palisade_health::{HealthCheck, HealthRegistry, check_fn};
//! # async fn ping_database() -> Result<(), std::io::Error> { Ok(()) }
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let health = HealthRegistry::builder().build()?;
//! health.register(HealthCheck::readiness("sqlite", check_fn(ping_database)))?;
//! // `inventory.v1.Inventory` is SERVING while the `sqlite` check is healthy.
//! health.add_grpc_service("inventory.v1.Inventory", ["sqlite"])?;
//!
//! tonic::transport::Server::builder()
//!     .accept_http1(true)
//!     .layer(health.layer())
//!     .add_service(health.grpc_service())
//!     // .add_service(InventoryServer::new(inventory))
//!     .serve_with_shutdown("0.0.0.0:50051".parse()?, health.shutdown_signal())
//!     .await?;
//! health.run_shutdown_hooks().await;
//! # Ok(()) }
//! ```
//!
//! A probe's body, with details shown:
//!
//! ```text
//! HTTP/1.1 200 OK
//! content-type: application/health+json
//! cache-control: no-store
//!
//! {"checks":{"sqlite:responseTime":[{"observedUnit":"ms","observedValue":0.412,
//!  "status":"pass","time":"2026-11-22T14:04:55.123Z"}]},"releaseId":"0.1.0","status":"pass"}
//! ```
//!
//! # Feature flags
//!
//! | feature           | enables |
//! |-------------------|---------|
//! | `grpc`            | [`HealthRegistry::grpc_service`]: `grpc.health.v1` with `Check`, `Watch` and `List`, for tonic |
//! | `circuit-breaker` | [`checks::BreakerCheck`]: a `palisade-circuit-breaker` handle as a readiness check |
//! | `http-check`      | [`checks::HttpGetCheck`]: a hyper-util HTTP GET check |
//! | `metrics`         | `palisade_health_check_status` gauge and `palisade_health_check_duration_seconds` histogram |
//! | `tracing`         | events on check status changes, drain and shutdown hooks |
//! | `full`            | all of the above |
//!
//! The HTTP endpoints, the registry, drain, the TCP check and closure checks need no
//! feature.
//!
//! # Examples
//!
//! The workspace's `examples/order-service` (axum) and `examples/inventory-service`
//! (tonic) wire this crate into real services.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod check;
pub mod checks;
mod config;
pub mod drain;
pub mod error;
pub mod future;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
mod layer;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(feature = "tracing")]
mod observe;
mod outcome;
mod registry;
mod reporter;
mod service;
mod status;
mod time;

pub use body::ResponseBody;
pub use check::{Check, FnCheck, check_fn};
pub use config::{Details, HealthCheck, HealthRegistryBuilder};
pub use drain::{Drained, HookOutcome, HookReport, ShutdownReport};
pub use error::ConfigError;
pub use layer::HealthLayer;
pub use outcome::{IntoOutcome, ObservedValue, Outcome};
pub use registry::HealthRegistry;
pub use service::{CONTENT_TYPE_HEALTH_JSON, Health};
pub use status::{Criticality, Kind, Status};
