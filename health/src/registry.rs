//! The registry: checks, their background runners and the published snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::check::DynCheck;
use crate::config::{Config, HealthRegistryBuilder};
use crate::reporter::{self, Snapshot};
use crate::{ConfigError, HealthCheck, HealthLayer, Kind, Outcome, Status};

/// The health registry: named checks, their cached results, and the drain state.
///
/// Cloning is cheap and every clone shares the same state (it is an `Arc`). Build one
/// with [`HealthRegistry::builder`], [`register`](Self::register) checks, put
/// [`layer`](Self::layer) in front of your service, and (feature `grpc`) serve
/// [`grpc_service`](Self::grpc_service) from the same registry.
///
/// Background tasks (one per check, the runtime heartbeat, and a staleness watchdog)
/// run on the runtime the registry was built in, and stop when the last clone is
/// dropped.
///
/// See the [crate example](crate#example).
#[derive(Clone)]
pub struct HealthRegistry {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let checks: Vec<String> = lock(&self.inner.state)
            .checks
            .iter()
            .map(|c| c.reg.name.clone())
            .collect();
        f.debug_struct("HealthRegistry")
            .field("checks", &checks)
            .field("draining", &self.is_draining())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) handle: tokio::runtime::Handle,
    pub(crate) state: Mutex<Registered>,
    /// Serialises snapshot rebuilds so an older one never replaces a newer one.
    rebuild_lock: Mutex<()>,
    pub(crate) snapshot: ArcSwap<Snapshot>,
    /// Bumped after every published snapshot; gRPC `Watch` and the watchdog follow it.
    pub(crate) changes: watch::Sender<u64>,
    pub(crate) started: AtomicBool,
    pub(crate) draining: AtomicBool,
    pub(crate) drained: watch::Sender<bool>,
    /// Never sent on; dropping it (with `Inner`) stops every background task.
    pub(crate) stop: watch::Sender<()>,
    pub(crate) signals_installed: AtomicBool,
    pub(crate) hooks: Mutex<Vec<crate::drain::Hook>>,
}

#[derive(Default)]
pub(crate) struct Registered {
    pub(crate) checks: Vec<Arc<CheckEntry>>,
    /// gRPC service name -> names of the checks it depends on.
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    pub(crate) services: BTreeMap<String, Vec<String>>,
}

/// A registered check and its latest result.
pub(crate) struct CheckEntry {
    pub(crate) reg: HealthCheck,
    pub(crate) stale_after: Duration,
    pub(crate) latest: Mutex<Option<CheckResult>>,
    #[cfg(feature = "metrics")]
    metrics: crate::metrics::CheckMetrics,
}

