//! The gRPC policy, for tonic clients.
//!
//! [`GrpcPolicy`] follows gRFC A6 (client retries):
//!
//! - A call whose **status** is in a set of codes (default `UNAVAILABLE`) is retried, for
//!   every method: the server (or a proxy) said so. The status is read from the response
//!   **headers** (a "trailers-only" response, which is how servers answer a call they did
//!   not process); once a response has arrived with its status left for the trailers, the
//!   call is *committed* and is never retried. A proxy's HTTP error without a `grpc-status`
//!   is mapped as the gRPC spec says (`429`, `502`, `503`, `504` are `UNAVAILABLE`, `404` is
//!   `UNIMPLEMENTED`, …).
//! - A call that **never left the client** (the channel could not connect — refused, timed
//!   out, a failed handshake —, or a circuit breaker rejected it) or that the **server did
//!   not process** (its HTTP/2 stream was refused with `REFUSED_STREAM`, gRFC A6's
//!   transparent retry) is retried for every method, a rejection only after the breaker's
//!   `retry_after`.
//! - A call whose outcome is **unknown** — a timeout (the channel's `grpc-timeout` expiring
//!   too), or a connection lost mid-call — may have been processed by the server. It is
//!   retried only for the methods declared
//!   [idempotent](GrpcPolicy::idempotent_methods), as `DEADLINE_EXCEEDED` (a timeout) or
//!   `UNAVAILABLE` (a lost connection), when that code is in the set.
//!
//! It honours `grpc-retry-pushback-ms` (a wait in milliseconds; a negative or malformed value
//! means "do not retry") and sets `grpc-previous-rpc-attempts` on every retry.
//!
//! The caller's **deadline** is the call's, across all attempts (gRFC A6): a request carrying
//! `grpc-timeout` (tonic's `Request::set_timeout`) is retried or hedged only while time is left
//! before it, no wait ends past it, and each retry carries `grpc-timeout` rewritten to the time
//! left when it is sent, so neither the channel nor the server gives a retry the whole timeout
//! again. A malformed `grpc-timeout` sets no deadline (and is sent as it is). gRPC requests
//! are POSTs, so the HTTP method is not consulted. Only the methods declared idempotent are
//! [hedged](crate::hedge).
//!
//! As gRFC A6 asks, the messages of a client stream are kept as they are sent (up to the body
//! limit): a stream the server answered with a trailers-only status before the client finished
//! it is sent again from its first message, then continues with the messages not yet sent,
//! once the transport has let the first stream go (see [`ReplayBody`]).
//!
//! # Tonic channels
//!
//! A tonic-generated client needs `T: GrpcService<tonic::body::Body>`, i.e. a service taking
//! `http::Request<tonic::body::Body>`. [`Retry`](crate::Retry) with a `GrpcPolicy` is exactly
//! that: it takes `http::Request<tonic::body::Body>` and hands the inner service
//! `http::Request<ReplayBody<tonic::body::Body>>`. A `tonic::transport::Channel` takes
//! `tonic::body::Body`, so put [`tonic_body`] (a `MapRequestLayer`) right above the channel; it
//! boxes the replay body back into a `tonic::body::Body`, which tonic boxes anyway:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use palisade_retry::{RetryLayer, grpc::{GrpcPolicy, tonic_body}};
//! use tonic_health::pb::health_client::HealthClient;
//! use tower::ServiceBuilder;
//!
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
//! let stack = ServiceBuilder::new()
//!     .layer(RetryLayer::builder("inventory", GrpcPolicy::new()).build()?)
//!     // CircuitBreaker, client trace, per-try timeout go here
//!     .layer(tonic_body())
//!     .service(channel);
//! let mut client = HealthClient::new(stack);
//! # let _ = &mut client;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Response};
use http_body::Body;
use tokio::time::Instant;

use crate::body::ReplayBody;
use crate::classify::{Failure, as_error, circuit_open, classify_failure};
use crate::http::{DEFAULT_BODY_LIMIT, HttpSaved, prepare, replay};
use crate::policy::{Decision, Policy, Replay};
use crate::{Attempt, ConfigError};

/// Retries gRPC calls on the given status codes; see the [module docs](self).
///
/// # Default
/// - codes: `UNAVAILABLE` (14)
/// - body limit: 64 KiB
/// - idempotent methods: none (timeouts and connections lost mid-call are not retried, and
///   nothing is hedged)
#[derive(Debug, Clone)]
pub struct GrpcPolicy {
    body_limit: usize,
    codes: u32,
    idempotent: Arc<[Box<str>]>,
}

impl Default for GrpcPolicy {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            codes: 1 << (tonic::Code::Unavailable as u32),
            idempotent: Arc::new([]),
        }
    }
}

