//! The machine-readable reason of an inventory error, carried in the status metadata.

use std::fmt;

use tonic::Status;
use tonic::metadata::MetadataValue;

/// Metadata key holding the [`Reason`] of an error status.
pub const REASON_KEY: &str = "inventory-reason";
/// Metadata key holding the SKU an error is about, when there is one.
pub const SKU_KEY: &str = "inventory-sku";

/// Why the inventory service refused a request, beyond the gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A SKU does not exist (`NOT_FOUND`).
    UnknownSku,
    /// Not enough stock for a SKU (`FAILED_PRECONDITION`).
    InsufficientStock,
    /// The order's reservation was released; it cannot be reserved again (`FAILED_PRECONDITION`).
    Released,
    /// The order id already holds a reservation for other items (`ALREADY_EXISTS`).
    Conflict,
    /// The request is malformed (`INVALID_ARGUMENT`).
    Invalid,
    /// An error injected on purpose by the fault controls (`UNAVAILABLE`).
    InjectedFault,
}

impl Reason {
    /// The reason as it appears in metadata and API errors.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownSku => "unknown_sku",
            Reason::InsufficientStock => "insufficient_stock",
            Reason::Released => "released",
            Reason::Conflict => "conflict",
            Reason::Invalid => "invalid",
            Reason::InjectedFault => "injected_fault",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Reason::UnknownSku,
            Reason::InsufficientStock,
            Reason::Released,
            Reason::Conflict,
            Reason::Invalid,
            Reason::InjectedFault,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// Builds an error status with this reason (and the SKU it is about, if any).
    pub fn status(
        self,
        code: tonic::Code,
        message: impl Into<String>,
        sku: Option<&str>,
    ) -> Status {
        let mut status = Status::new(code, message);
        status
            .metadata_mut()
            .insert(REASON_KEY, MetadataValue::from_static(self.as_str()));
        if let Some(sku) = sku.and_then(|s| MetadataValue::try_from(s).ok()) {
            status.metadata_mut().insert(SKU_KEY, sku);
        }
        status
    }

    /// Reads the reason of an error status, if it carries one.
    pub fn of(status: &Status) -> Option<Self> {
        status
            .metadata()
            .get(REASON_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(Self::parse)
    }

    /// Reads the SKU an error status is about, if it carries one.
    pub fn sku_of(status: &Status) -> Option<&str> {
        status.metadata().get(SKU_KEY).and_then(|v| v.to_str().ok())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_status_metadata() {
        let s = Reason::InsufficientStock.status(
            tonic::Code::FailedPrecondition,
            "not enough",
            Some("KB-0001"),
        );
        assert_eq!(Reason::of(&s), Some(Reason::InsufficientStock));
        assert_eq!(Reason::sku_of(&s), Some("KB-0001"));
        assert_eq!(Reason::of(&Status::internal("x")), None);
    }
}
