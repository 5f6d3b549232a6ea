//! Telemetry for the example binaries: a thin wrapper over `palisade-tracing-layer`,
//! configured by the standard OpenTelemetry environment variables (see
//! `palisade_tracing_layer::telemetry` for the full list):
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_SERVICE_NAME` | `service.name` (defaults to the binary's name) |
//! | `OTEL_RESOURCE_ATTRIBUTES` | more resource attributes, e.g. `deployment.environment=compose` |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | where to export traces; unset: nothing is exported, nothing fails |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` | `grpc` (default) or `http/protobuf` |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | sampling |
//! | `OTEL_PROPAGATORS` | `tracecontext`, `baggage`, `b3`, `b3multi`, `jaeger` (default `tracecontext,baggage`) |
//! | `OTEL_SDK_DISABLED` | `true` turns tracing export off |
//! | `RUST_LOG` | the log filter (default `info`); logs go to stderr |
//! | `PALISADE_LOG_FORMAT` | `text` (default) or `json` (with `trace_id` and `span_id`) |
//! | `PALISADE_SERVER_SPANS` | `tracing` (default) or `otel`: SERVER spans made with the OpenTelemetry tracer directly (about half the cost of a sampled request; text logs lose the `request{..}` prefix) |
//!
//! It also installs the global `metrics` recorder (Prometheus exposition, histograms with
//! the OpenTelemetry duration buckets) whose handle the services render on `/metrics`, and
//! re-exports the server and client trace layers the services use.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

pub use palisade_tracing_layer::metrics::DURATION_BUCKETS;
pub use palisade_tracing_layer::{
    ClientTrace, ClientTraceLayer, SamplingHint, ServerTrace, ServerTraceLayer, TelemetryError,
    in_current_context, set_sampling_hint,
};

/// Installed telemetry. Run [`shutdown_hook`](Self::shutdown_hook) at the end to flush spans.
#[derive(Debug)]
pub struct Telemetry {
    inner: palisade_tracing_layer::Telemetry,
    metrics: PrometheusHandle,
}

impl Telemetry {
    /// The handle that renders the Prometheus exposition for `/metrics`.
    pub fn metrics(&self) -> PrometheusHandle {
        self.metrics.clone()
    }

    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.inner.exporting()
    }

    /// A closure that flushes and shuts the tracer provider down (blocking, at most 5 s;
    /// run it on a blocking thread, e.g. as a health registry shutdown hook).
    pub fn shutdown_hook(&self) -> impl FnOnce() + Send + 'static {
        let provider = self.inner.tracer_provider().cloned();
        move || {
            if let Some(p) = provider {
                let _ = p.shutdown_with_timeout(Duration::from_secs(5));
            }
        }
    }
}

/// Installs logging, tracing export and the metrics recorder for `service` (used as
/// `service.name` unless `OTEL_SERVICE_NAME` is set). Call once, inside a tokio runtime.
///
/// # Errors
///
/// An invalid `OTEL_*` variable or `RUST_LOG` (named in the error), an exporter that
/// cannot be built, or a recorder or subscriber already installed.
pub fn init(service: &str) -> Result<Telemetry, TelemetryError> {
    let inner = palisade_tracing_layer::Telemetry::init(service)?;
    let metrics = inner.metrics_handle().ok_or_else(|| TelemetryError {
        field: "metrics",
        message: "the Prometheus recorder was not installed".to_owned(),
    })?;
    let upkeep = metrics.clone();
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
    }
    Ok(Telemetry { inner, metrics })
}
