//! Configuration: the builder, its defaults and its validation.
//!
//! Every setting is validated in one place, [`Builder::build`], which returns a
//! [`ConfigError`] naming the field and its allowed range instead of panicking.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::classify::{ErrorsAsFailures, Outcome};
use crate::error::ConfigError;
use crate::fallback::NoFallback;
use crate::handle::Transition;
use crate::layer::CircuitBreakerLayer;

/// Which recent calls the failure and slow-call rates are computed over.
///
/// | window | what it holds | cost per call | scales across threads |
/// |---|---|---|---|
/// | [`count`](Self::count) (default) | the last `n` calls, in 10 buckets of `n / 10` | a plain store to the service clone's own counter stripe | yes |
/// | [`exact_count`](Self::exact_count) | exactly the last `n` calls | a shared sequence number and a ring slot per call | no: every call writes shared words |
/// | [`time`](Self::time) | the calls of the last `duration`, in `buckets` buckets | one clock read per call, and atomic adds on the stripe | yes |
///
/// **Trade-off.** An exact "last `n` calls" window must give every call a place in one
/// global order, which costs a write to a shared word per call; with many threads on one
/// breaker those writes serialise. The default [`count`](Self::count) window keeps
/// successes in per-clone counter stripes and only places failures and slow calls (the
/// calls that can trip the breaker) in position buckets, so a success touches no shared
/// word; the price is that calls leave the window a bucket (`n / 10` calls) at a time.
/// The [`time`](Self::time) window is the usual choice for services with a steady rate:
/// old calls leave it as time passes, one bucket at a time.
///
/// **When a call counts.** The default count window counts a call when it is admitted
/// and adds what it turned out to be (failed, slow) when it ends; a call that ends
/// [`Ignored`](crate::Outcome::Ignored) or cancelled is taken out again. So calls still in
/// flight count as calls (not yet failed) towards `minimum_calls` and the rates: under
/// concurrency the failure rate is computed over admitted calls, which can only
/// understate it until the in-flight calls end. Sequentially this is the same as counting
/// calls when they end, which is what the exact and time windows do (the time window
/// places each call in the bucket of its end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindow(pub(crate) WindowKind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowKind {
    Count { size: u64 },
    ExactCount { size: u64 },
    Time { duration: Duration, buckets: u32 },
}

impl SlidingWindow {
    /// The last `size` calls, counted in buckets of `ceil(size / 10)` calls (one call per
    /// bucket when `size <= 10`): the oldest bucket leaves as a whole, so the window holds
    /// the last `size` calls give or take one bucket. Scales across threads; the default
    /// (`count(100)`).
    pub const fn count(size: u64) -> Self {
        SlidingWindow(WindowKind::Count { size })
    }

    /// Exactly the last `size` calls, in a ring of outcome slots. Every call writes a
    /// shared sequence number, so many threads on one breaker contend (see the table above).
    pub const fn exact_count(size: u64) -> Self {
        SlidingWindow(WindowKind::ExactCount { size })
    }

    /// The calls that completed in the last `duration`, in `buckets` equal buckets: the
    /// oldest bucket leaves the window as a whole when time enters a new bucket. Reads the
    /// clock once per call.
    pub const fn time(duration: Duration, buckets: u32) -> Self {
        SlidingWindow(WindowKind::Time { duration, buckets })
    }
}

impl Default for SlidingWindow {
    fn default() -> Self {
        SlidingWindow::count(100)
    }
}

/// Validated settings shared by every clone of a breaker.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) window: WindowKind,
    pub(crate) minimum_calls: u64,
    pub(crate) failure_rate_threshold: Option<f64>,
    pub(crate) slow_call_rate_threshold: f64,
    pub(crate) slow_call_duration: Option<Duration>,
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) wait_duration: Duration,
    pub(crate) wait_duration_multiplier: f64,
    pub(crate) max_wait_duration: Duration,
    pub(crate) wait_duration_jitter: f64,
    pub(crate) permitted_calls_in_half_open: u32,
    pub(crate) max_wait_in_half_open: Option<Duration>,
    pub(crate) cancelled_outcome: Outcome,
}

/// Hook called after every state transition.
pub(crate) type StateChangeHook = Arc<dyn Fn(&Transition) + Send + Sync>;

