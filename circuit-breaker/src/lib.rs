//! A fast, lock-free circuit breaker for tower services, with HTTP and gRPC awareness.

pub mod error;
mod state;

pub use state::State;
