//! One call to set up logs, traces and metrics from the standard `OTEL_*` variables.
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_SERVICE_NAME` | `service.name` (default: the name given to [`Telemetry::builder`]) |
//! | `OTEL_RESOURCE_ATTRIBUTES` | more resource attributes (`deployment.environment=prod,...`) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | where spans go; unset: nothing is exported and nothing fails |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` | `grpc` (default) or `http/protobuf` |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on` (default), `parentbased_always_off`, `parentbased_traceidratio` |
//! | `OTEL_PROPAGATORS` | `tracecontext`, `baggage`, `b3`, `b3multi`, `jaeger`, `none` (default `tracecontext,baggage`) |
//! | `OTEL_SDK_DISABLED` | `true`: no spans are exported |
//! | `RUST_LOG` | the log filter (default `info`) |
//! | `PALISADE_LOG_FORMAT` | `text` (default) or `json` (one JSON object a line, with `trace_id` and `span_id`) |
//! | `PALISADE_SERVER_SPANS` | `tracing` (default) or `otel`: server layers made after [`TelemetryBuilder::init`] make their SERVER spans with its tracer ([`ServerTraceLayer::otel_tracer`](crate::ServerTraceLayer::otel_tracer)) |
//!
//! A bad value is an error from [`TelemetryBuilder::init`] naming the variable, never a
//! panic.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanExporter};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, format::Writer};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::propagators::{Propagators, parse_propagators};

/// An invalid `OTEL_*` value or a failed setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryError {
    /// The variable or part at fault (`OTEL_EXPORTER_OTLP_PROTOCOL`, `subscriber`, ...).
    pub field: &'static str,
    /// What is wrong, with the allowed values.
    pub message: String,
}

impl fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for TelemetryError {}

fn err(field: &'static str, message: impl Into<String>) -> TelemetryError {
    TelemetryError {
        field,
        message: message.into(),
    }
}

/// The OTLP protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318).
    HttpProtobuf,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object a line with `timestamp`, `level`, `target`, `message`, fields,
    /// `trace_id` and `span_id`.
    Json,
}

/// How server layers make their SERVER spans (`PALISADE_SERVER_SPANS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerSpans {
    /// As `tracing` spans, through tracing-opentelemetry (`tracing`, the default): text
    /// log lines show the request's span and its fields.
    Tracing,
    /// With the tracer [`TelemetryBuilder::init`] installs (`otel`), for every server layer
    /// made after it: about half the cost of a sampled request; see
    /// [`ServerTraceLayer::otel_tracer`](crate::ServerTraceLayer::otel_tracer) for what
    /// changes (spawn the handler's work with [`in_current_context`](crate::in_current_context)).
    Otel,
}

/// The settings read from the `OTEL_*` variables.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TelemetryConfig {
    /// `service.name`.
    pub service_name: String,
    /// Extra resource attributes.
    pub resource: Vec<(String, String)>,
    /// The OTLP traces endpoint, if any.
    pub endpoint: Option<String>,
    /// The OTLP protocol.
    pub protocol: Protocol,
    /// Whether the SDK is disabled.
    pub disabled: bool,
    /// The sampler.
    pub sampler: SamplerConfig,
    /// The propagators.
    pub propagators: Propagators,
    /// The log filter.
    pub filter: String,
    /// The log format.
    pub log_format: LogFormat,
    /// How server layers make their SERVER spans.
    pub server_spans: ServerSpans,
}

