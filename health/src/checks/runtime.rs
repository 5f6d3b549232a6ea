//! The built-in liveness check: a heartbeat task that notices a stalled tokio runtime.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use crate::config::Heartbeat;
use crate::registry::{CheckEntry, CheckResult, Inner};
use crate::{Check, HealthCheck, Outcome, Status};

/// The heartbeat's registration: never run by a runner, only written by [`spawn`].
struct Beat;

impl Check for Beat {
    async fn check(&self) -> Outcome {
        Outcome::pass()
    }
}

pub(crate) fn registration(hb: Heartbeat) -> HealthCheck {
    // interval + timeout is the staleness bound: no beat for that long is a stall.
    HealthCheck::liveness("runtime", Beat)
        .interval(hb.interval)
        .timeout(hb.max_lag)
        .measurement("lag")
        .component_type("system")
}

/// Wakes every `interval` and reports how late the wake-up came; more than `max_lag`
/// late is `fail`. When no beat arrives at all, the result goes stale after
/// `interval + max_lag` and counts as `fail` too.
pub(crate) fn spawn(inner: &Arc<Inner>, entry: Option<Arc<CheckEntry>>, hb: Heartbeat) {
    let Some(entry) = entry else { return };
    // The registry is being built on a running runtime: the first beat is on time.
    // Recording it now makes liveness pass from the first probe.
    let now = Instant::now();
    entry.record(CheckResult {
        outcome: Outcome::pass().observed(0.0, "ms"),
        at: now,
        time: SystemTime::now(),
        duration: std::time::Duration::ZERO,
    });
    let weak = Arc::downgrade(inner);
    let mut stop = inner.stop.subscribe();
    inner.handle.spawn(async move {
        let mut expected = now + hb.interval;
        let mut last: Option<Status> = None;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(expected) => {}
                _ = stop.changed() => return,
            }
            let now = Instant::now();
            let lag = now.saturating_duration_since(expected);
            let outcome = if lag > hb.max_lag {
                Outcome::fail(format!(
                    "runtime stalled: a heartbeat woke {lag:?} late (bound {:?})",
                    hb.max_lag
                ))
            } else {
                Outcome::pass()
            };
            let lag_ms = (lag.as_secs_f64() * 1e6).round() / 1e3;
            let outcome = outcome.observed(lag_ms, "ms");
            let status = outcome.status();
            let Some(inner) = weak.upgrade() else { return };
            entry.record(CheckResult {
                outcome,
                at: now,
                time: SystemTime::now(),
                duration: lag,
            });
            // The snapshot's staleness deadline makes the watchdog refresh the body
            // regularly; rebuild at once only when the verdict changes.
            if last != Some(status) {
                inner.rebuild();
                last = Some(status);
            }
            drop(inner);
            expected = now + hb.interval;
        }
    });
}
