//! The server layer: a SERVER span per request, parented by the propagated context.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderName, HeaderValue, Request, Response};
use opentelemetry::KeyValue;
use opentelemetry::baggage::BaggageExt as _;
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

/// What the server layers may assume about the installed OpenTelemetry sampler, so that
/// they build a span, and its attributes, only when it can be recorded.
///
/// tracing-opentelemetry builds every span with its attributes before the sampler runs.
/// When the layer knows a request will not be recorded (a parent-based sampler and a
/// remote parent that is not sampled, or a sampler that records nothing), it makes no span
/// at all: the handler runs in the request's OpenTelemetry context (the parent's trace,
/// a new span id, not sampled), so its logs carry the trace id, its own spans and outgoing
/// calls continue the trace, and nothing is built. With the sampler's ratio known too
/// (`telemetry::RootIdGenerator`, which `Telemetry::init` installs), the layer makes the
/// sampler's decision itself on every request, roots included: a request the sampler
/// would drop gets no span, one it keeps gets its full span at once. When only the
/// sampler can tell, the span starts lean and gets its name and attributes only if the
/// sampler records it.
///
/// Without a span for unsampled requests, read the context with
/// [`current_context`](crate::current_context) (it falls back to the attached context),
/// not `tracing::Span::current().context()`, and spawn the handler's work with
/// [`in_current_context`](crate::in_current_context): `in_current_span()` carries only
/// the `tracing` span, and the work would start (sampled) traces of its own.
///
/// [`Telemetry::init`](crate::Telemetry::init) sets it from the sampler it installs
/// ([`SamplingHint::ParentBasedTraceIdOnly`] for `parentbased_*`, the default,
/// [`SamplingHint::TraceIdOnly`] for `always_on` and `traceidratio`,
/// [`SamplingHint::AlwaysOff`] for `always_off`); set it with [`set_sampling_hint`] when
/// you build the tracer provider yourself. The default, [`SamplingHint::Unknown`],
/// assumes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SamplingHint {
    /// Nothing is assumed: every span is built with its attributes.
    Unknown,
    /// The sampler is parent-based (`ParentBased(..)`, OpenTelemetry's default): a request
    /// whose trusted remote parent is not sampled is not sampled, and gets no span.
    ParentBased,
    /// The sampler records nothing (`AlwaysOff`): no request gets a span.
    AlwaysOff,
    /// The sampler decides from the parent context and the trace id only, never from the
    /// span's name, kind or attributes: true of every sampler the OpenTelemetry SDK ships
    /// (`AlwaysOn`, `AlwaysOff`, `TraceIdRatioBased` and `ParentBased` of them). With the
    /// sampler's ratio announced (`telemetry::RootIdGenerator::set_root_ratio`), the layer
    /// decides each request itself: no span for a dropped one, the full span for a kept
    /// one. Without it, every span starts lean, the sampler decides, and only a span it
    /// records gets its name and attributes (the same ones, set right after the
    /// decision). Do not set it for a sampler that reads attributes.
    TraceIdOnly,
    /// Both [`ParentBased`](Self::ParentBased) and [`TraceIdOnly`](Self::TraceIdOnly):
    /// `ParentBased(..)` of the SDK's samplers, OpenTelemetry's default. A request whose
    /// trusted parent is not sampled gets no span, only its context; the others start
    /// lean and get their name and attributes if recorded.
    ParentBasedTraceIdOnly,
}

static SAMPLING_HINT: AtomicU8 = AtomicU8::new(0);

type SharedTracer = Arc<opentelemetry::global::BoxedTracer>;

/// The tracer new server layers make their SERVER spans with, set by `Telemetry::init` for
/// `PALISADE_SERVER_SPANS=otel` and cleared at its shutdown: read once per layer, when it
/// is made, never per request.
static DEFAULT_TRACER: std::sync::Mutex<Option<SharedTracer>> = std::sync::Mutex::new(None);

