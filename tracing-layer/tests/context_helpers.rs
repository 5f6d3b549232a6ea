//! B3 / B3 multi / Jaeger propagation, inject/extract on string maps (message headers),
//! and carrying the context into spawned tasks.

mod support;

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
use palisade_tracing_layer::propagation::{extract_map, inject_map};
use palisade_tracing_layer::propagators::{Format, Propagators, parse_propagators};
use palisade_tracing_layer::{current_context, in_current_context};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

const TID: u128 = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736;
const SID: u64 = 0x00f0_67aa_0ba9_02b7;

fn cx(sampled: bool) -> opentelemetry::Context {
    opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        TID.into(),
        SID.into(),
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::default(),
    ))
}

#[test]
fn b3_b3multi_jaeger_round_trip() {
    for (format, keys) in [
        (Format::B3, vec!["b3"]),
        (
            Format::B3Multi,
            vec!["x-b3-traceid", "x-b3-spanid", "x-b3-sampled"],
        ),
        (Format::Jaeger, vec!["uber-trace-id"]),
    ] {
        let p = Propagators::new(vec![format]);
        for sampled in [true, false] {
            let mut map = HashMap::new();
            p.inject_context(&cx(sampled), &mut map);
            for k in &keys {
                assert!(map.contains_key(*k), "{format:?} {k} {map:?}");
            }
            let back = p.extract(&map);
            let sc = back.span().span_context().clone();
            assert!(sc.is_valid(), "{format:?}");
            assert_eq!(sc.trace_id(), TID.into());
            assert_eq!(sc.span_id(), SID.into());
            assert_eq!(sc.is_sampled(), sampled, "{format:?}");
        }
    }
}

#[test]
fn foreign_formats_parse_their_variants_and_reject_garbage() {
    let p = parse_propagators("b3,jaeger").unwrap();
    let get = |pairs: &[(&str, &str)]| {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        p.extract(&map).span().span_context().clone()
    };
    // 64-bit B3 trace ids and debug sampling.
    let sc = get(&[("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-d")]);
    assert!(sc.is_valid() && sc.is_sampled());
    // Jaeger with a short trace id is zero-padded.
    let sc = get(&[("uber-trace-id", "a3ce929d0e0e4736:00f067aa0ba902b7:0:1")]);
    assert!(sc.is_valid() && sc.is_sampled());
    for bad in [
        ("b3", "zz-00f067aa0ba902b7-1"),
        ("b3", "0"),
        ("b3", "00000000000000000000000000000000-00f067aa0ba902b7-1"),
        ("uber-trace-id", "a:b:c"),
        (
            "uber-trace-id",
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1:9",
        ),
    ] {
        assert!(!get(&[bad]).is_valid(), "{bad:?}");
    }
    assert!(parse_propagators("tracecontext,xray").is_err());
}

#[test]
fn inject_and_extract_on_message_headers() {
    let mut headers = HashMap::new();
    inject_map(&cx(true), &mut headers);
    assert_eq!(
        headers["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    let back = extract_map(&headers);
    assert_eq!(back.span().span_context().trace_id(), TID.into());
}

#[tokio::test(flavor = "current_thread")]
async fn spawned_tasks_stay_in_the_request_trace() {
    let otel = support::otel();
    let parent = tracing::info_span!("request");
    let _ = parent.set_parent(cx(true));
    let trace = {
        let _e = parent.enter();
        let trace = current_context().span().span_context().trace_id();
        let task = tokio::spawn(in_current_context(async {
            tracing::info_span!("background").in_scope(|| {});
            current_context().span().span_context().trace_id()
        }));
        (trace, task)
    };
    let (trace, task) = trace;
    assert_eq!(task.await.unwrap(), trace);
    let trace = { trace };
    drop(parent);
    assert_eq!(trace, TID.into());
    let spans = otel.spans();
    let bg = support::find(&spans, "background");
    let req = support::find(&spans, "request");
    assert_eq!(bg.span_context.trace_id(), TID.into());
    assert_eq!(bg.parent_span_id, req.span_context.span_id());
}