/// Builds a [`CircuitBreakerLayer`]; get one from [`CircuitBreakerLayer::builder`].
///
/// # Default
///
/// - `sliding_window`: [`SlidingWindow::count(100)`](SlidingWindow::count)
/// - `minimum_calls`: 20
/// - `failure_rate_threshold`: 50 (percent)
/// - `slow_call_duration`: none (slow-call detection off, the clock is not read)
/// - `slow_call_rate_threshold`: 100 (percent; used once `slow_call_duration` is set)
/// - `consecutive_failures`: none
/// - `wait_duration`: 30 s; `wait_duration_multiplier`: 1 (no growth);
///   `max_wait_duration`: 5 min; `wait_duration_jitter`: 0
/// - `permitted_calls_in_half_open`: 3
/// - `max_wait_in_half_open`: 60 s
/// - `cancelled_outcome`: [`Outcome::Ignored`]
/// - classifier: [`ErrorsAsFailures`]; fallback: none
#[must_use]
#[derive(Clone)]
pub struct Builder<C = ErrorsAsFailures, F = NoFallback> {
    name: String,
    config: Config,
    classifier: C,
    fallback: F,
    on_state_change: Option<StateChangeHook>,
}

impl<C: fmt::Debug, F: fmt::Debug> fmt::Debug for Builder<C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("classifier", &self.classifier)
            .field("fallback", &self.fallback)
            .field("on_state_change", &self.on_state_change.is_some())
            .finish()
    }
}

impl Builder {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Builder {
            name: name.into(),
            config: Config {
                window: SlidingWindow::default().0,
                minimum_calls: 20,
                failure_rate_threshold: Some(50.0),
                slow_call_rate_threshold: 100.0,
                slow_call_duration: None,
                consecutive_failures: None,
                wait_duration: Duration::from_secs(30),
                wait_duration_multiplier: 1.0,
                max_wait_duration: Duration::from_secs(300),
                wait_duration_jitter: 0.0,
                permitted_calls_in_half_open: 3,
                max_wait_in_half_open: Some(Duration::from_secs(60)),
                cancelled_outcome: Outcome::Ignored,
            },
            classifier: ErrorsAsFailures,
            fallback: NoFallback,
            on_state_change: None,
        }
    }
}

impl<C, F> Builder<C, F> {
    /// The window the rates are computed over. Defaults to
    /// [`SlidingWindow::count(100)`](SlidingWindow::count).
    pub fn sliding_window(mut self, window: SlidingWindow) -> Self {
        self.config.window = window.0;
        self
    }

    /// How many calls the window must hold before the rates can trip the breaker.
    /// Defaults to 20.
    pub fn minimum_calls(mut self, calls: u64) -> Self {
        self.config.minimum_calls = calls;
        self
    }

    /// Trip when at least this percentage of the calls in the window failed, in
    /// `(0, 100]`. Defaults to 50.
    pub fn failure_rate_threshold(mut self, percent: f64) -> Self {
        self.config.failure_rate_threshold = Some(percent);
        self
    }

    /// Never trip on the failure rate (trip only on slow calls or consecutive failures).
    /// In half-open, any failed trial then re-opens the breaker.
    pub fn without_failure_rate_threshold(mut self) -> Self {
        self.config.failure_rate_threshold = None;
        self
    }

    /// A call that takes longer than this is slow. Setting it turns slow-call detection on,
    /// which reads the clock when a call starts and when it ends. Defaults to none.
    pub fn slow_call_duration(mut self, duration: Duration) -> Self {
        self.config.slow_call_duration = Some(duration);
        self
    }

    /// Trip when at least this percentage of the calls in the window were slow, in
    /// `(0, 100]`; only used with [`slow_call_duration`](Self::slow_call_duration).
    /// Defaults to 100.
    pub fn slow_call_rate_threshold(mut self, percent: f64) -> Self {
        self.config.slow_call_rate_threshold = percent;
        self
    }

    /// Also trip after this many failures in a row, whatever the window holds.
    /// Defaults to none.
    pub fn consecutive_failures(mut self, failures: u32) -> Self {
        self.config.consecutive_failures = Some(failures);
        self
    }

    /// How long the breaker stays open before it lets trial calls through. Defaults to 30 s.
    pub fn wait_duration(mut self, duration: Duration) -> Self {
        self.config.wait_duration = duration;
        self
    }

    /// Each re-open without a successful close in between multiplies the wait by this,
    /// up to [`max_wait_duration`](Self::max_wait_duration). In `[1, 1000]`; defaults to 1.
    pub fn wait_duration_multiplier(mut self, multiplier: f64) -> Self {
        self.config.wait_duration_multiplier = multiplier;
        self
    }

    /// The cap on the grown wait. At least `wait_duration`; defaults to 5 minutes.
    pub fn max_wait_duration(mut self, duration: Duration) -> Self {
        self.config.max_wait_duration = duration;
        self
    }

