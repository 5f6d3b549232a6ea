//! Configuration: the registry builder, check registrations and the details policy.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::check::DynCheck;
use crate::{Check, ConfigError, Criticality, Kind};

/// Who may see check details (names, outputs, errors) in the JSON body.
///
/// Without details, a body is only `{"status":"pass"}` (or `warn`/`fail`); the status
/// code carries the verdict. Details can name internal hosts and quote error messages,
/// so they are hidden from the public by default.
#[derive(Clone, Default)]
pub struct Details(DetailsRepr);

#[derive(Clone, Default)]
pub(crate) enum DetailsRepr {
    #[default]
    Hidden,
    Always,
    Token(Arc<[u8]>),
}

impl Details {
    /// Never show details (the default).
    pub fn hidden() -> Self {
        Self(DetailsRepr::Hidden)
    }

    /// Always show details, for services reachable only from trusted networks.
    pub fn always() -> Self {
        Self(DetailsRepr::Always)
    }

    /// Show details only to requests carrying `Authorization: Bearer <token>`. The
    /// token is compared in constant time. It must be non-empty visible ASCII
    /// (checked by [`HealthRegistryBuilder::build`]).
    pub fn token(token: impl Into<String>) -> Self {
        Self(DetailsRepr::Token(token.into().into_bytes().into()))
    }

    pub(crate) fn repr(&self) -> &DetailsRepr {
        &self.0
    }
}

impl fmt::Debug for Details {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            DetailsRepr::Hidden => f.write_str("Details::Hidden"),
            DetailsRepr::Always => f.write_str("Details::Always"),
            DetailsRepr::Token(_) => f.write_str("Details::Token(<redacted>)"),
        }
    }
}

/// The validated registry configuration (built by [`HealthRegistryBuilder`]).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) live_path: Box<str>,
    pub(crate) ready_path: Box<str>,
    pub(crate) startup_path: Box<str>,
    pub(crate) details: Details,
    pub(crate) version: Option<String>,
    pub(crate) release_id: Option<String>,
    pub(crate) service_id: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) drain_delay: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) heartbeat: Option<Heartbeat>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Heartbeat {
    pub(crate) interval: Duration,
    pub(crate) max_lag: Duration,
}

/// Builds a [`HealthRegistry`](crate::HealthRegistry).
///
/// # Default
///
/// - paths: `/health/live`, `/health/ready`, `/health/startup`
/// - details: [`Details::hidden`]
/// - no `version`, `releaseId`, `serviceId` or `description`
/// - drain delay: 5 s
/// - shutdown hook budget: 10 s
/// - runtime heartbeat: every 1 s, liveness fails when a beat is more than 5 s late
#[derive(Debug, Clone)]
#[must_use]
pub struct HealthRegistryBuilder {
    config: Config,
}

impl Default for HealthRegistryBuilder {
    fn default() -> Self {
        Self {
            config: Config {
                live_path: "/health/live".into(),
                ready_path: "/health/ready".into(),
                startup_path: "/health/startup".into(),
                details: Details::hidden(),
                version: None,
                release_id: None,
                service_id: None,
                description: None,
                drain_delay: Duration::from_secs(5),
                shutdown_timeout: Duration::from_secs(10),
                heartbeat: Some(Heartbeat {
                    interval: Duration::from_secs(1),
                    max_lag: Duration::from_secs(5),
                }),
            },
        }
    }
}

impl HealthRegistryBuilder {
    /// The liveness path. Defaults to `/health/live`.
    pub fn live_path(mut self, path: impl Into<String>) -> Self {
        self.config.live_path = path.into().into();
        self
    }

    /// The readiness path. Defaults to `/health/ready`.
    pub fn ready_path(mut self, path: impl Into<String>) -> Self {
        self.config.ready_path = path.into().into();
        self
    }

    /// The startup path. Defaults to `/health/startup`.
    pub fn startup_path(mut self, path: impl Into<String>) -> Self {
        self.config.startup_path = path.into().into();
        self
    }

