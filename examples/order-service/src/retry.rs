//! Retries of inventory calls, outermost in the client stack: `palisade-retry`'s gRPC policy.
//!
//! The retry layer sits at the HTTP level of the tonic client: it takes the generated
//! client's `http::Request<tonic::body::Body>`, keeps the encoded message as it is sent
//! (64 KiB at most; ours are tiny) and re-sends it byte-identical; `tonic_body` turns its
//! replay body back into a `tonic::body::Body` right above the channel. Every resend
//! carries a [`palisade_retry::Attempt`] (the client trace layer records
//! `http.request.resend_count` from it) and `grpc-previous-rpc-attempts`.
//! Every `inventory.v1.InventoryService` call is safe to repeat (`CheckAvailability` reads,
//! `Reserve` is idempotent by order id and `Release` is idempotent), so the whole service is
//! declared idempotent: a call whose outcome is unknown (the per-try timeout, a connection
//! lost mid-call) may be retried too.
//!
//! The policy: retry `UNAVAILABLE`, `DEADLINE_EXCEEDED`, the per-try timeout and connection
//! failures, up to the configured attempts, with exponential backoff and full jitter (25 ms
//! base, 250 ms cap), within the default retry budget (20 % of requests plus 10 per second,
//! over 10 s, shared by all calls) and the configured deadline (a wait that would end past
//! it is not made). Never a business refusal. A call the breaker rejected is retried only
//! after the breaker's `retry_after`, which is longer than the 250 ms cap: so it is
//! returned at once — it sent nothing, and retrying into an open breaker only burns the
//! budget.

use std::time::Duration;

use inventory_api::v1::inventory_service_server::SERVICE_NAME;
use palisade_retry::grpc::GrpcPolicy;
use palisade_retry::{Backoff, ConfigError, Jitter, RetryLayer};
use tonic::Code;

const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_CAP: Duration = Duration::from_millis(250);

/// The retry layer of the inventory client; see the module docs.
pub(crate) fn layer(
    max_attempts: u32,
    deadline: Duration,
) -> Result<RetryLayer<GrpcPolicy>, ConfigError> {
    RetryLayer::builder("inventory", policy()?)
        .max_attempts(max_attempts)
        .backoff(Backoff::exponential(BACKOFF_BASE, 2.0))
        .jitter(Jitter::Full)
        .max_delay(BACKOFF_CAP)
        .max_elapsed(deadline)
        .build()
}

/// What is retried: see the module docs.
fn policy() -> Result<GrpcPolicy, ConfigError> {
    GrpcPolicy::new()
        .with_codes([Code::Unavailable, Code::DeadlineExceeded])?
        .idempotent_methods([format!("/{SERVICE_NAME}/")])
}

/// Retry counters, shared by every clone of the client.
#[derive(Debug, Clone)]
pub struct RetryStats(pub(crate) palisade_retry::Stats);

impl RetryStats {
    /// Retries made so far (attempts after the first).
    pub fn retries(&self) -> u64 {
        self.0.retries()
    }

    /// Retries not made because the budget was spent.
    pub fn budget_exhausted(&self) -> u64 {
        self.0.budget_exhausted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A timed-out `Reserve` may be retried: every inventory call is declared idempotent.
    #[test]
    fn every_inventory_call_is_declared_idempotent() {
        let policy = policy().unwrap();
        for method in ["CheckAvailability", "Reserve", "Release"] {
            assert!(policy.is_idempotent(&format!("/inventory.v1.InventoryService/{method}")));
        }
        assert!(!policy.is_idempotent("/grpc.health.v1.Health/Check"));
    }

    #[test]
    fn builds_from_the_configured_range() {
        for attempts in 1..=10 {
            assert!(layer(attempts, Duration::from_secs(3)).is_ok());
        }
        assert_eq!(
            layer(0, Duration::from_secs(3)).unwrap_err().field(),
            "max_attempts"
        );
    }
}
