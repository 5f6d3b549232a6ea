//! Sliding windows: running counters, never a scan.
//!
//! Every admitted call's outcome is added to the counter stripe of the service clone that
//! made it ([`Stripe`]); stripes only grow. The rates are decided from the *sum* of the
//! stripes minus a snapshot of that sum taken when the window's oldest bucket began:
//!
//! - the striped **count** window places only failures and slow calls in buckets of
//!   positions (a success cannot raise a rate, so it never needs a position);
//! - the **time** window stamps buckets with their epoch, snapshotting the sum the first
//!   time a call (or a statistics read) sees time enter a new bucket;
//! - the **exact count** window is a ring of outcome slots written at a `fetch_add`ed
//!   index, adjusting its counters for the outcome each write overwrites.
//!
//! Snapshots are taken by whoever holds the decision lock, which a success only takes when
//! it can change a decision (while the window holds fewer than `minimum_calls` calls, or
//! when a time bucket rolls over).

use crate::config::WindowKind;
use crate::sync::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// One service clone's counters, on its own cache lines.
///
/// `admitted` counts the calls a closed breaker admitted through this stripe (the count
/// window counts calls when they are admitted). When a service clone owns the stripe
/// exclusively (`owner`), only that clone writes `admitted`, with a plain load and store;
/// the other counters are written with atomic adds, on slower paths.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Stripe {
    pub(crate) owner: AtomicBool,
    /// Written only by the clone owning the stripe.
    pub(crate) admitted: AtomicU64,
    /// Written (with atomic adds) by clones that found no free stripe to own.
    pub(crate) admitted_shared: AtomicU64,
    pub(crate) retracted: AtomicU64,
    pub(crate) calls: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) slow: AtomicU64,
    pub(crate) ignored: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

/// Counts of calls, failures and slow calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

impl Counts {
    pub(crate) const ZERO: Counts = Counts {
        calls: 0,
        failures: 0,
        slow: 0,
    };

    pub(crate) fn one(failure: bool, slow: bool) -> Counts {
        Counts {
            calls: 1,
            failures: u64::from(failure),
            slow: u64::from(slow),
        }
    }

    /// Failures and slow calls capped at the number of calls. The striped windows place
    /// outcomes by position when they are recorded; a call the count window counted on
    /// admission and later took back (cancelled or ignored) shifts those positions, which
    /// could otherwise leave more failures than calls in the window (a rate over 100 %).
    pub(crate) fn capped(self) -> Counts {
        Counts {
            calls: self.calls,
            failures: self.failures.min(self.calls),
            slow: self.slow.min(self.calls),
        }
    }

    pub(crate) fn minus(self, other: Counts) -> Counts {
        Counts {
            calls: self.calls.saturating_sub(other.calls),
            failures: self.failures.saturating_sub(other.failures),
            slow: self.slow.saturating_sub(other.slow),
        }
    }
}

pub(crate) fn sum(stripes: &[Stripe]) -> Counts {
    let mut c = Counts::ZERO;
    for s in stripes {
        c.calls +=
            s.admitted.load(Relaxed) + s.admitted_shared.load(Relaxed) + s.calls.load(Relaxed);
        c.calls = c.calls.saturating_sub(s.retracted.load(Relaxed));
        c.failures += s.failures.load(Relaxed);
        c.slow += s.slow.load(Relaxed);
    }
    c
}

#[derive(Debug, Clone, Copy)]
struct Snap {
    stamp: u64,
    counts: Counts,
}

/// The window bookkeeping that lives under the decision lock.
#[derive(Debug)]
pub(crate) struct Snapshots {
    /// Stripe sums when the window was last reset.
    base: Counts,
    /// Bucket width in calls (count window) or nanoseconds (time window).
    width: u64,
    buckets: u64,
    /// The latest bucket a decision has seen.
    last: u64,
    /// The bucket the window was reset in.
    first: u64,
    /// The counts (relative to `base`) the previous decision saw.
    seen: Counts,
    ring: Vec<Snap>,
}

