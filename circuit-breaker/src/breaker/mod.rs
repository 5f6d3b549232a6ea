//! The shared state machine behind every clone of a breaker.
//!
//! **Admission.** One word packs the state, a "cold" bit and a generation. A closed breaker
//! admits a call with a single atomic load of it. Every transition bumps the generation;
//! each admitted call carries the generation it was admitted in, and an outcome that
//! arrives after the generation moved on (a late call from before a trip, a half-open
//! trial whose lease expired) is ignored.
//!
//! **Recording.** A success in a warm closed breaker is one add on the calling clone's own
//! counter stripe. Failures, slow calls, successes while the window holds fewer than
//! `minimum_calls` calls (the cold bit) and successes that see a time bucket roll over ask
//! for a decision, which sums the stripes under the decision lock; a thread that asks
//! while another is deciding leaves its request on an atomic counter, and the decider
//! decides again before leaving, so no decision is lost and only one thread waits for the
//! lock. Every state write happens under that lock.
//!
//! **Half-open.** Trial permits are taken by compare-and-swap on a word that carries the
//! generation's low bits and the counts of permits issued, succeeded, failed and slow; a
//! dropped trial gives its permit back.

mod clock;
mod half_open;
mod ticket;

use std::sync::Arc as StdArc;
use std::time::Duration;

use tokio::sync::watch;

