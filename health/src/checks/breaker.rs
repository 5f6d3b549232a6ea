use std::time::Duration;

use palisade_circuit_breaker::CircuitBreakerHandle;
use palisade_circuit_breaker::State;

use crate::{Check, HealthCheck, Outcome, Status};

/// Reports a `palisade-circuit-breaker` breaker's state as a readiness check, with the
/// state (`closed`, `open`, `half_open`, `disabled`, `forced_open`) as `observedValue`.
///
/// `closed` and `disabled` pass, `half_open` warns, and `open`/`forced_open` report
/// [`open_status`](Self::open_status): `warn` by default, because an open breaker
/// towards one dependency usually means this service can still do useful work (and
/// answers fast with a fallback); make it `fail` when the dependency is essential.
///
/// Reading the state is one atomic load, so a short interval costs nothing; besides its
/// interval, the check also runs on every transition of the breaker, so readiness and
/// gRPC `Watch` follow it at once.
///
/// ```
/// use palisade_circuit_breaker::CircuitBreakerLayer;
/// use palisade_health::{HealthRegistry, Status, checks::BreakerCheck};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let breaker = CircuitBreakerLayer::builder("inventory").build()?;
/// let health = HealthRegistry::builder().build()?;
/// // Readiness check `inventory:state`, every second; open fails readiness.
/// health.register(BreakerCheck::new(breaker.handle()).open_status(Status::Fail).into_check())?;
/// # Ok(()) }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "circuit-breaker")))]
#[derive(Debug, Clone)]
pub struct BreakerCheck {
    handle: CircuitBreakerHandle,
    open_status: Status,
}

impl BreakerCheck {
    /// A check of the breaker behind `handle`.
    pub fn new(handle: CircuitBreakerHandle) -> Self {
        Self {
            handle,
            open_status: Status::Warn,
        }
    }

    /// What an open (or forced-open) breaker reports. Defaults to [`Status::Warn`].
    #[must_use]
    pub fn open_status(mut self, status: Status) -> Self {
        self.open_status = status;
        self
    }

    /// The status reported for a state.
    pub fn status_for(&self, state: State) -> Status {
        match state {
            State::Closed | State::Disabled => Status::Pass,
            State::Open | State::ForcedOpen => self.open_status,
            _ => Status::Warn,
        }
    }

    /// A readiness registration named after the breaker, with measurement `state`,
    /// checked every second (timeout 1 s). Adjust it like any [`HealthCheck`].
    pub fn into_check(self) -> HealthCheck {
        let name = self.handle.name().to_owned();
        HealthCheck::readiness(name, self)
            .measurement("state")
            .component_type("component")
            .interval(Duration::from_secs(1))
            .timeout(Duration::from_secs(1))
    }
}

impl Check for BreakerCheck {
    async fn check(&self) -> Outcome {
        let state = self.handle.state();
        let outcome = match self.status_for(state) {
            Status::Pass => Outcome::pass(),
            status => Outcome {
                status,
                output: Some(format!(
                    "circuit breaker {:?} is {state}",
                    self.handle.name()
                )),
                observed: None,
            },
        };
        outcome.observed(state.as_str(), "")
    }

    /// Resolves on the breaker's next transition, so readiness (and gRPC `Watch`)
    /// follows the breaker at once rather than at the next interval.
    async fn changed(&self) {
        let mut rx = self.handle.subscribe();
        if rx.changed().await.is_err() {
            // The breaker is gone: nothing will change any more.
            std::future::pending::<()>().await;
        }
    }
}
