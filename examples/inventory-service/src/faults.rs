//! Fault injection: an error rate and added latency for the inventory RPCs, to show the
//! order service's breaker and retries at work.
//!
//! Set from `INVENTORY_FAULT_ERROR_RATE` / `INVENTORY_FAULT_LATENCY_MS` at start, and at run
//! time through the admin port:
//!
//! ```text
//! curl -X PUT localhost:9091/admin/faults -d '{"error_rate":0.5,"latency_ms":200}'
//! curl -X DELETE localhost:9091/admin/faults      # back to healthy
//! ```
//!
//! Every RPC first waits the latency, then fails with `UNAVAILABLE` (reason
//! `injected_fault`) with probability `error_rate`, before touching the database: an
//! injected error never has a side effect. Health checks are never faulted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use inventory_api::Reason;
use serde::{Deserialize, Serialize};

/// Most latency that can be injected, in milliseconds.
pub const MAX_LATENCY_MS: u64 = 60_000;

/// What to inject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    /// Share of RPCs that fail with `UNAVAILABLE`, from 0 to 1.
    #[serde(default)]
    pub error_rate: f64,
    /// Milliseconds added to every RPC, from 0 to [`MAX_LATENCY_MS`].
    #[serde(default)]
    pub latency_ms: u64,
}

impl FaultSettings {
    /// Checks the ranges.
    ///
    /// # Errors
    ///
    /// A message naming the field and its allowed range.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!(
                "error_rate must be from 0 to 1, got {}",
                self.error_rate
            ));
        }
        if self.latency_ms > MAX_LATENCY_MS {
            return Err(format!(
                "latency_ms must be from 0 to {MAX_LATENCY_MS}, got {}",
                self.latency_ms
            ));
        }
        Ok(())
    }
}

/// The live fault settings, shared by the gRPC handlers and the admin port.
/// Cloning shares the settings.
#[derive(Debug, Clone, Default)]
pub struct FaultControl {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Error rate in parts per million (so it fits an atomic integer).
    error_ppm: AtomicU32,
    latency_ms: AtomicU64,
    injected: AtomicU64,
}

impl FaultControl {
    /// A control starting with `settings`.
    ///
    /// # Errors
    ///
    /// As [`FaultSettings::validate`].
    pub fn new(settings: FaultSettings) -> Result<Self, String> {
        settings.validate()?;
        let c = Self::default();
        c.store(settings);
        Ok(c)
    }

    /// Replaces the settings.
    ///
    /// # Errors
    ///
    /// As [`FaultSettings::validate`]; the settings are unchanged then.
    pub fn set(&self, settings: FaultSettings) -> Result<(), String> {
        settings.validate()?;
        self.store(settings);
        tracing::info!(
            error_rate = settings.error_rate,
            latency_ms = settings.latency_ms,
            "fault injection settings changed"
        );
        Ok(())
    }

    fn store(&self, settings: FaultSettings) {
        // Rounded to whole parts per million; `validate` bounds it to 0..=1_000_000.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ppm = (settings.error_rate * 1_000_000.0).round() as u32;
        self.inner.error_ppm.store(ppm, Ordering::Relaxed);
        self.inner
            .latency_ms
            .store(settings.latency_ms, Ordering::Relaxed);
    }

    /// The current settings.
    pub fn get(&self) -> FaultSettings {
        FaultSettings {
            error_rate: f64::from(self.inner.error_ppm.load(Ordering::Relaxed)) / 1_000_000.0,
            latency_ms: self.inner.latency_ms.load(Ordering::Relaxed),
        }
    }

    /// How many errors were injected so far.
    pub fn injected(&self) -> u64 {
        self.inner.injected.load(Ordering::Relaxed)
    }

    /// Applies the faults to one RPC: waits the latency, then maybe fails it.
    pub(crate) async fn apply(&self) -> Result<(), tonic::Status> {
        let latency = self.inner.latency_ms.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let ppm = self.inner.error_ppm.load(Ordering::Relaxed);
        if ppm > 0 && fastrand::u32(0..1_000_000) < ppm {
            self.inner.injected.fetch_add(1, Ordering::Relaxed);
            return Err(Reason::InjectedFault.status(
                tonic::Code::Unavailable,
                "injected fault",
                None,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_range() {
        let c = FaultControl::default();
        assert!(
            c.set(FaultSettings {
                error_rate: 1.1,
                latency_ms: 0
            })
            .is_err()
        );
        assert!(
            c.set(FaultSettings {
                error_rate: f64::NAN,
                latency_ms: 0
            })
            .is_err()
        );
        assert!(
            c.set(FaultSettings {
                error_rate: 0.0,
                latency_ms: MAX_LATENCY_MS + 1
            })
            .is_err()
        );
        assert_eq!(c.get(), FaultSettings::default());
    }

    #[tokio::test(start_paused = true)]
    async fn full_error_rate_fails_every_call_after_the_latency() {
        let c = FaultControl::new(FaultSettings {
            error_rate: 1.0,
            latency_ms: 250,
        })
        .unwrap();
        let start = tokio::time::Instant::now();
        let err = c.apply().await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_millis(250));
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert_eq!(Reason::of(&err), Some(Reason::InjectedFault));
        assert_eq!(c.injected(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_error_rate_never_fails() {
        let c = FaultControl::new(FaultSettings {
            error_rate: 0.0,
            latency_ms: 0,
        })
        .unwrap();
        for _ in 0..1000 {
            c.apply().await.unwrap();
        }
        c.set(FaultSettings {
            error_rate: 0.5,
            latency_ms: 0,
        })
        .unwrap();
        let mut failed = 0;
        for _ in 0..1000 {
            failed += u32::from(c.apply().await.is_err());
        }
        assert!(
            (350..=650).contains(&failed),
            "{failed} of 1000 failed at rate 0.5"
        );
    }
}
