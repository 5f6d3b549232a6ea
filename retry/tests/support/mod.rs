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
