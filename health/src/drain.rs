//! Graceful drain and shutdown hooks.
//!
//! The order that keeps every request:
//!
//! 1. a signal (SIGTERM from Kubernetes, Ctrl-C) or your code calls
//!    [`drain`](HealthRegistry::drain): readiness — HTTP and gRPC, every service —
//!    turns to `fail` at once; requests keep being served, new ones too;
//! 2. after the [drain delay](crate::HealthRegistryBuilder::drain_delay) (load
//!    balancers have noticed and stopped routing here), the [`Drained`] future
//!    resolves: give it to `axum::serve(..).with_graceful_shutdown` and tonic's
//!    `serve_with_shutdown`, which stop accepting and finish in-flight requests;
//! 3. when the servers have returned, [`run_shutdown_hooks`](HealthRegistry::run_shutdown_hooks)
//!    runs the registered hooks (flush OpenTelemetry, close pools) within the
//!    [shutdown timeout](crate::HealthRegistryBuilder::shutdown_timeout).
//!
//! A second signal during the delay skips the rest of it.
//!
//! # Kubernetes
//!
//! Probe the three endpoints, and give the pod time for the whole sequence:
//! `terminationGracePeriodSeconds` above the drain delay, plus the longest request,
//! plus the shutdown timeout. With the defaults (5 s delay, 10 s hook budget):
//!
//! ```text
//! terminationGracePeriodSeconds: 30
//! containers:
//!   - startupProbe:   { httpGet: { path: /health/startup, port: 8080 }, periodSeconds: 2, failureThreshold: 30 }
//!     livenessProbe:  { httpGet: { path: /health/live,    port: 8080 }, periodSeconds: 10, failureThreshold: 3 }
//!     readinessProbe: { httpGet: { path: /health/ready,   port: 8080 }, periodSeconds: 2, failureThreshold: 1 }
//! ```
//!
//! The drain delay should exceed the readiness probe's `periodSeconds ×
//! failureThreshold`, so the endpoint is removed before the server stops accepting. For
//! gRPC services, `grpc: { port: 50051 }` probes use [`grpc_service`](HealthRegistry::grpc_service)
//! and follow the same drain (feature `grpc`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::HealthRegistry;
use crate::check::BoxFuture;
use crate::registry::{Inner, lock};

/// A future that resolves when the drain delay has passed after
/// [`drain`](HealthRegistry::drain); see [`HealthRegistry::drained`].
///
/// It never resolves if the registry is dropped without draining.
#[must_use = "futures do nothing unless polled"]
pub struct Drained(BoxFuture<'static, ()>);

impl fmt::Debug for Drained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drained").finish_non_exhaustive()
    }
}

impl Future for Drained {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

pub(crate) enum HookFn {
    Async(Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>),
    Blocking(Box<dyn FnOnce() + Send>),
}

pub(crate) struct Hook {
    name: String,
    f: HookFn,
}

/// How one shutdown hook ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOutcome {
    /// It returned.
    Completed,
    /// It panicked; the panic was caught and the other hooks still ran.
    Panicked,
    /// It did not finish within the remaining budget and was abandoned (an async hook
    /// is cancelled; a blocking one is left to finish on its thread).
    TimedOut,
}

/// One hook's name, outcome and run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookReport {
    /// The name given when registering it.
    pub name: String,
    /// How it ended.
    pub outcome: HookOutcome,
    /// How long it ran (or was waited for).
    pub elapsed: Duration,
}

/// What [`run_shutdown_hooks`](HealthRegistry::run_shutdown_hooks) did, hook by hook,
/// in registration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// One entry per hook.
    pub hooks: Vec<HookReport>,
}

impl ShutdownReport {
    /// True when every hook completed.
    pub fn all_completed(&self) -> bool {
        self.hooks
            .iter()
            .all(|h| h.outcome == HookOutcome::Completed)
    }
}

impl HealthRegistry {
    /// Starts draining: readiness (HTTP and every gRPC service) turns to `fail` at
    /// once; after the drain delay, [`drained`](Self::drained) futures resolve.
    /// Requests are still served meanwhile. Calling it again does nothing.
    pub fn drain(&self) {
        if self.inner.draining.swap(true, Ordering::AcqRel) {
            return;
        }
        #[cfg(feature = "tracing")]
        tracing::info!(
            target: "palisade_health",
            delay = ?self.inner.config.drain_delay,
            "draining: readiness is now failing; shutting down after the delay"
        );
        self.inner.rebuild();
        let inner = Arc::clone(&self.inner);
        self.inner.handle.spawn(async move {
            tokio::time::sleep(inner.config.drain_delay).await;
            finish_drain(&inner);
        });
    }

    /// The shutdown future: resolves once the drain delay has passed after
    /// [`drain`](Self::drain). Plug it into `axum::serve(..).with_graceful_shutdown`
    /// and tonic's `serve_with_shutdown`; call it once per server.
    pub fn drained(&self) -> Drained {
        let mut rx = self.inner.drained.subscribe();
        Drained(Box::pin(async move {
            if rx.wait_for(|done| *done).await.is_err() {
                // The registry is gone without draining: never shut down because of it.
                std::future::pending::<()>().await;
            }
        }))
    }

