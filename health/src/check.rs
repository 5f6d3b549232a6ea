//! The [`Check`] trait and closure checks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{IntoOutcome, Outcome};

/// An asynchronous health check.
///
/// Checks run in the background on their interval (see
/// [`HealthCheck`](crate::HealthCheck)); probes answer from the cached result, so a
/// check may do real I/O (ping a database, connect to a port) without a probe storm
/// ever reaching the dependency.
///
/// A check that hangs is cancelled at its timeout and reports `fail`; a check that
/// panics reports `fail` and runs again at its next interval. Blocking work belongs in
/// [`tokio::task::spawn_blocking`]: a check that blocks its thread cannot be cancelled.
///
/// ```
/// use palisade_health::{Check, Outcome};
///
/// struct QueueDepth;
///
/// impl Check for QueueDepth {
///     async fn check(&self) -> Outcome {
///         let depth = 12; // read it from somewhere
///         let outcome = if depth < 1000 { Outcome::pass() } else { Outcome::warn("queue is backing up") };
///         outcome.observed(depth, "messages")
///     }
/// }
/// ```
pub trait Check: Send + Sync + 'static {
    /// Runs the check once.
    fn check(&self) -> impl Future<Output = Outcome> + Send;

    /// Resolves when the result may have changed, so the check runs at once instead of
    /// at its next interval (it still runs on its interval too). The default never
    /// resolves. [`BreakerCheck`](crate::checks::BreakerCheck) uses it to report a
    /// breaker's transition immediately.
    ///
    /// Resolve only on a real change: the runner calls it again after every run, so a
    /// future that is always ready would run the check in a loop.
    fn changed(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
}

impl<T: Check> Check for Arc<T> {
    fn check(&self) -> impl Future<Output = Outcome> + Send {
        T::check(self)
    }

    fn changed(&self) -> impl Future<Output = ()> + Send {
        T::changed(self)
    }
}

/// A boxed future, as the registry stores checks behind `dyn`.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Object-safe form of [`Check`], implemented for every `Check`.
pub(crate) trait DynCheck: Send + Sync + 'static {
    fn run(&self) -> BoxFuture<'_, Outcome>;
    fn changed(&self) -> BoxFuture<'_, ()>;
}

impl<T: Check> DynCheck for T {
    fn run(&self) -> BoxFuture<'_, Outcome> {
        Box::pin(self.check())
    }

    fn changed(&self) -> BoxFuture<'_, ()> {
        Box::pin(Check::changed(self))
    }
}

/// A check made from a closure that returns a future; see [`check_fn`].
#[derive(Clone)]
pub struct FnCheck<F> {
    f: F,
}

impl<F> fmt::Debug for FnCheck<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnCheck").finish_non_exhaustive()
    }
}

/// Makes a [`Check`] from a closure returning a future whose output implements
/// [`IntoOutcome`] — an [`Outcome`], a `Result<(), E: Display>`, a `bool`, …
///
/// ```
/// use palisade_health::{check_fn, HealthCheck};
///
/// # async fn ping() -> Result<(), std::io::Error> { Ok(()) }
/// let db = HealthCheck::readiness("db", check_fn(|| async { ping().await }));
/// ```
pub fn check_fn<F, Fut>(f: F) -> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoOutcome,
{
    FnCheck { f }
}

impl<F, Fut> Check for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoOutcome,
{
    async fn check(&self) -> Outcome {
        (self.f)().await.into_outcome()
    }
}