    /// Spreads each wait uniformly over `wait * (1 ± jitter)` (never above the cap), so
    /// that many clients do not probe a recovering service at the same instant.
    /// In `[0, 1]`; defaults to 0.
    pub fn wait_duration_jitter(mut self, jitter: f64) -> Self {
        self.config.wait_duration_jitter = jitter;
        self
    }

    /// How many trial calls half-open admits; their outcome closes or re-opens the
    /// breaker. In `[1, 1000]`; defaults to 3.
    pub fn permitted_calls_in_half_open(mut self, calls: u32) -> Self {
        self.config.permitted_calls_in_half_open = calls;
        self
    }

    /// The lease on half-open trial calls: a trial still running this long after the
    /// breaker half-opened counts as failed, its permit is reclaimed and its late outcome
    /// is ignored. Defaults to 60 s.
    pub fn max_wait_in_half_open(mut self, duration: Duration) -> Self {
        self.config.max_wait_in_half_open = Some(duration);
        self
    }

    /// Never reclaim half-open trial permits: a trial that never finishes (and is never
    /// dropped) keeps the breaker half-open.
    pub fn without_max_wait_in_half_open(mut self) -> Self {
        self.config.max_wait_in_half_open = None;
        self
    }

    /// What a call whose response future is dropped before completing counts as:
    /// [`Outcome::Ignored`] (the default: nothing is recorded, a half-open permit is
    /// given back) or [`Outcome::Failure`].
    ///
    /// A timeout *outside* the breaker cancels the breaker's future, so with the default
    /// its timeouts are not failures; put the per-try timeout *inside* the breaker
    /// (`ServiceBuilder::new().layer(breaker).layer(TimeoutLayer::new(d))`) so that it
    /// returns an error the breaker counts, or count cancellations as failures here.
    pub fn cancelled_outcome(mut self, outcome: Outcome) -> Self {
        self.config.cancelled_outcome = outcome;
        self
    }

    /// Called after every state transition, outside the breaker's internal lock.
    pub fn on_state_change(mut self, hook: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.on_state_change = Some(Arc::new(hook));
        self
    }

    /// Decides what counts as a failure: any [`Classify`](crate::Classify) implementation,
    /// for example [`classify_fn`](crate::classify_fn) or (feature `http`)
    /// `HttpClassifier`.
    pub fn with_classifier<C2>(self, classifier: C2) -> Builder<C2, F> {
        Builder {
            name: self.name,
            config: self.config,
            classifier,
            fallback: self.fallback,
            on_state_change: self.on_state_change,
        }
    }

    /// Answers rejected calls with this fallback instead of a [`CircuitOpen`] error; see
    /// [`Fallback`](crate::Fallback).
    ///
    /// [`CircuitOpen`]: crate::error::CircuitOpen
    pub fn with_fallback<F2>(self, fallback: F2) -> Builder<C, F2> {
        Builder {
            name: self.name,
            config: self.config,
            classifier: self.classifier,
            fallback,
            on_state_change: self.on_state_change,
        }
    }

    /// Validates the settings and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field when:
    /// - `name` is empty or longer than 256 bytes;
    /// - the window size is 0 or above 1 000 000 (`exact_count`: above 100 000), the time
    ///   window's duration is 0 or above 30 days, its bucket count is 0 or above 1000, or a
    ///   bucket would be shorter than 1 ms;
    /// - `minimum_calls` is 0, or larger than a count window's size;
    /// - `failure_rate_threshold` or `slow_call_rate_threshold` is not in `(0, 100]`
    ///   (NaN included);
    /// - `slow_call_duration` is 0;
    /// - `consecutive_failures` is 0;
    /// - `wait_duration` is 0, `max_wait_duration` is below it,
    ///   `wait_duration_multiplier` is not in `[1, 1000]` or `wait_duration_jitter` not in
    ///   `[0, 1]`;
    /// - `permitted_calls_in_half_open` is not in `[1, 1000]`;
    /// - `max_wait_in_half_open` is 0;
    /// - `cancelled_outcome` is [`Outcome::Success`];
    /// - no trip condition is left (`without_failure_rate_threshold` with neither
    ///   `slow_call_duration` nor `consecutive_failures`).
    pub fn build(self) -> Result<CircuitBreakerLayer<C, F>, ConfigError> {
        let config = validate(&self.name, self.config)?;
        Ok(CircuitBreakerLayer::from_parts(
            self.name,
            config,
            self.classifier,
            self.fallback,
            self.on_state_change,
        ))
    }

