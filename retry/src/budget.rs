//! Retry budgets: retries limited to a share of recent requests.
//!
//! A cap on attempts per request does not stop a retry storm: when a dependency fails, every
//! request turns into `max_attempts` requests and the load on the failing service triples just
//! when it can least take it. A budget bounds retries *across* requests instead, as Finagle and
//! tower do: over a sliding window (default 10 s), retries may not exceed a `ratio` of the
//! requests (default 20 %) plus a floor of `min_per_sec` retries per second (default 10), so a
//! service with little traffic can still retry. When the budget is spent the request gets the
//! failed attempt's result at once; this is counted (`palisade_retry_budget_exhausted_total`
//! and a `tracing` event).
//!
//! # How it is kept (lock-free, no hot shared word)
//!
//! The window is a ring of 16 slots, each stamped with the epoch (slot number since the layer
//! was built) it counts for; a slot whose stamp is older than the window is reset by
//! compare-and-swap when it is next written, so nothing ever locks to rotate the window.
//! Requests are deposited into the calling *thread's* stripe (threads are spread over 16
//! cache-padded stripes, whatever the number of service clones), so the success path writes no
//! word that another thread writes. The current epoch is a read-mostly word, advanced by
//! whoever reads the clock: every retry decision, and every 61st call on a thread (a prime, so
//! that layers interleaved on one thread all get their turn). Only a retry
//! sums the stripes. A retry is recorded before it is checked and undone if it overdraws, so
//! concurrent retries can never overspend the budget. The budget is consulted before the
//! request is rebuilt for the retry (a refused retry rebuilds nothing), and a retry whose
//! request turns out not to be replayable is given back.
//!
//! The budget is shared by every clone of the [`RetryLayer`](crate::RetryLayer) and of the
//! services it makes.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

#[cfg(loom)]
use loom::sync::atomic::AtomicU64;
#[cfg(not(loom))]
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::time::Instant;

use crate::ConfigError;

#[cfg(not(loom))]
const SLOTS: usize = 16;
#[cfg(not(loom))]
const STRIPES: usize = 16;
// Fewer atomics under loom, so the model checker can explore every interleaving.
#[cfg(loom)]
const SLOTS: usize = 2;
#[cfg(loom)]
const STRIPES: usize = 2;
/// How often (in calls on a thread) the success path reads the clock.
const TICK_EVERY: u32 = 61;

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's stripe (`u32::MAX` until first used) and its call count.
    static THREAD: Cell<(u32, u32)> = const { Cell::new((u32::MAX, 0)) };
}

/// The calling thread's stripe, and whether this call should read the clock.
#[inline]
fn thread_stripe() -> (usize, bool) {
    THREAD.with(|c| {
        let (mut stripe, calls) = c.get();
        if stripe == u32::MAX {
            stripe = (NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES) as u32;
        }
        let calls = calls.wrapping_add(1);
        c.set((stripe, calls));
        (stripe as usize, calls.is_multiple_of(TICK_EVERY))
    })
}

/// Retry budget settings: see the [module docs](crate::budget).
///
/// # Default
/// - `ratio`: 0.2 (retries may be 20 % of requests)
/// - `min_per_sec`: 10
/// - `window`: 10 s
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    ratio: f64,
    min_per_sec: u32,
    window: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_sec: 10,
            window: Duration::from_secs(10),
        }
    }
}

impl Budget {
    /// A budget allowing `ratio` (0.0..=1.0) retries per request plus `min_per_sec` retries per
    /// second, over a sliding `window` (100 ms..=1 h). Checked by
    /// [`Builder::build`](crate::Builder::build).
    pub const fn new(ratio: f64, min_per_sec: u32, window: Duration) -> Self {
        Self {
            ratio,
            min_per_sec,
            window,
        }
    }

    /// The share of requests that may be retried.
    pub const fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Retries always allowed per second, whatever the traffic.
    pub const fn min_per_sec(&self) -> u32 {
        self.min_per_sec
    }

