//! Ready-made checks: TCP connect, HTTP GET (feature `http-check`), a circuit breaker's
//! state (feature `circuit-breaker`), and the built-in runtime heartbeat.
//!
//! For anything else, write a closure with [`check_fn`](crate::check_fn) (an SQLite
//! ping is three lines) or implement [`Check`](crate::Check).

#[cfg(feature = "circuit-breaker")]
mod breaker;
#[cfg(feature = "http-check")]
mod http;
pub(crate) mod runtime;
mod tcp;

#[cfg(feature = "circuit-breaker")]
pub use breaker::BreakerCheck;
#[cfg(feature = "http-check")]
pub use http::HttpGetCheck;
pub use tcp::TcpCheck;
