//! Builds the published snapshot: statuses, pre-rendered `application/health+json`
//! bodies and gRPC serving statuses, recomputed whenever a result changes.
//!
//! Probes only read the latest snapshot, so their cost does not depend on how many
//! checks are registered or how slow they are.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::registry::{CheckEntry, Inner, lock};
use crate::{Kind, Status};

/// One endpoint's verdict and both renderings of its body.
#[derive(Debug, Clone)]
pub(crate) struct Rendered {
    pub(crate) status: Status,
    pub(crate) public: Bytes,
    pub(crate) detailed: Bytes,
}

/// Everything a probe or a gRPC health call needs, computed once per change.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) live: Rendered,
    pub(crate) ready: Rendered,
    pub(crate) startup: Rendered,
    pub(crate) started: bool,
    /// When the earliest result in this snapshot goes stale.
    pub(crate) expires_at: Option<Instant>,
    /// gRPC service name (`""` = the whole server) -> serving.
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    pub(crate) services: BTreeMap<String, bool>,
}

fn public_body(status: Status) -> Bytes {
    Bytes::from_static(match status {
        Status::Pass => br#"{"status":"pass"}"#,
        Status::Warn => br#"{"status":"warn"}"#,
        Status::Fail => br#"{"status":"fail"}"#,
    })
}

impl Snapshot {
    pub(crate) fn empty() -> Self {
        let r = Rendered {
            status: Status::Fail,
            public: public_body(Status::Fail),
            detailed: public_body(Status::Fail),
        };
        Self {
            live: r.clone(),
            ready: r.clone(),
            startup: r,
            started: false,
            expires_at: None,
            services: BTreeMap::new(),
        }
    }
}

/// A check's state as of `now`.
struct View<'a> {
    entry: &'a CheckEntry,
    /// What it contributes to its endpoint, after criticality.
    contribution: Status,
    /// No run has completed yet.
    pending: bool,
    json: Value,
}

fn view<'a>(entry: &'a CheckEntry, now: Instant, expires_at: &mut Option<Instant>) -> View<'a> {
    let reg = &entry.reg;
    let latest = lock(&entry.latest).clone();
    let pending = latest.is_none();
    let mut obj = Map::new();
    let status = match latest {
        None => {
            let status = if reg.kind == Kind::Liveness {
                Status::Warn
            } else {
                Status::Fail
            };
            obj.insert(
                "output".into(),
                "pending: the check has not completed a run yet".into(),
            );
            status
        }
        Some(r) => {
            let stale_at = r.at.checked_add(entry.stale_after);
            let stale = stale_at.is_some_and(|t| now >= t);
            if !stale && let Some(t) = stale_at {
                *expires_at = Some(expires_at.map_or(t, |e| e.min(t)));
            }
            obj.insert("time".into(), crate::time::rfc3339(r.time).into());
            match &r.outcome.observed {
                Some((value, unit)) => {
                    obj.insert("observedValue".into(), value.to_json());
                    if let Some(unit) = unit {
                        obj.insert("observedUnit".into(), unit.to_string().into());
                    }
                }
                None => {
                    let ms = (r.duration.as_secs_f64() * 1e6).round() / 1e3;
                    obj.insert("observedValue".into(), json!(ms));
                    obj.insert("observedUnit".into(), "ms".into());
                }
            }
            if stale {
                let age = now.saturating_duration_since(r.at);
                obj.insert(
                    "output".into(),
                    format!(
                        "stale: the last result is {age:?} old (bound {:?})",
                        entry.stale_after
                    )
                    .into(),
                );
                Status::Fail
            } else {
                if r.outcome.status != Status::Pass
                    && let Some(out) = &r.outcome.output
                {
                    obj.insert("output".into(), out.clone().into());
                }
                r.outcome.status
            }
        }
    };
    obj.insert("status".into(), status.as_str().into());
    if let Some(t) = &reg.component_type {
        obj.insert("componentType".into(), t.clone().into());
    }
    if let Some(id) = &reg.component_id {
        obj.insert("componentId".into(), id.clone().into());
    }
    View {
        entry,
        contribution: reg.criticality.apply(status),
        pending,
        json: Value::Object(obj),
    }
}

fn worst<'a>(views: impl Iterator<Item = &'a View<'a>>) -> Status {
    views.map(|v| v.contribution).max().unwrap_or(Status::Pass)
}