impl GrpcPolicy {
    /// The default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most message bytes kept for a replay. Defaults to 64 KiB.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Replaces the retried status codes.
    ///
    /// # Errors
    /// `Ok` (0) cannot be retried: naming the field `codes`.
    pub fn with_codes(
        mut self,
        codes: impl IntoIterator<Item = tonic::Code>,
    ) -> Result<Self, ConfigError> {
        self.codes = 0;
        for c in codes {
            if c == tonic::Code::Ok {
                return Err(ConfigError::new("codes", "must not contain Ok"));
            }
            self.codes |= 1 << (c as u32);
        }
        Ok(self)
    }

    /// Whether `code` is retried.
    pub fn retries_code(&self, code: tonic::Code) -> bool {
        self.codes & (1 << (code as u32)) != 0
    }

    /// Declares the methods that are safe to repeat: a call to one of them whose outcome is
    /// unknown (a timeout, a connection lost mid-call) is retried, and it may be hedged.
    ///
    /// Each entry is a full method path, `/package.Service/Method`, or a whole service,
    /// `/package.Service/` (ending in `/`); `/` alone declares every method. Replaces any
    /// earlier list.
    ///
    /// # Errors
    /// An entry that does not start with `/`, or names a method without its service,
    /// naming the field `idempotent_methods`.
    pub fn idempotent_methods<I>(mut self, methods: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let mut list = Vec::new();
        for m in methods {
            let m: String = m.into();
            let valid = m == "/"
                || m.strip_prefix('/').is_some_and(|rest| {
                    let (service, method) = rest.split_once('/').unwrap_or((rest, ""));
                    !service.is_empty() && !method.contains('/') && rest.contains('/')
                });
            if !valid {
                return Err(ConfigError::new(
                    "idempotent_methods",
                    format!("expected `/package.Service/Method` or `/package.Service/`, got {m:?}"),
                ));
            }
            list.push(m.into_boxed_str());
        }
        self.idempotent = list.into();
        Ok(self)
    }

    /// Whether calls to `path` (`/package.Service/Method`) are declared idempotent.
    pub fn is_idempotent(&self, path: &str) -> bool {
        self.idempotent.iter().any(|m| {
            if m.ends_with('/') {
                path.starts_with(&**m)
            } else {
                path == &**m
            }
        })
    }

    fn saved_idempotent<B>(&self, saved: &GrpcSaved<B>) -> bool {
        saved.http.path().is_some_and(|p| self.is_idempotent(p))
    }

    /// The verdict on an error: see the [module docs](self).
    fn classify_error<B>(
        &self,
        saved: &GrpcSaved<B>,
        err: &(dyn std::error::Error + 'static),
    ) -> Decision {
        let (code, reason) = match classify_failure(err) {
            Failure::CircuitOpen(after) => return circuit_open(after),
            Failure::NotSent => return Decision::retry("connection error"),
            Failure::Refused => return Decision::retry("refused stream"),
            Failure::Timeout => (tonic::Code::DeadlineExceeded, "timeout"),
            Failure::Transport => (tonic::Code::Unavailable, "connection error"),
            Failure::Other => return Decision::Return,
        };
        if self.retries_code(code) && self.saved_idempotent(saved) {
            Decision::retry(reason)
        } else {
            Decision::Return
        }
    }
}

/// The gRPC status for an HTTP response without `grpc-status` (a proxy's answer), as the
/// gRPC spec maps them ("HTTP to gRPC Status Code Mapping").
fn code_for_http_status(status: http::StatusCode) -> tonic::Code {
    use tonic::Code as C;
    match status.as_u16() {
        400 => C::Internal,
        401 => C::Unauthenticated,
        403 => C::PermissionDenied,
        404 => C::Unimplemented,
        429 | 502 | 503 | 504 => C::Unavailable,
        _ => C::Unknown,
    }
}

/// A `MapRequestLayer` turning the retry layer's `ReplayBody<tonic::body::Body>` back into a
/// `tonic::body::Body`, for a `tonic::transport::Channel` (see the [module docs](self)).
pub fn tonic_body() -> tower::util::MapRequestLayer<
    fn(Request<ReplayBody<tonic::body::Body>>) -> Request<tonic::body::Body>,
> {
    fn map(req: Request<ReplayBody<tonic::body::Body>>) -> Request<tonic::body::Body> {
        req.map(tonic::body::Body::new)
    }
    tower::util::MapRequestLayer::new(map as fn(_) -> _)
}

/// What a `grpc-retry-pushback-ms` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushback {
    /// No header: the backoff applies.
    Absent,
    /// Wait at least this long before retrying.
    Wait(Duration),
    /// A negative or malformed value: the server asks not to retry.
    DoNotRetry,
}

