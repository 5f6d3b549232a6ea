//! `tracing` events (feature `tracing`).

use crate::{HealthCheck, Outcome, Status};

/// A check's own status changed (or it reported for the first time).
pub(crate) fn status_changed(reg: &HealthCheck, previous: Option<Status>, now: &Outcome) {
    let check = reg.name.as_str();
    let kind = reg.kind.as_str();
    let from = previous.map_or("none", Status::as_str);
    let to = now.status().as_str();
    let output = now.output().unwrap_or("");
    match now.status() {
        Status::Pass => {
            tracing::info!(target: "palisade_health", check, kind, from, to, "health check passing")
        }
        Status::Warn => {
            tracing::warn!(target: "palisade_health", check, kind, from, to, output, "health check degraded")
        }
        Status::Fail => {
            tracing::warn!(target: "palisade_health", check, kind, from, to, output, "health check failing")
        }
    }
}
