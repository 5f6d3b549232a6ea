//! Placing orders: the idempotency and compensation rules.
//!
//! 1. **Claim.** A `pending` row is written first, under the `Idempotency-Key` if one was
//!    sent (unique in the database). A repeat of a confirmed request gets the stored order;
//!    the same key with a different request gets `422`; a repeat while the first is still
//!    running gets `409` (as the IETF Idempotency-Key draft asks).
//! 2. **Reserve** stock over gRPC, keyed by the order id: retries and repeats of the call
//!    return the same reservation, so stock is never reserved twice.
//! 3. **Confirm** the row, only while it is still `pending`.
//! 4. **Compensate** on any failure after the claim: release the reservation (idempotent;
//!    on an order never reserved it leaves a tombstone that refuses a late `Reserve`), then
//!    delete the row so the key can be used again. If the release cannot be made now (the
//!    breaker is open), the row becomes `aborting` and the reconciler releases it later.
//!
//! The work runs in its own task: a client that hangs up mid-request does not leave a
//! half-made order behind. The reconciler also takes over `pending` rows older than the
//! grace period (a crash between claim and confirm).

use std::time::Duration;

use palisade_circuit_breaker::State;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::client::{CallError, InventoryClient};
use crate::model::{Line, Order, canonical};
use crate::store::{Claim, Store};

/// A placed order.
#[derive(Debug)]
pub(crate) enum Placed {
    Created(Order),
    Replayed(Order),
}

/// Why an order was not placed.
#[derive(Debug)]
pub(crate) enum PlaceError {
    KeyReused,
    InProgress,
    Rejected(CallError),
    /// The inventory service could not be reached; try again after this long.
    Unavailable {
        retry_after: Duration,
        breaker_open: bool,
        detail: String,
    },
    Internal(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Orders {
    pub(crate) store: Store,
    pub(crate) inventory: InventoryClient,
    pub(crate) tasks: TaskTracker,
    pub(crate) outcomes: crate::outcomes::Outcomes,
}

impl Orders {
    /// Places an order for canonical `lines`, under `key` if given.
    pub(crate) async fn place(
        &self,
        key: Option<String>,
        lines: Vec<Line>,
    ) -> Result<Placed, PlaceError> {
        let this = self.clone();
        let work = async move { this.place_inner(key.as_deref(), &lines).await };
        // In the request's `tracing` span and OpenTelemetry context: a request the server
        // layer knows is unsampled has only the context, and its work stays unsampled.
        self.tasks
            .spawn(example_telemetry::in_current_context(work))
            .await
            .map_err(|e| PlaceError::Internal(format!("order task failed: {e}")))?
    }

    #[tracing::instrument(
        name = "place_order",
        skip_all,
        fields(order.id = tracing::field::Empty, idempotency_key = key.is_some(), items = lines.len())
    )]
    async fn place_inner(&self, key: Option<&str>, lines: &[Line]) -> Result<Placed, PlaceError> {
        let request = canonical(lines);
        // A repeat of a finished request is answered from the database, even while the
        // inventory service is down.
        if let Some(key) = key {
            match self.store.existing(key, &request).await {
                Ok(None) => {}
                Ok(Some(found)) => return found_claim(found),
                Err(e) => return Err(db_error("reading the Idempotency-Key", &e)),
            }
        }
        // Fail fast, before writing anything, while the breaker is open: no claim, no
        // call, nothing to compensate. (A breaker that opens after this check rejects
        // the call itself, and the claim is compensated as for any failure.)
        let breaker = self.inventory.breaker();
        if matches!(breaker.state(), State::Open | State::ForcedOpen) {
            return Err(PlaceError::Unavailable {
                retry_after: breaker.retry_after().unwrap_or(Duration::from_secs(1)),
                breaker_open: true,
                detail: "the inventory service's circuit breaker is open".to_owned(),
            });
        }
        let id = match self.store.claim(key, &request, lines).await {
            Ok(Claim::New(id)) => id,
            Ok(found) => return found_claim(found),
            Err(e) => return Err(db_error("claiming the order", &e)),
        };
        tracing::Span::current().record("order.id", id.as_str());
        let reservation_id = match self.inventory.reserve(&id, lines).await {
            Ok(r) => r,
            Err(e) => {
                self.compensate(&id).await;
                return Err(match e {
                    CallError::Rejected { .. } => PlaceError::Rejected(e),
                    CallError::Open { retry_after } => PlaceError::Unavailable {
                        retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
                        breaker_open: true,
                        detail: "the inventory service's circuit breaker is open".to_owned(),
                    },
                    CallError::Unavailable(detail) => PlaceError::Unavailable {
                        retry_after: Duration::from_secs(1),
                        breaker_open: false,
                        detail,
                    },
                });
            }
        };
        match self.store.confirm(&id, &reservation_id).await {
            Ok(Some(order)) => {
                tracing::info!(order.id = id, reservation_id, "order confirmed");
                Ok(Placed::Created(order))
            }
            // The reconciler took the row over (the request outlived the grace period)
            // and releases the reservation.
            Ok(None) => Err(PlaceError::Unavailable {
                retry_after: Duration::from_secs(1),
                breaker_open: false,
                detail: "the order took too long and was abandoned".to_owned(),
            }),
            Err(e) => {
                let err = db_error("storing the order", &e);
                self.compensate(&id).await;
                Err(err)
            }
        }
    }

