//! What counts as a failure.
//!
//! A [`Classify`] implementation looks at each request and makes a per-call
//! [`ClassifyResponse`], which turns the call's result into an [`Outcome`] recorded on the
//! call's [`Permit`]. The default, [`ErrorsAsFailures`], counts every `Err` as a failure and
//! every `Ok` as a success. [`classify_fn`] takes a predicate over `Result<&Res, &E>`; with
//! feature `http`, `HttpClassifier` reuses tower-http's `classify` module, and can wait for
//! gRPC trailers through a response-body wrapper.

use std::fmt;

use crate::permit::Permit;

/// How a completed call counts in the breaker's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded.
    Success,
    /// The call failed: it counts towards the failure rate and consecutive failures.
    Failure,
    /// The call says nothing about the dependency's health (a client error, say): it is
    /// not recorded in the window, and a half-open trial permit is given back.
    Ignored,
}

impl Outcome {
    /// The outcome's name, as used in the `outcome` metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Ignored => "ignored",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Makes a per-call classifier from each request.
///
/// For each admitted call the breaker calls [`classify_request`](Self::classify_request)
/// before calling the inner service; the returned [`ClassifyResponse`] then receives the
/// result and the call's [`Permit`].
pub trait Classify<Req, Res, E> {
    /// The per-call classifier.
    type Classifier: ClassifyResponse<Res, E>;

    /// Captures what classification needs from the request.
    fn classify_request(&self, req: &Req) -> Self::Classifier;
}

/// Classifies one call's result.
pub trait ClassifyResponse<Res, E> {
    /// What the breaker's service returns: `Res` itself, or `Res` with a wrapped body.
    type Response;

    /// Records the call's outcome on `permit`, now or later (by moving the permit into the
    /// response, for example to read trailers), and returns the breaker's response. A
    /// permit dropped without an outcome counts as cancelled.
    fn classify(self, result: Result<Res, E>, permit: Permit) -> Result<Self::Response, E>;

    /// Turns a response into the breaker's response type, recording nothing: for answers
    /// from the [`Fallback`](crate::Fallback) (the inner service was not called), and for
    /// results whose outcome [`outcome`](Self::outcome) already decided.
    fn passthrough(response: Res) -> Self::Response;

    /// The outcome, when the result alone decides it (the default: `None`, so
    /// [`classify`](Self::classify) runs). When this returns `Some`, the breaker records it
    /// in place, skips `classify`, and returns the result through
    /// [`passthrough`](Self::passthrough): the fast path for classifiers that never wrap
    /// the response.
    #[inline]
    fn outcome(&self, result: &Result<Res, E>) -> Option<Outcome> {
        let _ = result;
        None
    }
}

/// The default classifier: `Err` is a failure, `Ok` a success.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorsAsFailures;

impl<Req, Res, E> Classify<Req, Res, E> for ErrorsAsFailures {
    type Classifier = ErrorsAsFailures;

    #[inline]
    fn classify_request(&self, _req: &Req) -> ErrorsAsFailures {
        ErrorsAsFailures
    }
}

impl<Res, E> ClassifyResponse<Res, E> for ErrorsAsFailures {
    type Response = Res;

    #[inline]
    fn classify(self, result: Result<Res, E>, permit: Permit) -> Result<Res, E> {
        permit.record(if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        });
        result
    }

    #[inline]
    fn passthrough(response: Res) -> Res {
        response
    }

    #[inline]
    fn outcome(&self, result: &Result<Res, E>) -> Option<Outcome> {
        Some(if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        })
    }
}

/// A classifier from a predicate over `Result<&Res, &E>`; see [`classify_fn`].
#[derive(Clone, Copy)]
pub struct ClassifyFn<F>(F);

impl<F> fmt::Debug for ClassifyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClassifyFn").finish_non_exhaustive()
    }
}

/// Classifies results with `f`, which sees `Ok(&response)` or `Err(&error)`.
///
/// `f` is cloned into each call's response future, so keep what it captures cheap to clone
/// (nothing, `Copy` data, or an `Arc`).
///
/// ```
/// use palisade_circuit_breaker::{CircuitBreakerLayer, Outcome, classify_fn};
///
/// // A 404 is the caller's problem, not the dependency's.
/// let layer = CircuitBreakerLayer::builder("users")
///     .with_classifier(classify_fn(|result: Result<&u16, &std::io::Error>| match result {
///         Ok(500..) | Err(_) => Outcome::Failure,
///         Ok(404) => Outcome::Ignored,
///         Ok(_) => Outcome::Success,
///     }))
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), palisade_circuit_breaker::error::ConfigError>(())
/// ```
pub fn classify_fn<F>(f: F) -> ClassifyFn<F> {
    ClassifyFn(f)
}

impl<Req, Res, E, F> Classify<Req, Res, E> for ClassifyFn<F>
where
    F: Fn(Result<&Res, &E>) -> Outcome + Clone,
{
    type Classifier = ClassifyFn<F>;

    #[inline]
    fn classify_request(&self, _req: &Req) -> ClassifyFn<F> {
        self.clone()
    }
}

impl<Res, E, F> ClassifyResponse<Res, E> for ClassifyFn<F>
where
    F: Fn(Result<&Res, &E>) -> Outcome,
{
    type Response = Res;

    #[inline]
    fn classify(self, result: Result<Res, E>, permit: Permit) -> Result<Res, E> {
        permit.record((self.0)(result.as_ref()));
        result
    }

    #[inline]
    fn passthrough(response: Res) -> Res {
        response
    }

    #[inline]
    fn outcome(&self, result: &Result<Res, E>) -> Option<Outcome> {
        Some((self.0)(result.as_ref()))
    }
}
