//! Server and client trace layers with RED metrics, for the example services until
//! `palisade-tracing-layer` lands: a SERVER span per request (parent extracted from the
//! W3C `traceparent`), a CLIENT span per attempt (context injected), OpenTelemetry
//! semantic-convention names, and duration histograms.
//!
//! Known simplifications (the palisade layer does these properly): a span ends when the
//! response headers are ready, not when the body ends; a gRPC status is read from the
//! response headers (trailers-only responses, which is how tonic sends errors), and a
//! response without one counts as `OK`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use opentelemetry::trace::Status;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The protocol a server layer traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http,
    Grpc,
}

fn describe() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        metrics::describe_histogram!(
            "http_server_request_duration_seconds",
            metrics::Unit::Seconds,
            "Duration of HTTP server requests."
        );
        metrics::describe_histogram!(
            "rpc_server_call_duration_seconds",
            metrics::Unit::Seconds,
            "Duration of RPCs served."
        );
        metrics::describe_histogram!(
            "rpc_client_call_duration_seconds",
            metrics::Unit::Seconds,
            "Duration of RPC attempts made."
        );
    });
}

/// A SERVER span per request and the request-duration histogram.
#[derive(Debug, Clone)]
pub struct ServerTraceLayer {
    protocol: Protocol,
}

impl ServerTraceLayer {
    /// For an axum router; apply it with `Router::route_layer` so `http.route` is known.
    pub fn http() -> Self {
        describe();
        Self {
            protocol: Protocol::Http,
        }
    }

    /// For a tonic server (`Server::builder().layer(..)`); `grpc.health.v1` calls are not
    /// traced.
    pub fn grpc() -> Self {
        describe();
        Self {
            protocol: Protocol::Grpc,
        }
    }
}

impl<S> Layer<S> for ServerTraceLayer {
    type Service = ServerTrace<S>;

    fn layer(&self, inner: S) -> ServerTrace<S> {
        ServerTrace {
            inner,
            protocol: self.protocol,
        }
    }
}

/// The service of [`ServerTraceLayer`].
#[derive(Debug, Clone)]
pub struct ServerTrace<S> {
    inner: S,
    protocol: Protocol,
}

fn grpc_code<B>(res: &http::Response<B>) -> Option<i64> {
    res.headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

impl<S, B, ResB> Service<http::Request<B>> for ServerTrace<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        if self.protocol == Protocol::Grpc && path.starts_with("/grpc.health.v1.Health/") {
            return Box::pin(self.inner.call(req));
        }
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(req.headers()))
        });
        let method = req.method().as_str().to_owned();
        let (name, route) = match self.protocol {
            Protocol::Http => {
                let route = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map(|m| m.as_str().to_owned());
                let name = route
                    .as_ref()
                    .map_or_else(|| method.clone(), |r| format!("{method} {r}"));
                (name, route)
            }
            Protocol::Grpc => (path.trim_start_matches('/').to_owned(), None),
        };
        let span = tracing::info_span!("request", otel.name = %name, otel.kind = "server");
        let _ = span.set_parent(parent);
        match self.protocol {
            Protocol::Http => {
                span.set_attribute("http.request.method", method.clone());
                span.set_attribute("url.path", path);
                if let Some(r) = &route {
                    span.set_attribute("http.route", r.clone());
                }
            }
            Protocol::Grpc => {
                span.set_attribute("rpc.system.name", "grpc");
                span.set_attribute("rpc.method", name.clone());
            }
        }
        let protocol = self.protocol;
        let start = Instant::now();
        let future = self.inner.call(req).instrument(span.clone());
        Box::pin(async move {
            let result = future.await;
            let seconds = start.elapsed().as_secs_f64();
            match (&result, protocol) {
                (Ok(res), Protocol::Http) => {
                    let status = res.status().as_u16();
                    span.set_attribute("http.response.status_code", i64::from(status));
                    if status >= 500 {
                        span.set_attribute("error.type", status.to_string());
                        span.set_status(Status::error(""));
                    }
                    metrics::histogram!(
                        "http_server_request_duration_seconds",
                        "http_request_method" => method,
                        "http_route" => route.unwrap_or_default(),
                        "http_response_status_code" => status.to_string(),
                    )
                    .record(seconds);
                }
                (Ok(res), Protocol::Grpc) => {
                    let code = grpc_code(res).unwrap_or(0);
                    span.set_attribute("rpc.status_code", code);
                    // Server errors per the conventions: UNKNOWN, DEADLINE_EXCEEDED,
                    // UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
                    if matches!(code, 2 | 4 | 12 | 13 | 14 | 15) {
                        span.set_status(Status::error(""));
                    }
                    metrics::histogram!(
                        "rpc_server_call_duration_seconds",
                        "rpc_method" => name,
                        "rpc_status_code" => code.to_string(),
                    )
                    .record(seconds);
                }
                (Err(e), _) => {
                    span.set_attribute("error.type", "_OTHER");
                    span.set_status(Status::error(e.to_string()));
                }
            }
            result
        })
    }
}

/// A CLIENT span per attempt, the context injected into the request, and the attempt
/// duration histogram; `http.request.resend_count` from `palisade_retry::Attempt`.
#[derive(Debug, Clone)]
pub struct ClientTraceLayer {
    server: Option<(String, u16)>,
}

impl ClientTraceLayer {
    /// A client layer for gRPC calls to `endpoint` (`http://host:port`, for
    /// `server.address` and `server.port`: a tonic channel adds the origin below the
    /// layers, so requests here carry only the path).
    pub fn grpc(endpoint: &str) -> Self {
        describe();
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
        Self { server }
    }
}

impl<S> Layer<S> for ClientTraceLayer {
    type Service = ClientTrace<S>;

    fn layer(&self, inner: S) -> ClientTrace<S> {
        ClientTrace {
            inner,
            server: self.server.clone(),
        }
    }
}

/// The service of [`ClientTraceLayer`].
#[derive(Debug, Clone)]
pub struct ClientTrace<S> {
    inner: S,
    server: Option<(String, u16)>,
}

impl<S, B, ResB> Service<http::Request<B>> for ClientTrace<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().trim_start_matches('/').to_owned();
        let span = tracing::info_span!("attempt", otel.name = %method, otel.kind = "client");
        span.set_attribute("rpc.system.name", "grpc");
        span.set_attribute("rpc.method", method.clone());
        if let Some((host, port)) = &self.server {
            span.set_attribute("server.address", host.clone());
            span.set_attribute("server.port", i64::from(*port));
        }
        if let Some(attempt) = req.extensions().get::<palisade_retry::Attempt>()
            && attempt.is_retry()
        {
            span.set_attribute(
                "http.request.resend_count",
                i64::from(attempt.resend_count()),
            );
        }
        let cx = span.context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut HeaderInjector(req.headers_mut()));
        });
        let start = Instant::now();
        let future = self.inner.call(req).instrument(span.clone());
        Box::pin(async move {
            let result = future.await;
            let code = match &result {
                Ok(res) => {
                    let code = grpc_code(res).unwrap_or(0);
                    span.set_attribute("rpc.status_code", code);
                    if code != 0 {
                        span.set_status(Status::error(""));
                    }
                    code.to_string()
                }
                Err(e) => {
                    span.set_attribute("error.type", "transport");
                    span.set_status(Status::error(e.to_string()));
                    "transport".to_owned()
                }
            };
            metrics::histogram!(
                "rpc_client_call_duration_seconds",
                "rpc_method" => method,
                "rpc_status_code" => code,
            )
            .record(start.elapsed().as_secs_f64());
            result
        })
    }
}
