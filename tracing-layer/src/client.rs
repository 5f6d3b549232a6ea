//! The client layer: a CLIENT span per attempt and the context injected into the request.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::body::{Finish, Protocol, Side, TracedBody};
use crate::metrics::Instruments;
use crate::propagation;
use crate::server::known_method;

#[derive(Debug, Clone)]
struct Config {
    protocol: Protocol,
    server: Option<(String, u16)>,
    redact_query: bool,
    metrics: bool,
    instruments: Instruments,
}

/// A CLIENT span per call (per attempt when below a retry layer) that injects
/// `traceparent`, `tracestate` and `baggage` into the outgoing request; RED metrics with
/// feature `metrics`.
///
/// Place it below `Retry` so that each attempt gets its own span and
/// `http.request.resend_count` (feature `retry`, from `palisade_retry::Attempt`).
#[derive(Debug, Clone)]
pub struct ClientTraceLayer {
    config: Arc<Config>,
}

impl ClientTraceLayer {
    /// A layer for HTTP clients (e.g. hyper-util's `Client`); requests carry absolute URIs.
    pub fn http() -> Self {
        Self::with(Protocol::Http, None)
    }

    /// A layer for a tonic `Channel` to `endpoint` (`http://host:port`, which gives
    /// `server.address`/`server.port`: requests above a channel carry only the path).
    pub fn grpc(endpoint: &str) -> Self {
        let server = endpoint.parse::<http::Uri>().ok().and_then(|uri| {
            let host = uri
                .host()?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri
                .port_u16()
                .unwrap_or(if uri.scheme_str() == Some("https") {
                    443
                } else {
                    80
                });
            Some((host, port))
        });
        Self::with(Protocol::Grpc, server)
    }

    fn with(protocol: Protocol, server: Option<(String, u16)>) -> Self {
        Self {
            config: Arc::new(Config {
                protocol,
                server,
                redact_query: true,
                metrics: true,
                instruments: Instruments::new(),
            }),
        }
    }

    /// Whether query values in `url.full` are replaced by `REDACTED` (default `true`).
    /// Credentials in the URL are always removed.
    pub fn redact_query(mut self, redact: bool) -> Self {
        Arc::make_mut(&mut self.config).redact_query = redact;
        self
    }

    /// Whether RED metrics are recorded (default `true`; needs feature `metrics`).
    pub fn metrics(mut self, enabled: bool) -> Self {
        Arc::make_mut(&mut self.config).metrics = enabled;
        self
    }
}

impl<S> Layer<S> for ClientTraceLayer {
    type Service = ClientTrace<S>;

    fn layer(&self, inner: S) -> ClientTrace<S> {
        ClientTrace {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`ClientTraceLayer`].
#[derive(Debug, Clone)]
pub struct ClientTrace<S> {
    inner: S,
    config: Arc<Config>,
}

/// `uri` without credentials, with query values replaced by `REDACTED` when `redact`.
pub fn redacted_url(uri: &http::Uri, redact: bool) -> String {
    let mut out = String::new();
    if let Some(s) = uri.scheme_str() {
        out.push_str(s);
        out.push_str("://");
    }
    if let Some(a) = uri.authority() {
        let a = a.as_str();
        out.push_str(a.rsplit_once('@').map_or(a, |(_, host)| host));
    }
    out.push_str(uri.path());
    if let Some(q) = uri.query() {
        out.push('?');
        if redact {
            for (i, pair) in q.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((k, _)) => {
                        out.push_str(k);
                        out.push_str("=REDACTED");
                    }
                    None => out.push_str(pair),
                }
            }
        } else {
            out.push_str(q);
        }
    }
    out
}

