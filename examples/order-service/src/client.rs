//! The inventory client: the tonic client over the resilience stack, and the mapping of
//! its errors to what the order logic needs to know.

use std::error::Error as StdError;
use std::time::Duration;

use inventory_api::Reason;
use inventory_api::v1::inventory_service_client::InventoryServiceClient;
use inventory_api::v1::{Item, ReleaseRequest, ReserveRequest};
use palisade_circuit_breaker::error::CircuitOpen;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::config::Config;
use crate::model::Line;

/// The service stack around the channel.
pub(crate) type Stack = tower::timeout::Timeout<Channel>;

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

/// The inventory client. Cheap to clone; clones share the channel.
#[derive(Debug, Clone)]
pub(crate) struct InventoryClient {
    client: InventoryServiceClient<Stack>,
}

impl InventoryClient {
    /// Builds the client stack over a lazily connected channel: the order service starts
    /// (and reports itself not ready) while the inventory service is still down.
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
        let stack = tower::ServiceBuilder::new()
            .timeout(config.try_timeout)
            .service(channel);
        Ok(Self {
            client: InventoryServiceClient::new(stack),
        })
    }

    /// Reserves `lines` for `order_id`; returns the reservation id.
    pub(crate) async fn reserve(
        &self,
        order_id: &str,
        lines: &[Line],
    ) -> Result<String, CallError> {
        let request = ReserveRequest {
            order_id: order_id.to_owned(),
            items: lines
                .iter()
                .map(|l| Item {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                })
                .collect(),
        };
        let response = self
            .client
            .clone()
            .reserve(request)
            .await
            .map_err(|s| CallError::from_status(&s))?
            .into_inner();
        response
            .reservation
            .map(|r| r.reservation_id)
            .ok_or_else(|| {
                CallError::Unavailable("reserve answered without a reservation".to_owned())
            })
    }

    /// Releases the reservation of `order_id` (idempotent).
    pub(crate) async fn release(&self, order_id: &str) -> Result<bool, CallError> {
        let request = ReleaseRequest {
            order_id: order_id.to_owned(),
        };
        Ok(self
            .client
            .clone()
            .release(request)
            .await
            .map_err(|s| CallError::from_status(&s))?
            .into_inner()
            .released)
    }
}
