//! What an admitted call carries: its generation, the state it was admitted in, its start
//! time; packed into one word for lean permits.

use std::time::Duration;

use crate::State;

/// What state an admitted call was admitted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Closed,
    HalfOpen,
    Disabled,
}

/// An admitted call: its generation, kind and (with slow-call detection) start time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(crate) generation: u64,
    pub(crate) kind: Kind,
    pub(crate) start: Option<u64>,
    /// A warm closed call in a breaker whose successes need no recording at all: its
    /// permit carries a registry key instead of a reference.
    pub(crate) lean: bool,
}

impl Ticket {
    /// Packs everything but the start time, with the caller's stripe, into one word.
    #[inline]
    pub(crate) fn pack(&self, stripe: usize) -> u64 {
        let kind = match self.kind {
            Kind::Closed => 0,
            Kind::HalfOpen => 1,
            Kind::Disabled => 2,
        };
        self.generation << 16 | ((stripe as u64) & 0xFF) << 8 | kind << 1 | u64::from(self.lean)
    }

    /// The start time, for a packed ticket to carry separately (`u64::MAX`: none).
    #[inline]
    pub(crate) fn start_raw(&self) -> u64 {
        self.start.unwrap_or(u64::MAX)
    }

    /// Unpacks a ticket and its stripe.
    pub(crate) fn unpack(meta: u64, start: u64) -> (Ticket, usize) {
        let kind = match (meta >> 1) & 0b11 {
            0 => Kind::Closed,
            1 => Kind::HalfOpen,
            _ => Kind::Disabled,
        };
        let ticket = Ticket {
            generation: meta >> 16,
            kind,
            start: (start != u64::MAX).then_some(start),
            lean: meta & 1 == 1,
        };
        (ticket, ((meta >> 8) & 0xFF) as usize)
    }

    /// Whether a packed ticket is lean (its success needs no recording).
    #[inline]
    pub(crate) fn packed_is_lean(meta: u64) -> bool {
        meta & 1 == 1
    }

    pub(crate) fn state(&self) -> State {
        match self.kind {
            Kind::Closed => State::Closed,
            Kind::HalfOpen => State::HalfOpen,
            Kind::Disabled => State::Disabled,
        }
    }
}

/// Why a call was not admitted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rejection {
    pub(crate) state: State,
    pub(crate) retry_after: Option<Duration>,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::breaker::GEN_MASK;

    #[test]
    fn ticket_packing_round_trips() {
        let t = Ticket {
            generation: GEN_MASK,
            kind: Kind::Disabled,
            start: Some(42),
            lean: true,
        };
        let (u, stripe) = Ticket::unpack(t.pack(127), t.start_raw());
        assert_eq!(
            (u.generation, u.kind, u.start, u.lean, stripe),
            (GEN_MASK, Kind::Disabled, Some(42), true, 127)
        );
        assert!(Ticket::packed_is_lean(t.pack(0)));
    }
}
