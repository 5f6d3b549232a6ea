//! Shared by the retry tests.

use palisade_retry::{Attempt, Decision, Policy, Replay};

/// A policy for `u32` requests that can replay only even ones and does not say so ahead
/// (`can_replay` keeps its default): the budget is asked first, and `replay` refuses
/// afterwards. Errors are retried.
#[derive(Clone)]
pub(crate) struct EvenOnly;

impl Replay<u32> for EvenOnly {
    type Request = u32;
    type Saved = u32;

    fn prepare<R>(&self, req: u32, send: impl FnOnce(u32) -> R) -> (R, u32) {
        (send(req), req)
    }

    fn replay(&self, saved: &mut u32, _: Attempt) -> Option<u32> {
        saved.is_multiple_of(2).then_some(*saved)
    }
}

impl<Res, E> Policy<u32, Res, E> for EvenOnly {
    fn classify(&self, _: &u32, result: &Result<Res, E>) -> Decision {
        match result {
            Err(_) => Decision::retry("error"),
            Ok(_) => Decision::Return,
        }
    }
}

/// A layer with no backoff, no jitter and a budget of exactly one retry in its window (no
/// share of the traffic): what the budget tests need to see a single unit taken or kept.
#[allow(
    dead_code,
    reason = "not every test file that includes support uses it"
)]
pub(crate) fn one_retry_budget<P>(name: &'static str, policy: P) -> palisade_retry::RetryLayer<P> {
    use std::time::Duration;
    palisade_retry::RetryLayer::builder(name, policy)
        .backoff(palisade_retry::Backoff::constant(Duration::ZERO))
        .jitter(palisade_retry::Jitter::None)
        .budget(palisade_retry::Budget::new(0.0, 1, Duration::from_secs(1)))
        .build()
        .unwrap()
}
