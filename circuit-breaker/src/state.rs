//! The breaker's states.

use std::fmt;

/// The state of a circuit breaker.
///
/// `Closed`, `Open` and `HalfOpen` are the automatic states driven by call outcomes.
/// `Disabled` and `ForcedOpen` are set by hand through the handle and stay until changed:
/// `Disabled` admits every call (outcomes are still recorded, so the statistics stay
/// meaningful), `ForcedOpen` rejects every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls pass through; outcomes are recorded in the window.
    Closed,
    /// Calls are rejected until the wait duration has passed.
    Open,
    /// A limited number of trial calls pass; their outcome closes or re-opens the breaker.
    HalfOpen,
    /// Set by hand: every call passes, outcomes are recorded, no transition happens.
    Disabled,
    /// Set by hand: every call is rejected.
    ForcedOpen,
}

impl State {
    /// The state's name in `snake_case`, as used in metric labels and tracing events.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::Disabled => "disabled",
            State::ForcedOpen => "forced_open",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
