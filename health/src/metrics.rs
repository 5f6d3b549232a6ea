//! Metrics (feature `metrics`), registered once per check when it is registered.
//!
//! ```text
//! # HELP palisade_health_check_status Latest status of a health check: 1 pass, 0.5 warn, 0 fail.
//! palisade_health_check_status{check="db"} 1
//! # HELP palisade_health_check_duration_seconds How long health check runs take.
//! palisade_health_check_duration_seconds_bucket{check="db",le="0.005"} 12
//! ```

use std::time::Duration;

use crate::Status;

/// The gauge's name.
pub const CHECK_STATUS: &str = "palisade_health_check_status";
/// The histogram's name.
pub const CHECK_DURATION: &str = "palisade_health_check_duration_seconds";

pub(crate) struct CheckMetrics {
    status: metrics::Gauge,
    duration: metrics::Histogram,
}

impl CheckMetrics {
    pub(crate) fn new(check: &str) -> Self {
        metrics::describe_gauge!(
            CHECK_STATUS,
            "Latest status of a health check: 1 pass, 0.5 warn, 0 fail."
        );
        metrics::describe_histogram!(
            CHECK_DURATION,
            metrics::Unit::Seconds,
            "How long health check runs take."
        );
        let labels = [("check", check.to_owned())];
        Self {
            status: metrics::gauge!(CHECK_STATUS, &labels),
            duration: metrics::histogram!(CHECK_DURATION, &labels),
        }
    }

    pub(crate) fn record(&self, status: Status, duration: Duration) {
        self.status.set(match status {
            Status::Pass => 1.0,
            Status::Warn => 0.5,
            Status::Fail => 0.0,
        });
        self.duration.record(duration.as_secs_f64());
    }
}