/// Sets the tracer server layers made from now on use.
#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
pub(crate) fn set_default_tracer(tracer: Option<opentelemetry::global::BoxedTracer>) {
    *DEFAULT_TRACER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = tracer.map(Arc::new);
}

fn default_tracer() -> Option<SharedTracer> {
    DEFAULT_TRACER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// The ratio of root requests the sampler keeps, as `f64` bits, when the tracer provider
/// takes its root trace ids from the layer (`telemetry::RootIdGenerator`); NaN: unknown.
static ROOT_RATIO: AtomicU64 = AtomicU64::new(0x7FF8_0000_0000_0000);

/// Sets [`ROOT_RATIO`] (`telemetry::RootIdGenerator::set_root_ratio`): only with a
/// provider whose id generator reads [`take_root_trace_id`].
#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
pub(crate) fn set_root_ratio(ratio: Option<f64>) {
    let bits = ratio.filter(|r| !r.is_nan()).unwrap_or(f64::NAN).to_bits();
    ROOT_RATIO.store(bits, Ordering::Relaxed);
}

fn root_ratio() -> Option<f64> {
    let r = f64::from_bits(ROOT_RATIO.load(Ordering::Relaxed));
    (!r.is_nan()).then_some(r)
}

thread_local! {
    /// The trace id the layer chose for the root span it is about to start.
    static ROOT_TRACE_ID: std::cell::Cell<Option<opentelemetry::trace::TraceId>> =
        const { std::cell::Cell::new(None) };
}

/// The trace id the server layer chose for the root span being started on this thread, if
/// any (taken: the next root gets a random one).
#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
pub(crate) fn take_root_trace_id() -> Option<opentelemetry::trace::TraceId> {
    ROOT_TRACE_ID.with(std::cell::Cell::take)
}

/// The OpenTelemetry SDK's `TraceIdRatioBased` decision (opentelemetry_sdk 0.33): the
/// low 63 bits of the trace id's lower half against `ratio × 2^63`.
fn ratio_keeps(ratio: f64, trace_id: opentelemetry::trace::TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    let b = trace_id.to_bytes();
    let low = u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
    (low >> 1) < bound
}

/// Sets the process-wide [`SamplingHint`] for every server layer.
pub fn set_sampling_hint(hint: SamplingHint) {
    let v = match hint {
        SamplingHint::Unknown => 0,
        SamplingHint::ParentBased => 1,
        SamplingHint::AlwaysOff => 2,
        SamplingHint::TraceIdOnly => 3,
        SamplingHint::ParentBasedTraceIdOnly => 4,
    };
    SAMPLING_HINT.store(v, Ordering::Relaxed);
}

/// The current [`SamplingHint`].
pub fn sampling_hint() -> SamplingHint {
    match SAMPLING_HINT.load(Ordering::Relaxed) {
        1 => SamplingHint::ParentBased,
        2 => SamplingHint::AlwaysOff,
        3 => SamplingHint::TraceIdOnly,
        4 => SamplingHint::ParentBasedTraceIdOnly,
        _ => SamplingHint::Unknown,
    }
}

#[derive(Debug, Clone)]
struct Config {
    protocol: Protocol,
    trust_remote: bool,
    excluded: Vec<String>,
    response_header: Option<HeaderName>,
    server_timing: bool,
    metrics: bool,
    instruments: Instruments,
    /// With [`ServerTraceLayer::otel_tracer`]: SERVER spans are made with it directly.
    tracer: Option<SharedTracer>,
}

/// A SERVER span per request (HTTP with axum, or gRPC with tonic), following the
/// OpenTelemetry semantic conventions; RED metrics with feature `metrics`.
///
/// The span is the parent of every `tracing` span and event of the handler (for a span
/// made with [`otel_tracer`](Self::otel_tracer), events outside the handler's own spans
/// through [`span_events_layer`](crate::span_events_layer)), ends when the response body
/// ends, and its parent is the context propagated by the client (W3C
/// `traceparent`/`tracestate`/`baggage`, or the propagator installed with
/// [`propagation::install`]).
///
/// For axum, apply it with `Router::route_layer` so that `http.route` (axum's
/// `MatchedPath`) is known; with `Router::layer` the span is named by the method only.
#[derive(Debug, Clone)]
pub struct ServerTraceLayer {
    config: Arc<Config>,
}

impl ServerTraceLayer {
    /// A layer for HTTP servers (axum, hyper). Its SERVER spans are `tracing` spans, or,
    /// after [`Telemetry::init`](crate::Telemetry::init) with `PALISADE_SERVER_SPANS=otel`,
    /// made with that tracer ([`otel_tracer`](Self::otel_tracer),
    /// [`tracing_spans`](Self::tracing_spans)).
    pub fn http() -> Self {
        Self::with(Protocol::Http)
    }

    /// A layer for tonic servers (`Server::builder().layer(..)`); the status is read
    /// from the `grpc-status` of the headers or of the trailers. `grpc.health.v1` calls
    /// get no span by default. Its SERVER spans are made as [`http`](Self::http)'s.
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
                instruments: Instruments::new(),
                tracer: default_tracer(),
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

    /// Makes each SERVER span with `tracer` (the OpenTelemetry API) instead of as a
    /// `tracing` span that tracing-opentelemetry turns into one: the same span (name,
    /// kind, parent, links, attributes, events, status, end) for about half the cost of a
    /// sampled request (`benches/README.md`). Pass the tracer of the provider
    /// tracing-opentelemetry uses: `provider.tracer("orders")`. With
    /// [`Telemetry`](crate::Telemetry), `PALISADE_SERVER_SPANS=otel` does it for every
    /// layer made after `Telemetry::init`.
    ///
    /// The handler runs with the span's OpenTelemetry context attached: its own `tracing`
    /// spans are children of the SERVER span (tracing-opentelemetry parents a span that
    /// has no `tracing` parent on the attached context), its events outside them are
    /// events of the SERVER span (with [`span_events_layer`](crate::span_events_layer) in
    /// the subscriber, as `Telemetry` sets it up), its JSON log lines (`Telemetry`'s
    /// format) carry the trace and span ids, outgoing calls through
    /// [`ClientTraceLayer`](crate::ClientTraceLayer) propagate it and
    /// [`current_context`](crate::current_context) returns it.
    ///
    /// What the request no longer has is a `tracing` span: text log lines show no
    /// `request{..}` prefix, and work the handler spawns must carry the context with
    /// [`in_current_context`](crate::in_current_context): `in_current_span()` or
    /// `.instrument(Span::current())` carry only the current `tracing` span, and that
    /// work would start traces of its own; and `tracing::Span::current().record(..)` in
    /// the handler does not reach the SERVER span (set attributes with
    /// `current_context().span().set_attribute(..)`). Hence not the default.
    ///
    /// ```
    /// use opentelemetry::trace::TracerProvider as _;
    /// use palisade_tracing_layer::ServerTraceLayer;
    ///
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let layer = ServerTraceLayer::http().otel_tracer(provider.tracer("orders"));
    /// # drop(layer);
    /// ```
    pub fn otel_tracer<T>(mut self, tracer: T) -> Self
    where
        T: opentelemetry::trace::Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.config).tracer = Some(Arc::new(
            opentelemetry::global::BoxedTracer::new(Box::new(tracer)),
        ));
        self
    }

    /// Makes each SERVER span a `tracing` span through tracing-opentelemetry (the default),
    /// also after [`Telemetry::init`](crate::Telemetry::init) with
    /// `PALISADE_SERVER_SPANS=otel`: undoes [`otel_tracer`](Self::otel_tracer).
    pub fn tracing_spans(mut self) -> Self {
        Arc::make_mut(&mut self.config).tracer = None;
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

fn host_port<'a>(
    req_uri: &'a http::Uri,
    headers: &'a http::HeaderMap,
) -> Option<(&'a str, Option<u16>)> {
    if let Some(a) = req_uri.authority() {
        return Some((a.host(), a.port_u16()));
    }
    let host = headers.get(http::header::HOST)?.to_str().ok()?.trim();
    if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        return Some((ip, after.strip_prefix(':').and_then(|p| p.parse().ok())));
    }
    match host.rsplit_once(':') {
        Some((h, p)) => Some((h, p.parse().ok())),
        None if host.is_empty() => None,
        None => Some((host, None)),
    }
}

