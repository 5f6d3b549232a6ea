//! gRPC awareness (feature `grpc`): the call's `grpc-status` decides, and rejections become
//! `UNAVAILABLE` with `grpc-retry-pushback-ms`.
//!
//! [`GrpcClassifier`] reads `grpc-status` from the response headers (a trailers-only
//! response, which is how servers answer most errors) or else from the trailers, through a
//! response-body wrapper. By default `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `INTERNAL`,
//! `UNKNOWN` and `RESOURCE_EXHAUSTED` are failures; every other code (`NOT_FOUND`,
//! `INVALID_ARGUMENT` and the other client errors) says the server is healthy and counts as
//! a success. Transport errors are failures.
//!
//! Rejections: a tonic client turns the breaker's [`CircuitOpen`] error into a `Status` with
//! code `UNKNOWN` (keeping the error as its `source()`); to give the caller a proper
//! `UNAVAILABLE` with `grpc-retry-pushback-ms` instead, answer rejections with the
//! [`UnavailableResponse`] fallback, or convert by hand with `Status::from(open)`.
//!
//! ```
//! use palisade_circuit_breaker::CircuitBreakerLayer;
//! use palisade_circuit_breaker::grpc::{GrpcClassifier, UnavailableResponse};
//!
//! // Around a tonic `Channel`: `ServiceBuilder::new().layer(breaker).service(channel)`.
//! let breaker = CircuitBreakerLayer::builder("inventory")
//!     .with_classifier(GrpcClassifier::grpc())
//!     .with_fallback(UnavailableResponse)
//!     .build()?;
//! # let _ = breaker;
//! # Ok::<(), palisade_circuit_breaker::error::ConfigError>(())
//! ```

use std::future::{Ready, ready};
use std::sync::Arc;

use http::{Request, Response};
use tonic::Status;
use tower_http::classify::{GrpcErrorsAsFailures, SharedClassifier};

pub use tower_http::classify::GrpcCode;

use crate::error::{BoxError, CircuitOpen};
use crate::fallback::Fallback;
use crate::http::HttpClassifier;

/// Classifies gRPC calls by `grpc-status`; see the [module docs](self).
pub type GrpcClassifier = HttpClassifier<SharedClassifier<GrpcErrorsAsFailures>>;

/// The codes that count as failures by default.
pub const DEFAULT_FAILURES: [GrpcCode; 5] = [
    GrpcCode::Unavailable,
    GrpcCode::DeadlineExceeded,
    GrpcCode::Internal,
    GrpcCode::Unknown,
    GrpcCode::ResourceExhausted,
];

const ALL: [GrpcCode; 17] = [
    GrpcCode::Ok,
    GrpcCode::Cancelled,
    GrpcCode::Unknown,
    GrpcCode::InvalidArgument,
    GrpcCode::DeadlineExceeded,
    GrpcCode::NotFound,
    GrpcCode::AlreadyExists,
    GrpcCode::PermissionDenied,
    GrpcCode::ResourceExhausted,
    GrpcCode::FailedPrecondition,
    GrpcCode::Aborted,
    GrpcCode::OutOfRange,
    GrpcCode::Unimplemented,
    GrpcCode::Internal,
    GrpcCode::Unavailable,
    GrpcCode::DataLoss,
    GrpcCode::Unauthenticated,
];

impl GrpcClassifier {
    /// [`DEFAULT_FAILURES`] are failures; every other code is a success.
    pub fn grpc() -> Self {
        GrpcClassifier::grpc_with_failures(&DEFAULT_FAILURES)
    }

    /// Exactly `failures` are failures; every other code is a success (`OK` always is).
    pub fn grpc_with_failures(failures: &[GrpcCode]) -> Self {
        let classifier = ALL
            .into_iter()
            .filter(|code| !failures.contains(code))
            .fold(GrpcErrorsAsFailures::new(), |c, code| c.with_success(code));
        HttpClassifier::with_make_classifier(SharedClassifier::new(classifier))
    }
}

/// The value for `grpc-retry-pushback-ms`: the rejection's `retry_after` in milliseconds
/// (rounded up), or `None` when it cannot be known.
pub fn retry_pushback_ms(open: &CircuitOpen) -> Option<u64> {
    open.retry_after().map(|d| {
        let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 > 0);
        u64::try_from(ms).unwrap_or(u64::MAX)
    })
}

/// `UNAVAILABLE` with the rejection as its message and source, and
/// `grpc-retry-pushback-ms` metadata when the time until half-open is known (gRPC's retry
/// design, A6: a client waits that long before its next attempt).
impl From<CircuitOpen> for Status {
    fn from(open: CircuitOpen) -> Status {
        let mut status = Status::unavailable(open.to_string());
        if let Some(ms) = retry_pushback_ms(&open) {
            status
                .metadata_mut()
                .insert("grpc-retry-pushback-ms", ms.into());
        }
        status.set_source(Arc::new(open));
        status
    }
}

/// A [`Fallback`] answering rejected gRPC calls with a trailers-only `UNAVAILABLE` response
/// carrying `grpc-retry-pushback-ms`, so a tonic client sees `Code::Unavailable` (and the
/// pushback in the status metadata) instead of an `UNKNOWN` transport error.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnavailableResponse;

impl<ReqB, ResB: Default> Fallback<Request<ReqB>, Response<ResB>> for UnavailableResponse {
    type Future = Ready<Result<Response<ResB>, BoxError>>;

    fn call(&mut self, _req: Request<ReqB>, open: CircuitOpen) -> Self::Future {
        ready(Ok(Status::from(open).into_http()))
    }
}
