//! The permit an admitted call carries until its outcome is recorded.

use std::fmt;
use std::sync::Arc as StdArc;

use crate::State;
use crate::breaker::{Core, Ticket};
use crate::classify::Outcome;
use crate::error::CircuitOpen;
use crate::sync::Arc;

/// One service clone's view of a breaker: the shared core and the clone's own counter
/// stripe (and its own copy of the name, so rejections touch no shared reference count).
#[derive(Debug)]
pub(crate) struct Cell {
    pub(crate) core: Arc<Core>,
    stripe: usize,
    name: StdArc<str>,
}

impl Cell {
    pub(crate) fn new(core: Arc<Core>) -> Arc<Cell> {
        let stripe = core.next_stripe();
        let name = StdArc::from(&*core.name);
        Arc::new(Cell { core, stripe, name })
    }

    /// Admits a call, or returns the rejection.
    #[inline]
    pub(crate) fn acquire(self: &Arc<Self>) -> Result<Permit, CircuitOpen> {
        match self.core.acquire(self.stripe) {
            Ok(ticket) => Ok(Permit {
                cell: Some(self.clone()),
                ticket,
            }),
            Err(r) => Err(CircuitOpen::new(self.name.clone(), r.state, r.retry_after)),
        }
    }
}

/// Permission to call the inner service once, and the place to record how it went.
///
/// A [`Classify`](crate::Classify) implementation receives the permit with the call's
/// result and calls [`record`](Self::record), at once or later (for example when a
/// response body reaches its trailers). A permit dropped without an outcome counts as a
/// cancelled call: by default nothing is recorded and a half-open trial permit is given
/// back (see [`Builder::cancelled_outcome`](crate::Builder::cancelled_outcome)).
pub struct Permit {
    cell: Option<Arc<Cell>>,
    ticket: Ticket,
}

impl Permit {
    /// Records the call's outcome.
    #[inline]
    pub fn record(mut self, outcome: Outcome) {
        if let Some(cell) = self.cell.take() {
            cell.core.complete(cell.stripe, &self.ticket, outcome);
        }
    }

    /// The name of the breaker that admitted the call.
    pub fn breaker(&self) -> &str {
        self.cell.as_ref().map_or("", |c| &c.name)
    }

    /// The state the call was admitted in: [`State::Closed`], [`State::HalfOpen`] (a trial
    /// call) or [`State::Disabled`].
    pub fn admitted_in(&self) -> State {
        self.ticket.state()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            cell.core.cancelled(cell.stripe, &self.ticket);
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.breaker())
            .field("admitted_in", &self.admitted_in())
            .finish()
    }
}