/// The span name, written without an allocation: `{method} {route}`, `{method}`, `HTTP`
/// for unknown methods, or the RPC method.
struct SpanName<'a> {
    method: Option<&'static str>,
    route: Option<&'a str>,
    rpc: Option<&'a str>,
}

impl std::fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.rpc, self.method, self.route) {
            (Some(rpc), _, _) => f.write_str(rpc),
            (None, None, _) => f.write_str("HTTP"),
            (None, Some(m), Some(r)) => write!(f, "{m} {r}"),
            (None, Some(m), None) => f.write_str(m),
        }
    }
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
            let _enter = finish.enter();
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
    let is_http = config.protocol == Protocol::Http;
    let described = Described {
        req,
        method,
        scheme,
        path,
        is_http,
    };
    let metrics = config.metrics && cfg!(feature = "metrics");
    // The remote context, read first when the hint may settle the sampling without a span.
    let hint = sampling_hint();
    let parent_based = matches!(
        hint,
        SamplingHint::ParentBased | SamplingHint::ParentBasedTraceIdOnly
    );
    let root_ratio = root_ratio();
    let early = (config.trust_remote
        && (parent_based || hint == SamplingHint::AlwaysOff || root_ratio.is_some()))
    .then(|| propagation::extract_request(req.headers()));
    let has_parent = early
        .as_ref()
        .is_some_and(|cx| cx.span().span_context().is_valid());
    let mut unsampled = hint == SamplingHint::AlwaysOff
        || parent_based
            && early.as_ref().is_some_and(|cx| {
                let remote = cx.span();
                let sc = remote.span_context();
                sc.is_valid() && !sc.is_sampled()
            });
    let trace_id_only = matches!(
        hint,
        SamplingHint::TraceIdOnly | SamplingHint::ParentBasedTraceIdOnly
    );
    // With the sampler's ratio known (its provider takes the layer's root trace ids), the
    // layer makes the sampler's decision first: on a root's trace id, drawn here, or, for a
    // sampler that is not parent-based, on the parent's. A request it keeps is recorded.
    let mut root_trace = None;
    let mut recorded = false;
    if !unsampled
        && trace_id_only
        && let Some(ratio) = root_ratio
    {
        let parent_trace = early
            .as_ref()
            .map(|cx| cx.span().span_context().trace_id())
            .filter(|_| has_parent);
        recorded = match parent_trace {
            // A sampled parent (an unsampled one is settled above).
            Some(_) if parent_based => true,
            Some(trace_id) => ratio_keeps(ratio, trace_id),
            // Every root kept: the SDK's own trace id will do.
            None if ratio >= 1.0 => true,
            None => {
                let trace_id = ids::trace_id();
                root_trace = Some(trace_id);
                ratio_keeps(ratio, trace_id)
            }
        };
        unsampled = !recorded;
    }
    if unsampled {
        // Never recorded: no span at all, only the context the handler runs in (its logs
        // keep the trace id, its own spans and outgoing calls continue the trace).
        return finish(
            config,
            method,
            scheme,
            metrics.then(|| names(config.protocol, req, path)),
            tracing::Span::none(),
            Some(unsampled_context(early.as_ref(), root_trace)),
            false,
        );
    }
    // Only the sampler can tell (its ratio is not known): the span starts lean, and is
    // named and attributed once the sampler has recorded it.
    let deferred = trace_id_only && !recorded;
    if let Some(tracer) = &config.tracer {
        return direct_span(
            config, tracer, &described, early, root_trace, deferred, metrics,
        );
    }
    // The route and RPC method name the span and label the metrics: not needed otherwise
    // (a deferred span gets them once it is known to record).
    let (mut route, mut rpc_method) = if metrics || !deferred {
        names(config.protocol, req, path)
    } else {
        (None, None)
    };
    let span = if deferred {
        tracing::info_span!(
            target: "palisade_tracing_layer::server",
            parent: None,
            "request",
            otel.kind = "server",
            http.response.status_code = Empty,
            rpc.status_code = Empty,
            error.type = Empty,
        )
    } else {
        described.full_span(route.as_deref(), rpc_method.as_deref())
    };
    if !span.is_disabled() {
        let remote = early.unwrap_or_else(|| propagation::extract_request(req.headers()));
        let remote_span = remote.span();
        let sc = remote_span.span_context();
        if config.trust_remote {
            if sc.is_valid() || !remote.baggage().is_empty() {
                let _ = span.set_parent(remote.clone());
            }
        } else {
            if sc.is_valid() {
                span.add_link(sc.clone());
            }
            let _ = span.set_parent(opentelemetry::Context::new());
        }
        if root_trace.is_some() {
            // A root kept above starts now, with the trace id its decision was made on.
            ROOT_TRACE_ID.with(|t| t.set(root_trace));
            let _ = span.context();
            ROOT_TRACE_ID.with(|t| t.set(None));
        }
    }
    // A deferred span starts here: the sampler decides on the parent and the trace id.
    let mut record = true;
    if deferred && !span.is_disabled() {
        let cx = span.context();
        let otel = cx.span();
        record = otel.is_recording();
        if record {
            if !metrics {
                (route, rpc_method) = names(config.protocol, req, path);
            }
            described.fill(&otel, route.as_deref(), rpc_method.as_deref());
        }
    }
    finish(
        config,
        method,
        scheme,
        Some((route, rpc_method)),
        span,
        None,
        record,
    )
}

