//! Health statuses, check kinds and criticality.

use std::fmt;

/// The status of a check or an endpoint, as in the IETF draft "Health Check Response
/// Format for HTTP APIs".
///
/// Ordered from best to worst, so `a.max(b)` is the worse of two statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Healthy. HTTP 200.
    Pass,
    /// Healthy, with some concerns. HTTP 200.
    Warn,
    /// Unhealthy. HTTP 503.
    Fail,
}

impl Status {
    /// The status as written in the JSON body: `pass`, `warn` or `fail`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }

    /// The HTTP status code for this status: 200 for `pass` and `warn`, 503 for `fail`.
    pub const fn http_status(self) -> http::StatusCode {
        match self {
            Status::Pass | Status::Warn => http::StatusCode::OK,
            Status::Fail => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// True for `pass` and `warn`.
    pub const fn is_healthy(self) -> bool {
        !matches!(self, Status::Fail)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which probe a check feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Feeds `/health/live`. Must never look at external dependencies: a liveness
    /// failure makes the orchestrator restart the process, and restarting every
    /// replica because a database blipped turns a blip into an outage.
    Liveness,
    /// Feeds `/health/ready` and gRPC health: whether to route traffic here.
    Readiness,
    /// Feeds `/health/startup`. Until every startup check has completed a run and
    /// none fails (a non-critical one may fail: it only warns), all at the same time,
    /// `/health/startup` and `/health/ready` fail; after that the service stays
    /// started. Register startup checks before serving.
    Startup,
}

impl Kind {
    /// `liveness`, `readiness` or `startup`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Liveness => "liveness",
            Kind::Readiness => "readiness",
            Kind::Startup => "startup",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much a check's failure counts.
///
/// A check always reports its own status in the body; criticality decides what it
/// contributes to the endpoint's status: a critical `fail` makes the endpoint `fail`,
/// a non-critical `fail` only makes it `warn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Criticality {
    /// A failure fails the endpoint (the default).
    #[default]
    Critical,
    /// A failure only degrades the endpoint to `warn`.
    NonCritical,
}

impl Criticality {
    /// What a check with this criticality and status contributes to its endpoint.
    pub const fn apply(self, status: Status) -> Status {
        match (self, status) {
            (Criticality::NonCritical, Status::Fail) => Status::Warn,
            (_, s) => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_status_wins() {
        assert_eq!(Status::Pass.max(Status::Warn), Status::Warn);
        assert_eq!(Status::Warn.max(Status::Fail), Status::Fail);
        assert_eq!(Status::Pass.max(Status::Pass), Status::Pass);
    }

    #[test]
    fn criticality_maps_fail_to_warn_only_when_non_critical() {
        use Criticality::{Critical, NonCritical};
        use Status::{Fail, Pass, Warn};
        assert_eq!(Critical.apply(Fail), Fail);
        assert_eq!(Critical.apply(Warn), Warn);
        assert_eq!(Critical.apply(Pass), Pass);
        assert_eq!(NonCritical.apply(Fail), Warn);
        assert_eq!(NonCritical.apply(Warn), Warn);
        assert_eq!(NonCritical.apply(Pass), Pass);
    }

    #[test]
    fn http_status_codes() {
        assert_eq!(Status::Pass.http_status(), 200);
        assert_eq!(Status::Warn.http_status(), 200);
        assert_eq!(Status::Fail.http_status(), 503);
    }
}
