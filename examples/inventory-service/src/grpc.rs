//! The `inventory.v1.InventoryService` implementation: validation, fault injection, and
//! the mapping of store outcomes to gRPC status codes.

use std::collections::HashSet;

use inventory_api::Reason;
use inventory_api::limits::{MAX_ITEMS, MAX_ORDER_ID_LEN, check_quantity, check_sku};
use inventory_api::v1::inventory_service_server::InventoryService;
use inventory_api::v1::{
    CheckAvailabilityRequest, CheckAvailabilityResponse, Item, ReleaseRequest, ReleaseResponse,
    ReserveRequest, ReserveResponse, StockLevel,
};
use tonic::{Code, Request, Response, Status};

use crate::faults::FaultControl;
use crate::store::{Reservation, Store, StoreError};

/// The gRPC service.
#[derive(Debug, Clone)]
pub(crate) struct Inventory {
    pub(crate) store: Store,
    pub(crate) faults: FaultControl,
}

fn invalid(message: String) -> Status {
    Reason::Invalid.status(Code::InvalidArgument, message, None)
}

fn check_order_id(order_id: &str) -> Result<(), Status> {
    if order_id.is_empty() || order_id.len() > MAX_ORDER_ID_LEN {
        return Err(invalid(format!(
            "order_id must be 1 to {MAX_ORDER_ID_LEN} bytes long, got {}",
            order_id.len()
        )));
    }
    Ok(())
}

/// Validates items and returns them sorted by SKU (the canonical form stored and compared).
fn check_items(mut items: Vec<Item>) -> Result<Vec<Item>, Status> {
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(invalid(format!(
            "items must hold 1 to {MAX_ITEMS} entries, got {}",
            items.len()
        )));
    }
    let mut seen = HashSet::with_capacity(items.len());
    for item in &items {
        check_sku(&item.sku).map_err(invalid)?;
        check_quantity(&item.sku, item.quantity).map_err(invalid)?;
        if !seen.insert(item.sku.as_str()) {
            return Err(invalid(format!("sku {} appears more than once", item.sku)));
        }
    }
    items.sort_by(|a, b| a.sku.cmp(&b.sku));
    Ok(items)
}

fn db_status(e: &sqlx::Error) -> Status {
    tracing::error!(error = %e, "database error");
    match e {
        // Contention or a pool that could not hand out a connection in time: transient.
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Status::unavailable("database unavailable")
        }
        _ => Status::internal("database error"),
    }
}

fn store_status(e: StoreError, order_id: &str) -> Status {
    match e {
        StoreError::UnknownSku(sku) => {
            Reason::UnknownSku.status(Code::NotFound, format!("unknown sku {sku}"), Some(&sku))
        }
        StoreError::Insufficient {
            sku,
            available,
            requested,
        } => Reason::InsufficientStock.status(
            Code::FailedPrecondition,
            format!("insufficient stock for {sku}: {requested} requested, {available} available"),
            Some(&sku),
        ),
        StoreError::Released => Reason::Released.status(
            Code::FailedPrecondition,
            format!("the reservation of order {order_id} was released"),
            None,
        ),
        StoreError::Conflict => Reason::Conflict.status(
            Code::AlreadyExists,
            format!("order {order_id} already holds a reservation for other items"),
            None,
        ),
        StoreError::Db(e) => db_status(&e),
    }
}

fn to_proto(r: Reservation) -> inventory_api::v1::Reservation {
    inventory_api::v1::Reservation {
        reservation_id: r.reservation_id,
        order_id: r.order_id,
        items: r.items,
        created_at: r.created_at,
    }
}

#[tonic::async_trait]
impl InventoryService for Inventory {
    async fn check_availability(
        &self,
        request: Request<CheckAvailabilityRequest>,
    ) -> Result<Response<CheckAvailabilityResponse>, Status> {
        self.faults.apply().await?;
        let items = request.into_inner().items;
        // Keep request order in the answer; validate a sorted copy.
        check_items(items.clone())?;
        let skus: Vec<&str> = items.iter().map(|i| i.sku.as_str()).collect();
        let levels = self
            .store
            .available(&skus)
            .await
            .map_err(|e| db_status(&e))?;
        let mut out = Vec::with_capacity(items.len());
        for (item, level) in items.iter().zip(levels) {
            let Some(available) = level else {
                return Err(Reason::UnknownSku.status(
                    Code::NotFound,
                    format!("unknown sku {}", item.sku),
                    Some(&item.sku),
                ));
            };
            out.push(StockLevel {
                sku: item.sku.clone(),
                available,
                requested: item.quantity,
            });
        }
        Ok(Response::new(CheckAvailabilityResponse {
            all_available: out.iter().all(|l| l.available >= l.requested),
            levels: out,
        }))
    }

    async fn reserve(
        &self,
        request: Request<ReserveRequest>,
    ) -> Result<Response<ReserveResponse>, Status> {
        self.faults.apply().await?;
        let ReserveRequest { order_id, items } = request.into_inner();
        check_order_id(&order_id)?;
        let items = check_items(items)?;
        let (reservation, replayed) = self
            .store
            .reserve(&order_id, &items)
            .await
            .map_err(|e| store_status(e, &order_id))?;
        tracing::info!(
            order_id,
            reservation_id = reservation.reservation_id,
            replayed,
            "reserved"
        );
        Ok(Response::new(ReserveResponse {
            reservation: Some(to_proto(reservation)),
            replayed,
        }))
    }

    async fn release(
        &self,
        request: Request<ReleaseRequest>,
    ) -> Result<Response<ReleaseResponse>, Status> {
        self.faults.apply().await?;
        let order_id = request.into_inner().order_id;
        check_order_id(&order_id)?;
        let released = self
            .store
            .release(&order_id)
            .await
            .map_err(|e| db_status(&e))?;
        tracing::info!(order_id, released, "release");
        Ok(Response::new(ReleaseResponse { released }))
    }
}