/// The SERVER span made with the layer's tracer ([`ServerTraceLayer::otel_tracer`]): the
/// same span as [`Described::full_span`] through tracing-opentelemetry, carried by the
/// context the handler runs in.
fn direct_span<B>(
    config: &Config,
    tracer: &opentelemetry::global::BoxedTracer,
    described: &Described<'_, B>,
    early: Option<opentelemetry::Context>,
    root_trace: Option<opentelemetry::trace::TraceId>,
    deferred: bool,
    metrics: bool,
) -> Finish {
    use opentelemetry::trace::{Link, SpanBuilder, SpanKind, Tracer as _};
    let req = described.req;
    let remote = early.unwrap_or_else(|| propagation::extract_request(req.headers()));
    let sc = remote.span().span_context().clone();
    // A span whose sampling only the sampler can tell starts lean (a static name, no
    // attributes) and is named and attributed once recorded.
    let (mut route, mut rpc_method) = if metrics || !deferred {
        names(config.protocol, req, described.path)
    } else {
        (None, None)
    };
    let mut builder = if deferred {
        SpanBuilder::from_name(described.method.unwrap_or("HTTP"))
    } else {
        let name = SpanName {
            method: described.method,
            route: route.as_deref(),
            rpc: rpc_method.as_deref(),
        };
        SpanBuilder::from_name(name.to_string())
            .with_attributes(described.attributes(route.as_deref(), rpc_method.as_deref()))
    }
    .with_kind(SpanKind::Server);
    let parent = if config.trust_remote {
        if sc.is_valid() || !remote.baggage().is_empty() {
            remote
        } else {
            opentelemetry::Context::new()
        }
    } else {
        if sc.is_valid() {
            builder = builder.with_links(vec![Link::with_context(sc)]);
        }
        opentelemetry::Context::new()
    };
    // A root kept by the layer's own decision starts with the trace id it was made on.
    ROOT_TRACE_ID.with(|t| t.set(root_trace));
    let span = tracer.build_with_context(builder, &parent);
    ROOT_TRACE_ID.with(|t| t.set(None));
    let record = opentelemetry::trace::Span::is_recording(&span);
    let cx = parent.with_span(span);
    if deferred && record {
        if !metrics {
            (route, rpc_method) = names(config.protocol, req, described.path);
        }
        described.fill(&cx.span(), route.as_deref(), rpc_method.as_deref());
    }
    finish(
        config,
        described.method,
        described.scheme,
        Some((route, rpc_method)),
        tracing::Span::none(),
        Some(cx),
        record,
    )
}

