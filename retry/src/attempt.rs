//! The attempt number, put in every attempt's request extensions.

/// Which attempt a request is: inserted by the retry layer into the extensions of every
/// request it sends (the first attempt included), so inner layers can see it.
///
/// `palisade-tracing-layer`'s client layer reads it (feature `retry`) and records
/// `http.request.resend_count` on the CLIENT span of every resend, as the OpenTelemetry
/// HTTP semantic conventions ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attempt {
    number: u32,
}

impl Attempt {
    /// The attempt with 1-based number `number` (1 is the first attempt).
    ///
    /// A `number` of 0 is treated as 1.
    pub const fn new(number: u32) -> Self {
        Self {
            number: if number == 0 { 1 } else { number },
        }
    }

    /// The 1-based attempt number: 1 for the original request, 2 for the first retry.
    pub const fn number(&self) -> u32 {
        self.number
    }

    /// How many times the request has been sent before this attempt: 0 for the original
    /// request, 1 for the first retry (`http.request.resend_count`).
    pub const fn resend_count(&self) -> u32 {
        self.number - 1
    }

    /// Whether this attempt is a resend (a retry).
    pub const fn is_retry(&self) -> bool {
        self.number > 1
    }
}
