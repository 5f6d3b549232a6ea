//! traceparent / tracestate / baggage parsing: never panics, a valid traceparent
//! round-trips, accepted tracestate and baggage stay within the specification's limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry::trace::{TraceContextExt as _, TraceState};
use palisade_tracing_layer::propagation::{
    MAX_BAGGAGE_MEMBERS, MAX_TRACESTATE_MEMBERS, extract_headers, format_traceparent,
    parse_baggage, parse_traceparent, parse_tracestate,
};

fuzz_target!(|data: &[u8]| {
    // Up to three header values separated by 0xff bytes (never valid in a header).
    let mut parts = data.split(|b| *b == 0xff);
    let tp = parts.next().unwrap_or_default();
    let ts = parts.next().unwrap_or_default();
    let bg = parts.next().unwrap_or_default();

    if let Ok(s) = std::str::from_utf8(tp) {
        if let Ok(p) = parse_traceparent(s) {
            let formatted = format_traceparent(&p.to_span_context(TraceState::default()));
            assert_eq!(parse_traceparent(&formatted), Ok(p));
        }
    }
    if let Ok(s) = std::str::from_utf8(ts) {
        if let Ok(m) = parse_tracestate([s, s]) {
            assert!(m.len() <= MAX_TRACESTATE_MEMBERS);
        }
    }
    if let Ok(s) = std::str::from_utf8(bg) {
        assert!(parse_baggage([s]).len() <= MAX_BAGGAGE_MEMBERS);
    }

    let mut headers = http::HeaderMap::new();
    for (name, value) in [("traceparent", tp), ("tracestate", ts), ("baggage", bg)] {
        if let Ok(v) = http::HeaderValue::from_bytes(value) {
            headers.append(name, v);
        }
    }
    let cx = extract_headers(&headers, true);
    let _ = cx.span().span_context().is_valid();
});
