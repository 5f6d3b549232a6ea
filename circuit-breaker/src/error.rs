//! Errors: the rejection returned while the breaker is open, and configuration errors.
//!
//! The breaker adds a failure mode, so its service returns [`BoxError`]. To tell a
//! rejection apart from the inner service's own errors, downcast:
//!
//! ```
//! use palisade_circuit_breaker::error::{BoxError, CircuitOpen};
//!
//! fn describe(err: &BoxError) -> String {
//!     match err.downcast_ref::<CircuitOpen>() {
//!         Some(open) => format!("breaker {} is open, retry in {:?}", open.breaker(), open.retry_after()),
//!         None => format!("inner service failed: {err}"),
//!     }
//! }
//! # let _ = describe;
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::State;

/// The boxed error type the breaker's service returns (the tower convention).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A call was rejected without calling the inner service, because the breaker is open,
/// forced open, or half-open with every trial permit taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitOpen {
    breaker: Arc<str>,
    state: State,
    retry_after: Option<Duration>,
}

impl CircuitOpen {
    /// Creates a rejection for the breaker named `breaker` in `state`.
    ///
    /// `retry_after` is how long until the breaker will admit a trial call, when known.
    pub fn new(breaker: Arc<str>, state: State, retry_after: Option<Duration>) -> Self {
        Self {
            breaker,
            state,
            retry_after,
        }
    }

    /// The name of the breaker that rejected the call.
    pub fn breaker(&self) -> &str {
        &self.breaker
    }

    /// The breaker's state when it rejected the call: [`State::Open`],
    /// [`State::ForcedOpen`] or [`State::HalfOpen`] (all trial permits taken).
    pub fn state(&self) -> State {
        self.state
    }

    /// How long until the breaker admits a trial call again.
    ///
    /// `None` when it cannot be known: the breaker was forced open by hand, or it is
    /// half-open and waiting for the outcome of its trial calls.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker `{}` is {}", self.breaker, self.state)?;
        if let Some(d) = self.retry_after {
            write!(f, ", retry after {}ms", d.as_millis())?;
        }
        Ok(())
    }
}

impl std::error::Error for CircuitOpen {}

/// An invalid setting given to a breaker's builder.
///
/// Returned by [`Builder::build`](crate::Builder::build); [`field`](Self::field) names the
/// setting and the message gives the allowed range and the rejected value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            field,
            message: message.into(),
        }
    }

    /// The builder setting that was rejected, e.g. `"failure_rate_threshold"`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong with it: the allowed range and the value given.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid circuit breaker config: `{}` {}",
            self.field, self.message
        )
    }
}

impl std::error::Error for ConfigError {}