    /// Who may see check details. Defaults to [`Details::hidden`].
    pub fn details(mut self, details: Details) -> Self {
        self.config.details = details;
        self
    }

    /// The body's `version` (public version of the service). Shown with details only.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.config.version = Some(version.into());
        self
    }

    /// The body's `releaseId` (for example the crate version or a git hash). Shown with
    /// details only.
    pub fn release_id(mut self, release_id: impl Into<String>) -> Self {
        self.config.release_id = Some(release_id.into());
        self
    }

    /// The body's `serviceId` (a unique identifier of the service). Shown with details
    /// only.
    pub fn service_id(mut self, service_id: impl Into<String>) -> Self {
        self.config.service_id = Some(service_id.into());
        self
    }

    /// The body's `description`. Shown with details only.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.config.description = Some(description.into());
        self
    }

    /// How long [`drain`](crate::HealthRegistry::drain) keeps serving after readiness
    /// turns to `fail`, before the shutdown future resolves, so load balancers and
    /// Kubernetes endpoints stop routing here first. Set it above the readiness probe's
    /// `periodSeconds × failureThreshold`. Defaults to 5 s.
    pub fn drain_delay(mut self, delay: Duration) -> Self {
        self.config.drain_delay = delay;
        self
    }

    /// The total time budget for shutdown hooks. Defaults to 10 s. Must be greater than
    /// zero.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// The built-in liveness check for a stalled tokio runtime: a task wakes every
    /// `interval` and liveness fails when a wake-up comes more than `max_lag` late (or
    /// none comes at all). Defaults to every 1 s with a 5 s bound. Both must be greater
    /// than zero.
    pub fn runtime_heartbeat(mut self, interval: Duration, max_lag: Duration) -> Self {
        self.config.heartbeat = Some(Heartbeat { interval, max_lag });
        self
    }

    /// Turns the built-in runtime heartbeat off.
    pub fn without_runtime_heartbeat(mut self) -> Self {
        self.config.heartbeat = None;
        self
    }

    /// Validates the configuration and starts the registry's background tasks.
    ///
    /// # Errors
    ///
    /// - a path that does not start with `/`, contains `?` or `#`, or equals another path
    ///   (`paths.live`, `paths.ready`, `paths.startup`);
    /// - a details token that is empty or not visible ASCII (`details`);
    /// - a zero shutdown timeout (`shutdown_timeout`);
    /// - a zero heartbeat interval or lag bound (`runtime_heartbeat.interval`,
    ///   `runtime_heartbeat.max_lag`);
    /// - no tokio runtime to run the background tasks on (`runtime`): call it from
    ///   within a runtime.
    pub fn build(self) -> Result<crate::HealthRegistry, ConfigError> {
        let c = &self.config;
        for (field, path) in [
            ("paths.live", &c.live_path),
            ("paths.ready", &c.ready_path),
            ("paths.startup", &c.startup_path),
        ] {
            if !path.starts_with('/') || path.contains(['?', '#']) {
                return Err(ConfigError::new(
                    field,
                    format!("must start with `/` and contain no `?` or `#`, got {path:?}"),
                ));
            }
        }
        if c.live_path == c.ready_path
            || c.live_path == c.startup_path
            || c.ready_path == c.startup_path
        {
            return Err(ConfigError::new(
                "paths",
                "the live, ready and startup paths must be different",
            ));
        }
        if let DetailsRepr::Token(t) = c.details.repr()
            && (t.is_empty() || !t.iter().all(|b| b.is_ascii_graphic()))
        {
            return Err(ConfigError::new(
                "details",
                "the token must be non-empty visible ASCII (0x21..=0x7e)",
            ));
        }
        if c.shutdown_timeout.is_zero() {
            return Err(ConfigError::new(
                "shutdown_timeout",
                "must be greater than zero",
            ));
        }
        if let Some(h) = c.heartbeat {
            if h.interval.is_zero() {
                return Err(ConfigError::new(
                    "runtime_heartbeat.interval",
                    "must be greater than zero",
                ));
            }
            if h.max_lag.is_zero() {
                return Err(ConfigError::new(
                    "runtime_heartbeat.max_lag",
                    "must be greater than zero",
                ));
            }
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::new(
                "runtime",
                "no tokio runtime: build the registry from within a runtime",
            )
        })?;
        Ok(crate::HealthRegistry::start(self.config, handle))
    }
}

