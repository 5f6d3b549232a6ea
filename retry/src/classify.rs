//! Recognising transient errors without knowing the error type.

use crate::policy::Decision;
use std::any::Any;
use std::error::Error;

type BoxError = Box<dyn Error + Send + Sync>;

/// Views an error of any type as `&dyn Error`, when it is one of the error types a client
/// stack returns: `Box<dyn Error + Send + Sync>` (tower's `BoxError`, what a stack with the
/// breaker or a timeout returns), `Box<dyn Error + Send>`, `std::io::Error`, hyper's own
/// error (a client made of hyper's `conn` connections) and hyper-util's legacy client error,
/// h2's, tonic's transport error, tower's and tokio's `Elapsed`.
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
    if let Some(e) = any.downcast_ref::<hyper::Error>() {
        return Some(e);
    }
    #[cfg(feature = "http2")]
    if let Some(e) = any.downcast_ref::<h2::Error>() {
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

/// What a client stack's error says about the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A circuit breaker refused the call (nothing was sent): retry after this long, or
    /// never when the breaker does not say.
    #[cfg_attr(not(feature = "circuit-breaker"), allow(dead_code))]
    CircuitOpen(Option<std::time::Duration>),
    /// The connection was never made (refused, hyper-util's connect error): the request
    /// never left the client.
    NotSent,
    /// The server refused the HTTP/2 stream (`RST_STREAM` with `REFUSED_STREAM`): it did not
    /// process the request (RFC 9113 §8.7), so it may be sent again whatever its method.
    #[cfg_attr(not(feature = "http2"), allow(dead_code))]
    Refused,
    /// A timeout: the server may have received and processed the request.
    Timeout,
    /// The connection failed during the call (reset, broken, closed early, a transport
    /// error): the server may have received and processed the request.
    Transport,
    /// Anything else.
    Other,
}

/// Classifies an error from a client stack by walking its `source()` chain.
///
/// The most telling cause wins: a breaker's rejection, a refused connection or a timeout
/// found anywhere in the chain is reported as such, even under a generic transport error
/// (tonic's `transport::Error` wraps the `io::Error` of a refused connection).
pub(crate) fn classify_failure(err: &(dyn Error + 'static)) -> Failure {
    let mut found = Failure::Other;
    let mut cur = Some(err);
    while let Some(e) = cur {
        #[cfg(feature = "circuit-breaker")]
        if let Some(open) = e.downcast_ref::<palisade_circuit_breaker::error::CircuitOpen>() {
            return Failure::CircuitOpen(open.retry_after());
        }
        if e.is::<tower::timeout::error::Elapsed>() || e.is::<tokio::time::error::Elapsed>() {
            return Failure::Timeout;
        }
        // tonic's: the call's `grpc-timeout` (or the endpoint's timeout) expired in the
        // channel, and a connection the channel could not make (refused, timed out, DNS, TLS):
        // nothing was sent.
        #[cfg(feature = "grpc")]
        if e.is::<tonic::TimeoutExpired>() {
            return Failure::Timeout;
        }
        #[cfg(feature = "grpc")]
        if e.is::<tonic::ConnectError>() {
            return Failure::NotSent;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused => return Failure::NotSent,
                K::TimedOut => return Failure::Timeout,
                K::ConnectionReset
                | K::ConnectionAborted
                | K::NotConnected
                | K::BrokenPipe
                | K::UnexpectedEof => return Failure::Transport,
                _ => {}
            }
        }
        if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>()
            && h.is_connect()
        {
            return Failure::NotSent;
        }
        // hyper's own: the server closed the connection before a whole response (a pooled
        // keep-alive connection it had just closed), or the connection task is gone. Its
        // sources (an `io::Error`, an HTTP/2 error) may say more.
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return Failure::Timeout;
            }
            if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
                found = Failure::Transport;
            }
        }
        #[cfg(feature = "http2")]
        if let Some(failure) = e.downcast_ref::<h2::Error>().and_then(h2_failure) {
            return failure;
        }
        // A tonic channel's own error: the call failed in transport (a gRPC status from the
        // server is a response, not an error, at this level). Its sources may say more.
        #[cfg(feature = "grpc")]
        if e.is::<tonic::transport::Error>() {
            found = Failure::Transport;
        }
        cur = e.source();
    }
    found
}

/// What an HTTP/2 error (hyper's cause for a stream or connection error) says about the call.
///
/// `REFUSED_STREAM` from the peer means the stream was not processed; any other reset or a
/// `GOAWAY` (from the peer, or from the library after the peer broke the protocol) leaves the
/// outcome unknown, like a connection lost mid-call. A misuse of the API (a user error) and an
/// I/O error (hyper turns those into `io::Error`s, classified above) say nothing here.
#[cfg(feature = "http2")]
fn h2_failure(err: &h2::Error) -> Option<Failure> {
    if err.is_reset() && err.is_remote() && err.reason() == Some(h2::Reason::REFUSED_STREAM) {
        Some(Failure::Refused)
    } else if err.is_reset() || err.is_go_away() {
        Some(Failure::Transport)
    } else {
        None
    }
}

/// The HTTP policy's verdict on an error: connection errors and timeouts are retried; a
/// circuit breaker's rejection is retried after its `retry_after` (and returned at once when
/// that is unknown); anything else is returned.
pub(crate) fn classify_error(err: &(dyn Error + 'static)) -> Decision {
    match classify_failure(err) {
        Failure::CircuitOpen(after) => circuit_open(after),
        Failure::NotSent | Failure::Transport => Decision::retry("connection error"),
        Failure::Refused => Decision::retry("refused stream"),
        Failure::Timeout => Decision::retry("timeout"),
        Failure::Other => Decision::Return,
    }
}

/// A breaker's rejection: retried only after its `retry_after`, returned when it has none.
pub(crate) fn circuit_open(after: Option<std::time::Duration>) -> Decision {
    match after {
        Some(after) => Decision::RetryAfter {
            reason: "circuit open",
            after,
        },
        None => Decision::Return,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn boxed(e: impl Error + Send + Sync + 'static) -> BoxError {
        Box::new(e)
    }

    /// An error that wraps another, as a transport error does.
    #[derive(Debug)]
    struct Wrapped(BoxError);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("transport error")
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    fn classify(e: &BoxError) -> Failure {
        classify_failure(as_error(e).unwrap())
    }

    #[test]
    fn io_kinds() {
        let kind = |k| classify(&boxed(Wrapped(boxed(io::Error::from(k)))));
        assert_eq!(kind(io::ErrorKind::ConnectionRefused), Failure::NotSent);
        assert_eq!(kind(io::ErrorKind::TimedOut), Failure::Timeout);
        assert_eq!(kind(io::ErrorKind::ConnectionReset), Failure::Transport);
        assert_eq!(kind(io::ErrorKind::PermissionDenied), Failure::Other);
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn tonic_timeouts_and_connect_errors() {
        // The channel's `grpc-timeout`: a timeout (DEADLINE_EXCEEDED), not a lost connection.
        let expired = boxed(Wrapped(boxed(tonic::TimeoutExpired(()))));
        assert_eq!(classify(&expired), Failure::Timeout);
        // A connection that timed out or failed its handshake: never sent, like a refusal.
        for cause in [
            boxed(io::Error::from(io::ErrorKind::TimedOut)),
            boxed(io::Error::other("tls handshake")),
        ] {
            let connect = boxed(Wrapped(boxed(tonic::ConnectError(cause))));
            assert_eq!(classify(&connect), Failure::NotSent);
        }
    }
}
