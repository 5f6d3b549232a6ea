//! Answering in place of the inner service while the breaker rejects.
//!
//! By default a rejected call fails with a [`CircuitOpen`] error. With a fallback (as
//! opossum and Polly offer) the breaker answers it instead: a cached value, a degraded
//! response, or (features `http`, `grpc`) a ready-made `503` / `UNAVAILABLE` response.
//! The fallback's answers are not recorded in the window.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project::pin_project;
use tower_service::Service;

use crate::error::{BoxError, CircuitOpen};

/// Answers a call the breaker rejected, in place of the inner service.
///
/// `Res` is the inner service's response type.
pub trait Fallback<Req, Res> {
    /// The fallback's response future.
    type Future: Future<Output = Result<Res, BoxError>>;

    /// Answers `req`, which the breaker rejected with `rejection`.
    fn call(&mut self, req: Req, rejection: CircuitOpen) -> Self::Future;
}

/// No fallback: a rejected call fails with a [`CircuitOpen`] error (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFallback;

impl<Req, Res> Fallback<Req, Res> for NoFallback {
    type Future = Ready<Result<Res, BoxError>>;

    #[inline]
    fn call(&mut self, _req: Req, rejection: CircuitOpen) -> Self::Future {
        ready(Err(Box::new(rejection)))
    }
}

/// A fallback from a closure; see [`fallback_fn`].
#[derive(Clone, Copy)]
pub struct FallbackFn<F>(F);

impl<F> fmt::Debug for FallbackFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FallbackFn").finish_non_exhaustive()
    }
}

/// Answers rejected calls with `f(request, rejection)`, an async closure (or a closure
/// returning a future) resolving to `Result<Response, BoxError>`.
///
/// ```
/// use palisade_circuit_breaker::{CircuitBreakerLayer, fallback_fn};
/// use palisade_circuit_breaker::error::{BoxError, CircuitOpen};
///
/// let layer = CircuitBreakerLayer::builder("prices")
///     .with_fallback(fallback_fn(|_req: String, _open: CircuitOpen| async {
///         Ok::<_, BoxError>("cached price".to_owned())
///     }))
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), palisade_circuit_breaker::error::ConfigError>(())
/// ```
pub fn fallback_fn<F>(f: F) -> FallbackFn<F> {
    FallbackFn(f)
}

impl<Req, Res, F, Fut> Fallback<Req, Res> for FallbackFn<F>
where
    F: FnMut(Req, CircuitOpen) -> Fut,
    Fut: Future<Output = Result<Res, BoxError>>,
{
    type Future = Fut;

    fn call(&mut self, req: Req, rejection: CircuitOpen) -> Fut {
        (self.0)(req, rejection)
    }
}

/// A fallback that calls another service; see [`fallback_service`].
#[derive(Debug, Clone)]
pub struct FallbackService<S>(S);

/// Answers rejected calls with a clone of `service` (driven to readiness first).
pub fn fallback_service<S>(service: S) -> FallbackService<S> {
    FallbackService(service)
}

impl<Req, S> Fallback<Req, S::Response> for FallbackService<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
{
    type Future = Oneshot<S, Req>;

    fn call(&mut self, req: Req, _rejection: CircuitOpen) -> Self::Future {
        Oneshot::NotReady {
            service: self.0.clone(),
            req: Some(req),
        }
    }
}

/// Drives a fallback service to readiness, then calls it once.
#[pin_project(project = OneshotProj)]
pub enum Oneshot<S: Service<Req>, Req> {
    /// Waiting for the service to be ready.
    NotReady {
        /// The service.
        service: S,
        /// The request, until it is sent.
        req: Option<Req>,
    },
    /// Waiting for the response.
    Called {
        /// The service's response future.
        #[pin]
        fut: S::Future,
    },
}

impl<S: Service<Req>, Req> fmt::Debug for Oneshot<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Oneshot::NotReady { .. } => f.write_str("Oneshot::NotReady"),
            Oneshot::Called { .. } => f.write_str("Oneshot::Called"),
        }
    }
}

impl<S, Req> Future for Oneshot<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                OneshotProj::NotReady { service, req } => {
                    ready!(service.poll_ready(cx)).map_err(Into::into)?;
                    let Some(req) = req.take() else {
                        return Poll::Ready(Err("fallback polled after completion".into()));
                    };
                    let fut = service.call(req);
                    self.set(Oneshot::Called { fut });
                }
                OneshotProj::Called { fut } => return fut.poll(cx).map_err(Into::into),
            }
        }
    }
}
