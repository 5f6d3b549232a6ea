//! Hedged requests: a second attempt after a delay; the first response wins.
//!
//! Tail latency is often one slow replica, not an overloaded service. A hedge sends the same
//! request again when the first attempt has not answered after `delay` (pick the latency
//! percentile you want to cut, e.g. your p95), and returns whichever answers first; the other
//! attempt is dropped, which cancels it. If the first attempt fails in a retryable way before
//! the delay, the second is sent at once.
//!
//! Only requests the [`Policy`] says may be hedged ([`Replay::can_hedge`]) are: with
//! [`HttpPolicy`](crate::http::HttpPolicy) idempotent requests whose body was read whole (a
//! bodiless `GET` always), with [`GrpcPolicy`](crate::grpc::GrpcPolicy) only the methods it
//! declares [idempotent](crate::grpc::GrpcPolicy::idempotent_methods). The second attempt
//! carries [`Attempt`] 2. A failure that carries a server's hint (`Retry-After`,
//! `grpc-retry-pushback-ms`) or a breaker's rejection is not hedged at once: it is returned
//! (unless the hedge is already in flight), since the server asked for time. Hedges are drawn
//! from a [retry budget](crate::budget) (by default 10 % of requests, plus 1 per second),
//! so a slow dependency does not get twice the load; a hedge drawn but never sent (the first
//! attempt answered while the inner service was getting ready for the hedge, readiness failed,
//! the caller dropped the request) is given back.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project::{pin_project, pinned_drop};
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

use crate::budget::{Budget, BudgetState};
use crate::policy::{Decision, Policy, Replay};
use crate::{Attempt, ConfigError};

/// Hedges requests to the inner service; see the [module docs](self).
///
/// Cloning the layer shares its budget.
#[derive(Debug, Clone)]
pub struct HedgeLayer<P> {
    policy: P,
    delay: Duration,
    budget: Option<Arc<BudgetState>>,
}

impl<P> HedgeLayer<P> {
    /// Hedges after `delay` (1 ms..=1 h), within a budget of 10 % of requests plus 1 per
    /// second over 10 s.
    ///
    /// # Errors
    /// `delay` outside 1 ms..=1 h, naming the field `delay`.
    pub fn new(policy: P, delay: Duration) -> Result<Self, ConfigError> {
        Self::with_budget(
            policy,
            delay,
            Some(Budget::new(0.1, 1, Duration::from_secs(10))),
        )
    }

    /// Hedges after `delay` within `budget` (`None`: no budget, every slow request is hedged).
    ///
    /// # Errors
    /// `delay` outside 1 ms..=1 h (field `delay`), or an invalid budget (field `budget`).
    pub fn with_budget(
        policy: P,
        delay: Duration,
        budget: Option<Budget>,
    ) -> Result<Self, ConfigError> {
        if delay < Duration::from_millis(1) || delay > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "delay",
                format!("must be in 1ms..=1h, got {delay:?}"),
            ));
        }
        if let Some(b) = &budget {
            b.validate()?;
        }
        Ok(Self {
            policy,
            delay,
            budget: budget.as_ref().map(|b| Arc::new(BudgetState::new(b))),
        })
    }
}

impl<S, P: Clone> Layer<S> for HedgeLayer<P> {
    type Service = Hedge<S, P>;

    fn layer(&self, inner: S) -> Hedge<S, P> {
        Hedge {
            inner,
            policy: self.policy.clone(),
            delay: self.delay,
            budget: self.budget.clone(),
        }
    }
}

/// The hedging service, made by [`HedgeLayer`].
#[derive(Debug, Clone)]
pub struct Hedge<S, P> {
    inner: S,
    policy: P,
    delay: Duration,
    budget: Option<Arc<BudgetState>>,
}

impl<S, P> Hedge<S, P> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, P, Req> Service<Req> for Hedge<S, P>
where
    P: Replay<Req> + Clone,
    S: Service<<P as Replay<Req>>::Request> + Clone,
    P: Policy<
            Req,
            <S as Service<<P as Replay<Req>>::Request>>::Response,
            <S as Service<<P as Replay<Req>>::Request>>::Error,
        >,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = HedgeFuture<S, P, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let clone = self.inner.clone();
        let mut svc = std::mem::replace(&mut self.inner, clone);
        if let Some(b) = &self.budget {
            b.deposit();
        }
        let (first, saved) = self.policy.prepare(req, |request| svc.call(request));
        HedgeFuture {
            hedger: svc,
            policy: self.policy.clone(),
            budget: self.budget.clone(),
            saved,
            timer: Some(Box::pin(tokio::time::sleep(self.delay))),
            pending: None,
            taken: None,
            fallback: None,
            first: Some(first),
            second: None,
        }
    }
}