    /// The sliding window.
    pub const fn window(&self) -> Duration {
        self.window
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !(self.ratio.is_finite() && (0.0..=1.0).contains(&self.ratio)) {
            return Err(ConfigError::new(
                "budget",
                format!("ratio must be in 0.0..=1.0, got {}", self.ratio),
            ));
        }
        if self.window < Duration::from_millis(100) || self.window > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "budget",
                format!("window must be in 100ms..=1h, got {:?}", self.window),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe([AtomicU64; SLOTS]);

/// The shared, lock-free state of a budget.
#[derive(Debug)]
pub(crate) struct BudgetState {
    start: Instant,
    slot_nanos: u64,
    reserve: f64,
    ratio: f64,
    epoch: AtomicU64,
    stripes: [Stripe; STRIPES],
    retries: Stripe,
}

const fn pack(epoch: u64, count: u64) -> u64 {
    (epoch << 32) | count
}

fn add(slot: &AtomicU64, epoch: u64) {
    let stamp = epoch & 0xFFFF_FFFF;
    let mut cur = slot.load(Ordering::Relaxed);
    loop {
        if cur >> 32 == stamp {
            if cur & 0xFFFF_FFFF != 0xFFFF_FFFF {
                slot.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        match slot.compare_exchange_weak(cur, pack(stamp, 1), Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

/// Takes back one count from `slot`, if it still counts for `epoch`.
fn undo(slot: &AtomicU64, epoch: u64) {
    let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        (v >> 32 == epoch & 0xFFFF_FFFF && v & 0xFFFF_FFFF > 0).then(|| v - 1)
    });
}

fn sum(stripe: &Stripe, epoch: u64) -> u64 {
    let now = epoch & 0xFFFF_FFFF;
    stripe
        .0
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .filter(|v| now.wrapping_sub(v >> 32) & 0xFFFF_FFFF < SLOTS as u64)
        .map(|v| v & 0xFFFF_FFFF)
        .sum()
}

impl BudgetState {
    pub(crate) fn new(budget: &Budget) -> Self {
        Self {
            start: Instant::now(),
            slot_nanos: (budget.window.as_nanos() / SLOTS as u128).max(1) as u64,
            reserve: f64::from(budget.min_per_sec) * budget.window.as_secs_f64(),
            ratio: budget.ratio,
            epoch: AtomicU64::new(0),
            stripes: Default::default(),
            retries: Stripe::default(),
        }
    }

    /// Moves the epoch on to `now`'s; returns it.
    pub(crate) fn tick(&self, now: Instant) -> u64 {
        let e = (now.saturating_duration_since(self.start).as_nanos() / u128::from(self.slot_nanos))
            as u64;
        self.epoch.fetch_max(e, Ordering::Relaxed).max(e)
    }

    /// Counts one request, in the calling thread's stripe.
    #[inline]
    pub(crate) fn deposit(&self) {
        let (stripe, tick) = thread_stripe();
        if tick {
            self.tick(Instant::now());
        }
        self.deposit_into(stripe);
    }

    /// Counts one request in stripe `stripe`.
    ///
    /// A stripe is written by the threads it was handed to (one, until there are more than 16
    /// threads), so a plain load and store does: a deposit lost to a race between two threads
    /// sharing a stripe only makes the budget stricter, never looser.
    #[inline]
    fn deposit_into(&self, stripe: usize) {
        let e = self.epoch.load(Ordering::Relaxed);
        let slot = &self.stripes[stripe % STRIPES].0[e as usize % SLOTS];
        let cur = slot.load(Ordering::Relaxed);
        let stamp = e & 0xFFFF_FFFF;
        let next = if cur >> 32 == stamp {
            if cur & 0xFFFF_FFFF == 0xFFFF_FFFF {
                return;
            }
            cur + 1
        } else {
            pack(stamp, 1)
        };
        slot.store(next, Ordering::Relaxed);
    }

    /// Takes one retry from the budget, if there is one.
    #[cfg(test)]
    pub(crate) fn withdraw(&self, now: Instant) -> bool {
        self.take(now).is_some()
    }

    /// Takes one retry from the budget, if there is one; returns the epoch it was counted in,
    /// for [`refund`](Self::refund).
    pub(crate) fn take(&self, now: Instant) -> Option<u64> {
        let e = self.tick(now);
        self.withdraw_at(e).then_some(e)
    }

    /// Gives back a retry taken at epoch `e` that was not made (the request turned out not to
    /// be replayable). Nothing, if the window has moved past `e` since.
    pub(crate) fn refund(&self, e: u64) {
        undo(&self.retries.0[e as usize % SLOTS], e);
    }

    /// Gives back the retry taken at epoch `taken` and never sent, if any (once: `taken` is
    /// emptied).
    pub(crate) fn give_back(budget: Option<&Self>, taken: &mut Option<u64>) {
        if let (Some(e), Some(budget)) = (taken.take(), budget) {
            budget.refund(e);
        }
    }

    /// Takes one retry from the budget at epoch `e`, if there is one.
    fn withdraw_at(&self, e: u64) -> bool {
        let slot = &self.retries.0[e as usize % SLOTS];
        add(slot, e);
        let requests: u64 = self.stripes.iter().map(|s| sum(s, e)).sum();
        let retries = sum(&self.retries, e);
        let allowed = self.ratio.mul_add(requests as f64, self.reserve);
        if retries as f64 <= allowed {
            return true;
        }
        undo(slot, e);
        false
    }

    /// Retries still allowed now (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn remaining(&self, now: Instant) -> f64 {
        let e = self.tick(now);
        let requests: u64 = self.stripes.iter().map(|s| sum(s, e)).sum();
        self.ratio.mul_add(requests as f64, self.reserve) - sum(&self.retries, e) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test(start_paused = true)]
    async fn floor_only_without_traffic() {
        let b = BudgetState::new(&Budget::new(0.2, 2, Duration::from_secs(1)));
        assert!(b.withdraw(Instant::now()));
        assert!(b.withdraw(Instant::now()));
        assert!(!b.withdraw(Instant::now()));
        assert!(!b.withdraw(Instant::now()), "a denied retry is not counted");
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(b.withdraw(Instant::now()), "the window slid on");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refunded_retry_can_be_taken_again() {
        let b = BudgetState::new(&Budget::new(0.0, 1, Duration::from_secs(1)));
        let e = b.take(Instant::now()).expect("the floor allows one");
        assert!(b.take(Instant::now()).is_none());
        b.refund(e);
        assert!(b.take(Instant::now()).is_some(), "the refund gave it back");
        assert!(b.take(Instant::now()).is_none());
        // A refund for a window that has slid on gives nothing back to the new one, even
        // where the ring reuses the old epoch's slot (16 slots: epoch 16 is slot 0 again).
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(b.take(Instant::now()).is_some());
        b.refund(e);
        assert!(
            b.take(Instant::now()).is_none(),
            "the stale refund changed nothing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ratio_of_requests() {
        let b = BudgetState::new(&Budget::new(0.5, 0, Duration::from_secs(10)));
        for i in 0..10 {
            b.deposit_into(i);
        }
        for _ in 0..5 {
            assert!(b.withdraw(Instant::now()));
        }
        assert!(!b.withdraw(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn refills_after_recovery() {
        let b = BudgetState::new(&Budget::new(0.1, 0, Duration::from_secs(10)));
        for _ in 0..100 {
            b.deposit_into(0);
        }
        while b.withdraw(Instant::now()) {}
        assert!(b.remaining(Instant::now()) < 1.0);
        tokio::time::advance(Duration::from_secs(11)).await;
        b.tick(Instant::now());
        for _ in 0..100 {
            b.deposit_into(3);
        }
        assert!(b.remaining(Instant::now()) >= 10.0);
        assert!(b.withdraw(Instant::now()));
    }

    /// Concurrent retries can never overspend: each is recorded before it is checked and
    /// undone if it overdraws.
    #[test]
    fn concurrent_withdrawals_never_overspend() {
        let b = std::sync::Arc::new(BudgetState::new(&Budget::new(
            0.0,
            5,
            Duration::from_secs(10),
        )));
        let taken = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (b, taken) = (b.clone(), taken.clone());
                std::thread::spawn(move || {
                    for _ in 0..2_000 {
                        if b.withdraw(Instant::now()) {
                            taken.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let taken = taken.load(Ordering::Relaxed);
        assert!(taken <= 50 && taken > 0, "{taken}");
    }

    proptest! {
        /// Over a long run of failures at any rate, the retries taken in every window never
        /// exceed the floor plus the ratio of the requests in that window.
        #[test]
        fn retries_never_exceed_the_budget(
            per_tick in 1u32..50, ticks in 10u32..200, ratio in 0.0f64..=1.0, floor in 0u32..20,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            rt.block_on(async move {
                let window = Duration::from_secs(10);
                let b = BudgetState::new(&Budget::new(ratio, floor, window));
                // model: (time, requests, retries) per 1 s tick
                let mut history: Vec<(u64, u64)> = Vec::new();
                for t in 0..ticks {
                    let now = Instant::now();
                    b.tick(now);
                    let mut taken = 0;
                    for i in 0..per_tick {
                        b.deposit_into(i as usize);
                        if b.withdraw(now) { taken += 1; }
                    }
                    history.push((u64::from(per_tick), taken));
                    let from = (t as usize + 1).saturating_sub(10);
                    let reqs: u64 = history[from..].iter().map(|h| h.0).sum();
                    let rets: u64 = history[from..].iter().map(|h| h.1).sum();
                    let allowed = ratio.mul_add(reqs as f64, f64::from(floor) * 10.0);
                    assert!(rets as f64 <= allowed + 1e-9, "t={t} retries {rets} > {allowed}");
                    tokio::time::advance(Duration::from_secs(1)).await;
                }
            });
        }
    }
}

/// Loom models: run with
/// `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p palisade-retry --release --lib budget::loom_models`.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use ::loom::sync::Arc;
    use ::loom::thread;

    fn state(ratio: f64, floor: u32) -> BudgetState {
        BudgetState::new(&Budget::new(ratio, floor, Duration::from_secs(1)))
    }

    /// Two retries racing for the last unit of budget: at most one gets it, and the budget
    /// is left consistent (a refused retry is undone).
    #[test]
    fn racing_retries_never_overspend() {
        ::loom::model(|| {
            let b = Arc::new(state(0.0, 1));
            let b2 = b.clone();
            let t = thread::spawn(move || b2.withdraw_at(0));
            let mine = b.withdraw_at(0);
            let theirs = t.join().unwrap();
            assert!(!(mine && theirs), "both took the one retry");
            assert_eq!(sum(&b.retries, 0), u64::from(mine) + u64::from(theirs));
        });
    }

    /// A retry given back while another retry races for the one unit: the count always
    /// matches the retries actually held, and the two never hold the unit together.
    #[test]
    fn a_refund_racing_a_retry_keeps_the_count() {
        ::loom::model(|| {
            let b = Arc::new(state(0.0, 1));
            assert!(b.withdraw_at(0));
            let b2 = b.clone();
            let t = thread::spawn(move || b2.withdraw_at(0));
            b.refund(0);
            let theirs = t.join().unwrap();
            assert_eq!(sum(&b.retries, 0), u64::from(theirs));
        });
    }

    /// A retry racing a deposit: it is allowed only if it saw the deposit, never more
    /// retries than the budget holds.
    #[test]
    fn a_retry_racing_a_deposit_sees_it_or_is_refused() {
        ::loom::model(|| {
            let b = Arc::new(state(1.0, 0));
            let b2 = b.clone();
            let t = thread::spawn(move || b2.deposit_into(1));
            let took = b.withdraw_at(0);
            t.join().unwrap();
            let requests: u64 = b.stripes.iter().map(|s| sum(s, 0)).sum();
            assert_eq!(requests, 1);
            assert!(sum(&b.retries, 0) <= requests);
            assert_eq!(sum(&b.retries, 0), u64::from(took));
        });
    }
}
