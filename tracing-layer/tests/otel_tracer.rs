//! `ServerTraceLayer::otel_tracer`: the SERVER span made with the OpenTelemetry tracer
//! directly must be the same span as through tracing-opentelemetry (name, kind, status,
//! attributes, parent, links) for every kind of request and whatever the sampling hint;
//! the handler's own `tracing` spans are its children and its events outside them are the
//! span's events (`span_events_layer`); it ends when the response body ends, and a
//! cancelled call still ends it. One test binary: the hint is process-wide.

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracer;
use palisade_tracing_layer::{SamplingHint, ServerTraceLayer, current_context, set_sampling_hint};
use tower::{ServiceBuilder, ServiceExt as _};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

fn layer(base: ServerTraceLayer, tracer: Option<&SdkTracer>) -> ServerTraceLayer {
    match tracer {
        Some(t) => base.otel_tracer(t.clone()),
        None => base,
    }
}

/// An HTTP call answered with `status`; the handler opens a `tracing` span of its own.
async fn http_call(req: Request<String>, status: u16, layer: ServerTraceLayer) -> Response<String> {
    let handler = move |_req: Request<String>| async move {
        // Events of the SERVER span itself (with the tracer: through span_events_layer).
        tracing::info!(order = 7, "handling");
        if status == 404 {
            // What tracing-opentelemetry makes of errors: an ERROR event sets the status;
            // an `error` field without a message is an exception; an error value adds
            // `exception.*` to the event and to the span.
            let e = WriteFailed(std::io::Error::other("disk full"));
            tracing::warn!(cause = &e as &(dyn std::error::Error + 'static), "retrying");
            tracing::error!(error = "short of stock");
            tracing::error!(
                code = 3_u64,
                big = u64::MAX,
                ratio = 0.5,
                ok = true,
                "failed"
            );
        }
        let db = tracing::info_span!("db.query");
        db.in_scope(|| tracing::info!("querying"));
        let mut res = Response::new(String::from("body"));
        *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
        Ok::<_, Infallible>(res)
    };
    let res = ServiceBuilder::new()
        .layer(layer)
        .service_fn(handler)
        .oneshot(req)
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Response::from_parts(parts, String::from_utf8(body.to_vec()).unwrap())
}

/// An error with a source, for the event's `exception.stacktrace` (its source chain).
#[derive(Debug)]
struct WriteFailed(std::io::Error);

impl std::fmt::Display for WriteFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("write failed")
    }
}

impl std::error::Error for WriteFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A gRPC call answered OK in the headers, then `grpc-status` in the trailers.
async fn grpc_call(code: &'static str, tracer: Option<&SdkTracer>) {
    let svc = ServiceBuilder::new()
        .layer(layer(ServerTraceLayer::grpc(), tracer))
        .service_fn(move |_req: Request<String>| async move {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static(code));
            let body = http_body_util::StreamBody::new(with_trailers(trailers));
            Ok::<_, Infallible>(Response::new(body))
        });
    let res = svc.oneshot(support::grpc_reserve(PARENT)).await.unwrap();
    res.into_body().collect().await.unwrap();
}

