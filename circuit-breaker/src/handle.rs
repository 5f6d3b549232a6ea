//! Reading and steering a breaker at run time.

use std::fmt;
use std::sync::Arc as StdArc;
use std::time::Duration;

use tokio::sync::watch;

use crate::State;
use crate::breaker::Core;
use crate::sync::Arc;

/// A cheap-to-clone handle on one breaker, shared with every clone of its layer and
/// service: read its state and statistics, steer it by hand, and watch its transitions.
///
/// Time-driven transitions (open to half-open once `wait_duration` has passed, an expired
/// half-open lease) happen on the next call, or on the next [`state`](Self::state) or
/// [`stats`](Self::stats) read through a handle, whichever comes first.
#[derive(Clone)]
pub struct CircuitBreakerHandle {
    pub(crate) core: Arc<Core>,
}

impl CircuitBreakerHandle {
    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The breaker's state now.
    pub fn state(&self) -> State {
        self.core.state()
    }

    /// How long until an open breaker admits a trial call; `None` unless it is
    /// [`State::Open`].
    pub fn retry_after(&self) -> Option<Duration> {
        self.core.retry_after()
    }

    /// A snapshot of the window and of the cumulative counters.
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// Rejects every call until [`force_closed`](Self::force_closed),
    /// [`disable`](Self::disable) or [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.core.command(State::ForcedOpen, false);
    }

    /// Back to [`State::Closed`] with an empty window, automatic transitions resumed. The
    /// wait's growth on re-opens carries on from where it was; see [`reset`](Self::reset).
    pub fn force_closed(&self) {
        self.core.command(State::Closed, false);
    }

    /// Admits every call and keeps recording outcomes, but never trips, until
    /// [`force_closed`](Self::force_closed), [`force_open`](Self::force_open) or
    /// [`reset`](Self::reset).
    pub fn disable(&self) {
        self.core.command(State::Disabled, false);
    }

    /// Back to the initial state: [`State::Closed`], an empty window, and the next open
    /// waits the base `wait_duration`.
    pub fn reset(&self) {
        self.core.command(State::Closed, true);
    }

    /// A receiver that sees every state the breaker enters (the latest one, if several
    /// transitions happen between two reads).
    pub fn subscribe(&self) -> watch::Receiver<State> {
        self.core.subscribe()
    }
}

impl fmt::Debug for CircuitBreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerHandle")
            .field("name", &self.name())
            .field("state", &self.core.state())
            .finish()
    }
}

/// A snapshot of a breaker's window and counters, from [`CircuitBreakerHandle::stats`].
///
/// `calls`, `failures` and `slow_calls` describe the current window (while half-open: the
/// completed trial calls); the `total_*` counters count since the breaker was built.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// The state when the snapshot was taken.
    pub state: State,
    /// Calls in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub failures: u64,
    /// Slow calls in the window.
    pub slow_calls: u64,
    /// `failures / calls` in percent (0 for an empty window).
    pub failure_rate: f64,
    /// `slow_calls / calls` in percent (0 for an empty window).
    pub slow_call_rate: f64,
    /// Failures since the last success (counted when `consecutive_failures` is set).
    pub consecutive_failures: u64,
    /// Calls recorded (successes and failures) since the breaker was built. With the
    /// default count window, calls are counted when admitted (so this includes calls in
    /// flight); with the exact and time windows, when they end.
    pub total_calls: u64,
    /// Failures recorded since the breaker was built.
    pub total_failures: u64,
    /// Slow calls recorded since the breaker was built.
    pub total_slow_calls: u64,
    /// Calls classified [`Outcome::Ignored`](crate::Outcome::Ignored) since the breaker was built.
    pub total_ignored: u64,
    /// Calls rejected since the breaker was built.
    pub total_rejected: u64,
}

/// A state change, passed to the [`on_state_change`](crate::Builder::on_state_change) hook.
#[derive(Debug, Clone)]
pub struct Transition {
    breaker: StdArc<str>,
    from: State,
    to: State,
    failure_rate: f64,
    slow_call_rate: f64,
}

impl Transition {
    pub(crate) fn new(
        breaker: StdArc<str>,
        from: State,
        to: State,
        failure_rate: f64,
        slow_call_rate: f64,
    ) -> Self {
        Transition {
            breaker,
            from,
            to,
            failure_rate,
            slow_call_rate,
        }
    }

    /// The breaker's name.
    pub fn breaker(&self) -> &str {
        &self.breaker
    }

    /// The state left.
    pub fn from(&self) -> State {
        self.from
    }

    /// The state entered.
    pub fn to(&self) -> State {
        self.to
    }

    /// The failure rate (percent) that decided the transition: the window's when
    /// tripping, the trial calls' when leaving half-open, 0 for a manual command.
    pub fn failure_rate(&self) -> f64 {
        self.failure_rate
    }

    /// The slow-call rate (percent) that decided the transition, as for
    /// [`failure_rate`](Self::failure_rate).
    pub fn slow_call_rate(&self) -> f64 {
        self.slow_call_rate
    }
}