/// Parses `grpc-retry-pushback-ms` (gRFC A6): a non-negative integer of milliseconds; anything
/// else means "do not retry". A value too large for a `u64` is a very long wait.
pub fn parse_pushback(value: Option<&HeaderValue>) -> Pushback {
    let Some(v) = value else {
        return Pushback::Absent;
    };
    let Ok(s) = v.to_str() else {
        return Pushback::DoNotRetry;
    };
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Pushback::DoNotRetry;
    }
    Pushback::Wait(Duration::from_millis(s.parse::<u64>().unwrap_or(u64::MAX)))
}

static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// Parses a `grpc-timeout` value (the gRPC spec: at most 8 digits and a unit, `H`, `M`, `S`,
/// `m`, `u` or `n`). `None` for anything else.
pub fn parse_grpc_timeout(value: &HeaderValue) -> Option<Duration> {
    let bytes = value.as_bytes();
    let (&unit, digits) = bytes.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Writes `left` as a `grpc-timeout` value: the finest unit that fits in 8 digits, rounded
/// down (a deadline is never moved later), as tonic writes it.
pub fn grpc_timeout_value(left: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let secs = u128::from(left.as_secs());
    let (n, unit) = [
        (left.as_nanos(), 'n'),
        (left.as_micros(), 'u'),
        (left.as_millis(), 'm'),
        (secs, 'S'),
        (secs / 60, 'M'),
    ]
    .into_iter()
    .find(|&(n, _)| n <= MAX)
    .unwrap_or(((secs / 3600).min(MAX), 'H'));
    let value = format!("{n}{unit}");
    HeaderValue::from_str(&value).unwrap_or_else(|_| unreachable!("digits and a unit"))
}

/// What the gRPC policy keeps between attempts: what the HTTP policy keeps, and the call's
/// deadline, from the caller's `grpc-timeout`.
#[derive(Debug)]
pub struct GrpcSaved<B> {
    http: HttpSaved<B>,
    deadline: Option<Instant>,
}

impl<B: Body> Replay<Request<B>> for GrpcPolicy {
    type Request = Request<ReplayBody<B>>;
    type Saved = GrpcSaved<B>;

    #[inline]
    fn prepare<R>(
        &self,
        req: Request<B>,
        send: impl FnOnce(Self::Request) -> R,
    ) -> (R, GrpcSaved<B>) {
        // The call starts now, before the channel starts its own timer on the first attempt.
        let deadline = (req.headers().get(&GRPC_TIMEOUT))
            .and_then(parse_grpc_timeout)
            .and_then(|timeout| Instant::now().checked_add(timeout));
        let (sent, http) = prepare(req, self.body_limit, |_, _| true, send);
        (sent, GrpcSaved { http, deadline })
    }

    fn can_replay(&self, saved: &GrpcSaved<B>) -> bool {
        saved.http.replayable()
    }

    /// A client stream the server answered before the client finished it: the messages sent
    /// so far and the rest of the stream are sent again once the transport lets it go.
    fn may_replay_later(&self, saved: &GrpcSaved<B>) -> bool {
        saved.http.held()
    }

    /// Only the methods declared [idempotent](GrpcPolicy::idempotent_methods).
    fn can_hedge(&self, saved: &GrpcSaved<B>) -> bool {
        saved.http.replayable() && self.saved_idempotent(saved)
    }

    fn replay(&self, saved: &mut GrpcSaved<B>, attempt: Attempt) -> Option<Self::Request> {
        let mut req = replay(&saved.http, attempt)?;
        req.headers_mut().insert(
            "grpc-previous-rpc-attempts",
            HeaderValue::from(attempt.resend_count()),
        );
        Some(req)
    }

    /// The caller's `grpc-timeout` after the call started.
    fn deadline(&self, saved: &GrpcSaved<B>) -> Option<Instant> {
        saved.deadline
    }

    /// `grpc-timeout` becomes the time left before the call's deadline.
    fn before_send(&self, saved: &GrpcSaved<B>, request: &mut Self::Request) {
        if let Some(deadline) = saved.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            request
                .headers_mut()
                .insert(GRPC_TIMEOUT.clone(), grpc_timeout_value(left));
        }
    }
}