/// A body of one data frame and `trailers`.
fn with_trailers(
    trailers: http::HeaderMap,
) -> impl futures_util::Stream<Item = Result<http_body::Frame<Bytes>, Infallible>> {
    futures_util::stream::iter([
        Ok(http_body::Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
        Ok(http_body::Frame::trailers(trailers)),
    ])
}

/// Every kind of request once; the shapes of the SERVER spans recorded, and a check that
/// each handler's `db.query` span is a child of its SERVER span.
async fn every_request(otel: &support::Otel, tracer: Option<&SdkTracer>) -> Vec<String> {
    let http = || layer(ServerTraceLayer::http(), tracer);
    for (req, status) in support::http_requests(PARENT) {
        http_call(req, status, http()).await;
    }
    // Edge mode: a new root, linked to the caller's context.
    let edge = Request::get("http://api.example.com/orders")
        .header("traceparent", PARENT)
        .body(String::new())
        .unwrap();
    http_call(edge, 200, http().trust_remote(false)).await;
    #[cfg(feature = "axum")]
    support::routed_call(layer(ServerTraceLayer::http(), tracer), PARENT).await;
    grpc_call("0", tracer).await;
    grpc_call("13", tracer).await;

    let spans = otel.spans();
    let servers: Vec<_> = spans
        .iter()
        .filter(|s| s.span_kind == opentelemetry::trace::SpanKind::Server)
        .collect();
    for db in spans.iter().filter(|s| s.name == "db.query") {
        assert!(
            servers
                .iter()
                .any(|s| s.span_context.span_id() == db.parent_span_id
                    && s.span_context.trace_id() == db.span_context.trace_id()),
            "db.query is not a child of a SERVER span: {db:?}"
        );
    }
    assert_eq!(spans.iter().filter(|s| s.name == "db.query").count(), 4);
    let mut shapes: Vec<String> = servers.iter().map(|s| support::shape(s)).collect();
    shapes.sort();
    otel.exporter.reset();
    shapes
}

/// One test: the sampling hint is process-wide.
#[tokio::test(flavor = "current_thread")]
async fn server_spans_made_with_the_tracer() {
    the_tracer_makes_the_same_span().await;
    the_span_ends_with_the_body_and_a_cancelled_call_still_ends_it().await;
    spawned_work_keeps_the_span_as_parent().await;
    baggage_dropped_spans_and_the_opt_out().await;
    #[cfg(feature = "otlp")]
    ratio_decided_roots_keep_their_trace_id().await;
}

/// What the handler sees: its context's trace id, sampled flag and `k` baggage member,
/// and whether it runs in a `tracing` span.
async fn seen_by_handler(layer: ServerTraceLayer, req: Request<String>) -> String {
    use opentelemetry::baggage::BaggageExt as _;
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_req: Request<String>| {
            let cx = current_context();
            let seen = format!(
                "{} {} {:?} {}",
                cx.span().span_context().trace_id(),
                cx.span().span_context().is_sampled(),
                cx.baggage().get("k").map(|v| v.to_string()),
                !tracing::Span::current().is_disabled(),
            );
            async move { Ok::<_, Infallible>(Response::new(seen)) }
        });
    let res = svc.oneshot(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

async fn baggage_dropped_spans_and_the_opt_out() {
    let get = |baggage: bool| {
        let mut b = Request::get("/orders");
        if baggage {
            b = b.header("baggage", "k=v");
        }
        b.body(String::new()).unwrap()
    };
    // Baggage reaches the handler from a trusted caller only (edge mode drops it).
    {
        let otel = support::otel();
        let tracer = otel.provider.tracer("test");
        let direct = || ServerTraceLayer::http().otel_tracer(tracer.clone());
        let seen = seen_by_handler(direct(), get(true)).await;
        assert!(seen.ends_with(" true Some(\"v\") false"), "{seen}");
        let seen = seen_by_handler(direct().trust_remote(false), get(true)).await;
        assert!(seen.ends_with(" true None false"), "{seen}");
        // `tracing_spans()` undoes `otel_tracer`: the request has its `tracing` span.
        let seen = seen_by_handler(direct().tracing_spans(), get(false)).await;
        assert!(seen.ends_with(" true None true"), "{seen}");
        assert_eq!(otel.spans().len(), 3);
    }
    // Only the sampler can tell (no ratio announced) and it drops every root: the lean
    // span is not recorded, nothing is exported, the handler still has its trace.
    {
        let otel = support::otel_with(opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(0.0));
        let tracer = otel.provider.tracer("test");
        set_sampling_hint(SamplingHint::TraceIdOnly);
        let seen = seen_by_handler(ServerTraceLayer::http().otel_tracer(tracer), get(false)).await;
        set_sampling_hint(SamplingHint::Unknown);
        let (trace, rest) = seen.split_once(' ').unwrap();
        assert_ne!(trace, "00000000000000000000000000000000");
        assert_eq!(rest, "false None false");
        assert!(otel.spans().is_empty(), "{:?}", otel.spans());
    }
}

/// With the root ratio announced, the layer decides each root on a trace id it draws; the
/// span made with the tracer must start with that id (handed to `RootIdGenerator`), so
/// the SDK's sampler keeps exactly the roots the layer kept.
#[cfg(feature = "otlp")]
async fn ratio_decided_roots_keep_their_trace_id() {
    use palisade_tracing_layer::telemetry::RootIdGenerator;
    use tracing_subscriber::layer::SubscriberExt as _;
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_id_generator(RootIdGenerator::default())
        .with_sampler(opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(0.5))
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);
    set_sampling_hint(SamplingHint::TraceIdOnly);
    RootIdGenerator::set_root_ratio(Some(0.5));
    let layer = ServerTraceLayer::http().otel_tracer(provider.tracer("test"));
    let mut kept = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let req = Request::get("/orders").body(String::new()).unwrap();
        let seen = seen_by_handler(layer.clone(), req).await;
        let mut parts = seen.split(' ');
        let (trace, sampled) = (parts.next().unwrap(), parts.next().unwrap());
        assert_ne!(trace, "00000000000000000000000000000000");
        if sampled == "true" {
            kept.insert(trace.to_owned());
        }
    }
    RootIdGenerator::set_root_ratio(None);
    set_sampling_hint(SamplingHint::Unknown);
    // 200 draws at 0.5: within 6 standard deviations (about 7 each) of 100.
    assert!((58..=142).contains(&kept.len()), "{}", kept.len());
    let exported: std::collections::BTreeSet<String> = exporter
        .get_finished_spans()
        .unwrap()
        .iter()
        .map(|s| s.span_context.trace_id().to_string())
        .collect();
    assert_eq!(
        exported, kept,
        "the SDK kept exactly the roots the layer kept"
    );
}

