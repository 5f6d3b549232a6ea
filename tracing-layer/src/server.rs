//! The server layer: a SERVER span per request, parented by the propagated context.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderName, HeaderValue, Request, Response};
use opentelemetry::trace::TraceContextExt as _;
use tower_layer::Layer;
use tower_service::Service;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::body::{Finish, Protocol, Side, TracedBody};
use crate::metrics::Instruments;
use crate::propagation;

/// The default paths that get no span: probes and scrapes.
pub const DEFAULT_EXCLUDED: [&str; 2] = ["/health/*", "/metrics"];

#[derive(Debug, Clone)]
struct Config {
    protocol: Protocol,
    trust_remote: bool,
    excluded: Vec<String>,
    response_header: Option<HeaderName>,
    server_timing: bool,
    metrics: bool,
}

/// A SERVER span per request (HTTP with axum, or gRPC with tonic), following the
/// OpenTelemetry semantic conventions; RED metrics with feature `metrics`.
///
/// The span is the parent of every `tracing` span and event of the handler, ends when
/// the response body ends, and its parent is the context propagated by the client
/// (W3C `traceparent`/`tracestate`/`baggage`, or the propagator installed with
/// [`propagation::install`](crate::propagation::install)).
///
/// For axum, apply it with `Router::route_layer` so that `http.route` (axum's
/// `MatchedPath`) is known; with `Router::layer` the span is named by the method only.
#[derive(Debug, Clone)]
pub struct ServerTraceLayer {
    config: Arc<Config>,
}

impl ServerTraceLayer {
    /// A layer for HTTP servers (axum, hyper).
    pub fn http() -> Self {
        Self::with(Protocol::Http)
    }

    /// A layer for tonic servers (`Server::builder().layer(..)`); the status is read
    /// from the `grpc-status` of the headers or of the trailers. `grpc.health.v1` calls
    /// get no span by default.
    pub fn grpc() -> Self {
        let mut s = Self::with(Protocol::Grpc);
        Arc::make_mut(&mut s.config)
            .excluded
            .push("/grpc.health.v1.Health/*".to_owned());
        s
    }

    fn with(protocol: Protocol) -> Self {
        Self {
            config: Arc::new(Config {
                protocol,
                trust_remote: true,
                excluded: DEFAULT_EXCLUDED.iter().map(|s| (*s).to_owned()).collect(),
                response_header: None,
                server_timing: false,
                metrics: true,
            }),
        }
    }

    /// Whether an incoming parent is trusted (default `true`). With `false` (edge mode,
    /// for public entry points) every request starts a new trace whose span links to
    /// the remote context.
    pub fn trust_remote(mut self, trust: bool) -> Self {
        Arc::make_mut(&mut self.config).trust_remote = trust;
        self
    }

    /// Adds a path that gets no span and no metrics: exact, or a prefix when it ends in
    /// `*` (`/internal/*`).
    pub fn exclude_path(mut self, path: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).excluded.push(path.into());
        self
    }

    /// Removes every excluded path, the defaults ([`DEFAULT_EXCLUDED`]) included.
    pub fn clear_excluded_paths(mut self) -> Self {
        Arc::make_mut(&mut self.config).excluded.clear();
        self
    }

    /// Adds the server span's `traceparent` to each traced response under `name`
    /// (e.g. `traceresponse`).
    pub fn response_trace_header(mut self, name: HeaderName) -> Self {
        Arc::make_mut(&mut self.config).response_header = Some(name);
        self
    }

    /// Adds `server-timing: trace;desc=<traceparent>` to each traced response.
    pub fn server_timing(mut self, enabled: bool) -> Self {
        Arc::make_mut(&mut self.config).server_timing = enabled;
        self
    }

    /// Whether RED metrics are recorded (default `true`; needs feature `metrics`).
    pub fn metrics(mut self, enabled: bool) -> Self {
        Arc::make_mut(&mut self.config).metrics = enabled;
        self
    }
}

impl<S> Layer<S> for ServerTraceLayer {
    type Service = ServerTrace<S>;

    fn layer(&self, inner: S) -> ServerTrace<S> {
        ServerTrace {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`ServerTraceLayer`].
#[derive(Debug, Clone)]
pub struct ServerTrace<S> {
    inner: S,
    config: Arc<Config>,
}

fn excluded(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => path == p,
    })
}

/// The method as the conventions name it, or `None` for `_OTHER`.
pub(crate) fn known_method(m: &http::Method) -> Option<&'static str> {
    Some(match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ if m.as_str() == "QUERY" => "QUERY",
        _ => return None,
    })
}

pub(crate) fn protocol_version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

fn host_port(req_uri: &http::Uri, headers: &http::HeaderMap) -> Option<(String, Option<u16>)> {
    if let Some(a) = req_uri.authority() {
        return Some((a.host().to_owned(), a.port_u16()));
    }
    let host = headers.get(http::header::HOST)?.to_str().ok()?;
    let auth: http::uri::Authority = host.parse().ok()?;
    Some((auth.host().to_owned(), auth.port_u16()))
}

impl<S, B, ResB> Service<Request<B>> for ServerTrace<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<TracedBody<ResB>>;
    type Error = S::Error;
    type Future = ServerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let config = &*self.config;
        if excluded(&config.excluded, req.uri().path()) {
            return ServerFuture {
                inner: self.inner.call(req),
                finish: None,
                headers: None,
            };
        }
        let finish = start_span(config, &req);
        let headers =
            (config.response_header.is_some() || config.server_timing).then(|| self.config.clone());
        let inner = {
            let _enter = finish.span.enter();
            self.inner.call(req)
        };
        ServerFuture {
            inner,
            finish: Some(finish),
            headers,
        }
    }
}

