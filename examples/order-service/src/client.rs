//! The inventory client: the tonic client over the resilience stack, and the mapping of
//! its errors to what the order logic needs to know.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use example_telemetry::{ClientTrace, ClientTraceLayer};
use inventory_api::Reason;
use inventory_api::v1::inventory_service_client::InventoryServiceClient;
use inventory_api::v1::{Item, ReleaseRequest, ReserveRequest};
use palisade_circuit_breaker::error::CircuitOpen;
use palisade_circuit_breaker::grpc::GrpcClassifier;
use palisade_circuit_breaker::{
    CircuitBreaker, CircuitBreakerHandle, CircuitBreakerLayer, SlidingWindow, State,
};
use palisade_retry::Retry;
use palisade_retry::grpc::{GrpcPolicy, tonic_body};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tower::timeout::Timeout;
use tower::util::MapRequest;

use crate::config::Config;
use crate::model::Line;
use crate::retry::{self, RetryStats};

/// The retry layer's replay body, boxed back into tonic's body above the channel.
type ToTonicBody = fn(
    http::Request<palisade_retry::ReplayBody<tonic::body::Body>>,
) -> http::Request<tonic::body::Body>;

/// The service stack around the channel, outermost first; see [`InventoryClient::new`].
pub(crate) type Stack = Retry<
    CircuitBreaker<ClientTrace<Timeout<MapRequest<Channel, ToTonicBody>>>, GrpcClassifier>,
    GrpcPolicy,
>;

/// A failed inventory call, sorted by what the caller can do about it.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The inventory service answered and refused: a definitive answer.
    Rejected {
        reason: Option<Reason>,
        sku: Option<String>,
        message: String,
    },
    /// The breaker rejected the call without sending it.
    Open { retry_after: Option<Duration> },
    /// Timeout, connection failure, `UNAVAILABLE`, … — the call may or may not have been
    /// carried out.
    Unavailable(String),
}

