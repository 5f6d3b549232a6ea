//! The permit an admitted call carries until its outcome is recorded.

use std::fmt;
use std::sync::Arc as StdArc;

use crate::State;
use crate::breaker::{Core, Ticket};
use crate::classify::Outcome;
use crate::error::CircuitOpen;
use crate::sync::Arc;

/// One service clone's view of a breaker: the shared core and the clone's counter stripe
/// (its own if one was free), plus its own copy of the name, so that rejections touch no
/// shared reference count.
#[derive(Debug)]
pub(crate) struct Cell {
    pub(crate) core: Arc<Core>,
    stripe: usize,
    exclusive: bool,
    name: StdArc<str>,
    #[cfg(not(loom))]
    key: Option<crate::registry::Key>,
}

impl Cell {
    pub(crate) fn new(core: Arc<Core>) -> Arc<Cell> {
        let (stripe, exclusive) = core.claim_stripe();
        let name = StdArc::from(&*core.name);
        Arc::new(Cell {
            stripe,
            exclusive,
            name,
            #[cfg(not(loom))]
            key: core.key(),
            core,
        })
    }

    /// Admits a call, or returns the rejection. Only the service clone owning this cell
    /// calls it (the stripe's admission counter has a single writer).
    #[inline]
    pub(crate) fn acquire(this: &Arc<Self>) -> Result<Permit, CircuitOpen> {
        match this.core.acquire(this.stripe) {
            Ok(ticket) => {
                this.core
                    .count_admission(this.stripe, this.exclusive, &ticket);
                let meta = ticket.pack(this.stripe);
                #[cfg(not(loom))]
                if ticket.lean
                    && let Some(key) = this.key
                {
                    return Ok(Permit {
                        inner: Inner::Lean(key),
                        meta,
                    });
                }
                Ok(Permit {
                    inner: Inner::Full(this.clone(), ticket.start_raw()),
                    meta,
                })
            }
            Err(r) => Err(CircuitOpen::new(this.name.clone(), r.state, r.retry_after)),
        }
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        if self.exclusive {
            self.core.release_stripe(self.stripe);
        }
    }
}

enum Inner {
    /// Recorded (or cancelled) already.
    Done,
    /// A warm closed call whose success needs no recording: the breaker is looked up by
    /// key only for another outcome (see the `registry` module).
    #[cfg(not(loom))]
    Lean(crate::registry::Key),
    /// The breaker, and the call's start time (`u64::MAX`: not measured).
    Full(Arc<Cell>, u64),
}

/// Permission to call the inner service once, and the place to record how it went.
///
/// A [`ClassifyResponse`](crate::ClassifyResponse) implementation receives the permit with
/// the call's result and calls [`record`](Self::record), at once or later (for example when
/// a response body reaches its trailers). A permit dropped without an outcome counts as a
/// cancelled call: by default nothing is recorded and a half-open trial permit is given
/// back (see [`Builder::cancelled_outcome`](crate::Builder::cancelled_outcome)).
pub struct Permit {
    inner: Inner,
    /// The packed [`Ticket`] and stripe.
    meta: u64,
}

impl Permit {
    /// Records the call's outcome.
    #[inline]
    pub fn record(mut self, outcome: Outcome) {
        self.record_mut(outcome);
    }

    /// Records the outcome without moving the permit (it is spent afterwards).
    #[inline]
    pub(crate) fn record_mut(&mut self, outcome: Outcome) {
        if outcome == Outcome::Success && Ticket::packed_is_lean(self.meta) {
            // Counted when admitted: a lean success has nothing left to record.
            self.inner = Inner::Done;
            return;
        }
        self.finish(Some(outcome));
    }

    #[cold]
    fn finish(&mut self, outcome: Option<Outcome>) {
        let (core, start) = match std::mem::replace(&mut self.inner, Inner::Done) {
            Inner::Done => return,
            #[cfg(not(loom))]
            Inner::Lean(key) => match crate::registry::lookup(key) {
                Some(core) => (Lookup::Registry(core), u64::MAX),
                None => return,
            },
            Inner::Full(cell, start) => (Lookup::Cell(cell), start),
        };
        let (ticket, stripe) = Ticket::unpack(self.meta, start);
        let core: &Core = match &core {
            #[cfg(not(loom))]
            Lookup::Registry(core) => core,
            Lookup::Cell(cell) => &cell.core,
        };
        match outcome {
            Some(outcome) => core.complete(stripe, &ticket, outcome),
            None => core.cancelled(stripe, &ticket),
        }
    }

    /// The state the call was admitted in: [`State::Closed`], [`State::HalfOpen`] (a trial
    /// call) or [`State::Disabled`].
    pub fn admitted_in(&self) -> State {
        Ticket::unpack(self.meta, u64::MAX).0.state()
    }
}

enum Lookup {
    #[cfg(not(loom))]
    Registry(std::sync::Arc<Core>),
    Cell(Arc<Cell>),
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        if !matches!(self.inner, Inner::Done) {
            self.finish(None);
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("admitted_in", &self.admitted_in())
            .finish_non_exhaustive()
    }
}
