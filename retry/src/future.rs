//! The retry layer's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project::{pin_project, pinned_drop};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::Attempt;
use crate::budget::BudgetState;
use crate::config::Shared;
use crate::observe::GiveUp;
use crate::policy::{Decision, Policy, Replay};
use crate::service::Local;

/// The response future of [`Retry`](crate::Retry): a state machine (call, wait, get ready,
/// call again), never boxed. Dropping it drops the attempt in flight and any pending wait at
/// once: nothing keeps running in the background, and a retry taken from the budget but not
/// yet sent is given back.
#[pin_project(PinnedDrop, project = Proj)]
pub struct ResponseFuture<S, P, Req>
where
    P: Replay<Req>,
    S: Service<P::Request>,
{
    svc: S,
    local: Arc<Local<P>>,
    saved: P::Saved,
    attempt: u32,
    /// When no retry may be sent any more: the earlier of `max_elapsed` after the call and the
    /// request's own deadline ([`Replay::deadline`]).
    deadline: Option<Instant>,
    /// Allocated when the first retry is decided and reused by every retry after it: a
    /// request that is never retried carries only this pointer.
    retrying: Option<Box<Retrying<P::Request, Result<S::Response, S::Error>>>>,
    #[pin]
    state: State<S::Future>,
}

/// What only a retried request needs.
struct Retrying<R, O> {
    /// The next attempt's request, from the decision to retry until it is sent.
    request: Option<R>,
    /// The failed result that decided the retry, kept until the retry is sent when there is
    /// a deadline: it is what the caller gets if the deadline passes while the inner service
    /// is getting ready.
    last: Option<O>,
    /// The budget epoch the retry not yet sent was taken in, to give it back if it never is.
    taken: Option<u64>,
    /// The wait, reset for each retry that waits, then to the deadline while the inner
    /// service gets ready (none until needed).
    sleep: Option<Pin<Box<Sleep>>>,
    rng: fastrand::Rng,
    prev_delay: Option<Duration>,
}

impl<R, O> Retrying<R, O> {
    /// Gives back the retry taken from the budget and not sent, if any.
    fn refund(&mut self, shared: &Shared) {
        BudgetState::give_back(shared.budget.as_ref(), &mut self.taken);
    }

    /// Sets the wait to end at `at`, making it if there is none yet.
    fn sleep_until(&mut self, at: Instant) {
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }
}

#[pinned_drop]
impl<S, P, Req> PinnedDrop for ResponseFuture<S, P, Req>
where
    P: Replay<Req>,
    S: Service<P::Request>,
{
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        if let Some(r) = this.retrying {
            r.refund(&this.local.shared);
        }
    }
}

#[pin_project(project = StateProj)]
enum State<F> {
    Calling {
        #[pin]
        fut: F,
    },
    /// Waiting out `Retrying::sleep`.
    Waiting,
    /// Getting the inner service ready for `Retrying::request`.
    Ready,
}

impl<S, P, Req> fmt::Debug for ResponseFuture<S, P, Req>
where
    P: Replay<Req>,
    S: Service<P::Request>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Calling { .. } => "calling",
            State::Waiting => "waiting",
            State::Ready => "getting ready",
        };
        f.debug_struct("ResponseFuture")
            .field("attempt", &self.attempt)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<S, P, Req> ResponseFuture<S, P, Req>
where
    P: Replay<Req>,
    S: Service<P::Request>,
{
    #[inline]
    pub(crate) fn new(
        svc: S,
        local: Arc<Local<P>>,
        saved: P::Saved,
        deadline: Option<Instant>,
        fut: S::Future,
    ) -> Self {
        Self {
            svc,
            local,
            saved,
            attempt: 1,
            deadline,
            retrying: None,
            state: State::Calling { fut },
        }
    }
}