impl Snapshots {
    pub(crate) fn new(kind: WindowKind) -> Snapshots {
        let (width, buckets) = match kind {
            WindowKind::Count { size } => {
                let buckets = size.min(10);
                (
                    size.div_ceil(buckets),
                    size.div_ceil(size.div_ceil(buckets)),
                )
            }
            WindowKind::Time { duration, buckets } => {
                let width = (duration.as_nanos() / u128::from(buckets)) as u64;
                (width.max(1), u64::from(buckets))
            }
            WindowKind::ExactCount { .. } => (1, 1),
        };
        Snapshots {
            base: Counts::ZERO,
            width,
            buckets,
            last: 0,
            first: 0,
            seen: Counts::ZERO,
            ring: vec![
                Snap {
                    stamp: u64::MAX,
                    counts: Counts::ZERO,
                };
                buckets as usize
            ],
        }
    }

    /// The time window's epoch (bucket number) at `now` nanoseconds.
    pub(crate) fn epoch(&self, now: u64) -> u64 {
        now / self.width
    }

    /// Starts an empty window at stripe sums `totals`, in bucket `first`.
    pub(crate) fn reset(&mut self, totals: Counts, first: u64) {
        self.base = totals;
        self.first = first;
        self.last = first;
        self.seen = Counts::ZERO;
        let slot = (first % self.buckets) as usize;
        self.ring[slot] = Snap {
            stamp: first,
            counts: Counts::ZERO,
        };
    }

    /// Enters bucket `to` at counts `rel` (relative to `base`), `own` being the outcome
    /// that triggered this decision: every bucket entered is stamped with the counts as they
    /// stood before it.
    ///
    /// Failures and slow calls are stamped as the *previous decision* saw them, not as they
    /// stand now: those recorded since then (while the decider was descheduled and admissions
    /// ran on, or while another thread held the decision lock) are placed in the newest
    /// buckets. Stamping them into the skipped buckets would make them look older than the
    /// window, and a storm of failures could then never trip it (seen under a 64-task storm
    /// on a 4-thread runtime: 13 failures counted in a window of 50 failed calls). Placing
    /// them as new keeps them in the window until the buckets after them leave it, which
    /// errs towards tripping. Decided one outcome at a time (failures and slow calls always
    /// ask for a decision), both are the same.
    fn advance(&mut self, to: u64, rel: Counts, own: Counts) {
        let seen = self.seen;
        self.seen = Counts {
            calls: rel.calls,
            failures: rel.failures.max(seen.failures),
            slow: rel.slow.max(seen.slow),
        };
        if to <= self.last {
            return;
        }
        let now = rel.minus(own);
        let failures = now.failures.min(seen.failures);
        let slow = now.slow.min(seen.slow);
        // The calls behind those late failures and slow calls are new too (successes not
        // decided on stay where they are: a warm success never asks for a decision).
        let late = (now.failures - failures).max(now.slow - slow);
        let before = Counts {
            calls: now.calls.saturating_sub(late),
            failures,
            slow,
        };
        let from = (self.last + 1).max((to + 1).saturating_sub(self.buckets));
        for b in from..=to {
            let slot = (b % self.buckets) as usize;
            self.ring[slot] = Snap {
                stamp: b,
                counts: before,
            };
        }
        self.last = to;
    }

    fn since(&self, start: u64) -> Counts {
        if start <= self.first {
            return Counts::ZERO;
        }
        let snap = self.ring[(start % self.buckets) as usize];
        if snap.stamp == start {
            snap.counts
        } else {
            // Cannot happen single-threaded: every bucket up to `last` was filled.
            Counts::ZERO
        }
    }

    /// The striped count window at stripe sums `totals`, `own` being the outcome that
    /// triggered this decision (already included in `totals`).
    pub(crate) fn count_window(&mut self, totals: Counts, own: Counts) -> Counts {
        let rel = totals.minus(self.base);
        if rel.calls == 0 {
            return Counts::ZERO;
        }
        let bucket = (rel.calls - 1) / self.width;
        self.advance(bucket, rel, own);
        let start = (bucket + 1).saturating_sub(self.buckets);
        let before = self.since(start);
        Counts {
            calls: rel.calls - (start * self.width).min(rel.calls),
            failures: rel.failures.saturating_sub(before.failures),
            slow: rel.slow.saturating_sub(before.slow),
        }
        .capped()
    }

