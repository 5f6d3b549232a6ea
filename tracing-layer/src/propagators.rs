//! B3 (single and multi header) and Jaeger propagators, and the composite
//! [`Propagators`] that `OTEL_PROPAGATORS` selects.

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};

use crate::propagation::W3cPropagator;

/// One propagation format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// W3C `traceparent`/`tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
    /// Zipkin B3, the single `b3` header.
    B3,
    /// Zipkin B3, the `X-B3-*` headers.
    B3Multi,
    /// Jaeger `uber-trace-id`.
    Jaeger,
}

/// The propagators `OTEL_PROPAGATORS` selects, applied in order (extraction: later ones
/// override earlier ones where they find a context).
#[derive(Debug, Clone)]
pub struct Propagators {
    formats: Vec<Format>,
    fields: Vec<String>,
}

impl Default for Propagators {
    fn default() -> Self {
        Self::new(vec![Format::TraceContext, Format::Baggage])
    }
}

impl Propagators {
    /// The given formats in order.
    pub fn new(formats: Vec<Format>) -> Self {
        let mut fields = Vec::new();
        for f in &formats {
            let names: &[&str] = match f {
                Format::TraceContext => &["traceparent", "tracestate"],
                Format::Baggage => &["baggage"],
                Format::B3 => &["b3"],
                Format::B3Multi => &["x-b3-traceid", "x-b3-spanid", "x-b3-sampled"],
                Format::Jaeger => &["uber-trace-id"],
            };
            fields.extend(names.iter().map(|s| (*s).to_owned()));
        }
        Self { formats, fields }
    }

    /// The formats in order.
    pub fn formats(&self) -> &[Format] {
        &self.formats
    }
}

/// Parses an `OTEL_PROPAGATORS` value (comma-separated; `none` alone disables).
///
/// # Errors
///
/// A message naming an unknown propagator and the supported ones.
pub fn parse_propagators(value: &str) -> Result<Propagators, String> {
    let mut formats = Vec::new();
    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let f = match name {
            "tracecontext" => Format::TraceContext,
            "baggage" => Format::Baggage,
            "b3" => Format::B3,
            "b3multi" => Format::B3Multi,
            "jaeger" => Format::Jaeger,
            "none" => continue,
            other => {
                return Err(format!(
                    "{other:?} is not supported (use tracecontext, baggage, b3, b3multi, jaeger or none)"
                ));
            }
        };
        if !formats.contains(&f) {
            formats.push(f);
        }
    }
    Ok(Propagators::new(formats))
}

fn trace_id(s: &str) -> Option<TraceId> {
    if !(s.len() == 16 || s.len() == 32) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = u128::from_str_radix(s, 16).ok()?;
    (v != 0).then(|| TraceId::from(v))
}

fn span_id(s: &str) -> Option<SpanId> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = u64::from_str_radix(s, 16).ok()?;
    (v != 0).then(|| SpanId::from(v))
}

fn remote(cx: &Context, t: TraceId, s: SpanId, sampled: bool) -> Context {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    cx.with_remote_span_context(SpanContext::new(t, s, flags, true, TraceState::default()))
}

fn extract_b3(cx: &Context, e: &dyn Extractor) -> Option<Context> {
    let v = e.get("b3")?.trim();
    let mut parts = v.split('-');
    let t = trace_id(parts.next()?)?;
    let s = span_id(parts.next()?)?;
    let sampled = matches!(parts.next(), Some("1" | "d"));
    Some(remote(cx, t, s, sampled))
}

fn extract_b3_multi(cx: &Context, e: &dyn Extractor) -> Option<Context> {
    let t = trace_id(e.get("x-b3-traceid")?.trim())?;
    let s = span_id(e.get("x-b3-spanid")?.trim())?;
    let sampled = matches!(e.get("x-b3-sampled").map(str::trim), Some("1" | "true"))
        || e.get("x-b3-flags").map(str::trim) == Some("1");
    Some(remote(cx, t, s, sampled))
}

fn extract_jaeger(cx: &Context, e: &dyn Extractor) -> Option<Context> {
    let v = e.get("uber-trace-id")?;
    let v = v.trim();
    let mut parts = v.split(':');
    let (t, s, _parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let t = if t.len() < 32 && !t.is_empty() && t.len() <= 32 {
        format!("{t:0>32}")
    } else {
        t.to_owned()
    };
    let t = trace_id(&t)?;
    let s = span_id(s)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(remote(cx, t, s, flags & 1 == 1))
}

impl TextMapPropagator for Propagators {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context().clone();
        for f in &self.formats {
            match f {
                Format::TraceContext => W3cPropagator::trace_context().inject_context(cx, injector),
                Format::Baggage => W3cPropagator::baggage().inject_context(cx, injector),
                _ if !sc.is_valid() => {}
                Format::B3 => injector.set(
                    "b3",
                    format!(
                        "{}-{}-{}",
                        sc.trace_id(),
                        sc.span_id(),
                        if sc.is_sampled() { "1" } else { "0" }
                    ),
                ),
                Format::B3Multi => {
                    injector.set("x-b3-traceid", sc.trace_id().to_string());
                    injector.set("x-b3-spanid", sc.span_id().to_string());
                    injector.set(
                        "x-b3-sampled",
                        (if sc.is_sampled() { "1" } else { "0" }).to_owned(),
                    );
                }
                Format::Jaeger => injector.set(
                    "uber-trace-id",
                    format!(
                        "{}:{}:0:{}",
                        sc.trace_id(),
                        sc.span_id(),
                        if sc.is_sampled() { "1" } else { "0" }
                    ),
                ),
            }
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let mut out = cx.clone();
        for f in &self.formats {
            out = match f {
                Format::TraceContext => {
                    W3cPropagator::trace_context().extract_with_context(&out, extractor)
                }
                Format::Baggage => W3cPropagator::baggage().extract_with_context(&out, extractor),
                Format::B3 => extract_b3(&out, extractor).unwrap_or(out),
                Format::B3Multi => extract_b3_multi(&out, extractor).unwrap_or(out),
                Format::Jaeger => extract_jaeger(&out, extractor).unwrap_or(out),
            };
        }
        out
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}