/// The tracer provider's id generator [`Telemetry::init`] installs, for a provider built
/// by hand too: random ids (the SDK's `RandomIdGenerator`), except that a root span the
/// server layer starts gets the trace id the layer drew for it.
///
/// With it, and the root sampler's ratio announced with
/// [`RootIdGenerator::set_root_ratio`], the server layer decides each root request the way
/// the SDK's `TraceIdRatioBased` sampler would, before building anything: a dropped root
/// gets no span (only its context: handler logs keep its trace id), a kept one is started
/// with the drawn trace id, so the sampler, deciding again on that id, keeps it too.
///
/// ```
/// use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
/// use palisade_tracing_layer::telemetry::RootIdGenerator;
/// use palisade_tracing_layer::{SamplingHint, set_sampling_hint};
///
/// let provider = SdkTracerProvider::builder()
///     .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.01))))
///     .with_id_generator(RootIdGenerator::default())
///     .build();
/// set_sampling_hint(SamplingHint::ParentBasedTraceIdOnly);
/// RootIdGenerator::set_root_ratio(Some(0.01));
/// # drop(provider);
/// ```
#[derive(Debug, Default)]
pub struct RootIdGenerator(opentelemetry_sdk::trace::RandomIdGenerator);

impl RootIdGenerator {
    /// Tells the server layers the ratio of the provider's sampler (`TraceIdRatioBased(ratio)`
    /// alone, applied to every trace, or as `ParentBased`'s root sampler, applied to roots;
    /// `1.0` for `AlwaysOn`, `0.0` for `ParentBased(AlwaysOff)`), or `None` to stop. The
    /// layers then decide every request before building anything: one the sampler drops
    /// gets no span, one it keeps gets its full span at once. It takes effect only with the hint
    /// [`SamplingHint::TraceIdOnly`](crate::SamplingHint::TraceIdOnly) or
    /// [`SamplingHint::ParentBasedTraceIdOnly`](crate::SamplingHint::ParentBasedTraceIdOnly).
    ///
    /// Only for a provider built with a `RootIdGenerator`: with another generator the SDK
    /// would draw its own trace id for a root the layer kept and decide again, keeping
    /// `ratio²` of the roots instead of `ratio`.
    pub fn set_root_ratio(ratio: Option<f64>) {
        crate::server::set_root_ratio(ratio);
    }
}

impl opentelemetry_sdk::trace::IdGenerator for RootIdGenerator {
    fn new_trace_id(&self) -> opentelemetry::trace::TraceId {
        crate::server::take_root_trace_id().unwrap_or_else(|| self.0.new_trace_id())
    }

    fn new_span_id(&self) -> opentelemetry::trace::SpanId {
        self.0.new_span_id()
    }
}

/// A sampler from `OTEL_TRACES_SAMPLER`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerConfig {
    /// `always_on`.
    AlwaysOn,
    /// `always_off`.
    AlwaysOff,
    /// `traceidratio` with its ratio.
    Ratio(f64),
    /// `parentbased_*` with the root sampler.
    ParentBased(ParentRoot),
}

/// The root sampler of a parent-based sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParentRoot {
    /// `parentbased_always_on`.
    AlwaysOn,
    /// `parentbased_always_off`.
    AlwaysOff,
    /// `parentbased_traceidratio`.
    Ratio(f64),
}

impl SamplerConfig {
    /// What the server layers may assume about this sampler.
    pub fn hint(self) -> crate::SamplingHint {
        match self {
            Self::AlwaysOff => crate::SamplingHint::AlwaysOff,
            // None of these reads a span's name or attributes.
            Self::AlwaysOn | Self::Ratio(_) => crate::SamplingHint::TraceIdOnly,
            Self::ParentBased(_) => crate::SamplingHint::ParentBasedTraceIdOnly,
        }
    }

    /// The ratio of the sampler's trace-id rule (its root sampler's, if parent-based):
    /// what lets the server layer decide each request before building its span.
    fn root_ratio(self) -> Option<f64> {
        match self {
            Self::Ratio(r) | Self::ParentBased(ParentRoot::Ratio(r)) => Some(r),
            Self::AlwaysOn | Self::ParentBased(ParentRoot::AlwaysOn) => Some(1.0),
            Self::ParentBased(ParentRoot::AlwaysOff) => Some(0.0),
            Self::AlwaysOff => None,
        }
    }

