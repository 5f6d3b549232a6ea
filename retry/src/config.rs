//! The retry layer's builder and validated configuration.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::backoff::{Backoff, Jitter};
use crate::budget::{Budget, BudgetState};
use crate::observe::{Hook, Observer, RetryEvent};
use crate::{ConfigError, RetryLayer};

/// The per-request settings, copied into each service clone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) jitter: Jitter,
    pub(crate) max_delay: Duration,
    pub(crate) max_elapsed: Option<Duration>,
}

/// State shared by every clone of a layer and its services.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) budget: Option<BudgetState>,
    pub(crate) seed: Option<AtomicU64>,
    pub(crate) observer: Observer,
}

/// Builds a [`RetryLayer`]: `RetryLayer::builder(name, policy)`.
///
/// # Default
/// - `max_attempts`: 3 (the first attempt and two retries)
/// - `backoff`: exponential, 100 ms doubling
/// - `jitter`: full
/// - `max_delay`: 10 s (cap on any single wait)
/// - `max_elapsed`: none (no deadline across attempts)
/// - `budget`: 20 % of requests plus 10 retries per second over 10 s
/// - `seed`: none (jitter from a thread-local generator)
/// - `attempt_timeout`: none
///
/// `T` is [`NoTimeout`], or [`AttemptTimeout`] after [`attempt_timeout`](Self::attempt_timeout).
#[must_use]
#[derive(Clone)]
pub struct Builder<P, T = NoTimeout> {
    name: Arc<str>,
    policy: P,
    config: Config,
    budget: Option<Budget>,
    seed: Option<u64>,
    on_retry: Option<Hook>,
    timeout: T,
}

/// No per-attempt timeout: the layer's services keep the inner service's error type.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTimeout;

/// A per-attempt timeout: the layer puts tower's `Timeout` between the retry loop and the
/// inner service, so its services return `BoxError`, and a timed-out attempt (tower's
/// `Elapsed`) is retried by the HTTP and gRPC policies. Set with
/// [`Builder::attempt_timeout`].
#[derive(Debug, Clone, Copy)]
pub struct AttemptTimeout(pub(crate) Duration);

