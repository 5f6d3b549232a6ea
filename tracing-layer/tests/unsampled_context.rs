//! A request the sampling hint says is not sampled (a parent-based sampler and an
//! unsampled parent, or `AlwaysOff`) gets no span, only a context: the handler must still
//! see the trace (a new span id under the parent's trace id, the parent's flags and
//! baggage), its own spans must join it unsampled, outgoing calls and spawned tasks must
//! propagate it, and the response trace header must carry it. One test, in its own binary:
//! the hint is process-wide.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;

use http::{HeaderName, Request, Response};
use http_body_util::BodyExt as _;
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::trace::TraceContextExt as _;
use palisade_tracing_layer::propagation::inject_map;
use palisade_tracing_layer::{
    SamplingHint, ServerTraceLayer, current_context, in_current_context, set_sampling_hint,
};
use tower::{ServiceBuilder, ServiceExt as _};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// What the handler saw: its context's `traceparent`, its baggage, the context of a span
/// it made, and what a spawned task saw.
#[derive(Debug)]
struct Seen {
    traceparent: String,
    baggage: Option<String>,
    child_trace: String,
    child_sampled: bool,
    spawned: String,
    response_header: Option<String>,
}

async fn call(headers: &[(&str, &str)]) -> Seen {
    let svc = ServiceBuilder::new()
        .layer(
            ServerTraceLayer::http()
                .response_trace_header(HeaderName::from_static("traceresponse")),
        )
        .service_fn(|_req: Request<String>| async {
            let mut map = HashMap::new();
            inject_map(&current_context(), &mut map);
            let baggage = current_context()
                .baggage()
                .get("tenant")
                .map(|v| v.to_string());
            let child = tracing::info_span!("work");
            let child_cx = child.context();
            let child_span = child_cx.span();
            let child_sc = child_span.span_context();
            let spawned = tokio::spawn(in_current_context(async {
                let mut map = HashMap::new();
                inject_map(&current_context(), &mut map);
                map.remove("traceparent").unwrap_or_default()
            }))
            .await
            .unwrap();
            let body = serde_json::json!({
                "traceparent": map.remove("traceparent").unwrap_or_default(),
                "baggage": baggage,
                "child_trace": child_sc.trace_id().to_string(),
                "child_sampled": child_sc.is_sampled(),
                "spawned": spawned,
            });
            Ok::<_, Infallible>(Response::new(body.to_string()))
        });
    let mut req = Request::get("http://orders.internal/orders/7")
        .body(String::new())
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let res = svc.oneshot(req).await.unwrap();
    let response_header = res
        .headers()
        .get("traceresponse")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    Seen {
        traceparent: v["traceparent"].as_str().unwrap().to_owned(),
        baggage: v["baggage"].as_str().map(str::to_owned),
        child_trace: v["child_trace"].as_str().unwrap().to_owned(),
        child_sampled: v["child_sampled"].as_bool().unwrap(),
        spawned: v["spawned"].as_str().unwrap().to_owned(),
        response_header,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_request_has_a_context_and_no_span() {
    let otel = support::otel();
    let parent = format!("00-{TRACE}-{PARENT_SPAN}-00");
    let headers = [
        ("traceparent", parent.as_str()),
        ("tracestate", "vendor=opaque"),
        ("baggage", "tenant=acme"),
    ];
    for hint in [
        SamplingHint::ParentBased,
        SamplingHint::ParentBasedTraceIdOnly,
        SamplingHint::AlwaysOff,
    ] {
        set_sampling_hint(hint);
        let seen = call(&headers).await;
        // The parent's trace, a new span id, not sampled.
        let parts: Vec<&str> = seen.traceparent.split('-').collect();
        assert_eq!(parts.len(), 4, "{hint:?}: {seen:?}");
        assert_eq!(parts[1], TRACE, "{hint:?}: {seen:?}");
        assert_ne!(parts[2], PARENT_SPAN, "{hint:?}: a new span id");
        assert_ne!(parts[2], "0000000000000000", "{hint:?}");
        assert_eq!(parts[3], "00", "{hint:?}");
        assert_eq!(seen.baggage.as_deref(), Some("acme"), "{hint:?}");
        // The handler's own span joins the trace, unsampled; a spawned task keeps it.
        assert_eq!(seen.child_trace, TRACE, "{hint:?}");
        assert!(!seen.child_sampled, "{hint:?}");
        assert_eq!(seen.spawned, seen.traceparent, "{hint:?}");
        assert_eq!(
            seen.response_header.as_deref(),
            Some(seen.traceparent.as_str()),
            "{hint:?}"
        );
        assert!(otel.spans().is_empty(), "{hint:?}: {:?}", otel.spans());
    }

    // AlwaysOff and no parent: a new trace, still carried.
    set_sampling_hint(SamplingHint::AlwaysOff);
    let a = call(&[]).await;
    let b = call(&[]).await;
    let trace_a = a.traceparent.split('-').nth(1).unwrap().to_owned();
    assert_eq!(trace_a.len(), 32, "{a:?}");
    assert_ne!(trace_a, "0".repeat(32));
    assert_ne!(a.traceparent, b.traceparent, "fresh ids each request");
    assert_eq!(a.child_trace, trace_a);
    assert!(otel.spans().is_empty());

    // A sampled parent is still recorded in full under the parent-based hints.
    set_sampling_hint(SamplingHint::ParentBasedTraceIdOnly);
    let sampled = format!("00-{TRACE}-{PARENT_SPAN}-01");
    let seen = call(&[("traceparent", sampled.as_str())]).await;
    assert!(seen.traceparent.ends_with("-01"), "{seen:?}");
    assert!(seen.child_sampled);
    let spans = otel.spans();
    assert_eq!(
        spans.len(),
        2,
        "the SERVER span and the handler's: {spans:?}"
    );
    let server = support::find(&spans, "GET");
    assert_eq!(
        support::attr_str(server, "url.path").as_deref(),
        Some("/orders/7")
    );
    set_sampling_hint(SamplingHint::Unknown);
}