    fn build(self) -> Sampler {
        match self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::Ratio(r) => Sampler::TraceIdRatioBased(r),
            Self::ParentBased(root) => Sampler::ParentBased(Box::new(match root {
                ParentRoot::AlwaysOn => Sampler::AlwaysOn,
                ParentRoot::AlwaysOff => Sampler::AlwaysOff,
                ParentRoot::Ratio(r) => Sampler::TraceIdRatioBased(r),
            })),
        }
    }
}

impl TelemetryConfig {
    /// Reads the settings from the process environment; `default_service` is
    /// `service.name` unless `OTEL_SERVICE_NAME` is set.
    ///
    /// # Errors
    ///
    /// A variable with a value outside its allowed set.
    pub fn from_env(default_service: &str) -> Result<Self, TelemetryError> {
        Self::from_vars(default_service, std::env::vars())
    }

    /// Reads the settings from the given variables (for tests and custom sources).
    ///
    /// # Errors
    ///
    /// A variable with a value outside its allowed set.
    pub fn from_vars(
        default_service: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, TelemetryError> {
        let vars: HashMap<String, String> = vars
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        let get = |k: &str| vars.get(k).map(|v| v.trim().to_owned());
        let disabled = match get("OTEL_SDK_DISABLED")
            .as_deref()
            .map(str::to_ascii_lowercase)
        {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => {
                return Err(err(
                    "OTEL_SDK_DISABLED",
                    format!("{v:?} is not true or false"),
                ));
            }
        };
        let protocol = match get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
        {
            None | Some("grpc") => Protocol::Grpc,
            Some("http/protobuf") => Protocol::HttpProtobuf,
            Some(v) => {
                return Err(err(
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    format!("{v:?} is not supported (use grpc or http/protobuf)"),
                ));
            }
        };
        let endpoint = match (
            get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(e), _) => Some(e),
            (None, Some(e)) => Some(match protocol {
                Protocol::Grpc => e,
                Protocol::HttpProtobuf => format!("{}/v1/traces", e.trim_end_matches('/')),
            }),
            (None, None) => None,
        };
        if let Some(e) = &endpoint
            && e.parse::<http::Uri>()
                .ok()
                .and_then(|u| u.host().map(|_| ()))
                .is_none()
        {
            return Err(err(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("{e:?} is not an absolute URL"),
            ));
        }
        let ratio = || -> Result<f64, TelemetryError> {
            match get("OTEL_TRACES_SAMPLER_ARG") {
                None => Ok(1.0),
                Some(a) => a
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| {
                        err(
                            "OTEL_TRACES_SAMPLER_ARG",
                            format!("{a:?} is not a ratio in 0.0..=1.0"),
                        )
                    }),
            }
        };
        let sampler = match get("OTEL_TRACES_SAMPLER").as_deref() {
            None | Some("parentbased_always_on") => {
                SamplerConfig::ParentBased(ParentRoot::AlwaysOn)
            }
            Some("always_on") => SamplerConfig::AlwaysOn,
            Some("always_off") => SamplerConfig::AlwaysOff,
            Some("traceidratio") => SamplerConfig::Ratio(ratio()?),
            Some("parentbased_always_off") => SamplerConfig::ParentBased(ParentRoot::AlwaysOff),
            Some("parentbased_traceidratio") => {
                SamplerConfig::ParentBased(ParentRoot::Ratio(ratio()?))
            }
            Some(v) => {
                return Err(err(
                    "OTEL_TRACES_SAMPLER",
                    format!(
                        "{v:?} is not supported (use always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio)"
                    ),
                ));
            }
        };
        let propagators = parse_propagators(
            get("OTEL_PROPAGATORS")
                .as_deref()
                .unwrap_or("tracecontext,baggage"),
        )
        .map_err(|m| err("OTEL_PROPAGATORS", m))?;
        let mut resource = Vec::new();
        if let Some(attrs) = get("OTEL_RESOURCE_ATTRIBUTES") {
            for pair in attrs.split(',').filter(|p| !p.trim().is_empty()) {
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(err(
                        "OTEL_RESOURCE_ATTRIBUTES",
                        format!("{pair:?} is not key=value"),
                    ));
                };
                resource.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let log_format = match get("PALISADE_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(v) => {
                return Err(err(
                    "PALISADE_LOG_FORMAT",
                    format!("{v:?} is not text or json"),
                ));
            }
        };
        let server_spans = match get("PALISADE_SERVER_SPANS").as_deref() {
            None | Some("tracing") => ServerSpans::Tracing,
            Some("otel") => ServerSpans::Otel,
            Some(v) => {
                return Err(err(
                    "PALISADE_SERVER_SPANS",
                    format!("{v:?} is not tracing or otel"),
                ));
            }
        };
        let filter = get("RUST_LOG").unwrap_or_else(|| "info".to_owned());
        EnvFilter::try_new(&filter).map_err(|e| err("RUST_LOG", format!("{filter:?}: {e}")))?;
        Ok(Self {
            service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| default_service.to_owned()),
            resource,
            endpoint,
            protocol,
            disabled,
            sampler,
            propagators,
            filter,
            log_format,
            server_spans,
        })
    }
}

