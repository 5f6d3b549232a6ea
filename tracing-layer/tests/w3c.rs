//! Table-driven tests from the W3C Trace Context Level 2 and W3C Baggage specifications.

use std::collections::HashMap;

use http::HeaderMap;
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
use palisade_tracing_layer::W3cPropagator;
use palisade_tracing_layer::propagation::{
    HeaderExtractor, TraceParentError, extract_headers, format_tracestate, parse_baggage,
    parse_traceparent, parse_tracestate,
};

const TID: &str = "0af7651916cd43dd8448eb211c80319c";
const PID: &str = "b7ad6b7169203331";

fn tp(version: &str, flags: &str) -> String {
    format!("{version}-{TID}-{PID}-{flags}")
}

#[test]
fn traceparent_table() {
    use TraceParentError::*;
    let long_ok = format!("{}-what-the-future-holds", tp("cc", "01"));
    let cases: Vec<(String, Result<u8, TraceParentError>)> = vec![
        (tp("00", "01"), Ok(0x01)),
        (tp("00", "00"), Ok(0x00)),
        // Level 2: the random flag is kept; unknown flags are zeroed.
        (tp("00", "02"), Ok(0x02)),
        (tp("00", "03"), Ok(0x03)),
        (tp("00", "ff"), Ok(0x03)),
        (tp("00", "08"), Ok(0x00)),
        // Optional whitespace around the value.
        (format!(" \t{}\t ", tp("00", "01")), Ok(0x01)),
        // Version ff is invalid; other versions parse by the version 00 prefix.
        (tp("ff", "01"), Err(Version)),
        (tp("01", "01"), Ok(0x01)),
        (tp("cc", "01"), Ok(0x01)),
        (long_ok, Ok(0x01)),
        (format!("{}x", tp("cc", "01")), Err(Length)),
        // Version 00 with trailing data restarts.
        (format!("{}-", tp("00", "01")), Err(Length)),
        (format!("{}-extra", tp("00", "01")), Err(Length)),
        // Uppercase hex is rejected everywhere.
        (tp("0A", "01"), Err(Version)),
        (format!("00-{}-{PID}-01", TID.to_uppercase()), Err(Format)),
        (format!("00-{TID}-{}-01", PID.to_uppercase()), Err(Format)),
        (tp("00", "0A"), Err(Format)),
        // All-zero ids.
        (format!("00-{}-{PID}-01", "0".repeat(32)), Err(ZeroTraceId)),
        (format!("00-{TID}-{}-01", "0".repeat(16)), Err(ZeroParentId)),
        // Lengths and separators.
        (format!("00-{}-{PID}-01", &TID[1..]), Err(Length)),
        (format!("00-{TID}0-{PID}-01"), Err(Length)),
        (format!("00-{TID}-{PID}0-01"), Err(Length)),
        (format!("cc-{TID}0-{PID}-01"), Err(Length)),
        (format!("00_{TID}-{PID}-01"), Err(Format)),
        (format!("00-{TID}-{PID}-1"), Err(Length)),
        (format!("00-{TID}-{PID}-0x"), Err(Format)),
        ("".to_owned(), Err(Length)),
        ("0".to_owned(), Err(Length)),
        ("zz".to_owned(), Err(Version)),
        ("00".to_owned(), Err(Length)),
        ("\u{e9}\u{e9}-x".to_owned(), Err(Version)),
        (format!("00-{}-{PID}-01", "g".repeat(32)), Err(Format)),
    ];
    for (value, expected) in cases {
        let got = parse_traceparent(&value).map(|p| p.flags);
        assert_eq!(got, expected, "traceparent {value:?}");
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn remote(h: &HeaderMap) -> SpanContext {
    extract_headers(h, true).span().span_context().clone()
}

#[test]
fn duplicate_traceparent_restarts_the_trace() {
    let one = tp("00", "01");
    let h = headers(&[("traceparent", &one), ("traceparent", &one)]);
    assert!(!remote(&h).is_valid());
    let via_propagator = W3cPropagator::new()
        .extract(&HeaderExtractor(&h))
        .span()
        .span_context()
        .clone();
    assert!(!via_propagator.is_valid());
}

#[test]
fn tracestate_headers_are_merged_and_tolerant() {
    let p = tp("00", "01");
    let h = headers(&[
        ("traceparent", &p),
        ("tracestate", "foo=1 , ,bar=2"),
        ("tracestate", " ,baz@sys=3\t"),
    ]);
    let sc = remote(&h);
    assert!(sc.is_valid());
    assert_eq!(sc.trace_state().header(), "foo=1,bar=2,baz@sys=3");
}

#[test]
fn tracestate_ignored_when_traceparent_invalid() {
    let h = headers(&[("traceparent", "00-bad"), ("tracestate", "foo=1")]);
    let sc = remote(&h);
    assert!(!sc.is_valid());
    assert_eq!(sc.trace_state().header(), "");
}

#[test]
fn tracestate_table() {
    let max_key = format!("a{}=v", "z".repeat(255));
    let over_key = format!("a{}=v", "z".repeat(256));
    let max_tenant = format!("t{}@s=v", "0".repeat(240));
    let over_tenant = format!("t{}@s=v", "0".repeat(241));
    let max_value = format!("k={}", "v".repeat(256));
    let over_value = format!("k={}", "v".repeat(257));
    let thirty_two: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
    let thirty_three: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    let cases: Vec<(String, Option<usize>)> = vec![
        ("foo=bar".into(), Some(1)),
        ("foo=bar,baz=qux".into(), Some(2)),
        ("".into(), Some(0)),
        (",,, ,\t,".into(), Some(0)),
        ("foo=bar ,  baz=qux\t".into(), Some(2)),
        ("foo=b a r".into(), Some(1)),
        ("tenant@vendor=v".into(), Some(1)),
        ("0tenant@vendor=v".into(), Some(1)),
        ("a_-*/=v".into(), Some(1)),
        (max_key, Some(1)),
        (over_key, None),
        (max_tenant, Some(1)),
        (over_tenant, None),
        ("t@abcdefghijklmn=v".into(), Some(1)),
        ("t@abcdefghijklmno=v".into(), None),
        ("t@0sys=v".into(), None),
        ("t@=v".into(), None),
        ("@sys=v".into(), None),
        ("a@b@c=v".into(), None),
        (max_value, Some(1)),
        (over_value, None),
        ("Foo=bar".into(), None),
        ("1foo=bar".into(), None),
        ("foo".into(), None),
        ("foo=".into(), None),
        ("foo=bar=baz".into(), None),
        ("foo=\u{7f}".into(), None),
        ("foo=bar,foo=baz".into(), None),
        (thirty_two.join(","), Some(32)),
        (thirty_three.join(","), None),
    ];
    for (value, expected) in cases {
        let got = parse_tracestate([value.as_str()]).ok().map(|m| m.len());
        assert_eq!(got, expected, "tracestate {value:?}");
    }
}

#[test]
fn tracestate_over_512_chars_is_truncated_by_the_spec_rules() {
    // Long members (> 128 chars) go first, then members from the right.
    let long = format!("long={}", "x".repeat(200));
    let mut members = vec![("a".to_owned(), "1".to_owned())];
    members.push(("long".to_owned(), long[5..].to_owned()));
    for i in 0..20 {
        members.push((format!("key{i:02}"), "v".repeat(20)));
    }
    let state = TraceState::from_key_value(members).unwrap();
    let out = format_tracestate(&state);
    assert!(out.len() <= 512, "{}", out.len());
    assert!(!out.contains("long="));
    assert!(out.starts_with("a=1,key00="));
}

#[test]
fn inject_writes_version_00_and_known_flags() {
    let sc = SpanContext::new(
        u128::from_str_radix(TID, 16).unwrap().into(),
        u64::from_str_radix(PID, 16).unwrap().into(),
        TraceFlags::new(0xff),
        true,
        TraceState::from_key_value([("foo", "bar")]).unwrap(),
    );
    let cx = opentelemetry::Context::new().with_remote_span_context(sc);
    let mut map = HashMap::new();
    W3cPropagator::new().inject_context(&cx, &mut map);
    assert_eq!(map["traceparent"], tp("00", "03"));
    assert_eq!(map["tracestate"], "foo=bar");
    assert!(!map.contains_key("baggage"));
}

#[test]
fn round_trip_through_a_map_keeps_random_flag_and_state() {
    let p = tp("00", "03");
    let h = headers(&[("traceparent", &p), ("tracestate", "x=y")]);
    let cx = extract_headers(&h, true);
    let mut map = HashMap::new();
    W3cPropagator::new().inject_context(&cx, &mut map);
    assert_eq!(map["traceparent"], p);
    assert_eq!(map["tracestate"], "x=y");
}

#[test]
fn baggage_table() {
    let cases: Vec<(&str, Vec<(&str, &str, &str)>)> = vec![
        ("k=v", vec![("k", "v", "")]),
        (" k = v , k2=v2 ", vec![("k", "v", ""), ("k2", "v2", "")]),
        ("k=v;prop=1;flag", vec![("k", "v", "prop=1;flag")]),
        ("k=hello%20world%2C%3D", vec![("k", "hello world,=", "")]),
        ("k=%E2%82%AC", vec![("k", "\u{20ac}", "")]),
        ("k=%zz", vec![]),
        ("k=%FF", vec![]),
        ("k", vec![]),
        ("=v", vec![]),
        ("k y=v", vec![]),
        ("k=v v", vec![]),
        ("k=\"q\"", vec![]),
        (",,k=v,,", vec![("k", "v", "")]),
        ("bad,k=v", vec![("k", "v", "")]),
    ];
    for (value, expected) in cases {
        let got = parse_baggage([value]);
        let got: Vec<(&str, &str, &str)> = got
            .iter()
            .map(|(k, v, p)| (k.as_str(), v.as_str(), p.as_str()))
            .collect();
        assert_eq!(got, expected, "baggage {value:?}");
    }
}

#[test]
fn baggage_limits() {
    let many: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
    assert_eq!(parse_baggage([many.join(",").as_str()]).len(), 64);
    let huge = format!("k={}", "v".repeat(9000));
    assert!(parse_baggage([huge.as_str()]).is_empty());
    // Several headers count together.
    let half = format!("a={}", "v".repeat(5000));
    let half2 = format!("b={}", "v".repeat(5000));
    assert_eq!(parse_baggage([half.as_str(), half2.as_str()]).len(), 1);
}

#[test]
fn baggage_round_trip_percent_encodes() {
    let h = headers(&[("baggage", "user=alice%20b,tenant=t1;p=1")]);
    let cx = extract_headers(&h, true);
    assert_eq!(cx.baggage().get("user").unwrap().as_str(), "alice b");
    let mut map = HashMap::new();
    W3cPropagator::baggage().inject_context(&cx, &mut map);
    let mut members: Vec<&str> = map["baggage"].split(',').collect();
    members.sort_unstable();
    assert_eq!(members, ["tenant=t1;p=1", "user=alice%20b"]);
}

#[test]
fn oversized_and_garbage_headers_never_panic() {
    let big = "a".repeat(100_000);
    let h = headers(&[
        ("traceparent", &big),
        ("tracestate", &big),
        ("baggage", &big),
    ]);
    assert!(!remote(&h).is_valid());
    let mut h = HeaderMap::new();
    h.append(
        "traceparent",
        http::HeaderValue::from_bytes(b"00-\xff\xfe").unwrap(),
    );
    assert!(!remote(&h).is_valid());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,600}") {
            let _ = parse_traceparent(&s);
            let _ = parse_tracestate([s.as_str()]);
            let _ = parse_baggage([s.as_str()]);
        }

        #[test]
        fn valid_traceparents_round_trip(t in 1u128.., p in 1u64.., f in 0u8..4) {
            let v = format!("00-{t:032x}-{p:016x}-{f:02x}");
            let parsed = parse_traceparent(&v).unwrap();
            prop_assert_eq!(parsed.flags, f);
            let sc = parsed.to_span_context(TraceState::default());
            prop_assert_eq!(palisade_tracing_layer::propagation::format_traceparent(&sc), v);
        }
    }
}
