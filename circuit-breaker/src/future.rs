//! The breaker's response future.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project::pin_project;

use crate::classify::ClassifyResponse;
use crate::error::BoxError;
use crate::permit::Permit;

/// The response future of [`CircuitBreaker`](crate::CircuitBreaker): the inner service's
/// future (recording its outcome when it completes), or the fallback's for a rejected call.
///
/// Dropping it before completion releases what it holds: a half-open trial permit is given
/// back (or the call counts as a failure; see
/// [`Builder::cancelled_outcome`](crate::Builder::cancelled_outcome)).
#[pin_project]
pub struct ResponseFuture<Fut, K, Fb> {
    #[pin]
    kind: Kind<Fut, K, Fb>,
}

#[pin_project(project = KindProj)]
enum Kind<Fut, K, Fb> {
    Called {
        #[pin]
        fut: Fut,
        call: Option<(K, Permit)>,
    },
    Fallback {
        #[pin]
        fut: Fb,
        _classifier: PhantomData<fn() -> K>,
    },
}

impl<Fut, K, Fb> ResponseFuture<Fut, K, Fb> {
    #[inline]
    pub(crate) fn called(fut: Fut, classifier: K, permit: Permit) -> Self {
        ResponseFuture {
            kind: Kind::Called {
                fut,
                call: Some((classifier, permit)),
            },
        }
    }

    pub(crate) fn fallback(fut: Fb) -> Self {
        ResponseFuture {
            kind: Kind::Fallback {
                fut,
                _classifier: PhantomData,
            },
        }
    }
}

impl<Fut, K, Fb, Res, E> Future for ResponseFuture<Fut, K, Fb>
where
    Fut: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    K: ClassifyResponse<Res, E>,
    Fb: Future<Output = Result<Res, BoxError>>,
{
    type Output = Result<K::Response, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called { fut, call } => {
                let result = ready!(fut.poll(cx));
                // Fast path: the result decides; record on the permit where it lies.
                if let Some((classifier, permit)) = call.as_mut()
                    && let Some(outcome) = classifier.outcome(&result)
                {
                    permit.record_mut(outcome);
                    *call = None;
                    return Poll::Ready(result.map(K::passthrough).map_err(Into::into));
                }
                match call.take() {
                    Some((classifier, permit)) => {
                        Poll::Ready(classifier.classify(result, permit).map_err(Into::into))
                    }
                    None => {
                        Poll::Ready(Err("circuit breaker future polled after completion".into()))
                    }
                }
            }
            KindProj::Fallback { fut, .. } => Poll::Ready(ready!(fut.poll(cx)).map(K::passthrough)),
        }
    }
}

impl<Fut, K, Fb> fmt::Debug for ResponseFuture<Fut, K, Fb> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Called { .. } => f.write_str("ResponseFuture::Called"),
            Kind::Fallback { .. } => f.write_str("ResponseFuture::Fallback"),
        }
    }
}