#[derive(Debug, Clone)]
pub(crate) struct CheckResult {
    pub(crate) outcome: Outcome,
    /// When the run finished (tokio time, for staleness).
    pub(crate) at: Instant,
    /// When the run finished (wall clock, for the body's `time`).
    pub(crate) time: SystemTime,
    pub(crate) duration: Duration,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (every
/// critical section here leaves the data consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl HealthRegistry {
    /// A builder with the defaults listed on [`HealthRegistryBuilder`].
    pub fn builder() -> HealthRegistryBuilder {
        HealthRegistryBuilder::default()
    }

    pub(crate) fn start(config: Config, handle: tokio::runtime::Handle) -> Self {
        let heartbeat = config.heartbeat;
        let (changes, _) = watch::channel(0);
        let (drained, _) = watch::channel(false);
        let (stop, _) = watch::channel(());
        let inner = Arc::new(Inner {
            config,
            handle,
            state: Mutex::new(Registered::default()),
            rebuild_lock: Mutex::new(()),
            snapshot: ArcSwap::from_pointee(Snapshot::empty()),
            changes,
            started: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            drained,
            stop,
            signals_installed: AtomicBool::new(false),
            hooks: Mutex::new(Vec::new()),
        });
        let registry = Self { inner };
        if let Some(hb) = heartbeat {
            let entry = registry.add_entry(crate::checks::runtime::registration(hb), None);
            crate::checks::runtime::spawn(&registry.inner, entry, hb);
        }
        registry.inner.rebuild();
        crate::reporter::spawn_watchdog(&registry.inner);
        registry
    }

    /// Registers a check and starts running it in the background at once.
    ///
    /// Until its first run completes, a readiness or startup check counts as `fail`
    /// (`warn` if non-critical) and a liveness check as `warn`.
    ///
    /// # Errors
    ///
    /// Everything [`HealthCheck`] validates (name and measurement characters, zero
    /// timeout or interval, a staleness bound not above the interval), and a name
    /// that is already registered (`name`; `runtime` is taken by the built-in
    /// heartbeat unless it is turned off).
    pub fn register(&self, check: HealthCheck) -> Result<(), ConfigError> {
        let stale_after = check.validate()?;
        let name = check.name.clone();
        let Some(entry) = self.add_entry(check, Some(stale_after)) else {
            return Err(ConfigError::new(
                "name",
                format!("a check named {name:?} is already registered"),
            ));
        };
        spawn_runner(&self.inner, entry);
        self.inner.rebuild();
        Ok(())
    }

    /// Adds an entry unless the name is taken; returns it.
    fn add_entry(
        &self,
        reg: HealthCheck,
        stale_after: Option<Duration>,
    ) -> Option<Arc<CheckEntry>> {
        let stale_after = stale_after.unwrap_or_else(|| reg.interval.saturating_add(reg.timeout));
        let mut state = lock(&self.inner.state);
        if state.checks.iter().any(|c| c.reg.name == reg.name) {
            return None;
        }
        let entry = Arc::new(CheckEntry {
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::CheckMetrics::new(&reg.name),
            reg,
            stale_after,
            latest: Mutex::new(None),
        });
        state.checks.push(Arc::clone(&entry));
        Some(entry)
    }

    /// The tower layer that answers the health endpoints in front of a service.
    pub fn layer(&self) -> HealthLayer {
        HealthLayer::new(self.clone())
    }

    /// The current status of an endpoint, from the cached results.
    pub fn status(&self, kind: Kind) -> Status {
        let snap = self.inner.current();
        match kind {
            Kind::Liveness => snap.live.status,
            Kind::Readiness => snap.ready.status,
            Kind::Startup => snap.startup.status,
        }
    }

    /// True once every startup check has completed a run with none failing critically
    /// (at the same time, once), or when there are none. It stays true.
    pub fn is_started(&self) -> bool {
        self.inner.current().started
    }

    /// True once [`drain`](Self::drain) has been called.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// The names of the registered checks, in registration order.
    pub fn check_names(&self) -> Vec<String> {
        lock(&self.inner.state)
            .checks
            .iter()
            .map(|c| c.reg.name.clone())
            .collect()
    }
}

impl Inner {
    /// The published snapshot, rebuilt first if a result in it has gone stale.
    pub(crate) fn current(&self) -> Guard<Arc<Snapshot>> {
        let snap = self.snapshot.load();
        match snap.expires_at {
            Some(at) if Instant::now() >= at => {
                drop(snap);
                self.rebuild();
                self.snapshot.load()
            }
            _ => snap,
        }
    }

    /// Recomputes and publishes the snapshot from the latest results.
    pub(crate) fn rebuild(&self) {
        let _serial = lock(&self.rebuild_lock);
        let (checks, services) = {
            let state = lock(&self.state);
            (state.checks.clone(), state.services.clone())
        };
        let snap = reporter::build(self, &checks, &services, Instant::now());
        self.snapshot.store(Arc::new(snap));
        self.changes.send_modify(|g| *g = g.wrapping_add(1));
    }
}

impl CheckEntry {
    pub(crate) fn record(&self, result: CheckResult) {
        #[cfg(feature = "metrics")]
        self.metrics.record(result.outcome.status, result.duration);
        let previous = lock(&self.latest).replace(result.clone());
        let prev_status = previous.map(|p| p.outcome.status);
        if prev_status != Some(result.outcome.status) {
            #[cfg(feature = "tracing")]
            crate::observe::status_changed(&self.reg, prev_status, &result.outcome);
        }
    }
}

/// Runs a check on its interval until the registry is dropped.
fn spawn_runner(inner: &Arc<Inner>, entry: Arc<CheckEntry>) {
    let weak = Arc::downgrade(inner);
    let mut stop = inner.stop.subscribe();
    let handle = inner.handle.clone();
    inner.handle.spawn(async move {
        let mut next = Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = entry.reg.check.changed() => {}
                _ = stop.changed() => return,
            }
            let started = Instant::now();
            let check: Arc<dyn DynCheck> = Arc::clone(&entry.reg.check);
            let mut task = handle.spawn(async move { check.run().await });
            let outcome = tokio::select! {
                r = tokio::time::timeout(entry.reg.timeout, &mut task) => match r {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(e)) if e.is_panic() => {
                        Outcome::fail(format!("check panicked: {}", panic_message(e.into_panic())))
                    }
                    Ok(Err(_)) => Outcome::fail("check was cancelled"),
                    Err(_) => {
                        task.abort();
                        Outcome::fail(format!("timed out after {:?}", entry.reg.timeout))
                    }
                },
                _ = stop.changed() => {
                    task.abort();
                    return;
                }
            };
            let now = Instant::now();
            let Some(inner) = weak.upgrade() else { return };
            entry.record(CheckResult {
                outcome,
                at: now,
                time: SystemTime::now(),
                duration: now - started,
            });
            inner.rebuild();
            drop(inner);
            next = (started + entry.reg.interval).max(now);
        }
    });
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
