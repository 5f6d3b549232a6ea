//! A process-wide table from small integer keys to breakers, so that a response future on
//! the success path can carry a plain key instead of a reference-counted pointer.
//!
//! Cloning an `Arc` per call costs two atomic read-modify-writes (one to clone, one to
//! drop), which on the machines this crate is measured on is more than the whole budget
//! of a closed breaker. A future admitted by a warm closed breaker therefore holds only
//! `(key, stripe, generation)`; when its call succeeds there is nothing to do, and only a
//! failure, an ignored outcome or a cancellation looks the breaker up here (a shard read
//! lock and a `Weak` upgrade: the slow path). Keys carry an incarnation, so a key whose
//! breaker was dropped (and whose slot was reused) finds nothing.

use std::sync::{RwLock, Weak};

use crate::breaker::Core;

const SHARDS: usize = 16;

#[derive(Debug)]
struct Slot {
    incarnation: u32,
    core: Weak<Core>,
}

#[derive(Debug)]
struct Shard {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

static REGISTRY: [RwLock<Shard>; SHARDS] = [const {
    RwLock::new(Shard {
        slots: Vec::new(),
        free: Vec::new(),
    })
}; SHARDS];

static NEXT_SHARD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A breaker's key: shard (8 bits), slot index (24 bits) and incarnation (32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key(u64);

impl Key {
    fn new(shard: usize, index: u32, incarnation: u32) -> Key {
        Key((shard as u64) << 56 | u64::from(index & 0xFF_FFFF) << 32 | u64::from(incarnation))
    }
    fn shard(self) -> usize {
        (self.0 >> 56) as usize
    }
    fn index(self) -> usize {
        ((self.0 >> 32) & 0xFF_FFFF) as usize
    }
    fn incarnation(self) -> u32 {
        self.0 as u32
    }
}

/// Registers `core`, returning its key (`None` in the pathological case of 16 million live
/// breakers in one shard: that breaker's permits then hold a reference instead).
pub(crate) fn register(core: Weak<Core>) -> Option<Key> {
    let shard = NEXT_SHARD.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SHARDS;
    let mut s = REGISTRY[shard]
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let index = match s.free.pop() {
        Some(i) => {
            let slot = s.slots.get_mut(i as usize)?;
            slot.incarnation = slot.incarnation.wrapping_add(1);
            slot.core = core;
            i
        }
        None => {
            let index = u32::try_from(s.slots.len()).ok().filter(|&i| i < 1 << 24)?;
            s.slots.push(Slot {
                incarnation: 0,
                core,
            });
            index
        }
    };
    let incarnation = s.slots.get(index as usize)?.incarnation;
    Some(Key::new(shard, index, incarnation))
}

/// The breaker behind `key`, if it is still alive.
pub(crate) fn lookup(key: Key) -> Option<std::sync::Arc<Core>> {
    let s = REGISTRY[key.shard()]
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let slot = s.slots.get(key.index())?;
    if slot.incarnation != key.incarnation() {
        return None;
    }
    slot.core.upgrade()
}

/// Frees `key`'s slot (when its breaker is dropped).
pub(crate) fn unregister(key: Key) {
    let mut s = REGISTRY[key.shard()]
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(slot) = s.slots.get_mut(key.index())
        && slot.incarnation == key.incarnation()
    {
        slot.core = Weak::new();
        s.free.push(key.index() as u32);
    }
}