    pub(crate) fn into_parts(self) -> (String, Config, C, F, Option<StateChangeHook>) {
        (
            self.name,
            self.config,
            self.classifier,
            self.fallback,
            self.on_state_change,
        )
    }
}

fn percent(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if value > 0.0 && value <= 100.0 {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("must be a percentage in (0, 100], got {value}"),
        ))
    }
}

fn positive(field: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        Err(ConfigError::new(field, "must be greater than 0, got 0"))
    } else {
        Ok(())
    }
}

pub(crate) fn validate(name: &str, config: Config) -> Result<Config, ConfigError> {
    if name.is_empty() || name.len() > 256 {
        return Err(ConfigError::new(
            "name",
            format!("must be 1 to 256 bytes long, got {}", name.len()),
        ));
    }
    match config.window {
        WindowKind::Count { size } if size == 0 || size > 1_000_000 => {
            return Err(ConfigError::new(
                "sliding_window",
                format!("count window size must be in [1, 1000000], got {size}"),
            ));
        }
        WindowKind::ExactCount { size } if size == 0 || size > 100_000 => {
            return Err(ConfigError::new(
                "sliding_window",
                format!("exact count window size must be in [1, 100000], got {size}"),
            ));
        }
        WindowKind::Time { duration, buckets } => {
            if buckets == 0 || buckets > 1000 {
                return Err(ConfigError::new(
                    "sliding_window",
                    format!("time window buckets must be in [1, 1000], got {buckets}"),
                ));
            }
            if duration > Duration::from_secs(30 * 24 * 3600) {
                return Err(ConfigError::new(
                    "sliding_window",
                    format!("time window duration must be at most 30 days, got {duration:?}"),
                ));
            }
            if duration / buckets < Duration::from_millis(1) {
                return Err(ConfigError::new(
                    "sliding_window",
                    format!(
                        "time window buckets must be at least 1ms long, got {duration:?} / {buckets}"
                    ),
                ));
            }
        }
        _ => {}
    }
    if config.minimum_calls == 0 {
        return Err(ConfigError::new(
            "minimum_calls",
            "must be at least 1, got 0",
        ));
    }
    if let WindowKind::Count { size } | WindowKind::ExactCount { size } = config.window
        && config.minimum_calls > size
    {
        return Err(ConfigError::new(
            "minimum_calls",
            format!(
                "must be in [1, {size}] (the count window's size), got {}",
                config.minimum_calls
            ),
        ));
    }
    if let Some(t) = config.failure_rate_threshold {
        percent("failure_rate_threshold", t)?;
    }
    percent("slow_call_rate_threshold", config.slow_call_rate_threshold)?;
    if let Some(d) = config.slow_call_duration {
        positive("slow_call_duration", d)?;
    }
    if config.consecutive_failures == Some(0) {
        return Err(ConfigError::new(
            "consecutive_failures",
            "must be at least 1, got 0",
        ));
    }
    positive("wait_duration", config.wait_duration)?;
    let m = config.wait_duration_multiplier;
    if !(1.0..=1000.0).contains(&m) {
        return Err(ConfigError::new(
            "wait_duration_multiplier",
            format!("must be in [1, 1000], got {m}"),
        ));
    }
    if config.max_wait_duration < config.wait_duration {
        return Err(ConfigError::new(
            "max_wait_duration",
            format!(
                "must be at least wait_duration ({:?}), got {:?}",
                config.wait_duration, config.max_wait_duration
            ),
        ));
    }
    let j = config.wait_duration_jitter;
    if !(0.0..=1.0).contains(&j) {
        return Err(ConfigError::new(
            "wait_duration_jitter",
            format!("must be in [0, 1], got {j}"),
        ));
    }
    let p = config.permitted_calls_in_half_open;
    if !(1..=1000).contains(&p) {
        return Err(ConfigError::new(
            "permitted_calls_in_half_open",
            format!("must be in [1, 1000], got {p}"),
        ));
    }
    if let Some(d) = config.max_wait_in_half_open {
        positive("max_wait_in_half_open", d)?;
    }
    if config.cancelled_outcome == Outcome::Success {
        return Err(ConfigError::new(
            "cancelled_outcome",
            "must be Outcome::Ignored or Outcome::Failure, got Outcome::Success",
        ));
    }
    if config.failure_rate_threshold.is_none()
        && config.slow_call_duration.is_none()
        && config.consecutive_failures.is_none()
    {
        return Err(ConfigError::new(
            "failure_rate_threshold",
            "is the only trip condition and cannot be removed unless slow_call_duration or consecutive_failures is set",
        ));
    }
    Ok(config)
}