impl CallError {
    fn from_status(status: &Status) -> Self {
        let mut source: Option<&(dyn StdError + 'static)> = status.source();
        while let Some(e) = source {
            if let Some(open) = e.downcast_ref::<CircuitOpen>() {
                return CallError::Open {
                    retry_after: open.retry_after(),
                };
            }
            source = e.source();
        }
        match status.code() {
            Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::AlreadyExists => CallError::Rejected {
                reason: Reason::of(status),
                sku: Reason::sku_of(status).map(str::to_owned),
                message: status.message().to_owned(),
            },
            _ => CallError::Unavailable(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}

/// One breaker state change, with when it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerTransition {
    /// When, on tokio's clock.
    pub at: Instant,
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// The failure rate (percent) that decided it.
    pub failure_rate: f64,
}

/// The inventory client. Cheap to clone; clones share the channel, the breaker and the
/// retry budget.
#[derive(Debug, Clone)]
pub(crate) struct InventoryClient {
    client: Calls,
    deadline: Duration,
    breaker: CircuitBreakerHandle,
    transitions: BreakerLog,
    stats: RetryStats,
}

/// The tonic client: over the resilience stack, or (`ORDER_MIDDLEWARE=off`, the benchmark
/// baseline) over the bare channel.
#[derive(Debug, Clone)]
enum Calls {
    Stack(InventoryServiceClient<Stack>),
    Bare(InventoryServiceClient<Channel>),
}

/// The breaker's latest transitions, recorded by its `on_state_change` hook (which runs
/// only on a transition, never per call). Cheap to clone; clones share the log. It keeps
/// the last [`BreakerLog::KEEP`] transitions: a service that runs for months must not
/// grow with every outage.
#[derive(Debug, Clone, Default)]
pub struct BreakerLog(Arc<Mutex<VecDeque<BreakerTransition>>>);

impl BreakerLog {
    /// How many transitions the log keeps; older ones are dropped.
    pub const KEEP: usize = 256;

    /// The transitions kept, oldest first.
    pub fn transitions(&self) -> Vec<BreakerTransition> {
        self.0
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn push(&self, t: BreakerTransition) {
        if let Ok(mut log) = self.0.lock() {
            if log.len() == Self::KEEP {
                log.pop_front();
            }
            log.push_back(t);
        }
    }
}

impl InventoryClient {
    /// Builds the client stack over a lazily connected channel, so the order service
    /// starts while the inventory service is still down.
    ///
    /// The stack, outermost first:
    ///
    /// ```text
    /// Retry -> CircuitBreaker -> ClientTrace -> Timeout(per try) -> tonic_body -> Channel
    /// ```
    ///
    /// - **Retry** is outermost, so every attempt passes the breaker and gets its own
    ///   CLIENT span (with `http.request.resend_count`, as OpenTelemetry asks): a failing
    ///   attempt counts against the breaker, and once it opens the next attempt is
    ///   rejected at once and is not retried (see [`crate::retry`]). The whole call,
    ///   attempts and backoff included, is bounded by the configured deadline, which each
    ///   call carries as `grpc-timeout`: the inventory server stops work on a call the order
    ///   service no longer waits for, and the retry layer sends each retry the time left
    ///   (gRFC A6), not the whole deadline again.
    /// - **`tonic_body`** boxes the retry layer's replay body back into the channel's body.
    /// - The breaker sits **outside the trace layer**: a rejected attempt sends nothing
    ///   and makes no CLIENT span.
    /// - The **breaker** classifies by `grpc-status`: `UNAVAILABLE`, `DEADLINE_EXCEEDED`,
    ///   `INTERNAL`, `UNKNOWN` and `RESOURCE_EXHAUSTED` (and timeouts, transport errors)
    ///   are failures; business refusals such as `FAILED_PRECONDITION` (out of stock) are
    ///   answers from a healthy service and count as successes. When it is open, a call
    ///   fails at once with `CircuitOpen`, which the API turns into `503` + `Retry-After`.
    /// - The **timeout** is innermost, so it bounds one attempt, the CLIENT span records a
    ///   timed-out attempt as an error, and the breaker counts it as a failure.
    pub(crate) fn new(config: &Config) -> Result<Self, crate::Error> {
        let invalid = |e: String| {
            crate::Error::Config(crate::ConfigError::invalid(
                "INVENTORY_URL",
                &config.inventory_url,
                &e,
            ))
        };
        crate::config::check_url(&config.inventory_url).map_err(invalid)?;
        let endpoint = Endpoint::from_shared(config.inventory_url.clone())
            .map_err(|e| invalid(e.to_string()))?;
        let channel = endpoint.connect_timeout(config.try_timeout).connect_lazy();
        let transitions = BreakerLog::default();
        let log = transitions.clone();
        let breaker = CircuitBreakerLayer::builder("inventory")
            .with_classifier(GrpcClassifier::grpc())
            // The calls of the last 10 s, so a burst of failures trips it quickly and old
            // outcomes leave the window as time passes.
            .sliding_window(SlidingWindow::time(Duration::from_secs(10), 10))
            .minimum_calls(10)
            .failure_rate_threshold(50.0)
            .wait_duration(config.breaker_wait)
            .permitted_calls_in_half_open(3)
            .max_wait_in_half_open(config.try_timeout * 4)
            .on_state_change(move |t| {
                tracing::warn!(
                    breaker = t.breaker(),
                    from = %t.from(),
                    to = %t.to(),
                    failure_rate = t.failure_rate(),
                    "circuit breaker state changed"
                );
                log.push(BreakerTransition {
                    at: Instant::now(),
                    from: t.from(),
                    to: t.to(),
                    failure_rate: t.failure_rate(),
                });
            })
            .build()
            .map_err(|e| {
                // Only the durations come from the configuration.
                let (var, value) = if e.field().starts_with("wait") {
                    ("INVENTORY_BREAKER_WAIT_MS", config.breaker_wait)
                } else {
                    ("INVENTORY_TRY_TIMEOUT_MS", config.try_timeout)
                };
                crate::Error::Config(crate::ConfigError::invalid(
                    var,
                    &value.as_millis().to_string(),
                    &e.to_string(),
                ))
            })?;
        let handle = breaker.handle();
        let retry = retry::layer(config.max_attempts, config.deadline).map_err(|e| {
            crate::Error::Config(crate::ConfigError::invalid(
                "INVENTORY_MAX_ATTEMPTS",
                &config.max_attempts.to_string(),
                &e.to_string(),
            ))
        })?;
        let stats = RetryStats(retry.stats());
        let client = if config.middleware {
            Calls::Stack(InventoryServiceClient::new(
                tower::ServiceBuilder::new()
                    .layer(retry)
                    .layer(breaker)
                    .layer(ClientTraceLayer::grpc(&config.inventory_url))
                    .timeout(config.try_timeout)
                    .layer(tonic_body())
                    .service(channel),
            ))
        } else {
            Calls::Bare(InventoryServiceClient::new(channel))
        };
        Ok(Self {
            client,
            deadline: config.deadline,
            breaker: handle,
            transitions,
            stats,
        })
    }

    /// The breaker's handle.
    pub(crate) fn breaker(&self) -> &CircuitBreakerHandle {
        &self.breaker
    }

    /// The breaker's transition log.
    pub(crate) fn transitions(&self) -> &BreakerLog {
        &self.transitions
    }

    /// The retry counters.
    pub(crate) fn retry_stats(&self) -> &RetryStats {
        &self.stats
    }

    /// `message` as a call carrying the deadline (`grpc-timeout`; see [`Self::new`]).
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.deadline);
        request
    }

    /// Runs one call through the stack, within the deadline.
    async fn call<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, CallError> {
        match tokio::time::timeout(self.deadline, call).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(CallError::from_status(&status)),
            Err(_) => Err(CallError::Unavailable(format!(
                "no answer within the {} ms deadline",
                self.deadline.as_millis()
            ))),
        }
    }

    /// Reserves `lines` for `order_id`; returns the reservation id.
    pub(crate) async fn reserve(
        &self,
        order_id: &str,
        lines: &[Line],
    ) -> Result<String, CallError> {
        let request = self.request(ReserveRequest {
            order_id: order_id.to_owned(),
            items: lines
                .iter()
                .map(|l| Item {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                })
                .collect(),
        });
        let response = match self.client.clone() {
            Calls::Stack(mut c) => self.call(c.reserve(request)).await?,
            Calls::Bare(mut c) => self.call(c.reserve(request)).await?,
        };
        response
            .reservation
            .map(|r| r.reservation_id)
            .ok_or_else(|| {
                CallError::Unavailable("reserve answered without a reservation".to_owned())
            })
    }

    /// Releases the reservation of `order_id` (idempotent).
    pub(crate) async fn release(&self, order_id: &str) -> Result<bool, CallError> {
        let request = self.request(ReleaseRequest {
            order_id: order_id.to_owned(),
        });
        let response = match self.client.clone() {
            Calls::Stack(mut c) => self.call(c.release(request)).await?,
            Calls::Bare(mut c) => self.call(c.release(request)).await?,
        };
        Ok(response.released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_log_keeps_only_the_latest_transitions() {
        let log = BreakerLog::default();
        let t0 = Instant::now();
        for i in 0..BreakerLog::KEEP + 10 {
            log.push(BreakerTransition {
                at: t0 + Duration::from_secs(i as u64),
                from: State::Closed,
                to: State::Open,
                failure_rate: 50.0,
            });
        }
        let kept = log.transitions();
        assert_eq!(kept.len(), BreakerLog::KEEP);
        assert_eq!(
            kept[0].at,
            t0 + Duration::from_secs(10),
            "the oldest are dropped"
        );
        assert_eq!(
            kept[BreakerLog::KEEP - 1].at,
            t0 + Duration::from_secs((BreakerLog::KEEP + 9) as u64)
        );
    }
}