enum Export {
    Otlp,
    Batch(Box<dyn SpanExporterBox>),
    Simple(Box<dyn SpanExporterBox>),
}

trait SpanExporterBox: Send {
    fn install_batch(
        self: Box<Self>,
        b: opentelemetry_sdk::trace::TracerProviderBuilder,
    ) -> opentelemetry_sdk::trace::TracerProviderBuilder;
    fn install_simple(
        self: Box<Self>,
        b: opentelemetry_sdk::trace::TracerProviderBuilder,
    ) -> opentelemetry_sdk::trace::TracerProviderBuilder;
}

impl<E: SpanExporter + 'static> SpanExporterBox for E {
    fn install_batch(
        self: Box<Self>,
        b: opentelemetry_sdk::trace::TracerProviderBuilder,
    ) -> opentelemetry_sdk::trace::TracerProviderBuilder {
        b.with_batch_exporter(*self)
    }

    fn install_simple(
        self: Box<Self>,
        b: opentelemetry_sdk::trace::TracerProviderBuilder,
    ) -> opentelemetry_sdk::trace::TracerProviderBuilder {
        b.with_simple_exporter(*self)
    }
}

/// Builds [`Telemetry`]; see the [module docs](self) for the variables it reads.
pub struct TelemetryBuilder {
    service: String,
    vars: Option<Vec<(String, String)>>,
    export: Export,
    prometheus: bool,
    log_format: Option<LogFormat>,
    log_writer: Option<BoxMakeWriter>,
    shutdown_timeout: Duration,
    runtime: Option<OwnRuntime>,
}

impl fmt::Debug for TelemetryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryBuilder")
            .field("service", &self.service)
            .field("prometheus", &self.prometheus)
            .finish_non_exhaustive()
    }
}

impl TelemetryBuilder {
    /// Exports spans with `exporter` through a batch processor instead of OTLP (e.g.
    /// opentelemetry_sdk's in-memory exporter); the sampler and `OTEL_SDK_DISABLED` still
    /// apply.
    pub fn span_exporter(mut self, exporter: impl SpanExporter + 'static) -> Self {
        self.export = Export::Batch(Box::new(exporter));
        self
    }

    /// Like [`span_exporter`](Self::span_exporter) with a simple (synchronous) processor:
    /// each span is exported when it ends.
    pub fn simple_span_exporter(mut self, exporter: impl SpanExporter + 'static) -> Self {
        self.export = Export::Simple(Box::new(exporter));
        self
    }

    /// Whether the Prometheus recorder is installed as the global `metrics` recorder
    /// (default `true`).
    pub fn prometheus(mut self, enabled: bool) -> Self {
        self.prometheus = enabled;
        self
    }

