//! The retry service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_service::Service;

use crate::RetryLayer;
use crate::config::{Config, Shared};
use crate::future::ResponseFuture;
use crate::policy::{Policy, Replay};

/// What a service clone and its response futures share (a per-clone reference count, so
/// futures of different clones never bump the same counter).
pub(crate) struct Local<P> {
    pub(crate) policy: P,
    pub(crate) config: Config,
    pub(crate) shared: Arc<Shared>,
}

impl<P: fmt::Debug> fmt::Debug for Local<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("policy", &self.policy)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<P> Local<P> {
    fn new(policy: P, config: Config, shared: Arc<Shared>) -> Arc<Self> {
        Arc::new(Self {
            policy,
            config,
            shared,
        })
    }
}

/// Retries requests to `S` according to the policy `P`; made by [`RetryLayer`].
///
/// Each clone has its own small shared block (policy, settings, a reference to the layer's
/// shared state), so response futures of clones made per connection or per task never bump the
/// same reference count; cloning therefore allocates once. The retry budget is striped by
/// thread, whatever the clones.
/// The inner service must be `Clone`: the response future keeps a clone, made ready again
/// before each retry, as `tower::retry` does.
pub struct Retry<S, P> {
    inner: S,
    local: Arc<Local<P>>,
}

impl<S: fmt::Debug, P: fmt::Debug> fmt::Debug for Retry<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl<S: Clone, P: Clone> Clone for Retry<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            local: Local::new(
                self.local.policy.clone(),
                self.local.config,
                self.local.shared.clone(),
            ),
        }
    }
}

impl<S, P> Retry<S, P> {
    pub(crate) fn from_parts(inner: S, policy: P, config: Config, shared: Arc<Shared>) -> Self {
        Self {
            inner,
            local: Local::new(policy, config, shared),
        }
    }

    /// Wraps `inner` with `layer`'s settings (the same as `layer.layer(inner)`).
    pub fn new(inner: S, layer: &RetryLayer<P, crate::config::NoTimeout>) -> Self
    where
        P: Clone,
    {
        tower_layer::Layer::layer(layer, inner)
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

impl<S, P, Req> Service<Req> for Retry<S, P>
where
    P: Replay<Req>,
    S: Service<<P as Replay<Req>>::Request> + Clone,
    P: Policy<
            Req,
            <S as Service<<P as Replay<Req>>::Request>>::Response,
            <S as Service<<P as Replay<Req>>::Request>>::Error,
        >,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, P, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        // Taken first: the reference count's atomic increment waits for pending stores, and
        // before the request is copied there are few.
        let owned = self.local.clone();
        let clone = self.inner.clone();
        let mut svc = std::mem::replace(&mut self.inner, clone);
        let local = &self.local;
        if let Some(budget) = &local.shared.budget {
            budget.deposit();
        }
        // A deadline too far to represent is none.
        let elapsed = (local.config.max_elapsed).and_then(|max| Instant::now().checked_add(max));
        let (fut, saved) = local.policy.prepare(req, |request| svc.call(request));
        let deadline = match (elapsed, local.policy.deadline(&saved)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ResponseFuture::new(svc, owned, saved, deadline, fut)
    }
}
