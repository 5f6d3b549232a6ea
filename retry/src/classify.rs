//! Recognising transient errors without knowing the error type.

use crate::policy::Decision;
use std::any::Any;
use std::error::Error;

type BoxError = Box<dyn Error + Send + Sync>;

/// Views an error of any type as `&dyn Error`, when it is one of the error types a client
/// stack returns: `Box<dyn Error + Send + Sync>` (tower's `BoxError`, what a stack with the
/// breaker or a timeout returns), `Box<dyn Error + Send>`, `std::io::Error`, hyper-util's
/// legacy client error, tonic's transport error, tower's and tokio's `Elapsed`.
pub(crate) fn as_error<E: 'static>(err: &E) -> Option<&(dyn Error + 'static)> {
    let any: &dyn Any = err;
    if let Some(e) = any.downcast_ref::<BoxError>() {
        return Some(&**e);
    }
    if let Some(e) = any.downcast_ref::<Box<dyn Error + Send>>() {
        return Some(&**e);
    }
    if let Some(e) = any.downcast_ref::<Box<dyn Error>>() {
        return Some(&**e);
    }
    if let Some(e) = any.downcast_ref::<std::io::Error>() {
        return Some(e);
    }
    if let Some(e) = any.downcast_ref::<hyper_util::client::legacy::Error>() {
        return Some(e);
    }
    #[cfg(feature = "grpc")]
    if let Some(e) = any.downcast_ref::<tonic::transport::Error>() {
        return Some(e);
    }
    if let Some(e) = any.downcast_ref::<tower::timeout::error::Elapsed>() {
        return Some(e);
    }
    if let Some(e) = any.downcast_ref::<tokio::time::error::Elapsed>() {
        return Some(e);
    }
    #[cfg(feature = "circuit-breaker")]
    if let Some(e) = any.downcast_ref::<palisade_circuit_breaker::error::CircuitOpen>() {
        return Some(e);
    }
    None
}

/// Finds a circuit breaker's rejection in `err`'s `source()` chain.
#[cfg(feature = "circuit-breaker")]
#[cfg_attr(docsrs, doc(cfg(feature = "circuit-breaker")))]
pub fn find_circuit_open<'a>(
    err: &'a (dyn Error + 'static),
) -> Option<&'a palisade_circuit_breaker::error::CircuitOpen> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(open) = e.downcast_ref() {
            return Some(open);
        }
        cur = e.source();
    }
    None
}

/// Classifies an error from a client stack: connection errors and timeouts are retried; a
/// circuit breaker's rejection is retried after its `retry_after` (and returned at once when
/// that is unknown); anything else is returned.
pub(crate) fn classify_error(err: &(dyn Error + 'static)) -> Decision {
    let mut cur = Some(err);
    while let Some(e) = cur {
        #[cfg(feature = "circuit-breaker")]
        if let Some(open) = e.downcast_ref::<palisade_circuit_breaker::error::CircuitOpen>() {
            return match open.retry_after() {
                Some(after) => Decision::RetryAfter {
                    reason: "circuit open",
                    after,
                },
                None => Decision::Return,
            };
        }
        if e.is::<tower::timeout::error::Elapsed>() || e.is::<tokio::time::error::Elapsed>() {
            return Decision::retry("timeout");
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::TimedOut => return Decision::retry("timeout"),
                K::ConnectionRefused
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::NotConnected
                | K::BrokenPipe
                | K::UnexpectedEof => return Decision::retry("connection error"),
                _ => {}
            }
        }
        if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>()
            && h.is_connect()
        {
            return Decision::retry("connection error");
        }
        // A tonic channel's own error: the call failed in transport (a gRPC status from the
        // server is a response, not an error, at this level).
        #[cfg(feature = "grpc")]
        if e.is::<tonic::transport::Error>() {
            return Decision::retry("connection error");
        }
        cur = e.source();
    }
    Decision::Return
}