    /// The log format, overriding `PALISADE_LOG_FORMAT`.
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.log_format = Some(format);
        self
    }

    /// Where log lines go (default: stderr).
    pub fn log_writer(
        mut self,
        writer: impl for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
    ) -> Self {
        self.log_writer = Some(BoxMakeWriter::new(writer));
        self
    }

    /// How long shutting down may take to flush spans (default 5 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Reads these variables instead of the process environment.
    pub fn vars(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.vars = Some(vars.into_iter().collect());
        self
    }

    fn provider(
        &mut self,
        config: &TelemetryConfig,
    ) -> Result<Option<SdkTracerProvider>, TelemetryError> {
        if config.disabled {
            return Ok(None);
        }
        let mut b = SdkTracerProvider::builder()
            .with_sampler(config.sampler.build())
            .with_id_generator(RootIdGenerator::default());
        match std::mem::replace(&mut self.export, Export::Otlp) {
            Export::Batch(e) => b = e.install_batch(b),
            Export::Simple(e) => b = e.install_simple(b),
            Export::Otlp => {
                let Some(endpoint) = &config.endpoint else {
                    return Ok(None);
                };
                let exporter = match config.protocol {
                    Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                        .with_tonic()
                        .with_endpoint(endpoint.clone())
                        .build(),
                    Protocol::HttpProtobuf => {
                        let runtime = OwnRuntime::new()
                            .map_err(|e| err("runtime", format!("OTLP/HTTP runtime: {e}")))?;
                        let client = RuntimeHttpClient {
                            handle: runtime.handle(),
                            inner: Arc::new(
                                opentelemetry_http::hyper::HyperClient::with_default_connector(
                                    Duration::from_secs(10),
                                    None,
                                ),
                            ),
                        };
                        self.runtime = Some(runtime);
                        opentelemetry_otlp::SpanExporter::builder()
                            .with_http()
                            .with_http_client(client)
                            .with_endpoint(endpoint.clone())
                            .build()
                    }
                }
                .map_err(|e| err("OTEL_EXPORTER_OTLP_ENDPOINT", e.to_string()))?;
                b = b.with_batch_exporter(exporter);
            }
        }
        let mut attrs = vec![KeyValue::new(
            "service.version",
            std::env::var("CARGO_PKG_VERSION")
                .unwrap_or_else(|_| env!("CARGO_PKG_VERSION").to_owned()),
        )];
        attrs.extend(
            config
                .resource
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        );
        let resource = Resource::builder_empty()
            .with_attributes(attrs)
            .with_service_name(config.service_name.clone())
            .build();
        Ok(Some(b.with_resource(resource).build()))
    }

    /// Installs the `tracing` subscriber (filter, log lines, OpenTelemetry bridge), the
    /// tracer provider, the propagator and (by default) the Prometheus recorder.
    ///
    /// # Errors
    ///
    /// A bad `OTEL_*`/`RUST_LOG` value (naming it), an exporter that cannot be built, or
    /// a subscriber or recorder already installed.
    pub fn init(mut self) -> Result<Telemetry, TelemetryError> {
        let config = match self.vars.take() {
            Some(v) => TelemetryConfig::from_vars(&self.service, v)?,
            None => TelemetryConfig::from_env(&self.service)?,
        };
        let provider = self.provider(&config)?;
        crate::set_sampling_hint(if provider.is_some() {
            config.sampler.hint()
        } else {
            crate::SamplingHint::Unknown
        });
        // The provider takes root trace ids from the layer (`RootIdGenerator`), so the
        // layer may decide a ratio sampler's roots before building their span.
        RootIdGenerator::set_root_ratio(
            provider.as_ref().and_then(|_| config.sampler.root_ratio()),
        );
        let filter =
            EnvFilter::try_new(&config.filter).map_err(|e| err("RUST_LOG", e.to_string()))?;
        let format = self.log_format.unwrap_or(config.log_format);
        let writer = self
            .log_writer
            .take()
            .unwrap_or_else(|| BoxMakeWriter::new(std::io::stderr));
        let fmt_layer = match format {
            LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .event_format(JsonFormat)
                .boxed(),
        };
        let otel = provider
            .as_ref()
            .map(|p| crate::otel_layer(p.tracer(config.service_name.clone())).boxed());
        // Events outside `tracing` spans, on a SERVER span made with the tracer directly.
        let events = provider.as_ref().map(|_| crate::span_events_layer());
        tracing_subscriber::registry()
            .with(otel)
            .with(events)
            .with(fmt_layer.with_filter(filter))
            .try_init()
            .map_err(|e| err("subscriber", e.to_string()))?;
        if let Some(p) = &provider {
            opentelemetry::global::set_tracer_provider(p.clone());
        }
        // `PALISADE_SERVER_SPANS=otel`: server layers made from now on make their SERVER
        // spans with this tracer (the span events layer above keeps the handler's events).
        crate::server::set_default_tracer(
            provider
                .as_ref()
                .filter(|_| config.server_spans == ServerSpans::Otel)
                .map(|p| {
                    opentelemetry::global::BoxedTracer::new(Box::new(
                        p.tracer(config.service_name.clone()),
                    ))
                }),
        );
        let _ = crate::propagation::install(config.propagators.clone());
        #[cfg(feature = "metrics")]
        let metrics = if self.prometheus {
            Some(crate::metrics::install_prometheus().map_err(|e| err("metrics", e.to_string()))?)
        } else {
            None
        };
        Ok(Telemetry {
            _runtime: self.runtime.take(),
            provider,
            #[cfg(feature = "metrics")]
            metrics,
            timeout: self.shutdown_timeout,
            config: Arc::new(config),
        })
    }
}

