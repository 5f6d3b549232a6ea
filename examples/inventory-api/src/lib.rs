//! The `inventory.v1` gRPC protocol of the Palisade examples, shared by
//! `inventory-service` (the server) and `order-service` (the client).
//!
//! The protocol is in `proto/inventory/v1/inventory.proto`; `build.rs` compiles it with
//! [protox](https://docs.rs/protox) (no system `protoc`) and tonic-prost-build. Besides the
//! generated code, this crate holds what both sides must agree on: the request limits
//! ([`limits`]) and the machine-readable reason carried by an error status ([`Reason`]).

pub mod limits;
mod reason;

pub use reason::{REASON_KEY, Reason, SKU_KEY};

/// Generated messages, client and server of `inventory.v1` (documented in the `.proto`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("inventory.v1");
}