fn names<'a>(views: impl Iterator<Item = &'a View<'a>>) -> String {
    views
        .map(|v| v.entry.reg.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Computes the snapshot for `now` from the checks' latest results.
pub(crate) fn build(
    inner: &Inner,
    checks: &[Arc<CheckEntry>],
    services: &BTreeMap<String, Vec<String>>,
    now: Instant,
) -> Snapshot {
    let mut expires_at = None;
    let views: Vec<View<'_>> = checks
        .iter()
        .map(|c| view(c, now, &mut expires_at))
        .collect();
    let of_kind = |k: Kind| views.iter().filter(move |v| v.entry.reg.kind == k);

    let live_status = worst(of_kind(Kind::Liveness));
    let has_startup = of_kind(Kind::Startup).next().is_some();
    // Every startup check has completed a run (even a non-critical one: it has not
    // passed while it is pending) and none fails the endpoint.
    let startup_ok =
        of_kind(Kind::Startup).all(|v| !v.pending) && worst(of_kind(Kind::Startup)) != Status::Fail;
    let started = if !has_startup || inner.started.load(Ordering::Acquire) {
        true
    } else if startup_ok {
        inner.started.store(true, Ordering::Release);
        #[cfg(feature = "tracing")]
        tracing::info!(target: "palisade_health", "startup checks passed; the service is started");
        true
    } else {
        false
    };
    let draining = inner.draining.load(Ordering::Acquire);

    let failing = |kinds: &[Kind], at: Status| {
        names(
            views
                .iter()
                .filter(|v| kinds.contains(&v.entry.reg.kind) && v.contribution >= at),
        )
    };

    // Liveness.
    let live_output = match live_status {
        Status::Pass => None,
        s => Some(format!(
            "{}: {}",
            failing_word(s),
            failing(&[Kind::Liveness], s)
        )),
    };

    // Startup.
    let startup_status = if started {
        Status::Pass
    } else {
        worst(of_kind(Kind::Startup)).max(Status::Fail)
    };
    let startup_output = (!started).then(|| {
        format!(
            "starting: waiting for startup checks: {}",
            failing(&[Kind::Startup], Status::Fail)
        )
    });

    // Readiness: gated by drain, startup and liveness.
    let gate = if draining {
        Some("draining: the service is shutting down".to_owned())
    } else if !started {
        startup_output.clone()
    } else if live_status == Status::Fail {
        Some(format!(
            "liveness is failing: {}",
            failing(&[Kind::Liveness], Status::Fail)
        ))
    } else {
        None
    };
    let ready_checks = worst(of_kind(Kind::Readiness));
    let (ready_status, ready_output) = match &gate {
        Some(why) => (Status::Fail, Some(why.clone())),
        None => match ready_checks {
            Status::Pass => (Status::Pass, None),
            s => (
                s,
                Some(format!(
                    "{}: {}",
                    failing_word(s),
                    failing(&[Kind::Readiness], s)
                )),
            ),
        },
    };
    let mut ready_kinds = vec![Kind::Readiness];
    if !started {
        ready_kinds.push(Kind::Startup);
    }
    if live_status == Status::Fail {
        ready_kinds.push(Kind::Liveness);
    }

    let render = |status: Status, output: Option<String>, kinds: &[Kind]| {
        let mut body = Map::new();
        body.insert("status".into(), status.as_str().into());
        if status != Status::Pass
            && let Some(output) = output
        {
            body.insert("output".into(), output.into());
        }
        let c = &inner.config;
        for (key, value) in [
            ("version", &c.version),
            ("releaseId", &c.release_id),
            ("serviceId", &c.service_id),
            ("description", &c.description),
        ] {
            if let Some(v) = value {
                body.insert(key.into(), v.clone().into());
            }
        }
        let mut checks = Map::new();
        for v in views.iter().filter(|v| kinds.contains(&v.entry.reg.kind)) {
            let reg = &v.entry.reg;
            let component = reg.component.as_deref().unwrap_or(&reg.name);
            let key = format!("{component}:{}", reg.measurement);
            // Instances of one component share a key: one entry each.
            if let Some(Value::Array(entries)) = checks.get_mut(&key) {
                entries.push(v.json.clone());
            } else {
                checks.insert(key, Value::Array(vec![v.json.clone()]));
            }
        }
        if !checks.is_empty() {
            body.insert("checks".into(), Value::Object(checks));
        }
        let detailed = serde_json::to_vec(&Value::Object(body))
            .map(Bytes::from)
            .unwrap_or_else(|_| public_body(status));
        Rendered {
            status,
            public: public_body(status),
            detailed,
        }
    };

    // gRPC: "" is the whole server, and follows readiness exactly.
    let mut grpc = BTreeMap::new();
    grpc.insert(String::new(), ready_status.is_healthy());
    for (service, deps) in services {
        let serving = if gate.is_some() {
            false
        } else if deps.is_empty() {
            ready_status.is_healthy()
        } else {
            views
                .iter()
                .filter(|v| deps.contains(&v.entry.reg.name))
                .all(|v| v.contribution.is_healthy())
        };
        grpc.insert(service.clone(), serving);
    }

    Snapshot {
        live: render(live_status, live_output, &[Kind::Liveness]),
        ready: render(ready_status, ready_output, &ready_kinds),
        startup: render(startup_status, startup_output, &[Kind::Startup]),
        started,
        expires_at,
        services: grpc,
    }
}

fn failing_word(s: Status) -> &'static str {
    match s {
        Status::Fail => "failing",
        _ => "degraded",
    }
}

/// Rebuilds the snapshot when its earliest result goes stale, so gRPC watchers hear of
/// a stuck checker even when no probe arrives.
pub(crate) fn spawn_watchdog(inner: &Arc<Inner>) {
    let weak = Arc::downgrade(inner);
    let mut changes = inner.changes.subscribe();
    let mut stop = inner.stop.subscribe();
    inner.handle.spawn(async move {
        loop {
            let expires = match weak.upgrade() {
                Some(inner) => inner.snapshot.load().expires_at,
                None => return,
            };
            tokio::select! {
                () = sleep_until_opt(expires) => {
                    match weak.upgrade() {
                        Some(inner) => { inner.current(); }
                        None => return,
                    }
                }
                r = changes.changed() => if r.is_err() { return },
                _ = stop.changed() => return,
            }
        }
    });
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