/// Installed telemetry: flushes and shuts the tracer provider down when dropped (or by
/// [`shutdown`](Self::shutdown)), bounded by the shutdown timeout.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    #[cfg(feature = "metrics")]
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    timeout: Duration,
    config: Arc<TelemetryConfig>,
    // Declared last: dropped after the provider is shut down.
    _runtime: Option<OwnRuntime>,
}

impl Telemetry {
    /// A builder; `service` is `service.name` unless `OTEL_SERVICE_NAME` is set.
    pub fn builder(service: impl Into<String>) -> TelemetryBuilder {
        TelemetryBuilder {
            service: service.into(),
            vars: None,
            export: Export::Otlp,
            prometheus: true,
            log_format: None,
            log_writer: None,
            runtime: None,
            shutdown_timeout: Duration::from_secs(5),
        }
    }

    /// Everything from the environment, as [`builder`](Self::builder)`(service).init()`.
    ///
    /// # Errors
    ///
    /// As [`TelemetryBuilder::init`].
    pub fn init(service: impl Into<String>) -> Result<Self, TelemetryError> {
        Self::builder(service).init()
    }

    /// The settings in use.
    pub fn config(&self) -> &TelemetryConfig {
        &self.config
    }

    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// The tracer provider, when spans are exported.
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// The handle rendering the Prometheus exposition (see
    /// [`metrics_router`](crate::metrics::metrics_router)), when the recorder was installed.
    #[cfg(feature = "metrics")]
    pub fn metrics_handle(&self) -> Option<metrics_exporter_prometheus::PrometheusHandle> {
        self.metrics.clone()
    }

    /// Exports every ended span now (blocking: inside a runtime, call it from
    /// `spawn_blocking`), e.g. before reading an in-memory exporter.
    ///
    /// # Errors
    ///
    /// The exporter's error.
    pub fn force_flush(&self) -> Result<(), TelemetryError> {
        match &self.provider {
            Some(p) => p.force_flush().map_err(|e| err("flush", e.to_string())),
            None => Ok(()),
        }
    }

