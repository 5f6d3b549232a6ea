//! What is retried, and how a request is sent again.
//!
//! A [`Policy`] does three things the generic retry loop cannot: it turns the caller's request
//! into what the inner service receives (keeping what it needs to send it again), it classifies
//! each attempt's result, and it rebuilds the request for a retry. The crate ships:
//!
//! - [`RetryIf`]: any `Clone` request, retried when a predicate on the result says so;
//! - [`HttpPolicy`](crate::http::HttpPolicy) (feature `http`): `http::Request`s with any body,
//!   no `Clone` needed, replayed from a bounded capture of the body;
//! - [`GrpcPolicy`](crate::grpc::GrpcPolicy) (feature `grpc`): the same for gRPC over tonic.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::Attempt;

/// The verdict on one attempt's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Return this result to the caller.
    Return,
    /// The attempt failed in a way worth retrying.
    Retry {
        /// Why, for events and logs (e.g. `"status 503"`, `"connection error"`).
        reason: &'static str,
        /// The server's hint: wait at least this long (`Retry-After`,
        /// `grpc-retry-pushback-ms`). The wait is the larger of the backoff and the hint,
        /// capped by [`max_delay`](crate::Builder::max_delay).
        hint: Option<Duration>,
    },
    /// Retry only after `after`, never sooner: when that is longer than
    /// [`max_delay`](crate::Builder::max_delay) or ends past the deadline, the result is
    /// returned at once. A circuit breaker's rejection (`CircuitOpen::retry_after`): retrying
    /// earlier would only be rejected again.
    RetryAfter {
        /// Why, for events and logs (e.g. `"circuit open"`).
        reason: &'static str,
        /// The earliest time to retry.
        after: Duration,
    },
}

impl Decision {
    /// A retry without a hint.
    pub const fn retry(reason: &'static str) -> Self {
        Self::Retry { reason, hint: None }
    }
}

/// How a request is prepared for the inner service and sent again; see the
/// [module docs](crate::policy).
pub trait Replay<Req> {
    /// What the inner service receives.
    type Request;
    /// What is kept between attempts to send the request again.
    type Saved;

    /// Prepares the first attempt and hands it to `send` (which calls the inner service);
    /// returns what `send` returned and what is kept for a replay.
    ///
    /// The request goes to `send` instead of being returned so that an implementation can
    /// move it straight into the inner service's `call`: on the success path every move of a
    /// large request is a copy.
    fn prepare<R>(&self, req: Req, send: impl FnOnce(Self::Request) -> R) -> (R, Self::Saved);

    /// Whether [`replay`](Self::replay) would rebuild the request now, without building it.
    ///
    /// Asked before the retry budget, so that a request that cannot be sent again neither
    /// takes from the budget nor counts as refused by it. The default says yes: a policy whose
    /// `replay` can return `None` should override it, or its requests that cannot be sent
    /// again are reported as refused by the budget when the budget is spent. When `replay`
    /// returns `None` after all, the retry taken from the budget is given back.
    fn can_replay(&self, saved: &Self::Saved) -> bool {
        let _ = saved;
        true
    }

    /// Whether a request that cannot be sent again now ([`can_replay`](Self::can_replay) says
    /// no) may be by the end of the wait before the retry: its body is still held by the
    /// attempt that failed (a transport that has an answer may still be sending it, or not
    /// have dropped it yet). The retry then waits out its backoff, and the request is rebuilt
    /// after it; if it cannot be then, the failed result is returned and the retry taken from
    /// the budget is given back. Never asked when there is no wait. The default says no.
    fn may_replay_later(&self, saved: &Self::Saved) -> bool {
        let _ = saved;
        false
    }

    /// Whether the request may be hedged: sent a second time while the first attempt is still
    /// in flight (see [`hedge`](crate::hedge)). Both attempts may then be processed, so only
    /// requests that are safe to repeat should say yes.
    ///
    /// The default is [`can_replay`](Self::can_replay): right for a policy that only replays
    /// requests safe to repeat, as the HTTP policy does. The gRPC policy says yes only for
    /// the methods declared idempotent.
    fn can_hedge(&self, saved: &Self::Saved) -> bool {
        self.can_replay(saved)
    }

    /// Rebuilds the request for attempt `attempt`, or `None` when it cannot be sent again
    /// byte-identical (a body over the limit, or still held by the attempt that read it).
    fn replay(&self, saved: &mut Self::Saved, attempt: Attempt) -> Option<Self::Request>;

    /// The request's own deadline, if it carries one: no retry or hedge is sent after it, and
    /// no wait ends past it, as with [`max_elapsed`](crate::Builder::max_elapsed) (the earlier
    /// of the two applies). The gRPC policy reads the caller's `grpc-timeout` (gRFC A6: the
    /// deadline is the call's, across all attempts). The default is none.
    #[inline]
    fn deadline(&self, saved: &Self::Saved) -> Option<Instant> {
        let _ = saved;
        None
    }

    /// Brings a rebuilt request up to date right before it is sent (a retry once the inner
    /// service is ready, or a hedge): the gRPC policy rewrites `grpc-timeout` to the time left
    /// before the call's [deadline](Self::deadline), so the server does not work past it.
    /// The default leaves the request as it is.
    #[inline]
    fn before_send(&self, saved: &Self::Saved, request: &mut Self::Request) {
        let _ = (saved, request);
    }
}

/// Which results are retried; see the [module docs](crate::policy).
///
/// `Req` is the caller's request, `Res` and `E` the inner service's response and error.
pub trait Policy<Req, Res, E>: Replay<Req> {
    /// Classifies an attempt's result.
    fn classify(&self, saved: &Self::Saved, result: &Result<Res, E>) -> Decision;
}

/// Retries `Clone` requests when `predicate(&result)` is true.
///
/// The generic policy, for any `tower::Service` whose request can be cloned. Each attempt is sent
/// a clone; the original is kept for the next one.
#[derive(Clone)]
pub struct RetryIf<F> {
    predicate: F,
}

impl<F> RetryIf<F> {
    /// Retries when `predicate` returns true for an attempt's `&Result<Res, E>`.
    pub const fn new(predicate: F) -> Self {
        Self { predicate }
    }
}

impl<F> fmt::Debug for RetryIf<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryIf").finish_non_exhaustive()
    }
}

impl<Req: Clone, F> Replay<Req> for RetryIf<F> {
    type Request = Req;
    type Saved = Req;

    #[inline]
    fn prepare<R>(&self, req: Req, send: impl FnOnce(Req) -> R) -> (R, Req) {
        (send(req.clone()), req)
    }

    fn replay(&self, saved: &mut Req, _: Attempt) -> Option<Req> {
        Some(saved.clone())
    }
}

impl<Req, Res, E, F> Policy<Req, Res, E> for RetryIf<F>
where
    Req: Clone,
    F: Fn(&Result<Res, E>) -> bool,
{
    #[inline]
    fn classify(&self, _: &Req, result: &Result<Res, E>) -> Decision {
        if (self.predicate)(result) {
            Decision::retry("predicate")
        } else {
            Decision::Return
        }
    }
}