/// The route and the RPC method: they name the span and label the metrics.
fn names<B>(protocol: Protocol, req: &Request<B>, path: &str) -> (Option<String>, Option<String>) {
    match protocol {
        Protocol::Http => (route_of(req), None),
        Protocol::Grpc => (None, Some(path.trim_start_matches('/').to_owned())),
    }
}

/// What ends the call: the span (or, unsampled, only its context), the clock, the metrics.
#[allow(clippy::too_many_arguments)]
fn finish(
    config: &Config,
    method: Option<&'static str>,
    scheme: &'static str,
    names: Option<(Option<String>, Option<String>)>,
    span: tracing::Span,
    cx: Option<opentelemetry::Context>,
    record: bool,
) -> Finish {
    let (route, rpc_method) = names.unwrap_or((None, None));
    let metrics = config.metrics && cfg!(feature = "metrics");
    let instruments = metrics.then(|| config.instruments.clone());
    let method = method.unwrap_or("_OTHER");
    if let Some(i) = &instruments
        && config.protocol == Protocol::Http
    {
        i.started(method, scheme);
    }
    Finish {
        span,
        cx,
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
        record,
    }
}

/// The context of a request no span records: the remote parent's trace (its trace id,
/// flags, `tracestate` and baggage) with a new span id, or a new trace; as the SDK gives
/// a span its sampler drops, without building one.
fn unsampled_context(
    remote: Option<&opentelemetry::Context>,
    root_trace: Option<opentelemetry::trace::TraceId>,
) -> opentelemetry::Context {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};
    let span_id = SpanId::from(ids::nonzero_u64());
    match remote {
        Some(cx) if cx.span().span_context().is_valid() => {
            let parent = cx.span().span_context().clone();
            cx.with_remote_span_context(SpanContext::new(
                parent.trace_id(),
                span_id,
                parent.trace_flags().with_sampled(false),
                false,
                parent.trace_state().clone(),
            ))
        }
        remote => {
            let trace_id = root_trace.unwrap_or_else(ids::trace_id);
            remote
                .cloned()
                .unwrap_or_default()
                .with_remote_span_context(SpanContext::new(
                    trace_id,
                    span_id,
                    TraceFlags::default(),
                    false,
                    TraceState::NONE,
                ))
        }
    }
}

