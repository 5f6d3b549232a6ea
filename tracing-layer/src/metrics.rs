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
    use std::sync::{Arc, OnceLock};

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

    /// A layer's metric handles, shared by its clones and by the services it builds.
    ///
    /// Handles are registered once per label set and kept (the hot path then only
    /// records): the active-requests gauges by method and scheme in a fixed table, the
    /// duration histograms in an open-addressed table of [`SLOTS`] label sets
    /// (method, scheme, route, status), filled on first sight. Lookups are lock-free
    /// (`OnceLock::get`); a label set seen for the first time registers its handle with
    /// the recorder installed at that moment. Label sets beyond the table's capacity
    /// (more than [`SLOTS`] per layer, which bounded cardinality makes rare) are recorded
    /// through the `metrics` macros, as before.
    #[derive(Debug, Clone)]
    pub(crate) struct Instruments(Arc<Handles>);

    /// Duration label sets cached per layer.
    const SLOTS: usize = 128;

    /// Known methods (see `server::known_method`) and `_OTHER`.
    const METHODS: [&str; 11] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "CONNECT", "TRACE", "QUERY",
        "_OTHER",
    ];

    struct Handles {
        active: [OnceLock<metrics::Gauge>; METHODS.len() * 2],
        durations: Box<[OnceLock<Slot>]>,
    }

    impl std::fmt::Debug for Handles {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let used = self.durations.iter().filter(|s| s.get().is_some()).count();
            f.debug_struct("Handles")
                .field("duration_label_sets", &used)
                .finish_non_exhaustive()
        }
    }

    /// One duration label set and its histogram.
    struct Slot {
        method: &'static str,
        scheme: &'static str,
        route: Option<Box<str>>,
        status: Option<u16>,
        histogram: metrics::Histogram,
    }

    impl Slot {
        fn is(&self, method: &str, scheme: &str, route: Option<&str>, status: Option<u16>) -> bool {
            self.method == method
                && self.scheme == scheme
                && self.status == status
                && self.route.as_deref() == route
        }
    }

    fn active_index(method: &str, scheme: &str) -> usize {
        let m = METHODS
            .iter()
            .position(|k| *k == method)
            .unwrap_or(METHODS.len() - 1);
        m * 2 + usize::from(scheme == "https")
    }

    fn slot_hash(method: &str, scheme: &str, route: Option<&str>, status: Option<u16>) -> usize {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::hash::DefaultHasher::new();
        (method, scheme, route, status).hash(&mut h);
        // Truncation is intended: the hash picks a slot.
        #[allow(clippy::cast_possible_truncation)]
        let i = h.finish() as usize;
        i
    }

    impl Instruments {
        pub(crate) fn new() -> Self {
            Self(Arc::new(Handles {
                active: std::array::from_fn(|_| OnceLock::new()),
                durations: (0..SLOTS).map(|_| OnceLock::new()).collect(),
            }))
        }

        fn active(&self, method: &'static str, scheme: &'static str) -> &metrics::Gauge {
            self.0.active[active_index(method, scheme)].get_or_init(|| {
                metrics::gauge!(HTTP_SERVER_ACTIVE, "http.request.method" => method, "url.scheme" => scheme)
            })
        }

        /// The histogram of a duration label set: from the table, registered there on
        /// first sight; `None` when the table is full of other label sets.
        fn duration(
            &self,
            name: &'static str,
            method: &'static str,
            scheme: &'static str,
            route: Option<&str>,
            status: Option<u16>,
        ) -> Option<&metrics::Histogram> {
            let start = slot_hash(method, scheme, route, status) % SLOTS;
            for i in 0..SLOTS {
                let cell = &self.0.durations[(start + i) % SLOTS];
                let slot = match cell.get() {
                    Some(slot) => slot,
                    None => cell.get_or_init(|| Slot {
                        method,
                        scheme,
                        route: route.map(Box::from),
                        status,
                        histogram: metrics::histogram!(
                            name,
                            duration_labels(method, scheme, route, status)
                        ),
                    }),
                };
                if slot.is(method, scheme, route, status) {
                    return Some(&slot.histogram);
                }
            }
            None
        }

        pub(crate) fn started(&self, method: &'static str, scheme: &'static str) {
            self.active(method, scheme).increment(1.0);
        }

        #[cfg(test)]
        pub(crate) fn duration_for_test(
            &self,
            route: Option<&str>,
            status: Option<u16>,
        ) -> Option<&metrics::Histogram> {
            self.duration(HTTP_SERVER_DURATION, "GET", "http", route, status)
        }

        /// Records the call's duration.
        pub(crate) fn record(&self, f: &Finish) {
            let secs = f.start.elapsed().as_secs_f64();
            match (f.protocol, f.side) {
                (Protocol::Http, side) => {
                    let (name, route) = if side == Side::Server {
                        self.active(f.method, f.scheme).decrement(1.0);
                        (HTTP_SERVER_DURATION, f.route.as_deref())
                    } else {
                        (HTTP_CLIENT_DURATION, None)
                    };
                    match self.duration(name, f.method, f.scheme, route, f.status) {
                        Some(h) => h.record(secs),
                        None => metrics::histogram!(
                            name,
                            duration_labels(f.method, f.scheme, route, f.status)
                        )
                        .record(secs),
                    }
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

    fn duration_labels(
        method: &'static str,
        scheme: &'static str,
        route: Option<&str>,
        status: Option<u16>,
    ) -> Vec<metrics::Label> {
        let mut labels = vec![
            metrics::Label::from_static_parts("http.request.method", method),
            metrics::Label::from_static_parts("url.scheme", scheme),
        ];
        if let Some(r) = route {
            labels.push(metrics::Label::new("http.route", r.to_owned()));
        }
        if let Some(s) = status {
            labels.push(status_label(s));
        }
        labels
    }

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

    #[derive(Debug, Clone)]
    pub(crate) struct Instruments;

    #[allow(clippy::unused_self)]
    impl Instruments {
        pub(crate) fn new() -> Self {
            Self
        }

        pub(crate) fn started(&self, _method: &'static str, _scheme: &'static str) {}

        pub(crate) fn record(&self, _f: &Finish) {}
    }
}

#[cfg(not(feature = "metrics"))]
pub(crate) use disabled::Instruments;

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::enabled::{Instruments, status_label};
    use super::*;

    /// A label set is registered once and its handle reused; distinct label sets get
    /// their own; a full table says so (the caller then records without caching); every
    /// value lands in the recorder.
    #[test]
    fn duration_handles_are_registered_once_per_label_set() {
        let recorder = prometheus_builder().build_recorder();
        describe_on(&recorder);
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let i = Instruments::new();
        let a = i
            .duration_for_test(Some("/orders/{id}"), Some(200))
            .unwrap();
        let b = i
            .duration_for_test(Some("/orders/{id}"), Some(200))
            .unwrap();
        assert!(std::ptr::eq(a, b), "one handle per label set");
        let c = i
            .duration_for_test(Some("/orders/{id}"), Some(404))
            .unwrap();
        assert!(!std::ptr::eq(a, c));
        a.record(0.002);
        b.record(0.2);
        c.record(0.02);
        let mut filled = 2;
        let mut code = 100;
        while let Some(h) = i.duration_for_test(None, Some(code)) {
            h.record(1.0);
            filled += 1;
            code += 1;
            assert!(filled <= 128, "the table holds at most its slots");
        }
        assert_eq!(filled, 128);
        // Known label sets are still found when the table is full.
        assert!(std::ptr::eq(
            a,
            i.duration_for_test(Some("/orders/{id}"), Some(200))
                .unwrap()
        ));
        let text = handle.render();
        assert!(
            text.contains("http_server_request_duration_seconds_count{http_request_method=\"GET\",url_scheme=\"http\",http_route=\"/orders/{id}\",http_response_status_code=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("http_response_status_code=\"404\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn status_labels_are_the_code_in_digits() {
        for code in [100, 200, 204, 404, 418, 503, 599, 600, 99, 1000] {
            let label = status_label(code);
            assert_eq!(label.key(), "http.response.status_code");
            assert_eq!(label.value(), code.to_string(), "{code}");
        }
    }
}
