//! Metrics (feature `metrics`) and tracing events (feature `tracing`).
//!
//! Metric handles are registered once, when the breaker is built, with their labels; the
//! hot path only increments them. Names and labels:
//!
//! ```text
//! palisade_circuit_breaker_state{breaker}                       gauge: 0 closed, 1 open, 2 half_open, 3 disabled, 4 forced_open
//! palisade_circuit_breaker_calls_total{breaker,outcome}         counter: outcome = success | failure | slow | ignored | rejected
//! palisade_circuit_breaker_transitions_total{breaker,from,to}   counter
//! ```
//!
//! A call is counted once: a slow call that succeeded counts as `slow`, a slow call that
//! failed as `failure`. Handles registered before a recorder is installed stay no-ops, so
//! install the recorder before building the layer.

use crate::State;

/// Metric name of the state gauge.
pub const STATE: &str = "palisade_circuit_breaker_state";
/// Metric name of the per-outcome call counter.
pub const CALLS_TOTAL: &str = "palisade_circuit_breaker_calls_total";
/// Metric name of the transition counter.
pub const TRANSITIONS_TOTAL: &str = "palisade_circuit_breaker_transitions_total";

/// The state gauge's value for `state`.
pub const fn state_value(state: State) -> f64 {
    match state {
        State::Closed => 0.0,
        State::Open => 1.0,
        State::HalfOpen => 2.0,
        State::Disabled => 3.0,
        State::ForcedOpen => 4.0,
    }
}

#[cfg(feature = "metrics")]
const STATES: [State; 5] = [
    State::Closed,
    State::Open,
    State::HalfOpen,
    State::Disabled,
    State::ForcedOpen,
];

#[cfg(feature = "metrics")]
fn state_index(state: State) -> usize {
    match state {
        State::Closed => 0,
        State::Open => 1,
        State::HalfOpen => 2,
        State::Disabled => 3,
        State::ForcedOpen => 4,
    }
}

/// The handles a breaker increments, registered once.
#[derive(Debug, Clone)]
pub(crate) struct Instruments {
    #[cfg(feature = "metrics")]
    inner: Handles,
    /// Whether a recorder was installed when the handles were registered.
    #[cfg(feature = "metrics")]
    active: bool,
}

#[cfg(feature = "metrics")]
#[derive(Debug, Clone)]
struct Handles {
    /// `transitions[from][to]`, indexed by [`state_index`].
    transitions: Vec<Vec<metrics::Counter>>,
    state: metrics::Gauge,
    success: metrics::Counter,
    failure: metrics::Counter,
    slow: metrics::Counter,
    ignored: metrics::Counter,
    rejected: metrics::Counter,
}

// Without the `metrics` feature every method is a no-op that never reads `self`.
#[cfg_attr(not(feature = "metrics"), allow(clippy::unused_self))]
impl Instruments {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(name: &std::sync::Arc<str>) -> Instruments {
        #[cfg(feature = "metrics")]
        {
            metrics::describe_gauge!(
                STATE,
                "Circuit breaker state: 0 closed, 1 open, 2 half_open, 3 disabled, 4 forced_open."
            );
            metrics::describe_counter!(
                CALLS_TOTAL,
                "Calls through the circuit breaker, by outcome (success, failure, slow, ignored, rejected)."
            );
            metrics::describe_counter!(
                TRANSITIONS_TOTAL,
                "Circuit breaker state transitions, by from and to state."
            );
            let label = name.to_string();
            let calls = |outcome: &'static str| metrics::counter!(CALLS_TOTAL, "breaker" => label.clone(), "outcome" => outcome);
            let transitions = STATES
                .iter()
                .map(|from| {
                    STATES
                        .iter()
                        .map(|to| {
                            metrics::counter!(
                                TRANSITIONS_TOTAL,
                                "breaker" => label.clone(),
                                "from" => from.as_str(),
                                "to" => to.as_str()
                            )
                        })
                        .collect()
                })
                .collect();
            let handles = Handles {
                transitions,
                state: metrics::gauge!(STATE, "breaker" => label.clone()),
                success: calls("success"),
                failure: calls("failure"),
                slow: calls("slow"),
                ignored: calls("ignored"),
                rejected: calls("rejected"),
            };
            handles.state.set(state_value(State::Closed));
            // The no-op recorder is a zero-sized type; any real recorder holds state.
            let active = metrics::with_recorder(|r| std::mem::size_of_val(r) != 0);
            Instruments {
                inner: handles,
                active,
            }
        }
        #[cfg(not(feature = "metrics"))]
        Instruments {}
    }

    /// Whether per-call counters are recorded (a recorder was installed at build time).
    pub(crate) fn active(&self) -> bool {
        #[cfg(feature = "metrics")]
        {
            self.active
        }
        #[cfg(not(feature = "metrics"))]
        false
    }

    #[inline]
    pub(crate) fn success(&self) {
        #[cfg(feature = "metrics")]
        self.inner.success.increment(1);
    }

    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn outcome(&self, failure: bool, slow: bool) {
        #[cfg(feature = "metrics")]
        if failure {
            self.inner.failure.increment(1);
        } else if slow {
            self.inner.slow.increment(1);
        } else {
            self.inner.success.increment(1);
        }
    }

    #[inline]
    pub(crate) fn ignored(&self) {
        #[cfg(feature = "metrics")]
        self.inner.ignored.increment(1);
    }

    #[inline]
    pub(crate) fn rejected(&self) {
        #[cfg(feature = "metrics")]
        self.inner.rejected.increment(1);
    }

    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn transition(&self, from: State, to: State) {
        #[cfg(feature = "metrics")]
        {
            self.inner.state.set(state_value(to));
            self.inner.transitions[state_index(from)][state_index(to)].increment(1);
        }
    }
}

/// Emits the `tracing` event for a transition.
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn transition_event(t: &crate::Transition) {
    #[cfg(feature = "tracing")]
    {
        let (name, from, to) = (t.breaker(), t.from().as_str(), t.to().as_str());
        let (failure_rate, slow_call_rate) = (t.failure_rate(), t.slow_call_rate());
        if matches!(t.to(), State::Open | State::ForcedOpen) {
            tracing::warn!(
                target: "palisade_circuit_breaker",
                breaker = name, from, to, failure_rate, slow_call_rate,
                "circuit breaker opened"
            );
        } else {
            tracing::info!(
                target: "palisade_circuit_breaker",
                breaker = name, from, to, failure_rate, slow_call_rate,
                "circuit breaker state changed"
            );
        }
    }
}
