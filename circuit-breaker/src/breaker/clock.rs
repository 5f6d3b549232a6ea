//! The time source: tokio's clock (so paused-time tests drive every transition), or under
//! loom a manual clock.

use std::time::Duration;

/// The time source: tokio's clock (so paused-time tests drive it), or under loom a
/// manual one.
#[derive(Debug)]
pub(super) struct Clock {
    #[cfg(not(loom))]
    origin: tokio::time::Instant,
}

#[cfg(loom)]
std::thread_local! {
    // Loom runs a model's threads on the test's own OS thread: one clock per test.
    static LOOM_NOW: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Sets the manual clock used under `--cfg loom`, in nanoseconds.
#[cfg(loom)]
#[doc(hidden)]
pub fn loom_set_now(nanos: u64) {
    LOOM_NOW.with(|n| n.set(nanos));
}

impl Clock {
    pub(super) fn new() -> Clock {
        Clock {
            #[cfg(not(loom))]
            origin: tokio::time::Instant::now(),
        }
    }

    /// Nanoseconds since the breaker was built.
    #[inline]
    pub(super) fn now(&self) -> u64 {
        #[cfg(not(loom))]
        {
            let d = tokio::time::Instant::now().saturating_duration_since(self.origin);
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
        }
        #[cfg(loom)]
        LOOM_NOW.with(std::cell::Cell::get)
    }
}

pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
