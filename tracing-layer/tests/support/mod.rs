//! Shared helpers: an in-memory span exporter behind a thread-local subscriber.
#![allow(dead_code, unreachable_pub)]

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt as _;

pub struct Otel {
    pub exporter: InMemorySpanExporter,
    pub provider: SdkTracerProvider,
    _guard: tracing::subscriber::DefaultGuard,
}

/// Installs (for this thread) a subscriber exporting every span to memory.
pub fn otel() -> Otel {
    otel_with(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
        opentelemetry_sdk::trace::Sampler::AlwaysOn,
    )))
}

/// [`otel`] with another sampler.
pub fn otel_with(sampler: opentelemetry_sdk::trace::Sampler) -> Otel {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_sampler(sampler)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .with(palisade_tracing_layer::span_events_layer());
    let guard = tracing::subscriber::set_default(subscriber);
    Otel {
        exporter,
        provider,
        _guard: guard,
    }
}

impl Otel {
    pub fn spans(&self) -> Vec<SpanData> {
        self.exporter.get_finished_spans().unwrap()
    }
}

/// What a span is, without its ids and clocks: name, kind, status, sorted attributes
/// (less those the test subscriber's tracing-opentelemetry adds: code location, thread,
/// busy/idle times), whether it has a parent, how many links, its events (name and
/// attributes, less the thread).
pub fn shape(span: &SpanData) -> String {
    const ADDED: [&str; 5] = ["code.", "thread.", "busy_ns", "idle_ns", "target"];
    let mut attrs: Vec<String> = span
        .attributes
        .iter()
        .filter(|kv| !ADDED.iter().any(|a| kv.key.as_str().starts_with(a)))
        .map(|kv| format!("{}={}", kv.key, kv.value))
        .collect();
    attrs.sort();
    let status = match &span.status {
        opentelemetry::trace::Status::Unset => "unset".to_owned(),
        opentelemetry::trace::Status::Ok => "ok".to_owned(),
        opentelemetry::trace::Status::Error { description } if description.is_empty() => {
            "error".to_owned()
        }
        opentelemetry::trace::Status::Error { description } => format!("error({description})"),
    };
    let kind = if span.span_kind == opentelemetry::trace::SpanKind::Server {
        "server"
    } else {
        "other"
    };
    let events: Vec<String> = span
        .events
        .iter()
        .map(|e| {
            let mut attrs: Vec<String> = e
                .attributes
                .iter()
                .filter(|kv| !kv.key.as_str().starts_with("thread."))
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect();
            attrs.sort();
            format!("{}({})", e.name, attrs.join(" "))
        })
        .collect();
    format!(
        "{} {kind} {status} parent={} links={} [{}] events=[{}]",
        span.name,
        span.parent_span_id != opentelemetry::trace::SpanId::INVALID,
        span.links.len(),
        attrs.join(", "),
        events.join(", ")
    )
}

pub fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a opentelemetry::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

pub fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

pub fn find<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span {name:?} in {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

/// A log writer keeping every line, shared by its clones.
#[derive(Clone, Default)]
pub struct Buf(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Keeps every exported span, also after shutdown (the SDK's in-memory exporter clears
/// its records on shutdown).
#[derive(Debug, Clone, Default)]
pub struct Keep(pub std::sync::Arc<std::sync::Mutex<Vec<SpanData>>>);

impl opentelemetry_sdk::trace::SpanExporter for Keep {
    async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// A routed axum request through `layer` (`http.route`, `client.address`, a parent),
/// its body read to the end.
#[cfg(feature = "axum")]
pub async fn routed_call(layer: palisade_tracing_layer::ServerTraceLayer, traceparent: &str) {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let app = axum::Router::new()
        .route("/orders/{id}", axum::routing::get(|| async { "order" }))
        .route_layer(layer);
    let mut req = http::Request::get("http://orders.internal:8080/orders/7")
        .header("user-agent", "test/1.0")
        .header("traceparent", traceparent)
        .body(axum::body::Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [10, 1, 2, 3],
            40000,
        ))));
    let res = app.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();
}

/// A gRPC `Reserve` call with a parent, as a tonic client sends it (an empty body).
pub fn grpc_reserve(traceparent: &str) -> http::Request<String> {
    http::Request::post("http://inventory:50051/inventory.v1.Inventory/Reserve")
        .header("content-type", "application/grpc")
        .header("traceparent", traceparent)
        .body(String::new())
        .unwrap()
}

/// The HTTP requests both span-parity tests send, with the status each is answered: a GET
/// with a parent, a POST root answered 503, an unknown method (`PURGE`) answered 404.
pub fn http_requests(traceparent: &str) -> Vec<(http::Request<String>, u16)> {
    let get = http::Request::get("http://orders.internal/orders/7?x=1")
        .header("user-agent", "test/1.0")
        .header("traceparent", traceparent)
        .body(String::new())
        .unwrap();
    let post = http::Request::post("http://orders.internal:8080/orders")
        .body(String::new())
        .unwrap();
    let purge = http::Request::builder()
        .method("PURGE")
        .uri("http://cache.internal/item")
        .header("traceparent", traceparent)
        .body(String::new())
        .unwrap();
    vec![(get, 200), (post, 503), (purge, 404)]
}
