//! Telemetry for the example binaries, configured by the standard OpenTelemetry
//! environment variables:
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_SERVICE_NAME` | `service.name` (defaults to the binary's name) |
//! | `OTEL_RESOURCE_ATTRIBUTES` | more resource attributes, e.g. `deployment.environment=compose` |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | where to export traces; unset: nothing is exported, nothing fails |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` | `grpc` (default) or `http/protobuf` |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | sampling, read by the SDK |
//! | `OTEL_PROPAGATORS` | `tracecontext` and/or `baggage` (default both) |
//! | `OTEL_SDK_DISABLED` | `true` turns tracing export off |
//! | `RUST_LOG` | the log filter (default `info`); logs go to stderr |
//!
//! It also installs the global `metrics` recorder (Prometheus exposition, histograms with
//! the OpenTelemetry HTTP duration buckets) whose handle the services render on `/metrics`.
//!
//! It also has the server and client trace layers the services use ([`ServerTraceLayer`],
//! [`ClientTraceLayer`]). All of this stands in for `palisade-tracing-layer` (its server
//! and client layers, RED metrics and telemetry init), which the examples switch to once
//! it lands in this workspace.

mod layers;

pub use layers::{ClientTrace, ClientTraceLayer, ServerTrace, ServerTraceLayer};

use std::fmt;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The OpenTelemetry semantic-convention buckets for HTTP and RPC durations, in seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Installed telemetry. Run [`shutdown_hook`](Self::shutdown_hook) at the end to flush spans.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    metrics: PrometheusHandle,
}

impl Telemetry {
    /// The handle that renders the Prometheus exposition for `/metrics`.
    pub fn metrics(&self) -> PrometheusHandle {
        self.metrics.clone()
    }

    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// A closure that flushes and shuts the tracer provider down (blocking; run it on a
    /// blocking thread, e.g. as a health registry shutdown hook).
    pub fn shutdown_hook(&self) -> impl FnOnce() + Send + 'static {
        let provider = self.provider.clone();
        move || {
            if let Some(p) = provider {
                let _ = p.shutdown();
            }
        }
    }
}

/// An invalid `OTEL_*` variable or a failed setup.
#[derive(Debug)]
pub struct TelemetryError(String);

impl fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TelemetryError {}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Installs logging, tracing export and the metrics recorder for `service` (used as
/// `service.name` unless `OTEL_SERVICE_NAME` is set). Call once, inside a tokio runtime.
///
/// # Errors
///
/// An invalid `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_PROPAGATORS` or `RUST_LOG`, an exporter
/// that cannot be built, or a recorder or subscriber already installed.
pub fn init(service: &str) -> Result<Telemetry, TelemetryError> {
    let filter = match env("RUST_LOG") {
        Some(f) => EnvFilter::try_new(&f)
            .map_err(|e| TelemetryError(format!("invalid RUST_LOG={f:?}: {e}")))?,
        None => EnvFilter::new("info"),
    };
    let propagator = propagator()?;
    let provider = provider(service)?;

    let recorder = PrometheusBuilder::new()
        .set_buckets(&DURATION_BUCKETS)
        .map_err(|e| TelemetryError(format!("metrics buckets: {e}")))?
        .build_recorder();
    let metrics = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| TelemetryError(format!("metrics recorder: {e}")))?;
    let upkeep = metrics.clone();
    tokio_spawn_upkeep(move || upkeep.run_upkeep());

    opentelemetry::global::set_text_map_propagator(propagator);
    let otel = provider.as_ref().map(|p| {
        opentelemetry::global::set_tracer_provider(p.clone());
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service.to_owned()))
            .boxed()
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError(format!("tracing subscriber: {e}")))?;
    Ok(Telemetry { provider, metrics })
}

fn tokio_spawn_upkeep(f: impl Fn() + Send + 'static) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                f();
            }
        });
    }
}

fn propagator() -> Result<TextMapCompositePropagator, TelemetryError> {
    let list = env("OTEL_PROPAGATORS").unwrap_or_else(|| "tracecontext,baggage".to_owned());
    let mut propagators: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
    for name in list.split(',').map(str::trim) {
        match name {
            "tracecontext" => propagators.push(Box::new(TraceContextPropagator::new())),
            "baggage" => propagators.push(Box::new(BaggagePropagator::new())),
            "none" => {}
            other => {
                return Err(TelemetryError(format!(
                    "invalid OTEL_PROPAGATORS={list:?}: {other:?} is not supported here (use tracecontext, baggage or none)"
                )));
            }
        }
    }
    Ok(TextMapCompositePropagator::new(propagators))
}

fn provider(service: &str) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let Some(endpoint) =
        env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
    else {
        return Ok(None);
    };
    let protocol = env("OTEL_EXPORTER_OTLP_PROTOCOL").unwrap_or_else(|| "grpc".to_owned());
    let exporter = match protocol.as_str() {
        "grpc" => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build(),
        "http/protobuf" => {
            let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(url)
                .build()
        }
        other => {
            return Err(TelemetryError(format!(
                "invalid OTEL_EXPORTER_OTLP_PROTOCOL={other:?}: expected grpc or http/protobuf"
            )));
        }
    }
    .map_err(|e| TelemetryError(format!("OTLP exporter: {e}")))?;
    let mut resource = Resource::builder();
    if env("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service.to_owned());
    }
    let resource = resource
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    ))
}
