//! gRPC status codes as the semantic conventions use them.

/// A gRPC status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GrpcCode(pub(crate) u8);

const NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

impl GrpcCode {
    pub(crate) const UNKNOWN: Self = Self(2);

    /// The `grpc-status` of a header map (response headers of a trailers-only response,
    /// or trailers); a value that is not a code 0..=16 counts as `UNKNOWN`.
    pub(crate) fn from_headers(headers: &http::HeaderMap) -> Option<Self> {
        let v = headers.get("grpc-status")?;
        let code = std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<u8>().ok())
            .filter(|c| *c <= 16)
            .unwrap_or(2);
        Some(Self(code))
    }

    /// The gRPC code for an HTTP status without a `grpc-status` (gRPC's HTTP mapping).
    pub(crate) fn from_http_status(status: u16) -> Self {
        Self(match status {
            400 => 13,
            401 => 16,
            403 => 7,
            404 => 12,
            429 | 502..=504 => 14,
            _ => 2,
        })
    }

    /// The code's name, e.g. `NOT_FOUND`.
    pub(crate) fn name(self) -> &'static str {
        NAMES.get(usize::from(self.0)).copied().unwrap_or("UNKNOWN")
    }

    /// Whether a server span with this code has status Error (the conventions name
    /// UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS).
    pub(crate) fn is_server_error(self) -> bool {
        matches!(self.0, 2 | 4 | 12 | 13 | 14 | 15)
    }
}