fn start_span<B>(config: &Config, req: &Request<B>) -> Finish {
    let method = known_method(req.method());
    let scheme: &'static str = match req.uri().scheme_str() {
        Some("https") => "https",
        _ => "http",
    };
    let path = req.uri().path();
    let (route, rpc_method) = match config.protocol {
        Protocol::Http => (route_of(req), None),
        Protocol::Grpc => (None, Some(path.trim_start_matches('/').to_owned())),
    };
    let span = tracing::info_span!(
        target: "palisade_tracing_layer::server",
        parent: None,
        "request",
        otel.name = Empty,
        otel.kind = "server",
        http.request.method = Empty,
        http.request.method_original = Empty,
        http.route = Empty,
        url.path = Empty,
        url.scheme = Empty,
        server.address = Empty,
        server.port = Empty,
        client.address = Empty,
        user_agent.original = Empty,
        network.protocol.version = Empty,
        http.response.status_code = Empty,
        rpc.system.name = Empty,
        rpc.method = Empty,
        rpc.status_code = Empty,
        error.type = Empty,
    );
    if !span.is_disabled() {
        let parent = if config.trust_remote {
            propagation::extract_request(req.headers())
        } else {
            let remote = propagation::extract_request(req.headers());
            let sc = remote.span().span_context().clone();
            if sc.is_valid() {
                span.add_link(sc);
            }
            opentelemetry::Context::new()
        };
        let _ = span.set_parent(parent);
        match config.protocol {
            Protocol::Http => {
                let m = method.unwrap_or("_OTHER");
                let name: Cow<'_, str> = match (&route, method) {
                    (_, None) => Cow::Borrowed("HTTP"),
                    (Some(r), Some(m)) => Cow::Owned(format!("{m} {r}")),
                    (None, Some(m)) => Cow::Borrowed(m),
                };
                span.record("otel.name", name.as_ref());
                span.record("http.request.method", m);
                if method.is_none() {
                    span.record("http.request.method_original", req.method().as_str());
                }
                if let Some(r) = &route {
                    span.record("http.route", r.as_str());
                }
                span.record("url.path", path);
                span.record("url.scheme", scheme);
                span.record("network.protocol.version", protocol_version(req.version()));
                if let Some(ua) = req
                    .headers()
                    .get(http::header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                {
                    span.record("user_agent.original", ua);
                }
            }
            Protocol::Grpc => {
                let m = rpc_method.as_deref().unwrap_or("");
                span.record("otel.name", m);
                span.record("rpc.system.name", "grpc");
                span.record("rpc.method", m);
            }
        }
        if let Some((host, port)) = host_port(req.uri(), req.headers()) {
            span.record("server.address", host.as_str());
            if let Some(p) = port {
                span.record("server.port", p);
            }
        }
        if let Some(addr) = client_address(req) {
            span.record("client.address", addr.as_str());
        }
    }
    let instruments = (config.metrics && cfg!(feature = "metrics")).then_some(Instruments);
    let method = method.unwrap_or("_OTHER");
    if instruments.is_some() && config.protocol == Protocol::Http {
        Instruments::started(method, scheme);
    }
    Finish {
        span,
        side: Side::Server,
        protocol: config.protocol,
        start: Instant::now(),
        method,
        route,
        scheme,
        rpc_method,
        status: None,
        grpc: None,
        error_type: None,
        instruments,
        completed: false,
    }
}

#[cfg(feature = "axum")]
fn route_of<B>(req: &Request<B>) -> Option<String> {
    req.extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned())
}

#[cfg(not(feature = "axum"))]
fn route_of<B>(_req: &Request<B>) -> Option<String> {
    None
}

#[cfg(feature = "axum")]
fn client_address<B>(req: &Request<B>) -> Option<String> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

#[cfg(not(feature = "axum"))]
fn client_address<B>(_req: &Request<B>) -> Option<String> {
    None
}

/// The future of [`ServerTrace`].
#[pin_project::pin_project]
#[derive(Debug)]
pub struct ServerFuture<F> {
    #[pin]
    inner: F,
    finish: Option<Finish>,
    headers: Option<Arc<Config>>,
}

impl<F, ResB, E> Future for ServerFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
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
            Ok(mut res) => {
                if let Some(f) = finish.as_mut() {
                    f.response(&res);
                    if let Some(config) = this.headers.as_ref() {
                        add_trace_headers(config, &f.span, res.headers_mut());
                    }
                }
                Ok(res.map(|b| TracedBody::new(b, finish)))
            }
            Err(e) => {
                if let Some(f) = finish.as_mut() {
                    f.completed = true;
                    f.error_type = Some(Cow::Borrowed(std::any::type_name::<E>()));
                }
                Err(e)
            }
        })
    }
}

fn add_trace_headers(config: &Config, span: &tracing::Span, headers: &mut http::HeaderMap) {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return;
    }
    let tp = propagation::format_traceparent(&sc);
    if let Some(name) = &config.response_header
        && let Ok(v) = HeaderValue::from_str(&tp)
    {
        headers.insert(name.clone(), v);
    }
    if config.server_timing
        && let Ok(v) = HeaderValue::from_str(&format!("trace;desc={tp}"))
    {
        headers.append(http::header::HeaderName::from_static("server-timing"), v);
    }
}
