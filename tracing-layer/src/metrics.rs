//! RED metrics through the [`metrics`](https://docs.rs/metrics) facade, following the
//! OpenTelemetry semantic conventions, and a Prometheus recorder with the semconv buckets.
//!
//! Instruments (names as the facade sees them; Prometheus shows them with `_` for `.` and
//! a `_seconds` unit suffix, e.g. `http_server_request_duration_seconds`):
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `http.server.request.duration` | histogram, s | `http.request.method`, `http.route`, `http.response.status_code`, `url.scheme` |
//! | `http.server.active_requests` | gauge | `http.request.method`, `url.scheme` |
//! | `http.client.request.duration` | histogram, s | `http.request.method`, `http.response.status_code`, `url.scheme` |
//! | `rpc.server.call.duration` | histogram, s | `rpc.service`, `rpc.method` (fully qualified, as on the span), `rpc.status_code` (`OK`, `NOT_FOUND`, ...) |
//! | `rpc.client.call.duration` | histogram, s | `rpc.service`, `rpc.method`, `rpc.status_code` |
//!
//! Labels never carry a raw path or an id: the route is axum's template (`/orders/{id}`),
//! an unmatched route has no `http.route` label.

/// The semantic-convention bucket boundaries for request durations, in seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Bucket boundaries for `palisade_retry_attempts_per_request` (`palisade-retry`'s
/// histogram of attempts sent per request).
pub const ATTEMPTS_BUCKETS: [f64; 8] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0];

/// `palisade-retry`'s histogram of attempts per request, as the facade sees it.
pub const RETRY_ATTEMPTS_PER_REQUEST: &str = "palisade_retry_attempts_per_request";

/// `http.server.request.duration`
pub const HTTP_SERVER_DURATION: &str = "http.server.request.duration";
/// `http.server.active_requests`
pub const HTTP_SERVER_ACTIVE: &str = "http.server.active_requests";
/// `http.client.request.duration`
pub const HTTP_CLIENT_DURATION: &str = "http.client.request.duration";
/// `rpc.server.call.duration`
pub const RPC_SERVER_DURATION: &str = "rpc.server.call.duration";
/// `rpc.client.call.duration`
pub const RPC_CLIENT_DURATION: &str = "rpc.client.call.duration";

#[cfg(feature = "metrics")]
mod enabled {
    use super::*;
    use crate::body::{Finish, Protocol, Side};

    /// Registers the descriptions (HELP lines, units) of every instrument with the
    /// current recorder. [`prometheus_builder`]'s recorders get them automatically.
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn describe() {
        use metrics::Unit;
        metrics::describe_histogram!(
            HTTP_SERVER_DURATION,
            Unit::Seconds,
            "Duration of HTTP server requests."
        );
        metrics::describe_gauge!(HTTP_SERVER_ACTIVE, "Number of active HTTP server requests.");
        metrics::describe_histogram!(
            HTTP_CLIENT_DURATION,
            Unit::Seconds,
            "Duration of HTTP client requests."
        );
        metrics::describe_histogram!(
            RPC_SERVER_DURATION,
            Unit::Seconds,
            "Duration of RPCs served."
        );
        metrics::describe_histogram!(RPC_CLIENT_DURATION, Unit::Seconds, "Duration of RPCs made.");
    }

    /// Marker that a layer records metrics.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Instruments;

    /// `"100"` to `"599"`, three ASCII digits each, so a status label borrows a `'static`
    /// string instead of formatting one per request.
    static STATUS_DIGITS: [u8; 1500] = {
        let mut a = [0u8; 1500];
        let mut i = 0;
        while i < 500 {
            let n = 100 + i;
            a[i * 3] = b'0' + (n / 100) as u8;
            a[i * 3 + 1] = b'0' + ((n / 10) % 10) as u8;
            a[i * 3 + 2] = b'0' + (n % 10) as u8;
            i += 1;
        }
        a
    };

    /// The `http.response.status_code` label.
    pub(super) fn status_label(status: u16) -> metrics::Label {
        const KEY: &str = "http.response.status_code";
        if (100..600).contains(&status) {
            let i = usize::from(status - 100) * 3;
            if let Ok(s) = std::str::from_utf8(&STATUS_DIGITS[i..i + 3]) {
                return metrics::Label::from_static_parts(KEY, s);
            }
        }
        metrics::Label::new(KEY, status.to_string())
    }

    fn split_rpc(full: &str) -> (String, String) {
        let service = full.rsplit_once('/').map_or("", |(s, _)| s);
        (service.to_owned(), full.to_owned())
    }

    impl Instruments {
        pub(crate) fn started(method: &'static str, scheme: &'static str) {
            metrics::gauge!(HTTP_SERVER_ACTIVE, "http.request.method" => method, "url.scheme" => scheme)
                .increment(1.0);
        }

