//! Retries of inventory calls, outermost in the client stack.
//!
//! Until `palisade-retry` lands in this workspace, this uses `tower::retry` at the typed
//! level (around the tonic client, where requests are `Clone`), which puts it in the same
//! place in the stack — outermost, so every attempt passes the breaker — and marks each
//! attempt with [`palisade_retry::Attempt`] in the request extensions, as the palisade
//! retry layer does. Both calls are safe to repeat: `Reserve` is idempotent by order id and
//! `Release` is idempotent.
//!
//! The policy: retry `UNAVAILABLE`, `DEADLINE_EXCEEDED`, timeouts and connection failures,
//! up to the configured attempts, with exponential backoff and full jitter (25 ms base,
//! 250 ms cap), within a retry budget (20 % of requests plus 10 per second, over 10 s,
//! shared by all calls); never a business refusal, never a call the breaker rejected (it
//! sent nothing, and retrying into an open breaker only burns the budget). The caller
//! bounds the whole call, attempts and backoff included, by the configured deadline.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use inventory_api::v1::inventory_service_client::InventoryServiceClient;
use inventory_api::v1::{ReleaseRequest, ReleaseResponse, ReserveRequest, ReserveResponse};
use palisade_circuit_breaker::error::CircuitOpen;
use palisade_retry::Attempt;
use tonic::{Code, Status};
use tower::retry::budget::{Budget as _, TpsBudget};

use crate::client::Stack;

/// One inventory call, with the number of the attempt about to be made.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) op: Op,
    attempt: u32,
}

impl Call {
    pub(crate) fn new(op: Op) -> Self {
        Self { op, attempt: 1 }
    }
}

/// The operation of a [`Call`].
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Reserve(ReserveRequest),
    Release(ReleaseRequest),
}

/// The answer to a [`Call`].
#[derive(Debug)]
pub(crate) enum Reply {
    Reserve(ReserveResponse),
    Release(ReleaseResponse),
}

/// The typed inventory client as a tower service (the tonic client takes `&mut self`, so
/// each call uses a clone; clones share the channel and the breaker).
#[derive(Debug, Clone)]
pub(crate) struct Typed {
    pub(crate) client: InventoryServiceClient<Stack>,
}

impl tower::Service<Call> for Typed {
    type Response = Reply;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, Status>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        // Readiness is the clone's, polled inside the generated client call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let mut client = self.client.clone();
        Box::pin(async move {
            let attempt = Attempt::new(call.attempt);
            match call.op {
                Op::Reserve(r) => {
                    let mut request = tonic::Request::new(r);
                    request.extensions_mut().insert(attempt);
                    client
                        .reserve(request)
                        .await
                        .map(|r| Reply::Reserve(r.into_inner()))
                }
                Op::Release(r) => {
                    let mut request = tonic::Request::new(r);
                    request.extensions_mut().insert(attempt);
                    client
                        .release(request)
                        .await
                        .map(|r| Reply::Release(r.into_inner()))
                }
            }
        })
    }
}

/// Retry counters, shared by every clone of the client.
#[derive(Debug, Clone, Default)]
pub struct RetryStats {
    retries: Arc<AtomicU64>,
    budget_exhausted: Arc<AtomicU64>,
}

impl RetryStats {
    /// Retries made so far (attempts after the first).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Retries not made because the budget was spent.
    pub fn budget_exhausted(&self) -> u64 {
        self.budget_exhausted.load(Ordering::Relaxed)
    }
}

/// The retry policy; see the module docs. Cloned per call (tower does), so `attempt` is
/// per call while the budget and counters are shared.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    max_attempts: u32,
    attempt: u32,
    budget: Arc<TpsBudget>,
    stats: RetryStats,
}

const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_CAP: Duration = Duration::from_millis(250);

impl Policy {
    pub(crate) fn new(max_attempts: u32, stats: RetryStats) -> Self {
        Self {
            max_attempts,
            attempt: 1,
            // 20 % of requests may be retried, plus 10 retries per second, over 10 s.
            budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
            stats,
        }
    }
}

/// Whether a failed attempt may be retried.
pub(crate) fn retryable(status: &Status) -> bool {
    let mut source: Option<&(dyn StdError + 'static)> = status.source();
    while let Some(e) = source {
        if e.is::<CircuitOpen>() {
            return false;
        }
        // The per-try timeout (tower's `Elapsed`) and transport failures.
        if e.is::<tower::timeout::error::Elapsed>() || e.is::<tonic::transport::Error>() {
            return true;
        }
        source = e.source();
    }
    matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded)
}

/// Full jitter: a uniform delay in `[0, min(cap, base * 2^(retry - 1))]`.
fn backoff(retry: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << retry.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=millis))
}

impl tower::retry::Policy<Call, Reply, Status> for Policy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        call: &mut Call,
        result: &mut Result<Reply, Status>,
    ) -> Option<Self::Future> {
        if self.attempt == 1 {
            self.budget.deposit();
        }
        let Err(status) = result else { return None };
        if !retryable(status) || self.attempt >= self.max_attempts {
            return None;
        }
        if !self.budget.withdraw() {
            self.stats.budget_exhausted.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(attempt = self.attempt, "retry budget exhausted");
            return None;
        }
        self.attempt += 1;
        call.attempt = self.attempt;
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        let delay = backoff(self.attempt - 1);
        tracing::info!(
            attempt = self.attempt,
            delay_ms = delay.as_millis(),
            code = ?status.code(),
            "retrying inventory call"
        );
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, call: &Call) -> Option<Call> {
        Some(call.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_its_ceiling() {
        for retry in 1..20 {
            let ceiling = BACKOFF_BASE
                .saturating_mul(1 << (retry - 1).min(16))
                .min(BACKOFF_CAP);
            for _ in 0..100 {
                assert!(backoff(retry) <= ceiling);
            }
        }
    }

    #[test]
    fn what_is_retried() {
        assert!(retryable(&Status::unavailable("down")));
        assert!(retryable(&Status::deadline_exceeded("slow")));
        assert!(!retryable(&Status::failed_precondition("out of stock")));
        assert!(!retryable(&Status::not_found("sku")));
        let open = CircuitOpen::new(
            "inventory".into(),
            palisade_circuit_breaker::State::Open,
            None,
        );
        assert!(!retryable(&Status::from_error(Box::new(open))));
        let elapsed = tower::timeout::error::Elapsed::new();
        assert!(retryable(&Status::from_error(Box::new(elapsed))));
    }
}