    /// Releases the reservation of an order that will not be confirmed, then forgets the
    /// order. Leaves it to the reconciler when the release cannot be done now.
    #[tracing::instrument(name = "compensate", skip(self))]
    async fn compensate(&self, id: &str) {
        // The row is this task's own while it is `pending` (the reconciler leaves pending
        // rows alone during the grace period), so release first, then forget it; only if
        // the release cannot be made now is the row handed to the reconciler.
        match self.inventory.release(id).await {
            Ok(released) => {
                tracing::info!(order.id = id, released, "compensated: reservation released");
                if let Err(e) = self.store.forget(id).await {
                    tracing::warn!(order.id = id, error = %e, "could not delete the aborted order; the reconciler will");
                }
            }
            Err(e) => {
                tracing::warn!(order.id = id, error = ?e, "release failed; the reconciler will retry");
                // If this fails too, the row stays `pending` and the reconciler takes it
                // over after the grace period.
                if let Err(e) = self.store.take_over(id).await {
                    tracing::warn!(order.id = id, error = %e, "could not mark the order aborting");
                }
            }
        }
    }

    /// One reconciler pass: releases and forgets every abandoned order. Returns how many
    /// were compensated and how many are still waiting.
    pub(crate) async fn reconcile_once(&self, grace: Duration) -> (usize, usize) {
        let ids = match self.store.unfinished(grace, 100).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "reconciler: cannot list unfinished orders");
                return (0, 0);
            }
        };
        let (mut done, mut waiting) = (0, 0);
        for id in ids {
            // Take the row over first, so a request that is still running can no longer
            // confirm it once its reservation is released.
            match self.store.take_over(&id).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => {
                    waiting += 1;
                    continue;
                }
            }
            match self.inventory.release(&id).await {
                Ok(released) if self.store.forget(&id).await.is_ok() => {
                    tracing::info!(order.id = id, released, "reconciler: compensated");
                    done += 1;
                }
                Ok(_) => waiting += 1,
                Err(e) => {
                    tracing::debug!(order.id = id, error = ?e, "reconciler: release failed");
                    waiting += 1;
                }
            }
        }
        (done, waiting)
    }

    /// Runs the reconciler every `interval` until `stop` is cancelled.
    pub(crate) async fn reconcile_forever(
        self,
        interval: Duration,
        grace: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let span = tracing::info_span!("reconcile");
            self.reconcile_once(grace).instrument(span).await;
        }
    }
}

fn found_claim(found: Claim) -> Result<Placed, PlaceError> {
    match found {
        Claim::Replay(order) => Ok(Placed::Replayed(order)),
        Claim::KeyReused => Err(PlaceError::KeyReused),
        Claim::InProgress | Claim::New(_) => Err(PlaceError::InProgress),
    }
}

fn db_error(what: &str, e: &sqlx::Error) -> PlaceError {
    tracing::error!(error = %e, "database error {what}");
    PlaceError::Internal(format!("database error {what}"))
}