impl<B, RB, E> Policy<Request<B>, Response<RB>, E> for GrpcPolicy
where
    B: Body,
    E: 'static,
{
    fn classify(&self, saved: &GrpcSaved<B>, result: &Result<Response<RB>, E>) -> Decision {
        let res = match result {
            Err(e) => {
                return as_error(e).map_or(Decision::Return, |e| self.classify_error(saved, e));
            }
            Ok(res) => res,
        };
        let headers = res.headers();
        let code = match headers.get("grpc-status") {
            Some(v) => match v.to_str().ok().and_then(|c| c.trim().parse::<i32>().ok()) {
                Some(c) => tonic::Code::from_i32(c),
                None => return Decision::Return,
            },
            // Not a gRPC answer at all: a proxy's HTTP error.
            None if res.status() != http::StatusCode::OK => code_for_http_status(res.status()),
            // No status in the headers: the call is committed (status in the trailers).
            None => return Decision::Return,
        };
        if code == tonic::Code::Ok || !self.retries_code(code) {
            return Decision::Return;
        }
        let hint = match parse_pushback(headers.get("grpc-retry-pushback-ms")) {
            Pushback::DoNotRetry => return Decision::Return,
            Pushback::Absent => None,
            Pushback::Wait(d) => Some(d),
        };
        Decision::Retry {
            reason: code_reason(code),
            hint,
        }
    }
}

fn code_reason(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Unavailable => "grpc UNAVAILABLE",
        C::ResourceExhausted => "grpc RESOURCE_EXHAUSTED",
        C::DeadlineExceeded => "grpc DEADLINE_EXCEEDED",
        C::Aborted => "grpc ABORTED",
        C::Internal => "grpc INTERNAL",
        C::Unknown => "grpc UNKNOWN",
        _ => "grpc status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushback_values() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(parse_pushback(None), Pushback::Absent);
        assert_eq!(
            parse_pushback(Some(&v("250"))),
            Pushback::Wait(Duration::from_millis(250))
        );
        for bad in ["-1", "", "abc", "1.5", "-0", " "] {
            assert_eq!(
                parse_pushback(Some(&v(bad))),
                Pushback::DoNotRetry,
                "{bad:?}"
            );
        }
        let bytes = HeaderValue::from_bytes(b"\xff").unwrap();
        assert_eq!(parse_pushback(Some(&bytes)), Pushback::DoNotRetry);
        let huge = v("999999999999999999999999");
        assert_eq!(
            parse_pushback(Some(&huge)),
            Pushback::Wait(Duration::from_millis(u64::MAX))
        );
    }

    proptest::proptest! {
        /// Any header value a server can send: a wait or "do not retry", never a panic.
        #[test]
        fn pushback_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                let _ = parse_pushback(Some(&v));
            }
        }
    }

    #[test]
    fn grpc_timeouts() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        let d = |s| parse_grpc_timeout(&v(s));
        assert_eq!(d("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(d("2M"), Some(Duration::from_secs(120)));
        assert_eq!(d("3S"), Some(Duration::from_secs(3)));
        assert_eq!(d("250m"), Some(Duration::from_millis(250)));
        assert_eq!(d("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(d("0n"), Some(Duration::ZERO));
        for bad in [
            "",
            "m",
            "5",
            "5s",
            "5 m",
            " 5m",
            "-5m",
            "123456789m",
            "1.5S",
            "5mm",
        ] {
            assert_eq!(d(bad), None, "{bad:?}");
        }
        let cases = [
            (Duration::from_nanos(1), "1n"),
            (Duration::from_millis(50), "50000000n"),
            (Duration::from_millis(500), "500000u"),
            (Duration::from_secs(30), "30000000u"),
            (Duration::from_secs(3600), "3600000m"),
            (Duration::from_secs(200_000), "200000S"),
            (Duration::from_secs(100_000_000), "1666666M"),
            (Duration::MAX, "99999999H"),
        ];
        for (left, want) in cases {
            assert_eq!(grpc_timeout_value(left), want, "{left:?}");
        }
    }

    proptest::proptest! {
        /// Read back, never later than the time left, and earlier by less than one unit of
        /// the finest unit that fits (at most a 100 000th of the time left).
        #[test]
        fn grpc_timeout_round_trip(nanos in 0u64..=(1000 * 3600 * 1_000_000_000)) {
            let left = Duration::from_nanos(nanos);
            let back = parse_grpc_timeout(&grpc_timeout_value(left)).unwrap();
            proptest::prop_assert!(back <= left);
            proptest::prop_assert!(left - back <= left / 100_000);
        }

        #[test]
        fn grpc_timeout_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..16)) {
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                let _ = parse_grpc_timeout(&v);
            }
        }
    }

    #[test]
    fn codes() {
        let p = GrpcPolicy::new();
        assert!(p.retries_code(tonic::Code::Unavailable));
        assert!(!p.retries_code(tonic::Code::Internal));
        let p = p
            .with_codes([tonic::Code::Internal, tonic::Code::ResourceExhausted])
            .unwrap();
        assert!(p.retries_code(tonic::Code::Internal));
        assert!(!p.retries_code(tonic::Code::Unavailable));
        assert_eq!(
            GrpcPolicy::new()
                .with_codes([tonic::Code::Ok])
                .unwrap_err()
                .field(),
            "codes"
        );
    }
}
