//! Retries with backoff, jitter, retry budgets and safe body replay for tower services.
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
pub use config::Builder;
pub use error::ConfigError;
pub use layer::RetryLayer;
pub use observe::RetryEvent;
pub use policy::{Decision, Policy, Replay, RetryIf};
pub use service::Retry;
