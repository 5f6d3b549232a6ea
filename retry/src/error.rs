//! Errors: invalid configuration.
//!
//! The retry layer adds no failure mode of its own: a [`Retry`](crate::Retry) service returns
//! the inner service's error type, and when it gives up it returns the last attempt's result
//! unchanged. The only error this crate defines is [`ConfigError`], returned by
//! [`Builder::build`](crate::Builder::build).

use std::fmt;

/// An invalid retry configuration, naming the field and the allowed range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }

    /// The builder setter whose value was rejected, e.g. `"max_attempts"`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why the value was rejected, with the allowed range.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid retry config: `{}` {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}
