//! Half-open: trial permits taken by compare-and-swap on one word that carries the
//! generation, the verdict of the trials, and the lease on trials that never finish.

use super::clock::nanos;
use super::ticket::Ticket;
use super::{CLOSED, Core, GEN_MASK, GEN_SHIFT, HALF_OPEN, OPEN, STATE_BITS, add};
use crate::sync::{
    self,
    Ordering::{AcqRel, Acquire, Release},
};
use crate::window::Stripe;

/// The half-open trial word: generation (low 16 bits), then 12 bits each for permits
/// issued, trials succeeded, trials failed and slow trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Trials {
    pub(super) generation: u64,
    pub(super) issued: u64,
    pub(super) ok: u64,
    pub(super) failed: u64,
    pub(super) slow: u64,
}

const F12: u64 = 0xFFF;

impl Trials {
    pub(super) fn unpack(w: u64) -> Trials {
        Trials {
            generation: w & 0xFFFF,
            issued: (w >> 16) & F12,
            ok: (w >> 28) & F12,
            failed: (w >> 40) & F12,
            slow: (w >> 52) & F12,
        }
    }

    pub(super) fn pack(self) -> u64 {
        (self.generation & 0xFFFF)
            | (self.issued & F12) << 16
            | (self.ok & F12) << 28
            | (self.failed & F12) << 40
            | (self.slow & F12) << 52
    }

    pub(super) fn fresh(generation: u64) -> Trials {
        Trials {
            generation: generation & 0xFFFF,
            issued: 0,
            ok: 0,
            failed: 0,
            slow: 0,
        }
    }
}

impl Core {
    /// Takes a half-open permit: `Some(true)` taken, `Some(false)` none left, `None` the
    /// state moved on.
    pub(super) fn take_trial(&self, w: u64) -> Option<bool> {
        let generation = (w >> GEN_SHIFT) & 0xFFFF;
        let permits = u64::from(self.cfg.permitted_calls_in_half_open);
        let mut cur = self.trials.load(Acquire);
        loop {
            let t = Trials::unpack(cur);
            if t.generation != generation {
                return None;
            }
            if t.issued >= permits {
                return Some(false);
            }
            let next = Trials {
                issued: t.issued + 1,
                ..t
            };
            match self
                .trials
                .compare_exchange_weak(cur, next.pack(), AcqRel, Acquire)
            {
                Ok(_) => return Some(true),
                Err(actual) => cur = actual,
            }
        }
    }

    pub(super) fn complete_trial(&self, s: &Stripe, t: &Ticket, failure: bool, slow: bool) {
        let generation = t.generation & 0xFFFF;
        let mut cur = self.trials.load(Acquire);
        let next = loop {
            let tr = Trials::unpack(cur);
            if tr.generation != generation {
                return; // late: the lease expired or the state moved on
            }
            let next = Trials {
                ok: tr.ok + u64::from(!failure),
                failed: tr.failed + u64::from(failure),
                slow: tr.slow + u64::from(slow),
                ..tr
            };
            match self
                .trials
                .compare_exchange_weak(cur, next.pack(), AcqRel, Acquire)
            {
                Ok(_) => break next,
                Err(actual) => cur = actual,
            }
        };
        add(s, failure, slow);
        if self.verdict(next).is_some() {
            let mut d = sync::lock(&self.decider);
            let w = self.state.load(Acquire);
            let mut fired = None;
            if w & STATE_BITS == HALF_OPEN && w >> GEN_SHIFT == t.generation {
                let tr = Trials::unpack(self.trials.load(Acquire));
                if let Some(to) = self.verdict(tr) {
                    fired = self.transition(&mut d, w, to, self.trial_rates(tr));
                }
            }
            drop(d);
            self.fire(fired);
        }
    }

    pub(super) fn return_trial(&self, t: &Ticket) {
        let generation = t.generation & 0xFFFF;
        let mut cur = self.trials.load(Acquire);
        loop {
            let tr = Trials::unpack(cur);
            if tr.generation != generation || tr.issued == 0 {
                return;
            }
            let next = Trials {
                issued: tr.issued - 1,
                ..tr
            };
            match self
                .trials
                .compare_exchange_weak(cur, next.pack(), AcqRel, Acquire)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    pub(super) fn trial_rates(&self, tr: Trials) -> (f64, f64) {
        let p = f64::from(self.cfg.permitted_calls_in_half_open);
        (tr.failed as f64 * 100.0 / p, tr.slow as f64 * 100.0 / p)
    }

    /// Whether the trials so far settle the half-open state, and how.
    pub(super) fn verdict(&self, tr: Trials) -> Option<u64> {
        let cfg = &self.cfg;
        let permits = u64::from(cfg.permitted_calls_in_half_open);
        let remaining = permits.saturating_sub(tr.ok + tr.failed);
        let p = permits as f64;
        let pct = |n: u64| n as f64 * 100.0 / p;
        let slow_on = cfg.slow_call_duration.is_some();
        let reopen = match cfg.failure_rate_threshold {
            Some(t) => pct(tr.failed) >= t,
            None => tr.failed > 0,
        } || (slow_on && pct(tr.slow) >= cfg.slow_call_rate_threshold);
        if reopen {
            return Some(OPEN);
        }
        let fail_ok = match cfg.failure_rate_threshold {
            Some(t) => pct(tr.failed + remaining) < t,
            None => tr.failed + remaining == 0,
        };
        let slow_ok = !slow_on || pct(tr.slow + remaining) < cfg.slow_call_rate_threshold;
        (fail_ok && slow_ok).then_some(CLOSED)
    }

    pub(super) fn half_open(&self, seen: u64, now: u64) {
        let mut d = sync::lock(&self.decider);
        let w = self.state.load(Acquire);
        let mut fired = None;
        if w == seen && now >= self.open_until.load(Acquire) {
            fired = self.transition(&mut d, w, HALF_OPEN, (0.0, 0.0));
        }
        drop(d);
        self.fire(fired);
    }

    /// The half-open lease ran out: trials still running count as failed.
    pub(super) fn expire_lease(&self, seen: u64, now: u64) {
        let mut d = sync::lock(&self.decider);
        let w = self.state.load(Acquire);
        let mut fired = None;
        if w == seen && now >= self.lease_until.load(Acquire) {
            let mut tr = Trials::unpack(self.trials.load(Acquire));
            tr.failed += tr.issued.saturating_sub(tr.ok + tr.failed);
            match self.verdict(tr) {
                Some(to) => fired = self.transition(&mut d, w, to, self.trial_rates(tr)),
                None => {
                    // Undecided: carry the counts into a new generation, so the expired
                    // trials' late outcomes are ignored, and lease the rest afresh.
                    let generation = ((w >> GEN_SHIFT) + 1) & GEN_MASK;
                    let carried = Trials {
                        generation: generation & 0xFFFF,
                        issued: tr.ok + tr.failed,
                        ..tr
                    };
                    self.trials.store(carried.pack(), Release);
                    self.lease_until.store(self.lease_end(now), Release);
                    self.state
                        .store(generation << GEN_SHIFT | HALF_OPEN, Release);
                }
            }
        }
        drop(d);
        self.fire(fired);
    }

    pub(super) fn lease_end(&self, now: u64) -> u64 {
        self.cfg
            .max_wait_in_half_open
            .map_or(u64::MAX, |d| now.saturating_add(nanos(d)))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn trial_word_round_trips() {
        let t = Trials {
            generation: 0xBEEF,
            issued: 1000,
            ok: 7,
            failed: 4095,
            slow: 1,
        };
        assert_eq!(Trials::unpack(t.pack()), t);
    }
}