impl<S, P, Req> Future for ResponseFuture<S, P, Req>
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

    // Inlined: the success path is a few lines (the failure path is out of line), and the
    // caller then takes the result without a call (callgrind: 26 instructions fewer per
    // bodiless HTTP call).
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            // The success path is this block alone; a failure is handled out of line, so this
            // function stays small and its stack frame light.
            if let StateProj::Calling { fut } = this.state.as_mut().project() {
                let result = ready!(fut.poll(cx));
                let local = &**this.local;
                let (reason, hint, strict) = match local.policy.classify(this.saved, &result) {
                    Decision::Return => {
                        local.shared.observer.returned(*this.attempt);
                        return Poll::Ready(result);
                    }
                    Decision::Retry { reason, hint } => (reason, hint, false),
                    Decision::RetryAfter { reason, after } => (reason, Some(after), true),
                };
                if let Some(result) = Self::decide(&mut this, result, reason, hint, strict) {
                    return Poll::Ready(result);
                }
            }
            match Self::poll_retry(&mut this, cx) {
                Poll::Ready(None) => {}
                Poll::Ready(Some(result)) => return Poll::Ready(result),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S, P, Req> ResponseFuture<S, P, Req>
where
    P: Replay<Req>,
    S: Service<<P as Replay<Req>>::Request>,
    P: Policy<
            Req,
            <S as Service<<P as Replay<Req>>::Request>>::Response,
            <S as Service<<P as Replay<Req>>::Request>>::Error,
        >,
{
    /// Decides what follows an attempt classified as retryable for `reason` (with the server's
    /// `hint`, a floor on the wait when `strict`): `Some(result)` to return it, or `None` with
    /// the retry prepared (the state is then `Waiting` or `Ready`).
    /// Out of line, as is [`poll_retry`](Self::poll_retry): the success path stays small.
    #[cold]
    #[inline(never)]
    fn decide(
        this: &mut Proj<'_, S, P, Req>,
        result: Output<S, P, Req>,
        reason: &'static str,
        hint: Option<Duration>,
        strict: bool,
    ) -> Option<Output<S, P, Req>> {
        let local = &**this.local;
        let observer = &local.shared.observer;
        let config = &local.config;
        if *this.attempt >= config.max_attempts {
            observer.gave_up(*this.attempt, GiveUp::Attempts);
            return Some(result);
        }
        // The wait: the larger of the backoff and the hint, capped by max_delay.
        let retry = *this.attempt - 1;
        // The box is made only once a retry is decided: a failure that is given
        // up (budget, deadline, attempts) allocates nothing.
        let mut fresh = None;
        let (prev_delay, rng) = match this.retrying.as_deref_mut() {
            Some(r) => (r.prev_delay, &mut r.rng),
            None => (None, fresh.insert(seeded_rng(&local.shared))),
        };
        let backoff =
            config
                .jitter
                .apply(&config.backoff, retry, prev_delay, config.max_delay, rng);
        if strict && hint.is_some_and(|h| h > config.max_delay) {
            observer.gave_up(*this.attempt, GiveUp::HintTooLong);
            return Some(result);
        }
        let delay = hint
            .map_or(backoff, |h| h.max(backoff))
            .min(config.max_delay);
        let now = if this.deadline.is_some() || local.shared.budget.is_some() {
            Some(Instant::now())
        } else {
            None
        };
        if let (Some(deadline), Some(now)) = (*this.deadline, now) {
            let left = deadline.saturating_duration_since(now);
            if delay >= left || hint.is_some_and(|h| h >= left) {
                observer.gave_up(*this.attempt, GiveUp::Deadline);
                return Some(result);
            }
        }
        let next = Attempt::new(*this.attempt + 1);
        // A body the failed attempt still holds may be let go during the wait: the
        // request is then rebuilt after it.
        let now_replayable = local.policy.can_replay(this.saved);
        let later =
            !now_replayable && !delay.is_zero() && local.policy.may_replay_later(this.saved);
        if !now_replayable && !later {
            observer.gave_up(*this.attempt, GiveUp::NotReplayable);
            return Some(result);
        }
        // The budget before the replay is built: a retry it refuses (an outage)
        // rebuilds nothing.
        let taken = match (&local.shared.budget, now) {
            (Some(budget), Some(now)) => match budget.take(now) {
                Some(epoch) => Some((budget, epoch)),
                None => {
                    observer.gave_up(*this.attempt, GiveUp::Budget);
                    return Some(result);
                }
            },
            _ => None,
        };
        let request = if later {
            None
        } else if let Some(request) = local.policy.replay(this.saved, next) {
            Some(request)
        } else {
            if let Some((budget, epoch)) = taken {
                budget.refund(epoch);
            }
            observer.gave_up(*this.attempt, GiveUp::NotReplayable);
            return Some(result);
        };
        observer.retry(next, reason, delay);
        let retrying = this.retrying.get_or_insert_with(|| {
            Box::new(Retrying {
                request: None,
                last: None,
                taken: None,
                sleep: None,
                rng: fresh.unwrap_or_else(|| seeded_rng(&local.shared)),
                prev_delay: None,
            })
        });
        retrying.prev_delay = Some(delay);
        retrying.request = request;
        // Kept only when it may be returned: when a deadline may pass, or the
        // request may not be rebuilt after the wait. The failed result may hold a
        // connection or a stream open until it is dropped.
        retrying.last = (this.deadline.is_some() || later).then_some(result);
        retrying.taken = taken.map(|(_, epoch)| epoch);
        if delay.is_zero() {
            this.state.set(State::Ready);
            arm_deadline(retrying, *this.deadline);
        } else {
            // max_delay is at most a day: the deadline cannot overflow.
            retrying.sleep_until(Instant::now() + delay);
            this.state.set(State::Waiting);
        }
        None
    }

    /// Drives a retry through its wait and the inner service's getting ready, and sends it:
    /// `Ready(None)` once it is sent (the state is `Calling` again), `Ready(Some(result))` to
    /// return `result` instead.
    #[cold]
    #[inline(never)]
    fn poll_retry(
        this: &mut Proj<'_, S, P, Req>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Output<S, P, Req>>> {
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { .. } => return Poll::Ready(None),
                StateProj::Waiting => {
                    let sleep = this.retrying.as_mut().and_then(|r| r.sleep.as_mut());
                    let Some(sleep) = sleep else {
                        unreachable!("a wait is set before the Waiting state");
                    };
                    ready!(sleep.as_mut().poll(cx));
                    let Some(retrying) = this.retrying.as_deref_mut() else {
                        unreachable!("a retry is prepared before the Waiting state");
                    };
                    if retrying.request.is_none() {
                        // Rebuilt only now: the failed attempt held the body when it ended.
                        let local = &**this.local;
                        let next = Attempt::new(*this.attempt + 1);
                        match local.policy.replay(this.saved, next) {
                            Some(request) => {
                                retrying.request = Some(request);
                                if this.deadline.is_none() {
                                    retrying.last = None;
                                }
                            }
                            None => {
                                retrying.refund(&local.shared);
                                local
                                    .shared
                                    .observer
                                    .gave_up(*this.attempt, GiveUp::NotReplayable);
                                let Some(last) = retrying.last.take() else {
                                    unreachable!("the failed result is kept for a later replay");
                                };
                                return Poll::Ready(Some(last));
                            }
                        }
                    }
                    this.state.set(State::Ready);
                    arm_deadline(retrying, *this.deadline);
                }
                StateProj::Ready => {
                    let Some(retrying) = this.retrying.as_deref_mut() else {
                        unreachable!("a retry is prepared before the Ready state");
                    };
                    let shared = &this.local.shared;
                    match this.svc.poll_ready(cx) {
                        Poll::Ready(Ok(())) => {
                            // Ready, but perhaps only past the deadline (the task was polled
                            // late after its wait): the retry is not sent then.
                            let late = this.deadline.is_some_and(|d| Instant::now() >= d);
                            if late && let Some(last) = retrying.last.take() {
                                retrying.request = None;
                                retrying.refund(shared);
                                shared.observer.gave_up(*this.attempt, GiveUp::Deadline);
                                return Poll::Ready(Some(last));
                            }
                        }
                        Poll::Ready(Err(e)) => {
                            // Neither the retry nor the failure it replaces is needed now.
                            retrying.request = None;
                            retrying.last = None;
                            retrying.refund(shared);
                            shared.observer.returned(*this.attempt);
                            return Poll::Ready(Some(Err(e)));
                        }
                        Poll::Pending => {
                            // The deadline holds while the inner service gets ready too
                            // (the failed result is kept only when there is one).
                            let expired = retrying.last.is_some()
                                && retrying
                                    .sleep
                                    .as_mut()
                                    .is_some_and(|s| s.as_mut().poll(cx).is_ready());
                            if expired && let Some(last) = retrying.last.take() {
                                retrying.request = None;
                                retrying.refund(shared);
                                shared.observer.gave_up(*this.attempt, GiveUp::Deadline);
                                return Poll::Ready(Some(last));
                            }
                            return Poll::Pending;
                        }
                    }
                    let Some(mut request) = retrying.request.take() else {
                        unreachable!("a retry is prepared before the Ready state");
                    };
                    this.local.policy.before_send(this.saved, &mut request);
                    retrying.last = None;
                    retrying.taken = None;
                    shared.observer.sent();
                    *this.attempt += 1;
                    let fut = this.svc.call(request);
                    this.state.set(State::Calling { fut });
                    return Poll::Ready(None);
                }
            }
        }
    }
}

type Output<S, P, Req> = Result<
    <S as Service<<P as Replay<Req>>::Request>>::Response,
    <S as Service<<P as Replay<Req>>::Request>>::Error,
>;

/// Sets the wait to the deadline, if there is one: what bounds the inner service's getting
/// ready for a retry.
fn arm_deadline<R, O>(retrying: &mut Retrying<R, O>, deadline: Option<Instant>) {
    // No deadline: the wait is kept for the next backoff (no allocation per retry).
    if let Some(at) = deadline {
        retrying.sleep_until(at);
    }
}

/// The jitter's generator for one request: from the layer's seed when it has one (tests), else
/// from the thread's.
fn seeded_rng(shared: &Shared) -> fastrand::Rng {
    let seed = match &shared.seed {
        Some(s) => s.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed),
        None => fastrand::u64(..),
    };
    fastrand::Rng::with_seed(seed)
}
