//! `SamplingHint::TraceIdOnly`: every SERVER span starts lean and gets its name and
//! attributes only once the sampler has recorded it. A recorded span must come out exactly
//! as without the hint; an unsampled root (a ratio sampler) must cost no attributes and
//! still carry its trace. One test, in its own binary: the hint is process-wide.

mod support;

use std::convert::Infallible;

use http::{Request, Response};
use http_body_util::BodyExt as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::trace::Sampler;
use palisade_tracing_layer::{SamplingHint, ServerTraceLayer, current_context, set_sampling_hint};
use tower::{ServiceBuilder, ServiceExt as _};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The handler answers with the trace id and sampled flag it sees, and `status`.
async fn http_call(req: Request<String>, status: u16) -> String {
    let handler = move |_req: Request<String>| {
        let cx = current_context();
        let span = cx.span();
        let sc = span.span_context();
        let seen = format!("{} {}", sc.trace_id(), sc.is_sampled());
        async move {
            let mut res = Response::new(seen);
            *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
            Ok::<_, Infallible>(res)
        }
    };
    let res = ServiceBuilder::new()
        .layer(ServerTraceLayer::http())
        .service_fn(handler)
        .oneshot(req)
        .await
        .unwrap();
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// A gRPC call whose status (UNAVAILABLE) is in the response headers.
async fn grpc_call() {
    let svc = ServiceBuilder::new()
        .layer(ServerTraceLayer::grpc())
        .service_fn(|_req: Request<String>| async {
            let mut res = Response::new(String::new());
            res.headers_mut()
                .insert("grpc-status", http::HeaderValue::from_static("14"));
            Ok::<_, Infallible>(res)
        });
    let res = svc.oneshot(support::grpc_reserve(PARENT)).await.unwrap();
    res.into_body().collect().await.unwrap();
}

/// Every kind of request once; the shapes of the spans recorded.
async fn every_request(otel: &support::Otel) -> Vec<String> {
    for (req, status) in support::http_requests(PARENT) {
        http_call(req, status).await;
    }
    #[cfg(feature = "axum")]
    support::routed_call(ServerTraceLayer::http(), PARENT).await;
    grpc_call().await;
    let mut shapes: Vec<String> = otel.spans().iter().map(support::shape).collect();
    shapes.sort();
    otel.exporter.reset();
    shapes
}

#[tokio::test(flavor = "current_thread")]
async fn recorded_spans_are_the_same_and_unsampled_roots_stay_lean() {
    // Recorded spans: the same name, kind, status and attributes with the hint as without.
    {
        let otel = support::otel();
        set_sampling_hint(SamplingHint::Unknown);
        let full = every_request(&otel).await;
        set_sampling_hint(SamplingHint::TraceIdOnly);
        let deferred = every_request(&otel).await;
        assert_eq!(full.len(), if cfg!(feature = "axum") { 5 } else { 4 });
        assert_eq!(deferred, full);
        // The shapes do carry what they should (a check of the check).
        let joined = full.join("\n");
        for expected in [
            "GET server unset parent=true",
            "url.path=/orders/7",
            "user_agent.original=test/1.0",
            "http.response.status_code=503",
            "POST server error parent=false",
            "error.type=503",
            "http.request.method_original=PURGE",
            "inventory.v1.Inventory/Reserve server error",
            "rpc.status_code=UNAVAILABLE",
        ] {
            assert!(joined.contains(expected), "{expected:?} not in\n{joined}");
        }
        if cfg!(feature = "axum") {
            assert!(joined.contains("GET /orders/{id} server unset"), "{joined}");
            assert!(joined.contains("client.address=10.1.2.3"), "{joined}");
        }
    }

    // A ratio sampler that samples no root: nothing recorded, the trace still flows.
    {
        let otel = support::otel_with(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            0.0,
        ))));
        for hint in [SamplingHint::Unknown, SamplingHint::TraceIdOnly] {
            set_sampling_hint(hint);
            let root = Request::get("http://orders.internal/orders/7")
                .body(String::new())
                .unwrap();
            let seen = http_call(root, 200).await;
            let (trace, sampled) = seen.split_once(' ').unwrap();
            assert_eq!(sampled, "false", "{hint:?}");
            assert_ne!(trace, "00000000000000000000000000000000", "{hint:?}");
            // A sampled parent is still followed.
            let child = Request::get("http://orders.internal/orders/7")
                .header("traceparent", PARENT)
                .body(String::new())
                .unwrap();
            assert_eq!(
                http_call(child, 200).await,
                "4bf92f3577b34da6a3ce929d0e0e4736 true",
                "{hint:?}"
            );
            let spans = otel.spans();
            assert_eq!(spans.len(), 1, "{hint:?}: {spans:?}");
            assert_eq!(
                support::attr_str(&spans[0], "url.path").as_deref(),
                Some("/orders/7"),
                "{hint:?}"
            );
            otel.exporter.reset();
        }
    }

    // A ratio sampler that samples every root: the root span, named and attributed.
    {
        let otel = support::otel_with(Sampler::TraceIdRatioBased(1.0));
        set_sampling_hint(SamplingHint::TraceIdOnly);
        let root = Request::get("http://orders.internal/orders/7")
            .body(String::new())
            .unwrap();
        assert!(http_call(root, 200).await.ends_with(" true"));
        let spans = otel.spans();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].name, "GET");
        assert_eq!(
            support::attr_str(&spans[0], "http.request.method").as_deref(),
            Some("GET")
        );
    }

    // A ratio sampler that is not parent-based, its ratio announced: the layer decides on
    // the parent's trace id as the sampler does, whatever the parent's flag says.
    #[cfg(feature = "otlp")]
    {
        use palisade_tracing_layer::telemetry::RootIdGenerator;
        let otel = support::otel_with(Sampler::TraceIdRatioBased(0.5));
        set_sampling_hint(SamplingHint::TraceIdOnly);
        RootIdGenerator::set_root_ratio(Some(0.5));
        // Kept at 0.5: the lower half's top bits are 0; dropped: they are all 1.
        let kept = "4bf92f3577b34da60000000000000001";
        let dropped = "4bf92f3577b34da6fffffffffffffff1";
        for (trace, flag, expect) in [
            (kept, "00", true),
            (dropped, "01", false),
            (kept, "01", true),
        ] {
            let req = Request::get("http://orders.internal/orders/7")
                .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-{flag}"))
                .body(String::new())
                .unwrap();
            assert_eq!(
                http_call(req, 200).await,
                format!("{trace} {expect}"),
                "parent flag {flag}"
            );
        }
        let spans = otel.spans();
        assert_eq!(spans.len(), 2, "{spans:?}");
        assert!(
            spans
                .iter()
                .all(|s| s.span_context.trace_id().to_string() == kept)
        );
        assert!(support::attr_str(&spans[0], "url.path").is_some());
        RootIdGenerator::set_root_ratio(None);
    }
    set_sampling_hint(SamplingHint::Unknown);
}