    /// Flushes every ended span and shuts the provider down on a separate thread, waiting
    /// at most the shutdown timeout. Blocks the calling thread: inside a runtime prefer
    /// [`shutdown_async`](Self::shutdown_async).
    ///
    /// # Errors
    ///
    /// The exporter's error, or a timeout.
    pub fn shutdown(mut self) -> Result<(), TelemetryError> {
        self.shutdown_inner()
    }

    /// [`shutdown`](Self::shutdown) without blocking the runtime (works on a
    /// current-thread runtime: the exporter's own tasks keep running).
    ///
    /// # Errors
    ///
    /// The exporter's error, or a timeout.
    pub async fn shutdown_async(mut self) -> Result<(), TelemetryError> {
        let Some(provider) = self.provider.take() else {
            return Ok(());
        };
        crate::server::set_default_tracer(None);
        let timeout = self.timeout;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = tx.send(provider.shutdown_with_timeout(timeout));
        });
        match tokio::time::timeout(timeout + Duration::from_millis(200), rx).await {
            Ok(Ok(Ok(()) | Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown))) => Ok(()),
            Ok(Ok(Err(e))) => Err(err("shutdown", e.to_string())),
            Ok(Err(_)) | Err(_) => Err(err(
                "shutdown",
                format!("did not finish within {timeout:?}"),
            )),
        }
    }

    fn shutdown_inner(&mut self) -> Result<(), TelemetryError> {
        let Some(provider) = self.provider.take() else {
            return Ok(());
        };
        crate::server::set_default_tracer(None);
        let timeout = self.timeout;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(provider.shutdown_with_timeout(timeout));
        });
        match rx.recv_timeout(timeout + Duration::from_millis(200)) {
            // Already shut down elsewhere (e.g. by a shutdown hook on the provider).
            Ok(Ok(()) | Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown)) => Ok(()),
            Ok(Err(e)) => Err(err("shutdown", e.to_string())),
            Err(_) => Err(err(
                "shutdown",
                format!("did not finish within {timeout:?}"),
            )),
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown_inner() {
            eprintln!("palisade-tracing-layer: telemetry shutdown: {e}");
        }
    }
}

/// JSON log lines carrying the trace and span id of the current span.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonFormat;

struct JsonVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let mut map = serde_json::Map::new();
        map.insert(
            "timestamp".to_owned(),
            httpdate_like(std::time::SystemTime::now()).into(),
        );
        map.insert("level".to_owned(), event.metadata().level().as_str().into());
        map.insert("target".to_owned(), event.metadata().target().into());
        event.record(&mut JsonVisitor(&mut map));
        let cx = crate::current_context();
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            map.insert("trace_id".to_owned(), sc.trace_id().to_string().into());
            map.insert("span_id".to_owned(), sc.span_id().to_string().into());
        }
        let line = serde_json::Value::Object(map).to_string();
        writeln!(writer, "{line}")
    }
}

fn httpdate_like(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

/// A small runtime of its own for the OTLP/HTTP client, whose requests the batch
/// processor's thread makes (hyper needs a Tokio reactor); shut down in the background on
/// drop, so dropping it inside another runtime is fine.
#[derive(Debug)]
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl OwnRuntime {
    fn new() -> std::io::Result<Self> {
        Ok(Self(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("palisade-otlp-http")
                .enable_all()
                .build()?,
        )))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.0
            .as_ref()
            .map(|r| r.handle().clone())
            .unwrap_or_else(|| unreachable!("set in new"))
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

#[derive(Debug)]
struct RuntimeHttpClient {
    handle: tokio::runtime::Handle,
    inner: Arc<opentelemetry_http::hyper::HyperClient>,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for RuntimeHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<opentelemetry_http::Bytes>,
    ) -> Result<http::Response<opentelemetry_http::Bytes>, opentelemetry_http::HttpError> {
        let inner = self.inner.clone();
        self.handle
            .spawn(async move { inner.send_bytes(request).await })
            .await
            .map_err(|e| Box::new(e) as opentelemetry_http::HttpError)?
    }
}
