//! The circuit breaker [`Service`].

use std::fmt;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::classify::{Classify, ErrorsAsFailures};
use crate::error::BoxError;
use crate::fallback::{Fallback, NoFallback};
use crate::future::ResponseFuture;
use crate::handle::CircuitBreakerHandle;
use crate::layer::CircuitBreakerLayer;
use crate::permit::Cell;
use crate::sync::Arc;

/// A service behind a circuit breaker; made by [`CircuitBreakerLayer`].
///
/// A call to a closed (or half-open, within its permits) breaker goes to the inner
/// service and its outcome is recorded. A call to an open breaker never reaches the inner
/// service: it fails at once with a [`CircuitOpen`](crate::error::CircuitOpen) error (or is
/// answered by the [`Fallback`]).
///
/// **`poll_ready` is the inner service's.** The breaker does not reject in `poll_ready`:
/// whether a call is admitted is decided in `call`, per call, because the state can change
/// between readiness and the call, and because a service that stayed "not ready" while open
/// would make callers such as `Buffer` or a balancer wait instead of failing fast. A
/// rejected call leaves the inner service's readiness unused, for the next call.
///
/// Cloning the service shares the breaker; the clone gets its own counter stripe.
pub struct CircuitBreaker<S, C = ErrorsAsFailures, F = NoFallback> {
    inner: S,
    cell: Arc<Cell>,
    classifier: C,
    fallback: F,
}

impl<S, C, F> CircuitBreaker<S, C, F> {
    pub(crate) fn from_parts(inner: S, cell: Arc<Cell>, classifier: C, fallback: F) -> Self {
        CircuitBreaker {
            inner,
            cell,
            classifier,
            fallback,
        }
    }

    /// Wraps `inner` in the breaker behind `layer` (shared with its other services).
    pub fn new(inner: S, layer: &CircuitBreakerLayer<C, F>) -> Self
    where
        C: Clone,
        F: Clone,
    {
        tower_layer::Layer::layer(layer, inner)
    }

    /// A handle to read and steer the breaker.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            core: self.cell.core.clone(),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, F, Req> Service<Req> for CircuitBreaker<S, C, F>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<Req, S::Response, S::Error>,
    F: Fallback<Req, S::Response>,
{
    type Response = <C::Classifier as crate::ClassifyResponse<S::Response, S::Error>>::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C::Classifier, F::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        match Cell::acquire(&self.cell) {
            Ok(permit) => {
                let classifier = self.classifier.classify_request(&req);
                ResponseFuture::called(self.inner.call(req), classifier, permit)
            }
            Err(open) => ResponseFuture::fallback(self.fallback.call(req, open)),
        }
    }
}

impl<S: Clone, C: Clone, F: Clone> Clone for CircuitBreaker<S, C, F> {
    fn clone(&self) -> Self {
        CircuitBreaker {
            inner: self.inner.clone(),
            cell: Cell::new(self.cell.core.clone()),
            classifier: self.classifier.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug, F: fmt::Debug> fmt::Debug for CircuitBreaker<S, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("breaker", &self.cell.core)
            .field("classifier", &self.classifier)
            .field("fallback", &self.fallback)
            .finish()
    }
}