use crate::State;
use crate::classify::Outcome;
use crate::config::{Config, StateChangeHook, WindowKind};
use crate::handle::{Stats, Transition};
use crate::observe::{self, Instruments};
use crate::sync::{
    self, Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use crate::window::{self, Counts, ExactRing, Snapshots, Stripe};

#[cfg(loom)]
pub use clock::loom_set_now;
use clock::{Clock, nanos};
use half_open::Trials;
pub(crate) use ticket::{Kind, Rejection, Ticket};

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const DISABLED: u64 = 3;
const FORCED_OPEN: u64 = 4;
const STATE_BITS: u64 = 0b111;
const COLD: u64 = 0b1000;
const GEN_SHIFT: u32 = 4;
/// Generations wrap at 48 bits, so a call's ticket packs into one word.
const GEN_MASK: u64 = (1 << 48) - 1;

fn state_of(word: u64) -> State {
    match word & STATE_BITS {
        CLOSED => State::Closed,
        OPEN => State::Open,
        HALF_OPEN => State::HalfOpen,
        DISABLED => State::Disabled,
        _ => State::ForcedOpen,
    }
}

/// State under the decision lock.
#[derive(Debug)]
struct Decider {
    window: Snapshots,
    /// Opens since the breaker last closed after a successful half-open (for the backoff).
    opens: u32,
}

/// The state shared by every clone of one breaker (and its handles).
pub(crate) struct Core {
    pub(crate) name: StdArc<str>,
    state: AtomicU64,
    cfg: Config,
    stripes: Box<[Stripe]>,
    next_stripe: AtomicUsize,
    exact: Option<ExactRing>,
    /// Bucket width in nanoseconds, for a time window.
    bucket_nanos: Option<u64>,
    /// The striped count window: calls are counted when admitted.
    count_window: bool,
    /// Warm closed successes need no recording (count window, no slow-call detection, no
    /// consecutive-failure count, no metrics recorder).
    lean: bool,
    #[cfg(not(loom))]
    key: std::sync::OnceLock<crate::registry::Key>,
    /// Whether the rates can trip the breaker (so the window's warm-up matters).
    rates_trip: bool,
    epoch: AtomicU64,
    consecutive: AtomicU64,
    trials: AtomicU64,
    open_until: AtomicU64,
    lease_until: AtomicU64,
    decider: Mutex<Decider>,
    requests: AtomicUsize,
    clock: Clock,
    watch: watch::Sender<State>,
    hook: Option<StateChangeHook>,
    metrics: Instruments,
    /// For keyed breakers: the cap on the share of keys open at once.
    gate: Option<StdArc<crate::keyed::OpenGate>>,
    /// For keyed breakers: evicted from the key map; service clones drop their cell.
    pub(crate) retired: AtomicBool,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("name", &self.name)
            .field("state", &state_of(self.state.load(Relaxed)))
            .field("config", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// How many counter stripes a breaker gets: twice the parallelism, a power of two.
pub(crate) fn default_stripes() -> usize {
    #[cfg(loom)]
    {
        2
    }
    #[cfg(not(loom))]
    {
        let n = std::thread::available_parallelism().map_or(4, |n| n.get());
        (8 * n).next_power_of_two().clamp(16, 128)
    }
}

impl Core {
    pub(crate) fn new(
        name: StdArc<str>,
        cfg: Config,
        hook: Option<StateChangeHook>,
        stripes: usize,
    ) -> Core {
        let stripes = stripes.next_power_of_two().max(1);
        let clock = Clock::new();
        let mut window = Snapshots::new(cfg.window);
        let bucket_nanos = match cfg.window {
            WindowKind::Time { duration, buckets } => {
                Some((nanos(duration) / u64::from(buckets)).max(1))
            }
            _ => None,
        };
        let first = bucket_nanos.map_or(0, |_| window.epoch(clock.now()));
        window.reset(Counts::ZERO, first);
        let exact = match cfg.window {
            WindowKind::ExactCount { size } => Some(ExactRing::new(size)),
            _ => None,
        };
        let rates_trip = cfg.failure_rate_threshold.is_some() || cfg.slow_call_duration.is_some();
        let count_window = matches!(cfg.window, WindowKind::Count { .. });
        let metrics = Instruments::new(&name);
        let lean = count_window
            && cfg.slow_call_duration.is_none()
            && cfg.consecutive_failures.is_none()
            && !metrics.active()
            && cfg!(not(loom));
        Core {
            state: AtomicU64::new(CLOSED | if rates_trip { COLD } else { 0 }),
            stripes: (0..stripes).map(|_| Stripe::default()).collect(),
            next_stripe: AtomicUsize::new(0),
            exact,
            bucket_nanos,
            count_window,
            lean,
            #[cfg(not(loom))]
            key: std::sync::OnceLock::new(),
            rates_trip,
            epoch: AtomicU64::new(first),
            consecutive: AtomicU64::new(0),
            trials: AtomicU64::new(0),
            open_until: AtomicU64::new(0),
            lease_until: AtomicU64::new(u64::MAX),
            decider: Mutex::new(Decider { window, opens: 0 }),
            requests: AtomicUsize::new(0),
            clock,
            watch: watch::Sender::new(State::Closed),
            hook,
            metrics,
            gate: None,
            retired: AtomicBool::new(false),
            name,
            cfg,
        }
    }

    /// Caps the share of open keys (keyed breakers).
    pub(crate) fn with_gate(mut self, gate: StdArc<crate::keyed::OpenGate>) -> Core {
        self.gate = Some(gate);
        self
    }

    /// A number that changes whenever a call goes through or is rejected (for idle
    /// detection).
    pub(crate) fn activity(&self) -> u64 {
        self.stripes.iter().fold(0, |n, s| {
            n.wrapping_add(s.admitted.load(Relaxed))
                .wrapping_add(s.admitted_shared.load(Relaxed))
                .wrapping_add(s.calls.load(Relaxed))
                .wrapping_add(s.rejected.load(Relaxed))
                .wrapping_add(s.ignored.load(Relaxed))
        })
    }

    /// The stored state, without applying due transitions.
    pub(crate) fn raw_state(&self) -> State {
        state_of(self.state.load(Acquire))
    }

    /// Wraps a new core in an `Arc` and registers it, so that lean permits can find it.
    pub(crate) fn shared(core: Core) -> Arc<Core> {
        let core = Arc::new(core);
        #[cfg(not(loom))]
        {
            if let Some(key) = crate::registry::register(Arc::downgrade(&core)) {
                let _ = core.key.set(key);
            }
        }
        core
    }

    /// The registry key of a shared core.
    #[cfg(not(loom))]
    pub(crate) fn key(&self) -> Option<crate::registry::Key> {
        self.key.get().copied()
    }

    /// Picks the counter stripe for a new service clone: one it owns alone if any is free
    /// (so it can count admissions with plain stores), else a shared one.
    pub(crate) fn claim_stripe(&self) -> (usize, bool) {
        let n = self.stripes.len();
        let start = self.next_stripe.fetch_add(1, Relaxed);
        // A few probes from a round-robin start: making a clone stays cheap even when
        // every stripe is owned (axum clones a route's service per request).
        for i in 0..n.min(8) {
            let idx = (start + i) & (n - 1);
            let owner = &self.stripes[idx].owner;
            if !owner.load(Relaxed)
                && owner
                    .compare_exchange(false, true, Acquire, Relaxed)
                    .is_ok()
            {
                return (idx, true);
            }
        }
        (start & (n - 1), false)
    }

    /// Gives back a stripe claimed alone (its counts stay: they only ever grow).
    pub(crate) fn release_stripe(&self, stripe: usize) {
        self.stripes[stripe].owner.store(false, Release);
    }

    /// Counts a call admitted by a closed (or disabled) breaker with a count window.
    #[inline]
    pub(crate) fn count_admission(&self, stripe: usize, exclusive: bool, t: &Ticket) {
        if !self.count_window || t.kind == Kind::HalfOpen {
            return;
        }
        let s = &self.stripes[stripe];
        if exclusive {
            // Only the owning clone writes this counter: no read-modify-write needed.
            s.admitted.store(s.admitted.load(Relaxed) + 1, Relaxed);
        } else {
            s.admitted_shared.fetch_add(1, Relaxed);
        }
    }

    #[inline]
    fn start(&self) -> Option<u64> {
        if self.cfg.slow_call_duration.is_some() {
            Some(self.clock.now())
        } else {
            None
        }
    }

    /// Admits a call or says why not.
    #[inline]
    pub(crate) fn acquire(&self, stripe: usize) -> Result<Ticket, Rejection> {
        let w = self.state.load(Acquire);
        if w & STATE_BITS == CLOSED {
            return Ok(Ticket {
                generation: w >> GEN_SHIFT,
                kind: Kind::Closed,
                start: self.start(),
                lean: self.lean && w & COLD == 0,
            });
        }
        self.acquire_slow(stripe)
    }

    #[cold]
    fn acquire_slow(&self, stripe: usize) -> Result<Ticket, Rejection> {
        loop {
            let w = self.state.load(Acquire);
            let generation = w >> GEN_SHIFT;
            match w & STATE_BITS {
                CLOSED => {
                    return Ok(Ticket {
                        generation,
                        kind: Kind::Closed,
                        start: self.start(),
                        lean: self.lean && w & COLD == 0,
                    });
                }
                DISABLED => {
                    return Ok(Ticket {
                        generation,
                        kind: Kind::Disabled,
                        start: self.start(),
                        lean: false,
                    });
                }
                FORCED_OPEN => return Err(self.reject(stripe, State::ForcedOpen, None)),
                OPEN => {
                    let now = self.clock.now();
                    let until = self.open_until.load(Acquire);
                    if now < until {
                        let after = Duration::from_nanos(until - now);
                        return Err(self.reject(stripe, State::Open, Some(after)));
                    }
                    self.half_open(w, now);
                }
                _ => match self.take_trial(w) {
                    Some(true) => {
                        return Ok(Ticket {
                            generation,
                            kind: Kind::HalfOpen,
                            start: self.start(),
                            lean: false,
                        });
                    }
                    Some(false) => {
                        if self.cfg.max_wait_in_half_open.is_some() {
                            let now = self.clock.now();
                            if now >= self.lease_until.load(Acquire) {
                                self.expire_lease(w, now);
                                continue;
                            }
                        }
                        return Err(self.reject(stripe, State::HalfOpen, None));
                    }
                    None => {}
                },
            }
        }
    }

    fn reject(&self, stripe: usize, state: State, retry_after: Option<Duration>) -> Rejection {
        self.stripes[stripe].rejected.fetch_add(1, Relaxed);
        self.metrics.rejected();
        Rejection { state, retry_after }
    }

    /// Records an admitted call's outcome.
    #[inline]
    pub(crate) fn complete(&self, stripe: usize, t: &Ticket, outcome: Outcome) {
        if t.lean && outcome == Outcome::Success {
            return; // counted when admitted; nothing can change
        }
        if self.count_window
            && outcome == Outcome::Success
            && t.kind == Kind::Closed
            && t.start.is_none()
            && self.state.load(Acquire) == t.generation << GEN_SHIFT
        {
            // Warm, same generation, counted when admitted: only the side counters.
            if self.cfg.consecutive_failures.is_some() && self.consecutive.load(Relaxed) != 0 {
                self.consecutive.store(0, Relaxed);
            }
            self.metrics.success();
            return;
        }
        self.complete_slow(stripe, t, outcome);
    }

    fn complete_slow(&self, stripe: usize, t: &Ticket, outcome: Outcome) {
        let now = if t.start.is_some() || self.bucket_nanos.is_some() {
            self.clock.now()
        } else {
            0
        };
        let slow = match (t.start, self.cfg.slow_call_duration) {
            (Some(start), Some(d)) => now.saturating_sub(start) > nanos(d),
            _ => false,
        };
        let s = &self.stripes[stripe];
        if outcome == Outcome::Ignored {
            s.ignored.fetch_add(1, Relaxed);
            self.metrics.ignored();
            self.retract(s, t);
            return;
        }
        let failure = outcome == Outcome::Failure;
        self.metrics.outcome(failure, slow);
        if t.kind == Kind::HalfOpen {
            self.complete_trial(s, t, failure, slow);
            return;
        }
        let w = self.state.load(Acquire);
        if w >> GEN_SHIFT != t.generation {
            return; // late: the breaker moved on since this call was admitted
        }
        if self.count_window {
            // The call was counted when admitted; add what it turned out to be.
            if failure {
                s.failures.fetch_add(1, Relaxed);
            }
            if slow {
                s.slow.fetch_add(1, Relaxed);
            }
        } else {
            add(s, failure, slow);
        }
        if let Some(ring) = &self.exact {
            ring.record(failure, slow);
        }
        let mut decide = failure || slow || w & COLD != 0;
        if t.kind == Kind::Disabled {
            // No decision, but keep the window's buckets placed for the statistics.
            if failure || slow || self.bucket_nanos.is_some() {
                self.decide(Counts::one(failure, slow), now);
            }
            return;
        }
        if let Some(n) = self.cfg.consecutive_failures {
            if failure {
                decide |= self.consecutive.fetch_add(1, AcqRel) + 1 >= u64::from(n);
            } else if self.consecutive.load(Relaxed) != 0 {
                self.consecutive.store(0, Relaxed);
            }
        }
        if let Some(width) = self.bucket_nanos {
            decide |= now / width > self.epoch.load(Acquire);
        }
        if decide {
            self.decide(Counts::one(failure, slow), now);
        }
    }

    /// Decides on the window without blocking: if another thread holds the decision lock,
    /// leave a note so that it decides again before leaving.
    fn decide(&self, own: Counts, now: u64) {
        // Each request for a decision bumps `requests`; the thread that bumps it from 0
        // decides, and keeps deciding until no request came in meanwhile. The others
        // return at once: their counts are already in the stripes, and the read-modify-
        // writes on `requests` make them visible to the decider's next evaluation.
        if self.requests.fetch_add(1, AcqRel) != 0 {
            return;
        }
        let mut own = own;
        loop {
            let seen = self.requests.load(Acquire);
            let mut d = sync::lock(&self.decider);
            let t = self.evaluate(&mut d, own, now);
            drop(d);
            self.fire(t);
            own = Counts::ZERO;
            if self.requests.fetch_sub(seen, AcqRel) == seen {
                return;
            }
        }
    }

    fn window_counts(&self, d: &mut Decider, own: Counts, now: u64) -> Counts {
        if let Some(ring) = &self.exact {
            return ring.counts();
        }
        let totals = window::sum(&self.stripes);
        match self.bucket_nanos {
            Some(_) => {
                let epoch = d.window.epoch(now);
                let counts = d.window.time_window(totals, own, epoch);
                self.epoch.store(d.window.last(), Release);
                counts
            }
            None => d.window.count_window(totals, own),
        }
    }

    fn evaluate(&self, d: &mut Decider, own: Counts, now: u64) -> Option<Transition> {
        let w = self.state.load(Acquire);
        if w & STATE_BITS == DISABLED {
            self.window_counts(d, own, now);
            return None;
        }
        if w & STATE_BITS != CLOSED {
            return None;
        }
        let counts = self.window_counts(d, own, now);
        let (failure_rate, slow_rate) = rates(counts);
        let cfg = &self.cfg;
        let consecutive = cfg
            .consecutive_failures
            .is_some_and(|n| self.consecutive.load(Acquire) >= u64::from(n));
        let by_rate = counts.calls >= cfg.minimum_calls
            && (cfg
                .failure_rate_threshold
                .is_some_and(|t| failure_rate >= t)
                || (cfg.slow_call_duration.is_some() && slow_rate >= cfg.slow_call_rate_threshold));
        if consecutive || by_rate {
            if self.gate.as_ref().is_some_and(|g| !g.may_open()) {
                return None; // too many keys open already: stay closed
            }
            return self.transition(d, w, OPEN, (failure_rate, slow_rate));
        }
        if self.rates_trip {
            let cold = counts.calls < cfg.minimum_calls;
            if cold != (w & COLD != 0) {
                self.state.store(w ^ COLD, Release);
            }
        }
        None
    }

    /// Takes back an admitted call that ended without an outcome (ignored or cancelled):
    /// a half-open permit is returned, and a call the count window counted on admission is
    /// subtracted again (if the window was not reset since).
    fn retract(&self, s: &Stripe, t: &Ticket) {
        match t.kind {
            Kind::HalfOpen => self.return_trial(t),
            Kind::Closed | Kind::Disabled => {
                if self.count_window && self.state.load(Acquire) >> GEN_SHIFT == t.generation {
                    s.retracted.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// How long to stay open after `opens` opens without a successful close.
    fn open_wait(&self, opens: u32) -> u64 {
        let cfg = &self.cfg;
        let base = cfg.wait_duration.as_secs_f64();
        let cap = cfg.max_wait_duration.as_secs_f64();
        let grown = (base * cfg.wait_duration_multiplier.powi(opens.min(1024) as i32)).min(cap);
        let wait = if cfg.wait_duration_jitter > 0.0 {
            let spread = cfg.wait_duration_jitter * 2.0f64.mul_add(fastrand::f64(), -1.0);
            (grown * (1.0 + spread)).min(cap)
        } else {
            grown
        };
        nanos(Duration::try_from_secs_f64(wait.max(0.0)).unwrap_or(Duration::MAX))
    }

    /// Moves to `to`, under the decision lock. Returns the transition to report, if the
    /// state changed.
    fn transition(
        &self,
        d: &mut Decider,
        from: u64,
        to: u64,
        rates: (f64, f64),
    ) -> Option<Transition> {
        let now = self.clock.now();
        let generation = ((from >> GEN_SHIFT) + 1) & GEN_MASK;
        match to {
            OPEN => {
                let wait = self.open_wait(d.opens);
                d.opens = d.opens.saturating_add(1);
                self.open_until.store(now.saturating_add(wait), Release);
            }
            HALF_OPEN => {
                self.trials.store(Trials::fresh(generation).pack(), Release);
                self.lease_until.store(self.lease_end(now), Release);
            }
            CLOSED | DISABLED => {
                self.reset_window(d, now);
                if from & STATE_BITS == HALF_OPEN {
                    d.opens = 0;
                }
            }
            _ => {}
        }
        self.consecutive.store(0, Release);
        let cold = if to == CLOSED && self.rates_trip {
            COLD
        } else {
            0
        };
        self.state
            .store(generation << GEN_SHIFT | cold | to, Release);
        let (from, to) = (state_of(from), state_of(to));
        if from == to {
            return None;
        }
        if let Some(gate) = &self.gate {
            gate.moved(from, to);
        }
        let t = Transition::new(self.name.clone(), from, to, rates.0, rates.1);
        self.watch.send_replace(to);
        self.metrics.transition(from, to);
        Some(t)
    }

    fn reset_window(&self, d: &mut Decider, now: u64) {
        let first = match self.bucket_nanos {
            Some(_) => d.window.epoch(now),
            None => 0,
        };
        d.window.reset(window::sum(&self.stripes), first);
        self.epoch.store(first, Release);
        if let Some(ring) = &self.exact {
            ring.clear();
        }
    }

    /// Reports a transition, after the decision lock is released: the tracing event and
    /// the user's hook run outside it.
    fn fire(&self, t: Option<Transition>) {
        if let Some(t) = t {
            observe::transition_event(&t);
            if let Some(hook) = &self.hook {
                hook(&t);
            }
        }
    }

    /// Applies a manual command.
    pub(crate) fn command(&self, to: State, reset_backoff: bool) {
        let to = match to {
            State::Closed => CLOSED,
            State::Disabled => DISABLED,
            State::ForcedOpen => FORCED_OPEN,
            State::Open => OPEN,
            State::HalfOpen => HALF_OPEN,
        };
        let mut d = sync::lock(&self.decider);
        // Only a successful half-open resets the backoff automatically; by hand, only
        // `reset` does (whatever state the breaker is leaving).
        let opens = if reset_backoff { 0 } else { d.opens };
        let w = self.state.load(Acquire);
        let t = self.transition(&mut d, w, to, (0.0, 0.0));
        d.opens = opens;
        drop(d);
        self.fire(t);
    }

    /// Applies the transitions time makes due (open to half-open, an expired lease), then
    /// returns the state.
    pub(crate) fn state(&self) -> State {
        let w = self.state.load(Acquire);
        match w & STATE_BITS {
            OPEN => {
                let now = self.clock.now();
                if now >= self.open_until.load(Acquire) {
                    self.half_open(w, now);
                }
            }
            HALF_OPEN if self.cfg.max_wait_in_half_open.is_some() => {
                let now = self.clock.now();
                if now >= self.lease_until.load(Acquire) {
                    let tr = Trials::unpack(self.trials.load(Acquire));
                    if tr.issued > tr.ok + tr.failed {
                        self.expire_lease(w, now);
                    }
                }
            }
            _ => {}
        }
        state_of(self.state.load(Acquire))
    }

    /// How long until an open breaker admits a trial call.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        let w = self.state.load(Acquire);
        if w & STATE_BITS != OPEN {
            return None;
        }
        let until = self.open_until.load(Acquire);
        Some(Duration::from_nanos(until.saturating_sub(self.clock.now())))
    }

    pub(crate) fn stats(&self) -> Stats {
        let state = self.state();
        let now = self.clock.now();
        let mut d = sync::lock(&self.decider);
        let w = self.state.load(Acquire);
        let counts = if w & STATE_BITS == HALF_OPEN {
            let tr = Trials::unpack(self.trials.load(Acquire));
            Counts {
                calls: tr.ok + tr.failed,
                failures: tr.failed,
                slow: tr.slow,
            }
        } else {
            self.window_counts(&mut d, Counts::ZERO, now)
        };
        drop(d);
        let (failure_rate, slow_call_rate) = rates(counts);
        let mut stats = Stats {
            state,
            calls: counts.calls,
            failures: counts.failures,
            slow_calls: counts.slow,
            failure_rate,
            slow_call_rate,
            consecutive_failures: self.consecutive.load(Acquire),
            total_calls: 0,
            total_failures: 0,
            total_slow_calls: 0,
            total_ignored: 0,
            total_rejected: 0,
        };
        for s in self.stripes.iter() {
            stats.total_calls +=
                s.admitted.load(Relaxed) + s.admitted_shared.load(Relaxed) + s.calls.load(Relaxed);
            stats.total_calls = stats.total_calls.saturating_sub(s.retracted.load(Relaxed));
            stats.total_failures += s.failures.load(Relaxed);
            stats.total_slow_calls += s.slow.load(Relaxed);
            stats.total_ignored += s.ignored.load(Relaxed);
            stats.total_rejected += s.rejected.load(Relaxed);
        }
        stats
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<State> {
        self.watch.subscribe()
    }

    /// A dropped call: count it as configured, or give its half-open permit back.
    pub(crate) fn cancelled(&self, stripe: usize, t: &Ticket) {
        match self.cfg.cancelled_outcome {
            Outcome::Failure => self.complete(stripe, t, Outcome::Failure),
            _ => self.retract(&self.stripes[stripe], t),
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        #[cfg(not(loom))]
        if let Some(key) = self.key.get() {
            crate::registry::unregister(*key);
        }
    }
}

fn add(s: &Stripe, failure: bool, slow: bool) {
    s.calls.fetch_add(1, Relaxed);
    if failure {
        s.failures.fetch_add(1, Relaxed);
    }
    if slow {
        s.slow.fetch_add(1, Relaxed);
    }
}

fn rates(c: Counts) -> (f64, f64) {
    if c.calls == 0 {
        return (0.0, 0.0);
    }
    let calls = c.calls as f64;
    (
        c.failures as f64 * 100.0 / calls,
        c.slow as f64 * 100.0 / calls,
    )
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn core_with(b: crate::Builder) -> Core {
        let (name, cfg, _, _, hook) = b.into_parts();
        Core::new(StdArc::from(name), cfg, hook, 4)
    }

    #[test]
    fn jittered_backoff_stays_within_its_bounds() {
        let core = core_with(
            crate::CircuitBreakerLayer::builder("j")
                .wait_duration(Duration::from_secs(10))
                .wait_duration_multiplier(2.0)
                .max_wait_duration(Duration::from_secs(25))
                .wait_duration_jitter(0.5),
        );
        let s = 1_000_000_000;
        for _ in 0..2000 {
            let first = core.open_wait(0);
            assert!((5 * s..=15 * s).contains(&first), "{first}");
            let second = core.open_wait(1); // 20 s, jittered, capped at 25 s
            assert!((10 * s..=25 * s).contains(&second), "{second}");
            assert!(core.open_wait(30) <= 25 * s, "capped");
        }
    }
}