/// Random ids for contexts made without the SDK: a per-thread SplitMix64 stream seeded
/// from the OS (through `RandomState`), as unpredictable as the SDK's default generator
/// needs to be for ids (not for secrets).
mod ids {
    use std::cell::Cell;
    use std::hash::{BuildHasher as _, Hasher as _};

    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x5EED);
            h.finish()
        });
    }

    /// A random, valid (non-zero) trace id.
    pub(super) fn trace_id() -> opentelemetry::trace::TraceId {
        opentelemetry::trace::TraceId::from(
            u128::from(nonzero_u64()) << 64 | u128::from(nonzero_u64()),
        )
    }

    /// The next non-zero value of this thread's stream.
    pub(super) fn nonzero_u64() -> u64 {
        STATE.with(|s| {
            loop {
                let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
                s.set(z);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                if z != 0 {
                    return z;
                }
            }
        })
    }
}

/// What a SERVER span says about its request (with its route or RPC method).
struct Described<'a, B> {
    req: &'a Request<B>,
    method: Option<&'static str>,
    scheme: &'static str,
    path: &'a str,
    is_http: bool,
}

impl<B> Described<'_, B> {
    /// The SERVER span with every attribute the conventions ask for.
    fn full_span(&self, route: Option<&str>, rpc_method: Option<&str>) -> tracing::Span {
        let (req, method, scheme, path, is_http) =
            (self.req, self.method, self.scheme, self.path, self.is_http);
        let m = method.unwrap_or("_OTHER");
        let name = SpanName {
            method,
            route,
            rpc: rpc_method,
        };
        let hp = host_port(req.uri(), req.headers());
        tracing::info_span!(
            target: "palisade_tracing_layer::server",
            parent: None,
            "request",
            otel.name = %name,
            otel.kind = "server",
            http.request.method = is_http.then_some(m),
            http.request.method_original = (is_http && method.is_none()).then(|| req.method().as_str()),
            http.route = route,
            url.path = is_http.then_some(path),
            url.scheme = is_http.then_some(scheme),
            server.address = hp.map(|h| h.0),
            server.port = hp.and_then(|h| h.1).map(i64::from),
            client.address = client_address(req).map(tracing::field::display),
            user_agent.original = req
                .headers()
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            network.protocol.version = is_http.then(|| protocol_version(req.version())),
            http.response.status_code = Empty,
            rpc.system.name = (!is_http).then_some("grpc"),
            rpc.method = rpc_method,
            rpc.status_code = Empty,
            error.type = Empty,
        )
    }

    /// Names a span the sampler recorded after a lean start and gives it the attributes of
    /// [`Described::full_span`].
    fn fill(
        &self,
        span: &opentelemetry::trace::SpanRef<'_>,
        route: Option<&str>,
        rpc_method: Option<&str>,
    ) {
        let name = SpanName {
            method: self.method,
            route,
            rpc: rpc_method,
        };
        span.update_name(name.to_string());
        span.set_attributes(self.attributes(route, rpc_method));
    }

    /// The attributes of [`Described::full_span`], for a span the sampler recorded after a
    /// lean start.
    fn attributes(&self, route: Option<&str>, rpc_method: Option<&str>) -> Vec<KeyValue> {
        let (req, method, scheme, path, is_http) =
            (self.req, self.method, self.scheme, self.path, self.is_http);
        let mut a = Vec::with_capacity(10);
        if is_http {
            a.push(KeyValue::new(
                "http.request.method",
                method.unwrap_or("_OTHER"),
            ));
            if method.is_none() {
                a.push(KeyValue::new(
                    "http.request.method_original",
                    req.method().as_str().to_owned(),
                ));
            }
            if let Some(r) = route {
                a.push(KeyValue::new("http.route", r.to_owned()));
            }
            a.push(KeyValue::new("url.path", path.to_owned()));
            a.push(KeyValue::new("url.scheme", scheme));
            a.push(KeyValue::new(
                "network.protocol.version",
                protocol_version(req.version()),
            ));
        } else {
            a.push(KeyValue::new("rpc.system.name", "grpc"));
            if let Some(m) = rpc_method {
                a.push(KeyValue::new("rpc.method", m.to_owned()));
            }
        }
        if let Some((host, port)) = host_port(req.uri(), req.headers()) {
            a.push(KeyValue::new("server.address", host.to_owned()));
            if let Some(p) = port {
                a.push(KeyValue::new("server.port", i64::from(p)));
            }
        }
        if let Some(ip) = client_address(req) {
            a.push(KeyValue::new("client.address", ip.to_string()));
        }
        if let Some(ua) = req
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            a.push(KeyValue::new("user_agent.original", ua.to_owned()));
        }
        a
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
fn client_address<B>(req: &Request<B>) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

#[cfg(not(feature = "axum"))]
fn client_address<B>(_req: &Request<B>) -> Option<std::net::IpAddr> {
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
                let _enter = f.enter();
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
                        add_trace_headers(config, &f.context(), res.headers_mut());
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

fn add_trace_headers(config: &Config, cx: &opentelemetry::Context, headers: &mut http::HeaderMap) {
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