impl<S, B, ResB> Service<Request<B>> for ClientTrace<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: std::fmt::Display,
{
    type Response = Response<TracedBody<ResB>>;
    type Error = S::Error;
    type Future = ClientFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let config = &*self.config;
        let method = known_method(req.method());
        let scheme: &'static str = match req.uri().scheme_str() {
            Some("https") => "https",
            _ => "http",
        };
        let rpc_method = (config.protocol == Protocol::Grpc)
            .then(|| req.uri().path().trim_start_matches('/').to_owned());
        let span = tracing::info_span!(
            target: "palisade_tracing_layer::client",
            "request",
            otel.name = Empty,
            otel.kind = "client",
            http.request.method = Empty,
            http.request.method_original = Empty,
            server.address = Empty,
            server.port = Empty,
            url.full = Empty,
            http.response.status_code = Empty,
            http.request.resend_count = Empty,
            rpc.system.name = Empty,
            rpc.method = Empty,
            rpc.status_code = Empty,
            error.type = Empty,
        );
        if !span.is_disabled() {
            match config.protocol {
                Protocol::Http => {
                    span.record("otel.name", method.unwrap_or("HTTP"));
                    span.record("http.request.method", method.unwrap_or("_OTHER"));
                    if method.is_none() {
                        span.record("http.request.method_original", req.method().as_str());
                    }
                    span.record(
                        "url.full",
                        redacted_url(req.uri(), config.redact_query).as_str(),
                    );
                }
                Protocol::Grpc => {
                    let m = rpc_method.as_deref().unwrap_or("");
                    span.record("otel.name", m);
                    span.record("rpc.system.name", "grpc");
                    span.record("rpc.method", m);
                }
            }
            let server = match (&config.server, req.uri().host()) {
                (_, Some(h)) => Some((
                    h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                    req.uri()
                        .port_u16()
                        .unwrap_or(if scheme == "https" { 443 } else { 80 }),
                )),
                (Some(s), None) => Some(s.clone()),
                (None, None) => None,
            };
            if let Some((host, port)) = server {
                span.record("server.address", host.as_str());
                span.record("server.port", i64::from(port));
            }
            #[cfg(feature = "retry")]
            if let Some(attempt) = req.extensions().get::<palisade_retry::Attempt>()
                && attempt.is_retry()
            {
                span.record(
                    "http.request.resend_count",
                    i64::from(attempt.resend_count()),
                );
            }
            propagation::inject_request(&span.context(), req.headers_mut());
        }
        let instruments =
            (config.metrics && cfg!(feature = "metrics")).then(|| config.instruments.clone());
        let finish = Finish {
            span,
            cx: None,
            side: Side::Client,
            protocol: config.protocol,
            start: Instant::now(),
            method: method.unwrap_or("_OTHER"),
            route: None,
            scheme,
            rpc_method,
            status: None,
            grpc: None,
            error_type: None,
            instruments,
            completed: false,
            record: true,
        };
        let inner = {
            let _enter = finish.span.enter();
            self.inner.call(req)
        };
        ClientFuture {
            inner,
            finish: Some(finish),
        }
    }
}

/// The future of [`ClientTrace`].
#[pin_project::pin_project]
#[derive(Debug)]
pub struct ClientFuture<F> {
    #[pin]
    inner: F,
    finish: Option<Finish>,
}

impl<F, ResB, E> Future for ClientFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<Response<TracedBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.finish.as_ref() {
            Some(f) => {
                let _enter = f.span.enter();
                std::task::ready!(this.inner.poll(cx))
            }
            None => std::task::ready!(this.inner.poll(cx)),
        };
        let mut finish = this.finish.take();
        Poll::Ready(match result {
            Ok(res) => {
                if let Some(f) = finish.as_mut() {
                    f.response(&res);
                }
                Ok(res.map(|b| TracedBody::new(b, finish)))
            }
            Err(e) => {
                if let Some(f) = finish.as_mut() {
                    f.completed = true;
                    f.error_type = Some(Cow::Borrowed(error_type_name::<E>()));
                    if !f.span.is_disabled() {
                        f.span
                            .set_status(opentelemetry::trace::Status::error(e.to_string()));
                    }
                }
                Err(e)
            }
        })
    }
}

fn error_type_name<E>() -> &'static str {
    std::any::type_name::<E>()
}
