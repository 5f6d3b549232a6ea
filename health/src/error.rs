//! Errors.

use std::borrow::Cow;
use std::fmt;

/// An invalid configuration or registration: names the field and what is allowed.
///
/// Returned by [`HealthRegistryBuilder::build`](crate::HealthRegistryBuilder::build),
/// [`HealthRegistry::register`](crate::HealthRegistry::register) and the other
/// registration methods. Nothing in this crate panics on bad configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    message: Cow<'static, str>,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }

    /// The rejected field, for example `interval` or `paths.ready`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What was wrong and what is allowed.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_field() {
        let e = ConfigError::new("interval", "must be greater than zero");
        assert_eq!(
            e.to_string(),
            "invalid `interval`: must be greater than zero"
        );
        assert_eq!(e.field(), "interval");
    }
}