/// Work the handler spawns with `in_current_context` is a child of the SERVER span.
async fn spawned_work_keeps_the_span_as_parent() {
    let otel = support::otel();
    let tracer = otel.provider.tracer("test");
    let svc = ServiceBuilder::new()
        .layer(ServerTraceLayer::http().otel_tracer(tracer))
        .service_fn(|_req: Request<String>| async {
            let work = async {
                let _span = tracing::info_span!("background").entered();
            };
            tokio::spawn(palisade_tracing_layer::in_current_context(work))
                .await
                .unwrap();
            Ok::<_, Infallible>(Response::new(String::new()))
        });
    let req = Request::get("/orders")
        .header("traceparent", PARENT)
        .body(String::new())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();
    let spans = otel.spans();
    let server = support::find(&spans, "GET");
    let background = support::find(&spans, "background");
    assert_eq!(background.parent_span_id, server.span_context.span_id());
    assert_eq!(
        background.span_context.trace_id(),
        server.span_context.trace_id()
    );
}

async fn the_tracer_makes_the_same_span() {
    let otel = support::otel();
    let tracer = otel.provider.tracer("test");
    for hint in [
        SamplingHint::Unknown,
        SamplingHint::TraceIdOnly,
        SamplingHint::ParentBasedTraceIdOnly,
    ] {
        set_sampling_hint(hint);
        let through_tracing = every_request(&otel, None).await;
        let direct = every_request(&otel, Some(&tracer)).await;
        assert_eq!(direct, through_tracing, "{hint:?}");
        assert_eq!(direct.len(), if cfg!(feature = "axum") { 7 } else { 6 });
        let joined = direct.join("\n");
        for expected in [
            "GET server unset parent=true links=0",
            "url.path=/orders/7",
            "user_agent.original=test/1.0",
            "POST server error parent=false links=0",
            "http.response.status_code=503",
            "error.type=503",
            "http.request.method_original=PURGE",
            "GET server unset parent=false links=1",
            "inventory.v1.Inventory/Reserve server error",
            "rpc.status_code=INTERNAL",
            "rpc.status_code=OK",
            "handling(code.file.path=tracing-layer/tests/otel_tracer.rs",
            "exception(code.file.path",
            "exception.message=\"short of stock\"",
            "exception.message=write failed, exception.stacktrace=[\"disk full\"]",
            "retrying(cause.chain=[\"disk full\"] cause=write failed",
            "big=18446744073709551615",
            "HTTP server error(\"short of stock\")",
        ] {
            assert!(
                joined.contains(expected),
                "{hint:?}: {expected:?} not in\n{joined}"
            );
        }
        if cfg!(feature = "axum") {
            assert!(joined.contains("GET /orders/{id} server unset"), "{joined}");
            assert!(joined.contains("client.address=10.1.2.3"), "{joined}");
        }
    }
    set_sampling_hint(SamplingHint::Unknown);

    // The parent is the caller's span, the handler sees the SERVER span's context, and the
    // `traceresponse` header names it.
    let req = Request::get("http://orders.internal/orders/7")
        .header("traceparent", PARENT)
        .body(String::new())
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen2 = seen.clone();
    let res = ServiceBuilder::new()
        .layer(
            ServerTraceLayer::http()
                .otel_tracer(tracer.clone())
                .response_trace_header(http::HeaderName::from_static("traceresponse")),
        )
        .service_fn(move |_req: Request<String>| {
            // Kept past the response (as a spawned task may): the span still ends there.
            *seen2.lock().unwrap() = Some(current_context());
            async { Ok::<_, Infallible>(Response::new(String::new())) }
        })
        .oneshot(req)
        .await
        .unwrap();
    res.into_body().collect().await.unwrap();
    let spans = otel.spans();
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(
        span.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(span.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(span.parent_span_is_remote);
    let kept = seen.lock().unwrap().clone().unwrap();
    let sc = kept.span().span_context().clone();
    assert_eq!(sc.span_id(), span.span_context.span_id());
    assert!(sc.is_sampled() && !sc.is_remote());
    otel.exporter.reset();
}

async fn the_span_ends_with_the_body_and_a_cancelled_call_still_ends_it() {
    let otel = support::otel();
    let tracer = otel.provider.tracer("test");

    // A streaming body: the span is still open after the headers, ended by its last frame.
    let (tx, rx) = tokio::sync::oneshot::channel::<Bytes>();
    let rx = std::sync::Mutex::new(Some(rx));
    let svc = ServiceBuilder::new()
        .layer(ServerTraceLayer::http().otel_tracer(tracer.clone()))
        .service_fn(move |_req: Request<String>| {
            let rx = rx.lock().unwrap().take().unwrap();
            async move {
                let stream = futures_util::stream::once(async move {
                    Ok::<_, Infallible>(http_body::Frame::data(rx.await.unwrap()))
                });
                Ok::<_, Infallible>(Response::new(http_body_util::StreamBody::new(stream)))
            }
        });
    let res = svc
        .oneshot(Request::get("/stream").body(String::new()).unwrap())
        .await
        .unwrap();
    assert!(otel.spans().is_empty(), "the span ended with the headers");
    tx.send(Bytes::from_static(b"last")).unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"last");
    assert_eq!(otel.spans().len(), 1);
    otel.exporter.reset();

    // A call dropped before its response: ended once, as cancelled.
    let svc = ServiceBuilder::new()
        .layer(ServerTraceLayer::http().otel_tracer(tracer.clone()))
        .service_fn(|_req: Request<String>| async {
            std::future::pending::<()>().await;
            Ok::<_, Infallible>(Response::new(String::new()))
        });
    let call = svc.oneshot(Request::get("/hang").body(String::new()).unwrap());
    let out = tokio::time::timeout(std::time::Duration::from_millis(1), call).await;
    assert!(out.is_err());
    let spans = otel.spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(
        support::attr_str(&spans[0], "error.type").as_deref(),
        Some("cancelled")
    );
    otel.exporter.reset();

    // A parent that is not sampled, with the hint: no span, the trace still flows.
    set_sampling_hint(SamplingHint::ParentBased);
    let req = Request::get("/orders/7")
        .header("traceparent", UNSAMPLED)
        .body(String::new())
        .unwrap();
    let res = http_call(
        req,
        200,
        ServerTraceLayer::http().otel_tracer(tracer.clone()),
    )
    .await;
    assert_eq!(res.status(), 200);
    set_sampling_hint(SamplingHint::Unknown);
    // The handler's own span joined the trace, unsampled: nothing exported.
    assert!(otel.spans().is_empty(), "{:?}", otel.spans());

    // Without the hint the sampler decides: the same, built then dropped.
    let req = Request::get("/orders/7")
        .header("traceparent", UNSAMPLED)
        .body(String::new())
        .unwrap();
    http_call(req, 200, ServerTraceLayer::http().otel_tracer(tracer)).await;
    assert!(otel.spans().is_empty(), "{:?}", otel.spans());
}