impl<P: fmt::Debug, T: fmt::Debug> fmt::Debug for Builder<P, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .field("config", &self.config)
            .field("budget", &self.budget)
            .field("seed", &self.seed)
            .field("on_retry", &self.on_retry.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<P> Builder<P> {
    pub(crate) fn new(name: impl Into<Arc<str>>, policy: P) -> Self {
        Self {
            name: name.into(),
            policy,
            config: Config {
                max_attempts: 3,
                backoff: Backoff::default(),
                jitter: Jitter::Full,
                max_delay: Duration::from_secs(10),
                max_elapsed: None,
            },
            budget: Some(Budget::default()),
            seed: None,
            on_retry: None,
            timeout: NoTimeout,
        }
    }

    /// Bounds each attempt to `timeout` (1 ms..=1 day): the layer wraps the inner service in
    /// tower's `Timeout`, so the services it makes return `BoxError` (the inner error boxed,
    /// or tower's `Elapsed`), and a timed-out attempt is retried like a failed one. With a
    /// deadline ([`max_elapsed`](Self::max_elapsed)), the whole call then lasts at most
    /// `max_elapsed + timeout`. Defaults to none.
    pub fn attempt_timeout(self, timeout: Duration) -> Builder<P, AttemptTimeout> {
        Builder {
            name: self.name,
            policy: self.policy,
            config: self.config,
            budget: self.budget,
            seed: self.seed,
            on_retry: self.on_retry,
            timeout: AttemptTimeout(timeout),
        }
    }
}

impl<P, T: TimeoutKind> Builder<P, T> {
    /// Attempts in total, the first included (1..=100). Defaults to 3.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts;
        self
    }

    /// The backoff schedule. Defaults to exponential, 100 ms doubling.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// The jitter. Defaults to [`Jitter::Full`].
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.config.jitter = jitter;
        self
    }

    /// The longest single wait, server hints included (1 ms..=1 day). Defaults to 10 s.
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.config.max_delay = max;
        self
    }

    /// A deadline across all attempts and waits, from the call: a retry whose wait would end
    /// after it is not made, and the last result is returned; so is the last result when the
    /// inner service is still not ready to take a retry at the deadline (a concurrency limit,
    /// a full buffer). To return it, a failed result is kept (with whatever its body holds
    /// open) until its retry is sent; without a deadline it is dropped when the retry is
    /// decided. Reading the clock costs about 30 ns per call, so this is off by default.
    ///
    /// The layer adds no error of its own, so it does not cut an attempt in flight: bound each
    /// attempt with a per-attempt timeout *inside* the retry layer, e.g.
    /// `ServiceBuilder::new().layer(retry).timeout(per_try)` (tower's `TimeoutLayer`, whose
    /// `Elapsed` the HTTP policy retries, and the gRPC policy for methods declared
    /// idempotent). Then the whole call lasts at most `max_elapsed + per_try`.
    pub fn max_elapsed(mut self, max: Duration) -> Self {
        self.config.max_elapsed = Some(max);
        self
    }

    /// The retry budget, shared by all clones. Defaults to [`Budget::default`].
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// No retry budget: only `max_attempts` limits retries. Not recommended in production.
    pub fn without_budget(mut self) -> Self {
        self.budget = None;
        self
    }

    /// Seeds the jitter's random generator, so runs are reproducible (tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Called when a retry is decided, before its wait, with the attempt, the reason and the
    /// delay. A retry decided may still not be sent: the deadline passes while the inner
    /// service gets ready, the caller drops the request, or a body the failed attempt still
    /// held is not let go during the wait ([`Stats::retries`](crate::Stats::retries) counts
    /// only those sent).
    pub fn on_retry(mut self, hook: impl Fn(&RetryEvent<'_>) + Send + Sync + 'static) -> Self {
        self.on_retry = Some(Arc::new(hook));
        self
    }

    /// Validates the settings and builds the layer.
    ///
    /// # Errors
    /// - `max_attempts` outside 1..=100;
    /// - `max_delay` outside 1 ms..=1 day;
    /// - `max_elapsed` of zero;
    /// - `backoff` exponential with a factor below 1.0, NaN or infinite;
    /// - `budget` with a ratio outside 0.0..=1.0 or a window outside 100 ms..=1 h;
    /// - `attempt_timeout` outside 1 ms..=1 day.
    pub fn build(self) -> Result<RetryLayer<P, T>, ConfigError> {
        self.timeout.validate()?;
        let c = &self.config;
        if !(1..=100).contains(&c.max_attempts) {
            return Err(ConfigError::new(
                "max_attempts",
                format!("must be in 1..=100, got {}", c.max_attempts),
            ));
        }
        if c.max_delay < Duration::from_millis(1) || c.max_delay > Duration::from_secs(86_400) {
            return Err(ConfigError::new(
                "max_delay",
                format!("must be in 1ms..=1day, got {:?}", c.max_delay),
            ));
        }
        if c.max_elapsed == Some(Duration::ZERO) {
            return Err(ConfigError::new("max_elapsed", "must be greater than zero"));
        }
        c.backoff.validate()?;
        if let Some(b) = &self.budget {
            b.validate()?;
        }
        let shared = Shared {
            budget: self.budget.as_ref().map(BudgetState::new),
            seed: self.seed.map(AtomicU64::new),
            observer: Observer::new(self.name, self.on_retry),
        };
        Ok(RetryLayer::from_parts(
            self.policy,
            self.config,
            Arc::new(shared),
            self.timeout,
        ))
    }
}

/// Whether a layer bounds its attempts: [`NoTimeout`] or [`AttemptTimeout`].
pub trait TimeoutKind: Clone + fmt::Debug {
    #[doc(hidden)]
    fn validate(&self) -> Result<(), ConfigError>;
}

impl TimeoutKind for NoTimeout {
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

impl TimeoutKind for AttemptTimeout {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.0 < Duration::from_millis(1) || self.0 > Duration::from_secs(86_400) {
            return Err(ConfigError::new(
                "attempt_timeout",
                format!("must be in 1ms..=1day, got {:?}", self.0),
            ));
        }
        Ok(())
    }
}
