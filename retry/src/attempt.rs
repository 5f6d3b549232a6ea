//! The attempt number, put in the extensions of every resend.

/// Which attempt a request is.
///
/// The retry layer inserts it into the extensions of every request it *re*-sends (attempt 2
/// and later). The original request goes out with its extensions untouched, so the success
/// path costs no allocation: a request without an `Attempt` is the first attempt. Read it
/// with [`Attempt::of`], which says exactly that.
///
/// `palisade-tracing-layer`'s client layer reads it (feature `retry`) and records
/// `http.request.resend_count` on the CLIENT span of every resend, as the OpenTelemetry
/// HTTP semantic conventions ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attempt {
    number: u32,
}

impl Attempt {
    /// The first attempt: the original request.
    pub const FIRST: Self = Self { number: 1 };

    /// The attempt with 1-based number `number` (1 is the first attempt).
    ///
    /// A `number` of 0 is treated as 1.
    pub const fn new(number: u32) -> Self {
        Self {
            number: if number == 0 { 1 } else { number },
        }
    }

    /// The attempt a request with these extensions is: the `Attempt` the retry layer put
    /// there on a resend, or [`Attempt::FIRST`] when there is none.
    ///
    /// ```
    /// use palisade_retry::Attempt;
    ///
    /// let mut req = http::Request::new(());
    /// assert_eq!(Attempt::of(req.extensions()), Attempt::FIRST);
    /// req.extensions_mut().insert(Attempt::new(3));
    /// assert_eq!(Attempt::of(req.extensions()).resend_count(), 2);
    /// ```
    #[cfg(feature = "http")]
    pub fn of(extensions: &http::Extensions) -> Self {
        extensions.get::<Self>().copied().unwrap_or(Self::FIRST)
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

impl Default for Attempt {
    fn default() -> Self {
        Self::FIRST
    }
}
