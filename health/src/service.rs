use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use tower_service::Service;

use crate::body::ResponseBody;
use crate::config::DetailsRepr;
use crate::future::ResponseFuture;
use crate::registry::Inner;
use crate::{HealthLayer, HealthRegistry, Kind};

/// The `Content-Type` of every health response.
pub const CONTENT_TYPE_HEALTH_JSON: &str = "application/health+json";

/// Answers `GET` and `HEAD` on the live, ready and startup paths from the registry's
/// cached results, and passes every other request to the inner service untouched.
///
/// Works for any `tower::Service<http::Request<_>>` whose response body yields
/// [`Bytes`](bytes::Bytes): axum routers, tonic servers, hyper services. A probe costs
/// no allocation beyond the response's headers, takes no lock, and never runs a check.
/// Build it with [`HealthRegistry::layer`].
///
/// Put it outermost, and keep the service directly inside it always ready, as axum
/// routers and tonic servers are: tower requires the inner service's `poll_ready`
/// before each call, so a saturated concurrency limit or load shedder between this
/// layer and the router would hold probes back too, and an orchestrator would restart
/// a process that is merely busy. Limit routes instead (axum's `Router::route_layer`).
///
/// ```text
/// Health  ->  ServerTrace + metrics  ->  Router  ->  (per route) ConcurrencyLimit  ->  handler
/// ```
#[derive(Debug, Clone)]
pub struct Health<S> {
    inner: S,
    registry: HealthRegistry,
}

impl<S> Health<S> {
    /// Wraps `inner`, answering from `registry`.
    pub fn new(inner: S, registry: HealthRegistry) -> Self {
        Self { inner, registry }
    }

    /// A layer for this service.
    pub fn layer(registry: HealthRegistry) -> HealthLayer {
        HealthLayer::new(registry)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Health<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let head = match *req.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => return ResponseFuture::inner(self.inner.call(req)),
        };
        let inner = &*self.registry.inner;
        let Some(kind) = inner.probe_kind(req.uri().path()) else {
            return ResponseFuture::inner(self.inner.call(req));
        };
        let detailed = inner.wants_details(req.headers());
        ResponseFuture::health(inner.respond(kind, head, detailed))
    }
}

impl Inner {
    #[inline]
    fn probe_kind(&self, path: &str) -> Option<Kind> {
        let c = &self.config;
        if path == &*c.ready_path {
            Some(Kind::Readiness)
        } else if path == &*c.live_path {
            Some(Kind::Liveness)
        } else if path == &*c.startup_path {
            Some(Kind::Startup)
        } else {
            None
        }
    }

    fn wants_details(&self, headers: &HeaderMap) -> bool {
        match self.config.details.repr() {
            DetailsRepr::Hidden => false,
            DetailsRepr::Always => true,
            DetailsRepr::Token(token) => headers
                .get_all(AUTHORIZATION)
                .iter()
                .filter_map(|v| bearer(v.as_bytes()))
                .any(|given| constant_time_eq(given, token)),
        }
    }

    fn respond<B>(&self, kind: Kind, head: bool, detailed: bool) -> Response<ResponseBody<B>> {
        let snap = self.current();
        let r = match kind {
            Kind::Liveness => &snap.live,
            Kind::Readiness => &snap.ready,
            Kind::Startup => &snap.startup,
        };
        let body = if detailed { &r.detailed } else { &r.public };
        let mut res = if head {
            let mut res = Response::new(ResponseBody::health(None));
            res.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            res
        } else {
            Response::new(ResponseBody::health(Some(body.clone())))
        };
        *res.status_mut() = r.status.http_status();
        let h = res.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(CONTENT_TYPE_HEALTH_JSON),
        );
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

/// Compares in time that depends only on the secret's length, not on where the given
/// value first differs.
pub(crate) fn constant_time_eq(given: &[u8], secret: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != secret.len());
    for (i, s) in secret.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(0) ^ s;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bear"), None);
    }

    proptest::proptest! {
        #[test]
        fn constant_time_eq_is_eq(a in proptest::collection::vec(0u8..4, 0..6), b in proptest::collection::vec(0u8..4, 0..6)) {
            proptest::prop_assert_eq!(constant_time_eq(&a, &b), a == b);
        }
    }
}