/// A check and how to run it, ready to [`register`](crate::HealthRegistry::register).
///
/// # Default
///
/// - criticality: [`Criticality::Critical`]
/// - timeout: 2 s
/// - interval: 10 s
/// - staleness bound: `2 × interval + timeout`
/// - component: the name (the body key is `component:measurement`)
/// - measurement: `responseTime`
#[derive(Clone)]
#[must_use]
pub struct HealthCheck {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) check: Arc<dyn DynCheck>,
    pub(crate) criticality: Criticality,
    pub(crate) timeout: Duration,
    pub(crate) interval: Duration,
    pub(crate) stale_after: Option<Duration>,
    pub(crate) measurement: Cow<'static, str>,
    pub(crate) component: Option<Cow<'static, str>>,
    pub(crate) component_type: Option<String>,
    pub(crate) component_id: Option<String>,
}

impl fmt::Debug for HealthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCheck")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("criticality", &self.criticality)
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("stale_after", &self.stale_after)
            .field("measurement", &self.measurement)
            .field("component", &self.component)
            .finish_non_exhaustive()
    }
}

impl HealthCheck {
    /// A check of the given kind.
    pub fn new(name: impl Into<String>, kind: Kind, check: impl Check) -> Self {
        Self {
            name: name.into(),
            kind,
            check: Arc::new(check),
            criticality: Criticality::Critical,
            timeout: Duration::from_secs(2),
            interval: Duration::from_secs(10),
            stale_after: None,
            measurement: Cow::Borrowed("responseTime"),
            component: None,
            component_type: None,
            component_id: None,
        }
    }

    /// A liveness check. Liveness checks must not look at external dependencies.
    pub fn liveness(name: impl Into<String>, check: impl Check) -> Self {
        Self::new(name, Kind::Liveness, check)
    }

    /// A readiness check.
    pub fn readiness(name: impl Into<String>, check: impl Check) -> Self {
        Self::new(name, Kind::Readiness, check)
    }

    /// A startup check.
    pub fn startup(name: impl Into<String>, check: impl Check) -> Self {
        Self::new(name, Kind::Startup, check)
    }

    /// Critical (the default) or not: a non-critical failure only makes the endpoint
    /// `warn`.
    pub fn criticality(mut self, criticality: Criticality) -> Self {
        self.criticality = criticality;
        self
    }

    /// Shorthand for `.criticality(Criticality::NonCritical)`.
    pub fn non_critical(self) -> Self {
        self.criticality(Criticality::NonCritical)
    }

    /// How long one run may take before it is cancelled and reported as `fail`.
    /// Defaults to 2 s. Must be greater than zero.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often the check runs, start to start. Defaults to 10 s. Must be greater than
    /// zero.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How old a result may get before it counts as `fail`: the checker is stuck, or a
    /// run is taking far longer than usual. Defaults to `2 × interval + timeout`. Must
    /// be greater than the interval.
    pub fn stale_after(mut self, stale_after: Duration) -> Self {
        self.stale_after = Some(stale_after);
        self
    }

