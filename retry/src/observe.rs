//! What the retry layer tells the world: the `on_retry` hook, `tracing` events, `metrics`.
//!
//! # Metrics (feature `metrics`)
//!
//! Registered once when the layer is built, labelled with the layer's name:
//!
//! ```text
//! palisade_retry_attempts_total{retry="inventory",outcome="done"}        attempts whose result was returned
//! palisade_retry_attempts_total{retry="inventory",outcome="retried"}     attempts that were retried (once the retry is sent)
//! palisade_retry_attempts_total{retry="inventory",outcome="gave_up"}     retryable, but not retried (attempts, deadline, body, budget)
//! palisade_retry_budget_exhausted_total{retry="inventory"}              retries refused by the budget
//! palisade_retry_attempts_per_request{retry="inventory"}                histogram: attempts sent per request
//! ```
//!
//! # Tracing events (feature `tracing`)
//!
//! An `INFO` event per retry (`retry`, `attempt`, `reason`, `delay_ms`) and a `WARN` event when
//! the budget refuses one.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::Attempt;

/// One retry about to happen, given to the [`on_retry`](crate::Builder::on_retry) hook.
#[derive(Debug, Clone, Copy)]
pub struct RetryEvent<'a> {
    pub(crate) name: &'a str,
    pub(crate) attempt: Attempt,
    pub(crate) reason: &'static str,
    pub(crate) delay: Duration,
}

impl RetryEvent<'_> {
    /// The layer's name.
    pub fn name(&self) -> &str {
        self.name
    }

    /// The attempt that will be sent after the delay (2 for the first retry).
    pub fn attempt(&self) -> Attempt {
        self.attempt
    }

    /// Why the previous attempt is retried (e.g. `"status 503"`, `"connection error"`).
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// How long the layer waits before sending it.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

/// Why a retryable failure was not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiveUp {
    Attempts,
    Deadline,
    HintTooLong,
    NotReplayable,
    Budget,
}

pub(crate) type Hook = Arc<dyn Fn(&RetryEvent<'_>) + Send + Sync>;

pub(crate) struct Observer {
    pub(crate) name: Arc<str>,
    pub(crate) on_retry: Option<Hook>,
    retries: AtomicU64,
    budget_exhausted: AtomicU64,
    #[cfg(feature = "metrics")]
    done: metrics::Counter,
    #[cfg(feature = "metrics")]
    retried: metrics::Counter,
    #[cfg(feature = "metrics")]
    gave_up: metrics::Counter,
    #[cfg(feature = "metrics")]
    exhausted: metrics::Counter,
    #[cfg(feature = "metrics")]
    per_request: metrics::Histogram,
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observer")
            .field("name", &self.name)
            .field("on_retry", &self.on_retry.is_some())
            .finish_non_exhaustive()
    }
}

impl Observer {
    pub(crate) fn new(name: Arc<str>, on_retry: Option<Hook>) -> Self {
        #[cfg(feature = "metrics")]
        let (done, retried, gave_up, exhausted, per_request) = {
            metrics::describe_counter!(
                "palisade_retry_attempts_total",
                "Attempts sent by the retry layer, by what became of them"
            );
            metrics::describe_counter!(
                "palisade_retry_budget_exhausted_total",
                "Retries refused because the retry budget was spent"
            );
            metrics::describe_histogram!(
                "palisade_retry_attempts_per_request",
                "Attempts sent per request"
            );
            let n = name.to_string();
            (
                metrics::counter!("palisade_retry_attempts_total", "retry" => n.clone(), "outcome" => "done"),
                metrics::counter!("palisade_retry_attempts_total", "retry" => n.clone(), "outcome" => "retried"),
                metrics::counter!("palisade_retry_attempts_total", "retry" => n.clone(), "outcome" => "gave_up"),
                metrics::counter!("palisade_retry_budget_exhausted_total", "retry" => n.clone()),
                metrics::histogram!("palisade_retry_attempts_per_request", "retry" => n),
            )
        };
        Self {
            name,
            on_retry,
            retries: AtomicU64::new(0),
            budget_exhausted: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            done,
            #[cfg(feature = "metrics")]
            retried,
            #[cfg(feature = "metrics")]
            gave_up,
            #[cfg(feature = "metrics")]
            exhausted,
            #[cfg(feature = "metrics")]
            per_request,
        }
    }

    /// A request ended without giving up a retry: its last attempt's result is returned, or
    /// the inner service failed to get ready for a retry (the success path: kept small
    /// enough to inline).
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(clippy::unused_self))]
    pub(crate) fn returned(&self, attempts: u32) {
        #[cfg(feature = "metrics")]
        {
            self.done.increment(1);
            self.per_request.record(f64::from(attempts));
        }
        let _ = attempts;
    }

    /// A retryable failure was returned instead of retried, for the reason `why`.
    #[cold]
    pub(crate) fn gave_up(&self, attempts: u32, why: GiveUp) {
        if why == GiveUp::Budget {
            self.budget_exhausted.fetch_add(1, Ordering::Relaxed);
        }
        #[cfg(feature = "metrics")]
        {
            self.gave_up.increment(1);
            self.per_request.record(f64::from(attempts));
            if why == GiveUp::Budget {
                self.exhausted.increment(1);
            }
        }
        #[cfg(feature = "tracing")]
        if why == GiveUp::Budget {
            tracing::warn!(retry = %self.name, attempts, "retry budget exhausted: returning the failed attempt");
        } else {
            tracing::debug!(retry = %self.name, attempts, reason = ?why, "not retrying");
        }
        let _ = attempts;
    }

    /// A retry is decided: the event and the hook, before the wait. It is counted when it is
    /// sent ([`sent`](Self::sent)): one never sent (the deadline passed, the inner service
    /// failed to get ready, the caller dropped the future) is not a retry made.
    pub(crate) fn retry(&self, attempt: Attempt, reason: &'static str, delay: Duration) {
        #[cfg(feature = "tracing")]
        tracing::info!(
            retry = %self.name,
            attempt = attempt.number(),
            reason,
            delay_ms = delay.as_millis() as u64,
            "retrying"
        );
        if let Some(hook) = &self.on_retry {
            hook(&RetryEvent {
                name: &self.name,
                attempt,
                reason,
                delay,
            });
        }
    }

    /// A retry is sent: the attempt before it ends as `retried`.
    #[cold]
    pub(crate) fn sent(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.retried.increment(1);
    }
}

/// Counters of a [`RetryLayer`](crate::RetryLayer), shared by all its clones and services:
/// from [`RetryLayer::stats`](crate::RetryLayer::stats). Updated only when a request fails in
/// a retryable way, never on the success path.
#[derive(Clone)]
pub struct Stats {
    pub(crate) shared: Arc<crate::config::Shared>,
}

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stats")
            .field("retries", &self.retries())
            .field("budget_exhausted", &self.budget_exhausted())
            .finish()
    }
}

impl Stats {
    /// Retries sent so far (attempts after the first). A retry decided but never sent (the
    /// deadline passed while the inner service got ready, the caller dropped the request
    /// during the wait) is not counted.
    pub fn retries(&self) -> u64 {
        self.shared.observer.retries.load(Ordering::Relaxed)
    }

    /// Retries refused because the retry budget was spent.
    pub fn budget_exhausted(&self) -> u64 {
        self.shared
            .observer
            .budget_exhausted
            .load(Ordering::Relaxed)
    }
}