        /// Records the call's duration. Takes the route out of `f` (it is recorded once).
        pub(crate) fn record(f: &mut Finish) {
            let secs = f.start.elapsed().as_secs_f64();
            match (f.protocol, f.side) {
                (Protocol::Http, Side::Server) => {
                    metrics::gauge!(HTTP_SERVER_ACTIVE, "http.request.method" => f.method, "url.scheme" => f.scheme)
                        .decrement(1.0);
                    let mut labels = vec![
                        metrics::Label::from_static_parts("http.request.method", f.method),
                        metrics::Label::from_static_parts("url.scheme", f.scheme),
                    ];
                    if let Some(r) = f.route.take() {
                        labels.push(metrics::Label::new("http.route", r));
                    }
                    if let Some(s) = f.status {
                        labels.push(status_label(s));
                    }
                    metrics::histogram!(HTTP_SERVER_DURATION, labels).record(secs);
                }
                (Protocol::Http, Side::Client) => {
                    let mut labels = vec![
                        metrics::Label::from_static_parts("http.request.method", f.method),
                        metrics::Label::from_static_parts("url.scheme", f.scheme),
                    ];
                    if let Some(s) = f.status {
                        labels.push(status_label(s));
                    }
                    metrics::histogram!(HTTP_CLIENT_DURATION, labels).record(secs);
                }
                (Protocol::Grpc, side) => {
                    let (service, method) = split_rpc(f.rpc_method.as_deref().unwrap_or(""));
                    let code = f.grpc.map_or("UNKNOWN", |c| c.name());
                    let name = if side == Side::Server {
                        RPC_SERVER_DURATION
                    } else {
                        RPC_CLIENT_DURATION
                    };
                    metrics::histogram!(name, "rpc.service" => service, "rpc.method" => method, "rpc.status_code" => code)
                        .record(secs);
                }
            }
        }
    }

    /// A Prometheus exporter builder with the semantic-convention buckets for every
    /// duration histogram (real histograms, not summaries), [`ATTEMPTS_BUCKETS`] for
    /// `palisade-retry`'s attempts per request, and unit suffixes
    /// (`http_server_request_duration_seconds`). Recorders it builds should be passed
    /// to [`describe_on`] for HELP lines.
    ///
    /// Every Palisade histogram gets buckets: a summary cannot be aggregated across
    /// instances, and the exporter keeps a growing sketch per summary series.
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn prometheus_builder() -> metrics_exporter_prometheus::PrometheusBuilder {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("duration".to_owned()),
                &DURATION_BUCKETS,
            )
            .expect("the semconv buckets are not empty")
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(RETRY_ATTEMPTS_PER_REQUEST.to_owned()),
                &ATTEMPTS_BUCKETS,
            )
            .expect("the attempts buckets are not empty")
            .with_recommended_naming(true)
    }

    /// Registers the instruments' descriptions on `recorder` (HELP lines and units).
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn describe_on(recorder: &metrics_exporter_prometheus::PrometheusRecorder) {
        metrics::with_local_recorder(recorder, describe);
    }

    /// Builds the Prometheus recorder ([`prometheus_builder`]), describes the
    /// instruments, and installs it as the global `metrics` recorder.
    ///
    /// # Errors
    ///
    /// When a global recorder is already installed.
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn install_prometheus() -> Result<
        metrics_exporter_prometheus::PrometheusHandle,
        metrics::SetRecorderError<metrics_exporter_prometheus::PrometheusRecorder>,
    > {
        let recorder = prometheus_builder().build_recorder();
        describe_on(&recorder);
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder)?;
        Ok(handle)
    }

    /// An axum router serving `GET /metrics` from `handle` in the Prometheus text format.
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(all(feature = "metrics", feature = "axum"))))]
    pub fn metrics_router<S: Clone + Send + Sync + 'static>(
        handle: metrics_exporter_prometheus::PrometheusHandle,
    ) -> axum::Router<S> {
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let handle = handle.clone();
                async move { render(&handle) }
            }),
        )
    }

    /// The `/metrics` response for `handle`: runs upkeep, renders the text format with
    /// its content type.
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(all(feature = "metrics", feature = "axum"))))]
    pub fn render(
        handle: &metrics_exporter_prometheus::PrometheusHandle,
    ) -> axum::response::Response {
        use axum::response::IntoResponse as _;
        handle.run_upkeep();
        (
            [(
                http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response()
    }
}

#[cfg(feature = "metrics")]
pub use enabled::*;

#[cfg(not(feature = "metrics"))]
mod disabled {
    use crate::body::Finish;

    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Instruments;

    impl Instruments {
        pub(crate) fn started(_method: &'static str, _scheme: &'static str) {}

        pub(crate) fn record(_f: &mut Finish) {}
    }
}

#[cfg(not(feature = "metrics"))]
pub(crate) use disabled::Instruments;

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::enabled::status_label;

    #[test]
    fn status_labels_are_the_code_in_digits() {
        for code in [100, 200, 204, 404, 418, 503, 599, 600, 99, 1000] {
            let label = status_label(code);
            assert_eq!(label.key(), "http.response.status_code");
            assert_eq!(label.value(), code.to_string(), "{code}");
        }
    }
}