    /// Like [`drained`](Self::drained), and also starts listening (once per registry)
    /// for SIGTERM and Ctrl-C, calling [`drain`](Self::drain) on the first; a second
    /// signal skips the rest of the delay.
    ///
    /// ```no_run
    /// # async fn run(app: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
    /// let health = palisade_health::HealthRegistry::builder().build()?;
    /// let app = app.layer(health.layer());
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
    /// axum::serve(listener, app)
    ///     .with_graceful_shutdown(health.shutdown_signal())
    ///     .await?;
    /// health.run_shutdown_hooks().await;
    /// # Ok(()) }
    /// ```
    pub fn shutdown_signal(&self) -> Drained {
        if !self.inner.signals_installed.swap(true, Ordering::AcqRel) {
            let weak = Arc::downgrade(&self.inner);
            self.inner.handle.spawn(async move {
                wait_for_signal().await;
                let Some(inner) = weak.upgrade() else { return };
                HealthRegistry { inner }.drain();
                wait_for_signal().await;
                if let Some(inner) = weak.upgrade() {
                    #[cfg(feature = "tracing")]
                    tracing::warn!(target: "palisade_health", "second signal: skipping the rest of the drain delay");
                    finish_drain(&inner);
                }
            });
        }
        self.drained()
    }

    /// Registers an async shutdown hook, run by
    /// [`run_shutdown_hooks`](Self::run_shutdown_hooks) in registration order.
    pub fn on_shutdown<F, Fut>(&self, name: impl Into<String>, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let f = HookFn::Async(Box::new(move || Box::pin(hook())));
        lock(&self.inner.hooks).push(Hook {
            name: name.into(),
            f,
        });
    }

    /// Registers a blocking shutdown hook (run on tokio's blocking pool), such as
    /// flushing an OpenTelemetry provider:
    ///
    /// ```
    /// # struct SdkTracerProvider;
    /// # impl SdkTracerProvider { fn shutdown(&self) -> Result<(), String> { Ok(()) } }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let provider = SdkTracerProvider;
    /// let health = palisade_health::HealthRegistry::builder().build()?;
    /// health.on_shutdown_blocking("otel", move || {
    ///     let _ = provider.shutdown();
    /// });
    /// // … serve until drained, then:
    /// assert!(health.run_shutdown_hooks().await.all_completed());
    /// # Ok(()) }
    /// ```
    pub fn on_shutdown_blocking<F>(&self, name: impl Into<String>, hook: F)
    where
        F: FnOnce() + Send + 'static,
    {
        lock(&self.inner.hooks).push(Hook {
            name: name.into(),
            f: HookFn::Blocking(Box::new(hook)),
        });
    }

    /// Runs the shutdown hooks one after another in registration order, within the
    /// [shutdown timeout](crate::HealthRegistryBuilder::shutdown_timeout) in total. A
    /// hook that panics or runs out of time does not stop the others. Each hook runs at
    /// most once: a second call runs only hooks registered since.
    ///
    /// Call it after the servers have returned, so in-flight requests finish first.
    pub async fn run_shutdown_hooks(&self) -> ShutdownReport {
        let hooks = std::mem::take(&mut *lock(&self.inner.hooks));
        let deadline = Instant::now() + self.inner.config.shutdown_timeout;
        let mut report = ShutdownReport::default();
        for hook in hooks {
            let start = Instant::now();
            let remaining = deadline.saturating_duration_since(start);
            let mut task = match hook.f {
                HookFn::Async(f) => self.inner.handle.spawn(f()),
                HookFn::Blocking(f) => self.inner.handle.spawn_blocking(f),
            };
            let outcome = if remaining.is_zero() {
                task.abort();
                HookOutcome::TimedOut
            } else {
                match tokio::time::timeout(remaining, &mut task).await {
                    Ok(Ok(())) => HookOutcome::Completed,
                    Ok(Err(_)) => HookOutcome::Panicked,
                    Err(_) => {
                        task.abort();
                        HookOutcome::TimedOut
                    }
                }
            };
            #[cfg(feature = "tracing")]
            match outcome {
                HookOutcome::Completed => {
                    tracing::info!(target: "palisade_health", hook = %hook.name, "shutdown hook completed")
                }
                _ => {
                    tracing::warn!(target: "palisade_health", hook = %hook.name, ?outcome, "shutdown hook did not complete")
                }
            }
            report.hooks.push(HookReport {
                name: hook.name,
                outcome,
                elapsed: start.elapsed(),
            });
        }
        report
    }
}

fn finish_drain(inner: &Inner) {
    inner.drained.send_replace(true);
}

/// Waits for SIGTERM (Unix) or Ctrl-C. If neither can be listened for, never returns.
async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
