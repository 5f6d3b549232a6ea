//! The HTTP policy: which requests and responses are retried, and how bodies are replayed.
//!
//! [`HttpPolicy`] retries
//!
//! - connection errors and timeouts (recognised in the error's `source()` chain: `io::Error`
//!   kinds, hyper-util's connect errors, hyper's "connection closed before message completed"
//!   — a pooled keep-alive connection the server had just closed —, tower's and tokio's
//!   `Elapsed`), and a
//!   `palisade-circuit-breaker` rejection after its `retry_after` (feature `circuit-breaker`);
//!   with feature `http2`, HTTP/2 stream resets and `GOAWAY`s too (hyper's `h2` errors), a
//!   refused stream (`REFUSED_STREAM`, never processed) with the reason `"refused stream"`;
//! - responses `429`, `502`, `503` and `504` (configurable), honouring `Retry-After` as
//!   delta-seconds or HTTP-date;
//!
//! and only idempotent requests: `GET`, `HEAD`, `OPTIONS`, `PUT`, `DELETE`, `TRACE`, and `POST`
//! or `PATCH` only when they carry an `Idempotency-Key` header.
//!
//! The inner service receives `http::Request<ReplayBody<B>>` (see [`ReplayBody`]). Each request
//! carries an [`Attempt`] in its extensions. A replay is rebuilt from the original method, URI,
//! version, headers, extensions (all of which are `Clone` in `http` 1) and the captured body.
//!
//! `Retry-After` values that are neither form are ignored (the backoff applies); a huge value is
//! capped by [`max_delay`](crate::Builder::max_delay), and one that ends after the deadline
//! stops retrying.

use std::error::Error;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version};
use http_body::Body;

use crate::body::{ReplayBody, Saved as SavedBody};
use crate::classify::{as_error, classify_error};
use crate::policy::{Decision, Policy, Replay};
use crate::{Attempt, ConfigError};

/// The default body limit: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Retries idempotent HTTP requests on transient failures; see the [module docs](self).
///
/// # Default
/// - statuses: 429, 502, 503, 504
/// - body limit: 64 KiB
/// - `Retry-After` honoured
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    body_limit: usize,
    statuses: [u128; 2],
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            statuses: [0, 0],
        }
        .with_statuses([429, 502, 503, 504])
        .unwrap_or_else(|_| unreachable!("valid statuses"))
    }
}

impl HttpPolicy {
    /// The default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most body bytes kept for a replay; a longer body is sent once and never retried.
    /// Defaults to 64 KiB.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Replaces the retried response statuses (each in 400..=599).
    ///
    /// # Errors
    /// A status outside 400..=599, naming the field `statuses`.
    pub fn with_statuses(
        mut self,
        statuses: impl IntoIterator<Item = u16>,
    ) -> Result<Self, ConfigError> {
        self.statuses = [0, 0];
        for s in statuses {
            if !(400..=599).contains(&s) {
                return Err(ConfigError::new(
                    "statuses",
                    format!("must be in 400..=599, got {s}"),
                ));
            }
            let i = usize::from(s - 400);
            self.statuses[i / 100] |= 1 << (i % 100);
        }
        Ok(self)
    }

    /// Whether responses with `status` are retried.
    #[inline]
    pub fn retries_status(&self, status: u16) -> bool {
        (400..=599).contains(&status) && {
            let i = usize::from(status - 400);
            self.statuses[i / 100] & (1 << (i % 100)) != 0
        }
    }
}