    /// The component part of the body key `component:measurement`. Defaults to the
    /// check's name. Checks of several instances of one component (each with its own
    /// name, for metrics and gRPC dependencies, and its own
    /// [`component_id`](Self::component_id)) that share a component and measurement are
    /// listed together under one key, one entry each, in registration order, as the
    /// health+json format has it. Same character rules as the name.
    ///
    /// ```
    /// use palisade_health::{HealthCheck, Outcome, check_fn};
    ///
    /// let primary = HealthCheck::readiness("db-primary", check_fn(|| async { Outcome::pass() }))
    ///     .component("postgres")
    ///     .component_id("primary");
    /// let replica = HealthCheck::readiness("db-replica", check_fn(|| async { Outcome::pass() }))
    ///     .component("postgres")
    ///     .component_id("replica");
    /// // Both are reported under "postgres:responseTime".
    /// # drop((primary, replica));
    /// ```
    pub fn component(mut self, component: impl Into<Cow<'static, str>>) -> Self {
        self.component = Some(component.into());
        self
    }

    /// The measurement part of the body key `component:measurement`. Defaults to
    /// `responseTime`, matching the run time reported when the check sets no observed
    /// value. Same character rules as the name.
    pub fn measurement(mut self, measurement: impl Into<Cow<'static, str>>) -> Self {
        self.measurement = measurement.into();
        self
    }

    /// The body's `componentType` (for example `datastore`, `component`, `system`).
    pub fn component_type(mut self, component_type: impl Into<String>) -> Self {
        self.component_type = Some(component_type.into());
        self
    }

    /// The body's `componentId` (a unique id of this instance of the component).
    pub fn component_id(mut self, component_id: impl Into<String>) -> Self {
        self.component_id = Some(component_id.into());
        self
    }

    /// The check's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The check's kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Checks the registration; called by [`HealthRegistry::register`](crate::HealthRegistry::register).
    pub(crate) fn validate(&self) -> Result<Duration, ConfigError> {
        validate_name("name", &self.name)?;
        validate_name("measurement", &self.measurement)?;
        if let Some(component) = &self.component {
            validate_name("component", component)?;
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be greater than zero"));
        }
        if self.interval.is_zero() {
            return Err(ConfigError::new("interval", "must be greater than zero"));
        }
        let stale = self
            .stale_after
            .unwrap_or_else(|| self.interval.saturating_mul(2).saturating_add(self.timeout));
        if stale <= self.interval {
            return Err(ConfigError::new(
                "stale_after",
                format!(
                    "must be greater than the interval ({:?}), got {stale:?}",
                    self.interval
                ),
            ));
        }
        Ok(stale)
    }
}

/// Names and measurements: 1 to 64 characters of `A-Z a-z 0-9 _ - . /`; no `:`, which
/// separates them in body keys.
pub(crate) fn validate_name(field: &'static str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("must be 1 to 64 characters of A-Z a-z 0-9 _ - . /, got {name:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check_fn;

    fn ok_check() -> HealthCheck {
        HealthCheck::readiness("db", check_fn(|| async {}))
    }

    #[test]
    fn default_staleness_is_two_intervals_plus_timeout() {
        assert_eq!(ok_check().validate().unwrap(), Duration::from_secs(22));
    }

    #[test]
    fn rejects_bad_registrations() {
        let cases = [
            (ok_check().timeout(Duration::ZERO), "timeout"),
            (ok_check().interval(Duration::ZERO), "interval"),
            (
                ok_check().stale_after(Duration::from_secs(10)),
                "stale_after",
            ),
            (ok_check().measurement("a:b"), "measurement"),
            (HealthCheck::readiness("", check_fn(|| async {})), "name"),
            (
                HealthCheck::readiness("db:x", check_fn(|| async {})),
                "name",
            ),
            (
                HealthCheck::readiness("x".repeat(65), check_fn(|| async {})),
                "name",
            ),
        ];
        for (check, field) in cases {
            let err = check.validate().unwrap_err();
            assert_eq!(err.field(), field, "{err}");
        }
        assert!(
            ok_check()
                .stale_after(Duration::from_secs(11))
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn details_debug_redacts_token() {
        assert_eq!(
            format!("{:?}", Details::token("s3cret")),
            "Details::Token(<redacted>)"
        );
    }
}
