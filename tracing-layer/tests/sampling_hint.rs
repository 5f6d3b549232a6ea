//! The sampling hint: with a parent-based sampler, a request whose remote parent is not
//! sampled gets a lean span (no attributes built) that still carries the trace; a sampled
//! parent, a root, or no hint gets the full span. One test, run in its own binary: the
//! hint is process-wide.

mod support;

use std::convert::Infallible;

use http::{Request, Response};
use http_body_util::BodyExt as _;
use opentelemetry::trace::TraceContextExt as _;
use palisade_tracing_layer::{SamplingHint, ServerTraceLayer, current_context, set_sampling_hint};
use tower::{ServiceBuilder, ServiceExt as _};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Sends one request; the handler answers with the trace id and sampled flag it sees.
async fn call(traceparent: Option<&str>) -> String {
    let svc = ServiceBuilder::new()
        .layer(ServerTraceLayer::http())
        .service_fn(|_req: Request<String>| {
            let cx = current_context();
            let span = cx.span();
            let sc = span.span_context();
            let seen = format!("{} {}", sc.trace_id(), sc.is_sampled());
            async move { Ok::<_, Infallible>(Response::new(seen)) }
        });
    let mut req = Request::get("http://orders.internal/orders/7")
        .header("user-agent", "test/1.0")
        .body(String::new())
        .unwrap();
    if let Some(tp) = traceparent {
        req.headers_mut().insert("traceparent", tp.parse().unwrap());
    }
    let res = svc.oneshot(req).await.unwrap();
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn a_lean_span_for_an_unsampled_parent_carries_the_trace() {
    // The support subscriber's provider has the SDK's default sampler, ParentBased(AlwaysOn).
    let otel = support::otel();
    let unsampled = format!("00-{TRACE}-00f067aa0ba902b7-00");
    let sampled = format!("00-{TRACE}-00f067aa0ba902b7-01");

    for hint in [SamplingHint::Unknown, SamplingHint::ParentBased] {
        set_sampling_hint(hint);
        // An unsampled parent: nothing recorded, the handler still sees the trace.
        assert_eq!(
            call(Some(&unsampled)).await,
            format!("{TRACE} false"),
            "{hint:?}"
        );
        assert!(otel.spans().is_empty(), "{hint:?}: {:?}", otel.spans());

        // A sampled parent: the full span, with its attributes.
        assert_eq!(
            call(Some(&sampled)).await,
            format!("{TRACE} true"),
            "{hint:?}"
        );
        let spans = otel.spans();
        assert_eq!(spans.len(), 1, "{hint:?}");
        assert_eq!(spans[0].name, "GET", "{hint:?}");
        assert_eq!(
            support::attr_str(&spans[0], "url.path").as_deref(),
            Some("/orders/7"),
            "{hint:?}"
        );
        assert_eq!(
            support::attr_str(&spans[0], "user_agent.original").as_deref(),
            Some("test/1.0")
        );
        otel.exporter.reset();

        // A root: sampled by the root sampler, full span.
        let seen = call(None).await;
        assert!(seen.ends_with(" true"), "{hint:?}: {seen}");
        assert_eq!(otel.spans().len(), 1, "{hint:?}");
        assert!(support::attr_str(&otel.spans()[0], "url.path").is_some());
        otel.exporter.reset();
    }

    // AlwaysOff promised: every span is lean, and the trace still flows.
    set_sampling_hint(SamplingHint::AlwaysOff);
    assert_eq!(call(Some(&unsampled)).await, format!("{TRACE} false"));
    set_sampling_hint(SamplingHint::Unknown);
}