/// Whether `method` may be retried: idempotent methods always, `POST` and `PATCH` only with an
/// `Idempotency-Key` header.
#[inline]
pub fn is_retryable_method(method: &Method, headers: &HeaderMap) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    ) || (matches!(*method, Method::POST | Method::PATCH) && headers.contains_key(&IDEMPOTENCY_KEY))
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date (relative to `now`; a date in
/// the past is zero). `None` for anything else.
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let s = value.to_str().ok()?.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still "a very long time".
        return Some(Duration::from_secs(s.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let when = httpdate::parse_http_date(s).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What an HTTP or gRPC policy keeps between attempts: a copy of the request's parts (none
/// for a request that is never retried) and the replay side of its body.
#[derive(Debug)]
pub struct HttpSaved<B> {
    parts: Option<SavedParts>,
    body: SavedBody<B>,
}

/// The request's parts, copied for a replay. An empty header map is kept as `None` (a
/// replay starts with an empty map): nothing to clone or drop on the success path.
#[derive(Debug)]
struct SavedParts {
    method: Method,
    uri: Uri,
    version: Version,
    headers: Option<HeaderMap>,
    extensions: http::Extensions,
}

impl<B> HttpSaved<B> {
    /// Whether the request may be sent again (its method allows it).
    #[inline]
    pub(crate) fn eligible(&self) -> bool {
        self.parts.is_some()
    }

    /// Whether the request can be sent again now: eligible, and its body is replayable.
    pub(crate) fn replayable(&self) -> bool {
        self.eligible() && self.body.replayable()
    }

    /// Whether the request is eligible and its body is still held by the attempt that read
    /// it: it may be replayable once that attempt lets it go.
    pub(crate) fn held(&self) -> bool {
        self.eligible() && self.body.held()
    }

    /// The request's path, when it is eligible.
    #[cfg(feature = "grpc")]
    pub(crate) fn path(&self) -> Option<&str> {
        self.parts.as_ref().map(|p| p.uri.path())
    }
}

/// Prepares the first attempt and hands it to `send`.
///
/// The parts kept for a replay are cloned from the caller's request in place, and the request
/// is moved once (to wrap its body) straight into `send`: each extra move of the 200-byte
/// request, and of what is kept, was a `memcpy` on every call.
#[inline]
pub(crate) fn prepare<B: Body, R>(
    req: Request<B>,
    limit: usize,
    eligible: impl FnOnce(&Method, &HeaderMap) -> bool,
    send: impl FnOnce(Request<ReplayBody<B>>) -> R,
) -> (R, HttpSaved<B>) {
    if !eligible(req.method(), req.headers()) {
        let mut saved_body = SavedBody::TooLarge;
        let sent = send(req.map(|body| {
            let (body, saved) = ReplayBody::passthrough(body);
            saved_body = saved;
            body
        }));
        let saved = HttpSaved {
            parts: None,
            body: saved_body,
        };
        return (sent, saved);
    }
    let parts = SavedParts {
        method: req.method().clone(),
        uri: req.uri().clone(),
        version: req.version(),
        headers: (!req.headers().is_empty()).then(|| req.headers().clone()),
        extensions: req.extensions().clone(),
    };
    let mut saved_body = SavedBody::Empty;
    // The first attempt carries no `Attempt` (its absence means "first"): inserting one
    // would box it into the extensions map, three allocations on every call's success path.
    let sent = send(req.map(|body| {
        let (body, saved) = ReplayBody::wrap(body, limit);
        saved_body = saved;
        body
    }));
    let saved = HttpSaved {
        parts: Some(parts),
        body: saved_body,
    };
    (sent, saved)
}

pub(crate) fn replay<B: Body>(
    saved: &HttpSaved<B>,
    attempt: Attempt,
) -> Option<Request<ReplayBody<B>>> {
    let parts = saved.parts.as_ref()?;
    let body = saved.body.replay()?;
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    if let Some(headers) = &parts.headers {
        *req.headers_mut() = headers.clone();
    }
    *req.extensions_mut() = parts.extensions.clone();
    req.extensions_mut().insert(attempt);
    Some(req)
}

pub(crate) fn classify_err<E: 'static>(err: &E) -> Decision {
    as_error(err).map_or(Decision::Return, |e: &(dyn Error + 'static)| {
        classify_error(e)
    })
}

impl<B: Body> Replay<Request<B>> for HttpPolicy {
    type Request = Request<ReplayBody<B>>;
    type Saved = HttpSaved<B>;

    #[inline]
    fn prepare<R>(
        &self,
        req: Request<B>,
        send: impl FnOnce(Self::Request) -> R,
    ) -> (R, HttpSaved<B>) {
        prepare(req, self.body_limit, is_retryable_method, send)
    }

    fn can_replay(&self, saved: &HttpSaved<B>) -> bool {
        saved.replayable()
    }

    fn may_replay_later(&self, saved: &HttpSaved<B>) -> bool {
        saved.held()
    }

    fn replay(&self, saved: &mut HttpSaved<B>, attempt: Attempt) -> Option<Self::Request> {
        replay(saved, attempt)
    }
}

impl<B, RB, E> Policy<Request<B>, Response<RB>, E> for HttpPolicy
where
    B: Body,
    E: 'static,
{
    #[inline]
    fn classify(&self, saved: &HttpSaved<B>, result: &Result<Response<RB>, E>) -> Decision {
        if !saved.eligible() {
            return Decision::Return;
        }
        match result {
            Err(e) => classify_err(e),
            Ok(res) => {
                let status = res.status().as_u16();
                if !self.retries_status(status) {
                    return Decision::Return;
                }
                let hint = res
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                Decision::Retry {
                    reason: status_reason(status),
                    hint,
                }
            }
        }
    }
}

fn status_reason(status: u16) -> &'static str {
    match status {
        429 => "status 429",
        502 => "status 502",
        503 => "status 503",
        504 => "status 504",
        400..=499 => "status 4xx",
        _ => "status 5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(
            parse_retry_after(&v("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(&v(" 0 "), now), Some(Duration::ZERO));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        let hv = HeaderValue::from_str(&date).unwrap();
        assert_eq!(parse_retry_after(&hv, now), Some(Duration::from_secs(30)));
        let past =
            HeaderValue::from_str(&httpdate::fmt_http_date(now - Duration::from_secs(30))).unwrap();
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        for garbage in ["", "-5", "1.5", "soon", "Tue, 99 Foo 2024", "0x10", "+3"] {
            assert_eq!(parse_retry_after(&v(garbage), now), None, "{garbage:?}");
        }
        let huge = v("99999999999999999999999999");
        assert_eq!(
            parse_retry_after(&huge, now),
            Some(Duration::from_secs(u64::MAX))
        );
        let bytes = HeaderValue::from_bytes(b"\xff\xfe").unwrap();
        assert_eq!(parse_retry_after(&bytes, now), None);
    }

    proptest::proptest! {
        /// Any header value a server can send: parsed or ignored, never a panic.
        #[test]
        fn retry_after_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                let _ = parse_retry_after(&v, SystemTime::now());
            }
        }

        #[test]
        fn digits_are_delta_seconds(n in proptest::num::u64::ANY) {
            let v = HeaderValue::from_str(&n.to_string()).unwrap();
            proptest::prop_assert_eq!(parse_retry_after(&v, SystemTime::now()), Some(Duration::from_secs(n)));
        }
    }

    #[test]
    fn methods() {
        let mut h = HeaderMap::new();
        for m in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
            Method::TRACE,
        ] {
            assert!(is_retryable_method(&m, &h));
        }
        assert!(!is_retryable_method(&Method::POST, &h));
        assert!(!is_retryable_method(&Method::PATCH, &h));
        assert!(!is_retryable_method(&Method::CONNECT, &h));
        h.insert("idempotency-key", HeaderValue::from_static("k1"));
        assert!(is_retryable_method(&Method::POST, &h));
        assert!(is_retryable_method(&Method::PATCH, &h));
    }

    #[test]
    fn statuses() {
        let p = HttpPolicy::default();
        for s in [429, 502, 503, 504] {
            assert!(p.retries_status(s));
        }
        for s in [200, 400, 404, 500, 501, 505, 0, 999] {
            assert!(!p.retries_status(s));
        }
        let p = p.with_statuses([500, 599, 400]).unwrap();
        assert!(p.retries_status(500) && p.retries_status(599) && p.retries_status(400));
        assert!(!p.retries_status(503));
        assert_eq!(
            HttpPolicy::new().with_statuses([600]).unwrap_err().field(),
            "statuses"
        );
        assert_eq!(
            HttpPolicy::new().with_statuses([399]).unwrap_err().field(),
            "statuses"
        );
    }
}