    /// The time window at stripe sums `totals` in `epoch`, `own` being the outcome that
    /// triggered this decision (already included in `totals`).
    pub(crate) fn time_window(&mut self, totals: Counts, own: Counts, epoch: u64) -> Counts {
        let rel = totals.minus(self.base);
        let epoch = epoch.max(self.last);
        self.advance(epoch, rel, own);
        let start = (epoch + 1).saturating_sub(self.buckets);
        rel.minus(self.since(start)).capped()
    }

    /// The latest bucket seen (the time window's published epoch).
    pub(crate) fn last(&self) -> u64 {
        self.last
    }
}

/// The exact count window: a ring of the last `size` outcomes.
#[derive(Debug)]
pub(crate) struct ExactRing {
    seq: AtomicU64,
    slots: Box<[AtomicU64]>,
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

const FILLED: u64 = 1;
const FAILED: u64 = 2;
const SLOW: u64 = 4;

impl ExactRing {
    pub(crate) fn new(size: u64) -> ExactRing {
        ExactRing {
            seq: AtomicU64::new(0),
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            slow: AtomicU64::new(0),
        }
    }

    /// Writes one outcome over the oldest, adjusting the counters for what it replaced.
    pub(crate) fn record(&self, failure: bool, slow: bool) {
        let i = self.seq.fetch_add(1, Relaxed);
        let code = FILLED | if failure { FAILED } else { 0 } | if slow { SLOW } else { 0 };
        let len = self.slots.len() as u64;
        let old = self.slots[(i % len) as usize].swap(code, Relaxed);
        if old & FILLED == 0 {
            self.calls.fetch_add(1, Relaxed);
        }
        adjust(&self.failures, old & FAILED != 0, failure);
        adjust(&self.slow, old & SLOW != 0, slow);
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            calls: self.calls.load(Relaxed),
            failures: self.failures.load(Relaxed),
            slow: self.slow.load(Relaxed),
        }
    }

    pub(crate) fn clear(&self) {
        for s in self.slots.iter() {
            s.store(0, Relaxed);
        }
        self.calls.store(0, Relaxed);
        self.failures.store(0, Relaxed);
        self.slow.store(0, Relaxed);
        self.seq.store(0, Relaxed);
    }
}