/// The response future of [`Hedge`]. Dropping it drops both attempts, and gives a hedge taken
/// from the budget but not yet sent back to it.
#[pin_project(PinnedDrop)]
pub struct HedgeFuture<S, P, Req>
where
    P: Replay<Req>,
    S: Service<P::Request>,
{
    hedger: S,
    policy: P,
    budget: Option<Arc<BudgetState>>,
    saved: P::Saved,
    timer: Option<Pin<Box<Sleep>>>,
    pending: Option<P::Request>,
    /// The budget epoch the hedge in `pending` was taken in, to give it back if it is not sent.
    taken: Option<u64>,
    fallback: Option<Result<S::Response, S::Error>>,
    #[pin]
    first: Option<S::Future>,
    #[pin]
    second: Option<S::Future>,
}

/// Drops the hedge not yet sent, giving its retry back to the budget.
fn unsend<R>(pending: &mut Option<R>, taken: &mut Option<u64>, budget: Option<&BudgetState>) {
    *pending = None;
    BudgetState::give_back(budget, taken);
}

#[pinned_drop]
impl<S, P, Req> PinnedDrop for HedgeFuture<S, P, Req>
where
    P: Replay<Req>,
    S: Service<P::Request>,
{
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        unsend(this.pending, this.taken, this.budget.as_deref());
    }
}

impl<S, P, Req> fmt::Debug for HedgeFuture<S, P, Req>
where
    P: Replay<Req>,
    S: Service<P::Request>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeFuture")
            .field("first_in_flight", &self.first.is_some())
            .field("second_in_flight", &self.second.is_some())
            .finish_non_exhaustive()
    }
}

impl<S, P, Req> Future for HedgeFuture<S, P, Req>
where
    P: Replay<Req>,
    S: Service<<P as Replay<Req>>::Request>,
    P: Policy<
            Req,
            <S as Service<<P as Replay<Req>>::Request>>::Response,
            <S as Service<<P as Replay<Req>>::Request>>::Error,
        >,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // The first attempt.
        if let Some(fut) = this.first.as_mut().as_pin_mut()
            && let Poll::Ready(result) = fut.poll(cx)
        {
            this.first.set(None);
            let decision = this.policy.classify(this.saved, &result);
            let hedge_now = at_once(decision);
            let retryable = !matches!(decision, Decision::Return);
            let waiting_for_second = this.second.is_some() || this.pending.is_some();
            if !retryable || !waiting_for_second && (this.timer.is_none() || !hedge_now) {
                // The hedge not yet sent (or the one just decided) is not needed now.
                this.second.set(None);
                unsend(this.pending, this.taken, this.budget.as_deref());
                return Poll::Ready(result);
            }
            // A retryable failure: hedge now rather than after the delay.
            *this.fallback = Some(result);
            if let Some(timer) = this.timer.as_mut() {
                timer.as_mut().reset(Instant::now());
            }
        }
        // Time to hedge: only a replayable request, within the budget.
        if let Some(timer) = this.timer.as_mut()
            && timer.as_mut().poll(cx).is_ready()
        {
            *this.timer = None;
            let taken = match this.budget.as_ref() {
                _ if !this.policy.can_hedge(this.saved) => None,
                // The call's own deadline has passed: a hedge could only be refused.
                _ if (this.policy.deadline(this.saved)).is_some_and(|d| Instant::now() >= d) => {
                    None
                }
                None => Some(None),
                Some(b) => b.take(Instant::now()).map(|epoch| Some((b, epoch))),
            };
            if let Some(taken) = taken {
                *this.pending = this.policy.replay(this.saved, Attempt::new(2));
                *this.taken = taken.map(|(_, epoch)| epoch);
                // Not replayable: the hedge is not sent, so its retry goes back to the budget.
                if this.pending.is_none() {
                    unsend(this.pending, this.taken, this.budget.as_deref());
                }
            }
        }
        if this.pending.is_some() {
            match this.hedger.poll_ready(cx) {
                Poll::Pending => {}
                Poll::Ready(Err(e)) => {
                    unsend(this.pending, this.taken, this.budget.as_deref());
                    if this.first.is_none() {
                        return Poll::Ready(this.fallback.take().unwrap_or(Err(e)));
                    }
                }
                Poll::Ready(Ok(())) => {
                    if let Some(mut req) = this.pending.take() {
                        *this.taken = None;
                        this.policy.before_send(this.saved, &mut req);
                        let fut = this.hedger.call(req);
                        this.second.set(Some(fut));
                    }
                }
            }
        }
        if let Some(fut) = this.second.as_mut().as_pin_mut() {
            let result = ready!(fut.poll(cx));
            this.second.set(None);
            let retryable = !matches!(this.policy.classify(this.saved, &result), Decision::Return);
            if !retryable || this.first.is_none() {
                // The loser is cancelled now, not when the caller drops this future.
                this.first.set(None);
                return Poll::Ready(result);
            }
            *this.fallback = Some(result);
        }
        if this.first.is_none()
            && this.timer.is_none()
            && this.pending.is_none()
            && let Some(result) = this.fallback.take()
        {
            return Poll::Ready(result);
        }
        Poll::Pending
    }
}

/// Whether a retryable failure of the first attempt may be hedged at once: not when the server
/// or a breaker asked for time.
fn at_once(decision: Decision) -> bool {
    matches!(decision, Decision::Retry { hint: None, .. })
}