fn adjust(counter: &AtomicU64, was: bool, is: bool) {
    match (was, is) {
        (false, true) => {
            counter.fetch_add(1, Relaxed);
        }
        (true, false) => {
            counter.fetch_sub(1, Relaxed);
        }
        _ => {}
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    fn c(calls: u64, failures: u64) -> Counts {
        Counts {
            calls,
            failures,
            slow: 0,
        }
    }

    /// Feeds outcomes one by one into a count window, deciding after every failure only,
    /// as the breaker does once the window is warm.
    #[test]
    fn count_window_evicts_a_bucket_exactly_at_the_boundary() {
        let mut w = Snapshots::new(WindowKind::Count { size: 10 });
        w.reset(Counts::ZERO, 0);
        // 10 buckets of 1 call: a failure, then 9 successes.
        let mut totals = c(1, 1);
        assert_eq!(w.count_window(totals, c(1, 1)), c(1, 1));
        totals = c(10, 1);
        assert_eq!(w.count_window(totals, Counts::ZERO), c(10, 1));
        // The 11th call pushes the failure out.
        totals = c(11, 1);
        assert_eq!(w.count_window(totals, Counts::ZERO), c(10, 0));
    }

    #[test]
    fn count_window_with_wide_buckets_drops_a_whole_bucket() {
        let mut w = Snapshots::new(WindowKind::Count { size: 100 });
        w.reset(Counts::ZERO, 0);
        // Failure at position 5 (bucket 0).
        assert_eq!(w.count_window(c(5, 1), c(1, 1)).failures, 1);
        // At position 100 the window still starts at bucket 0.
        assert_eq!(w.count_window(c(100, 1), Counts::ZERO), c(100, 1));
        // Position 101 starts bucket 10: bucket 0 (positions 1..=10) leaves.
        assert_eq!(w.count_window(c(101, 1), Counts::ZERO), c(91, 0));
    }

    #[test]
    fn count_window_fills_skipped_buckets() {
        let mut w = Snapshots::new(WindowKind::Count { size: 10 });
        w.reset(c(7, 3), 0);
        // 25 calls later (no decision in between) a failure arrives.
        let got = w.count_window(c(7 + 25, 3 + 1), c(1, 1));
        assert_eq!(got, c(10, 1));
    }

    /// Failures recorded while no decision ran (the decider descheduled, admissions
    /// running on) count as recent, not as older than the window: a storm still trips.
    #[test]
    fn failures_recorded_between_lagging_decisions_stay_in_the_window() {
        let mut w = Snapshots::new(WindowKind::Count { size: 10 });
        w.reset(Counts::ZERO, 0);
        assert_eq!(w.count_window(c(1, 1), c(1, 1)), c(1, 1));
        // 20 more calls admitted and 15 of them failed before the next decision runs.
        let got = w.count_window(c(21, 16), c(1, 1));
        assert_eq!(got, c(10, 10), "every call in the window failed");
        // Decided one outcome at a time, the window slides exactly.
        assert_eq!(w.count_window(c(22, 17), c(1, 1)), c(10, 10));
    }

    #[test]
    fn time_window_counts_failures_seen_late_as_recent() {
        let mut w = Snapshots::new(WindowKind::Time {
            duration: Duration::from_secs(10),
            buckets: 10,
        });
        let sec = 1_000_000_000;
        w.reset(Counts::ZERO, 0);
        assert_eq!(w.time_window(c(1, 1), c(1, 1), 0), c(1, 1));
        // 30 s later (no decision meanwhile), 40 more failed calls are in the stripes:
        // they are recent, not older than the window.
        let got = w.time_window(c(41, 41), c(1, 1), w.epoch(30 * sec));
        assert_eq!(got, c(40, 40));
    }

    #[test]
    fn time_window_evicts_exactly_at_the_bucket_boundary() {
        let mut w = Snapshots::new(WindowKind::Time {
            duration: Duration::from_secs(10),
            buckets: 10,
        });
        let sec = 1_000_000_000;
        w.reset(Counts::ZERO, w.epoch(0));
        // A failure at t = 0.5 s.
        assert_eq!(w.time_window(c(1, 1), c(1, 1), w.epoch(sec / 2)), c(1, 1));
        // At t = 9.999 s it is still in the window.
        assert_eq!(
            w.time_window(c(1, 1), Counts::ZERO, w.epoch(10 * sec - 1)),
            c(1, 1)
        );
        // At t = 10 s its bucket has left.
        assert_eq!(
            w.time_window(c(1, 1), Counts::ZERO, w.epoch(10 * sec)),
            Counts::ZERO
        );
    }

    #[test]
    fn time_window_after_a_long_idle_gap_is_empty() {
        let mut w = Snapshots::new(WindowKind::Time {
            duration: Duration::from_secs(10),
            buckets: 10,
        });
        let sec = 1_000_000_000;
        w.reset(Counts::ZERO, 0);
        w.time_window(c(5, 5), c(1, 1), 0);
        let got = w.time_window(c(6, 5), c(1, 0), w.epoch(1000 * sec));
        assert_eq!(got, c(1, 0));
    }

    #[test]
    fn exact_ring_keeps_exactly_the_last_n() {
        let r = ExactRing::new(3);
        r.record(true, false);
        r.record(false, true);
        r.record(false, false);
        assert_eq!(
            r.counts(),
            Counts {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        r.record(false, false); // overwrites the failure
        assert_eq!(r.counts().failures, 0);
        r.record(false, false); // overwrites the slow call
        assert_eq!(r.counts().slow, 0);
        assert_eq!(r.counts().calls, 3);
        r.clear();
        assert_eq!(r.counts(), Counts::ZERO);
    }
}
