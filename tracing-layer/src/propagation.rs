//! Spec-exact W3C Trace Context (Level 2) and W3C Baggage parsing and propagation.
//!
//! [`W3cPropagator`] implements OpenTelemetry's [`TextMapPropagator`] and differs from the
//! stock `TraceContextPropagator` where the specification asks for it: every value of a
//! header is read (a duplicated `traceparent` restarts the trace, several `tracestate`
//! headers are merged), the Level 2 `random` flag is kept, optional whitespace and empty
//! `tracestate` members are tolerated, and at most 32 members are accepted.
//!
//! The parsers ([`parse_traceparent`], [`parse_tracestate`], [`parse_baggage`]) never panic
//! and bound the memory they use by the limits of the specifications; parsing a valid
//! `traceparent` does not allocate.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt as _};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header name.
pub const TRACESTATE: &str = "tracestate";
/// The `baggage` header name.
pub const BAGGAGE: &str = "baggage";

/// The `sampled` trace flag (bit 0).
pub const FLAG_SAMPLED: u8 = 0x01;
/// The Level 2 `random` trace flag (bit 1): the trace id's rightmost 7 bytes are random.
pub const FLAG_RANDOM: u8 = 0x02;
/// The trace flags this crate understands and propagates; other bits are set to zero
/// when propagating, as the specification requires.
pub const KNOWN_FLAGS: u8 = FLAG_SAMPLED | FLAG_RANDOM;

/// The most `tracestate` list members the specification allows.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// The combined `tracestate` length a propagator keeps when injecting (the specification's
/// "at least 512 characters"); longer values are truncated by its rules.
pub const MAX_TRACESTATE_LEN: usize = 512;
/// The most bytes of `baggage` accepted (all headers together).
pub const MAX_BAGGAGE_BYTES: usize = 8192;
/// The most baggage list members accepted.
pub const MAX_BAGGAGE_MEMBERS: usize = 64;

/// A parsed `traceparent`: ids and the known flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id (never all zeros).
    pub trace_id: TraceId,
    /// The parent span id (never all zeros).
    pub parent_id: SpanId,
    /// The trace flags, restricted to [`KNOWN_FLAGS`].
    pub flags: u8,
}

impl TraceParent {
    /// Whether the `sampled` flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// Whether the Level 2 `random` flag is set.
    pub fn random(&self) -> bool {
        self.flags & FLAG_RANDOM != 0
    }

    /// The remote span context this `traceparent` describes, with `state` as its
    /// `tracestate`.
    pub fn to_span_context(self, state: TraceState) -> SpanContext {
        SpanContext::new(
            self.trace_id,
            self.parent_id,
            TraceFlags::new(self.flags),
            true,
            state,
        )
    }
}

/// Why a `traceparent` was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceParentError {
    /// The header was sent more than once.
    Duplicated,
    /// Shorter than 55 characters, or version `00` with trailing data, or a higher
    /// version whose 56th character is not `-`.
    Length,
    /// The version is `ff` or not two lowercase hex digits.
    Version,
    /// A field is not lowercase hex or a separator is not `-`.
    Format,
    /// The trace id is all zeros.
    ZeroTraceId,
    /// The parent id is all zeros.
    ZeroParentId,
}

impl std::fmt::Display for TraceParentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Duplicated => "traceparent sent more than once",
            Self::Length => "traceparent has the wrong length",
            Self::Version => "traceparent version is invalid",
            Self::Format => "traceparent is not lowercase hex fields separated by '-'",
            Self::ZeroTraceId => "traceparent trace id is all zeros",
            Self::ZeroParentId => "traceparent parent id is all zeros",
        })
    }
}

impl std::error::Error for TraceParentError {}

fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn hex_u128(s: &[u8]) -> Option<u128> {
    let mut v: u128 = 0;
    for &b in s {
        v = (v << 4) | u128::from(hex_digit(b)?);
    }
    Some(v)
}

/// Parses one `traceparent` value by the W3C Trace Context Level 2 rules; surrounding
/// optional whitespace is ignored. Does not allocate.
///
/// # Errors
///
/// A [`TraceParentError`] naming the rule the value breaks.
pub fn parse_traceparent(value: &str) -> Result<TraceParent, TraceParentError> {
    let v = trim_ows(value).as_bytes();
    if v.len() < 2 {
        return Err(TraceParentError::Length);
    }
    let version = hex_u128(&v[..2]).ok_or(TraceParentError::Version)?;
    if version == 0xff {
        return Err(TraceParentError::Version);
    }
    if v.len() < 55 || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return Err(TraceParentError::Length);
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return Err(TraceParentError::Format);
    }
    let trace_id = hex_u128(&v[3..35]).ok_or(TraceParentError::Format)?;
    let parent_id = hex_u128(&v[36..52]).ok_or(TraceParentError::Format)?;
    let flags = hex_u128(&v[53..55]).ok_or(TraceParentError::Format)?;
    if trace_id == 0 {
        return Err(TraceParentError::ZeroTraceId);
    }
    if parent_id == 0 {
        return Err(TraceParentError::ZeroParentId);
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok(TraceParent {
        trace_id: TraceId::from(trace_id),
        parent_id: SpanId::from(parent_id as u64),
        flags: (flags as u8) & KNOWN_FLAGS,
    })
}

/// Parses the values of every `traceparent` header of a request: exactly one valid value
/// gives a parent, anything else (none, several, invalid) restarts the trace.
///
/// # Errors
///
/// [`TraceParentError::Duplicated`] for more than one value, or the value's error.
pub fn parse_traceparent_values<'a>(
    mut values: impl Iterator<Item = &'a str>,
) -> Option<Result<TraceParent, TraceParentError>> {
    let first = values.next()?;
    if values.next().is_some() {
        return Some(Err(TraceParentError::Duplicated));
    }
    Some(parse_traceparent(first))
}

/// Why a `tracestate` was discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceStateError {
    /// A list member's key breaks the key rules (lowercase, length, one `@`).
    Key(String),
    /// A list member has no `=` or its value breaks the value rules.
    Value(String),
    /// A key appears twice.
    DuplicateKey(String),
    /// More than [`MAX_TRACESTATE_MEMBERS`] members.
    TooManyMembers,
}

impl std::fmt::Display for TraceStateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(k) => write!(f, "invalid tracestate key {k:?}"),
            Self::Value(m) => write!(f, "invalid tracestate member {m:?}"),
            Self::DuplicateKey(k) => write!(f, "duplicate tracestate key {k:?}"),
            Self::TooManyMembers => write!(
                f,
                "tracestate has more than {MAX_TRACESTATE_MEMBERS} list members"
            ),
        }
    }
}

impl std::error::Error for TraceStateError {}

fn key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
}

/// Whether `key` is a valid `tracestate` key (simple or multi-tenant `tenant@system`).
pub fn valid_tracestate_key(key: &str) -> bool {
    let k = key.as_bytes();
    match key.find('@') {
        None => {
            !k.is_empty()
                && k.len() <= 256
                && k[0].is_ascii_lowercase()
                && k.iter().all(|&b| key_char(b))
        }
        Some(at) => {
            let (tenant, system) = (&k[..at], &k[at + 1..]);
            !tenant.is_empty()
                && tenant.len() <= 241
                && (tenant[0].is_ascii_lowercase() || tenant[0].is_ascii_digit())
                && tenant.iter().all(|&b| key_char(b))
                && !system.is_empty()
                && system.len() <= 14
                && system[0].is_ascii_lowercase()
                && system.iter().all(|&b| key_char(b))
        }
    }
}

/// Whether `value` is a valid `tracestate` value (1 to 256 printable ASCII characters
/// without `,` and `=`, not ending in a space).
pub fn valid_tracestate_value(value: &str) -> bool {
    let v = value.as_bytes();
    !v.is_empty()
        && v.len() <= 256
        && v.iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && v[v.len() - 1] != b' '
}

/// Parses and merges the values of every `tracestate` header, in order. Optional
/// whitespace around members and empty members are tolerated.
///
/// # Errors
///
/// An invalid key or value, a duplicated key, or more than 32 members: the whole
/// `tracestate` is then discarded, as the specification requires.
pub fn parse_tracestate<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(&'a str, &'a str)>, TraceStateError> {
    let mut members: Vec<(&'a str, &'a str)> = Vec::new();
    for value in values {
        for member in value.split(',') {
            let member = trim_ows(member);
            if member.is_empty() {
                continue;
            }
            let Some((key, val)) = member.split_once('=') else {
                return Err(TraceStateError::Value(truncated(member)));
            };
            if !valid_tracestate_key(key) {
                return Err(TraceStateError::Key(truncated(key)));
            }
            if !valid_tracestate_value(val) {
                return Err(TraceStateError::Value(truncated(member)));
            }
            if members.len() == MAX_TRACESTATE_MEMBERS {
                return Err(TraceStateError::TooManyMembers);
            }
            if members.iter().any(|(k, _)| *k == key) {
                return Err(TraceStateError::DuplicateKey(key.to_owned()));
            }
            members.push((key, val));
        }
    }
    Ok(members)
}

fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Renders `state` as a `tracestate` header value of at most [`MAX_TRACESTATE_LEN`]
/// characters, by the specification's truncation rules: members longer than 128
/// characters are removed first (from the right), then members from the right.
pub fn format_tracestate(state: &TraceState) -> String {
    let header = state.header();
    if header.len() <= MAX_TRACESTATE_LEN {
        return header;
    }
    let mut members: Vec<&str> = header.split(',').collect();
    let total = |m: &[&str]| m.iter().map(|s| s.len()).sum::<usize>() + m.len().saturating_sub(1);
    while total(&members) > MAX_TRACESTATE_LEN {
        match members.iter().rposition(|m| m.len() > 128) {
            Some(i) => {
                members.remove(i);
            }
            None => {
                members.pop();
            }
        }
    }
    members.join(",")
}

/// Writes `traceparent` for a span context (version `00`, known flags only).
pub fn format_traceparent(cx: &SpanContext) -> String {
    let mut s = String::with_capacity(55);
    let _ = write!(
        s,
        "00-{}-{}-{:02x}",
        cx.trace_id(),
        cx.span_id(),
        cx.trace_flags().to_u8() & KNOWN_FLAGS
    );
    s
}

fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b.get(i + 1).and_then(|&c| (c as char).to_digit(16))?;
            let l = b.get(i + 2).and_then(|&c| (c as char).to_digit(16))?;
            #[allow(clippy::cast_possible_truncation)]
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        if baggage_octet(b) && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// A baggage list member: key, percent-decoded value and the raw properties.
pub type BaggageMember = (String, String, String);

/// Parses the values of every `baggage` header (W3C Baggage): members are `key=value`
/// with optional `;properties`; values are percent-decoded. Invalid members are skipped;
/// at most [`MAX_BAGGAGE_MEMBERS`] members and [`MAX_BAGGAGE_BYTES`] bytes are read.
pub fn parse_baggage<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<BaggageMember> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for value in values {
        bytes += value.len();
        if bytes > MAX_BAGGAGE_BYTES {
            break;
        }
        for member in value.split(',') {
            if out.len() == MAX_BAGGAGE_MEMBERS {
                return out;
            }
            let mut parts = member.splitn(2, ';');
            let kv = trim_ows(parts.next().unwrap_or(""));
            let props = trim_ows(parts.next().unwrap_or(""));
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let (k, v) = (trim_ows(k), trim_ows(v));
            if k.is_empty() || !k.bytes().all(token_char) || !v.bytes().all(baggage_octet) {
                continue;
            }
            let Some(decoded) = percent_decode(v) else {
                continue;
            };
            out.push((k.to_owned(), decoded, props.to_owned()));
        }
    }
    out
}

/// Renders baggage as a `baggage` header value (values percent-encoded), within
/// [`MAX_BAGGAGE_BYTES`] and [`MAX_BAGGAGE_MEMBERS`].
pub fn format_baggage(baggage: &Baggage) -> String {
    let mut out = String::new();
    for (n, (k, (v, meta))) in baggage.iter().enumerate() {
        if n == MAX_BAGGAGE_MEMBERS {
            break;
        }
        let mut member = String::new();
        member.push_str(k.as_str());
        member.push('=');
        percent_encode(v.as_str(), &mut member);
        if !meta.as_str().is_empty() {
            member.push(';');
            member.push_str(meta.as_str());
        }
        if out.len() + member.len() + 1 > MAX_BAGGAGE_BYTES {
            break;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&member);
    }
    out
}

/// The remote context described by `traceparent`/`tracestate` values, on top of `cx`;
/// `cx` unchanged when `traceparent` is missing or invalid (`tracestate` is then ignored).
pub fn extract_trace_context<'a>(
    cx: &Context,
    traceparent: impl Iterator<Item = &'a str>,
    tracestate: impl IntoIterator<Item = &'a str>,
) -> Context {
    let Some(Ok(parent)) = parse_traceparent_values(traceparent) else {
        return cx.clone();
    };
    let state = parse_tracestate(tracestate)
        .ok()
        .map(|members| {
            TraceState::from_key_value(members.iter().copied()).unwrap_or_else(|_| {
                // opentelemetry's TraceState is stricter than the specification in one
                // place (a 14-character system id): keep every member it accepts.
                TraceState::from_key_value(
                    members
                        .into_iter()
                        .filter(|m| TraceState::from_key_value([*m]).is_ok()),
                )
                .unwrap_or_default()
            })
        })
        .unwrap_or_default();
    cx.with_remote_span_context(parent.to_span_context(state))
}

/// `cx` with the baggage of `baggage` header values added.
pub fn extract_baggage<'a>(cx: &Context, values: impl IntoIterator<Item = &'a str>) -> Context {
    let members = parse_baggage(values);
    if members.is_empty() {
        return cx.clone();
    }
    let mut baggage = Baggage::new();
    for (k, v, p) in members {
        let _ = baggage.insert_with_metadata(k, v, p);
    }
    cx.with_baggage(baggage.iter().map(|(k, (v, m))| {
        opentelemetry::baggage::KeyValueMetadata::new(k.clone(), v.clone(), m.clone())
    }))
}

/// Which parts of the context a [`W3cPropagator`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parts {
    TraceContext,
    Baggage,
    Both,
}

/// W3C Trace Context (Level 2) and W3C Baggage as an OpenTelemetry [`TextMapPropagator`].
///
/// ```
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::trace::TraceContextExt;
/// use palisade_tracing_layer::propagation::W3cPropagator;
/// use std::collections::HashMap;
///
/// let headers = HashMap::from([(
///     "traceparent".to_owned(),
///     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03".to_owned(),
/// )]);
/// let cx = W3cPropagator::new().extract(&headers);
/// let remote = cx.span().span_context().clone();
/// assert!(remote.is_sampled());
/// assert_eq!(remote.trace_flags().to_u8(), 0x03); // the random flag is kept
/// ```
#[derive(Debug, Clone)]
pub struct W3cPropagator {
    parts: Parts,
    fields: Vec<String>,
}

impl Default for W3cPropagator {
    fn default() -> Self {
        Self::new()
    }
}

impl W3cPropagator {
    /// `traceparent`, `tracestate` and `baggage`.
    pub fn new() -> Self {
        Self::with(Parts::Both)
    }

    /// Only `traceparent` and `tracestate`.
    pub fn trace_context() -> Self {
        Self::with(Parts::TraceContext)
    }

    /// Only `baggage`.
    pub fn baggage() -> Self {
        Self::with(Parts::Baggage)
    }

    fn with(parts: Parts) -> Self {
        let fields = match parts {
            Parts::TraceContext => vec![TRACEPARENT.to_owned(), TRACESTATE.to_owned()],
            Parts::Baggage => vec![BAGGAGE.to_owned()],
            Parts::Both => vec![
                TRACEPARENT.to_owned(),
                TRACESTATE.to_owned(),
                BAGGAGE.to_owned(),
            ],
        };
        Self { parts, fields }
    }

    fn traces(&self) -> bool {
        self.parts != Parts::Baggage
    }

    fn baggages(&self) -> bool {
        self.parts != Parts::TraceContext
    }
}

impl TextMapPropagator for W3cPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        if self.traces() {
            let span = cx.span();
            let sc = span.span_context();
            if sc.is_valid() {
                injector.set(TRACEPARENT, format_traceparent(sc));
                let state = format_tracestate(sc.trace_state());
                if !state.is_empty() {
                    injector.set(TRACESTATE, state);
                }
            }
        }
        if self.baggages() {
            let baggage = cx.baggage();
            if !baggage.is_empty() {
                injector.set(BAGGAGE, format_baggage(baggage));
            }
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let mut out = cx.clone();
        if self.traces() {
            let parents = extractor.get_all(TRACEPARENT).unwrap_or_default();
            let states = extractor.get_all(TRACESTATE).unwrap_or_default();
            out = extract_trace_context(&out, parents.into_iter(), states);
        }
        if self.baggages() {
            let values = extractor.get_all(BAGGAGE).unwrap_or_default();
            out = extract_baggage(&out, values);
        }
        out
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

/// An [`Injector`]/[`Extractor`] over [`http::HeaderMap`] that reads every value of a
/// header (`get_all`).
#[derive(Debug)]
pub struct HeaderCarrier<'a>(pub &'a mut http::HeaderMap);

/// A read-only [`Extractor`] over [`http::HeaderMap`] that reads every value of a header.
#[derive(Debug, Clone, Copy)]
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let v: Vec<&str> = self
            .0
            .get_all(key)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if v.is_empty() { None } else { Some(v) }
    }
}

impl Injector for HeaderCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Extracts the W3C trace context and baggage straight from a header map, without the
/// allocation of the generic `Extractor::get_all`. Headers that are not valid visible
/// ASCII count as absent (an invalid `traceparent` value restarts the trace).
pub fn extract_headers(headers: &http::HeaderMap, parts_baggage: bool) -> Context {
    let cx = Context::new();
    let parents = headers
        .get_all(TRACEPARENT)
        .iter()
        .map(|v| v.to_str().unwrap_or(""));
    let states = headers
        .get_all(TRACESTATE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let cx = extract_trace_context(&cx, parents, states);
    if parts_baggage && headers.contains_key(BAGGAGE) {
        let values = headers
            .get_all(BAGGAGE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        return extract_baggage(&cx, values);
    }
    cx
}

type DynPropagator = Arc<dyn TextMapPropagator + Send + Sync>;

static INSTALLED: OnceLock<DynPropagator> = OnceLock::new();

/// Installs the propagator the layers of this crate use (and OpenTelemetry's global
/// one). Without it they use [`W3cPropagator::new`] through an allocation-free fast path.
/// Returns `false` (and changes nothing) when one was installed before.
pub fn install(propagator: impl TextMapPropagator + Send + Sync + Clone + 'static) -> bool {
    let ok = INSTALLED.set(Arc::new(propagator.clone())).is_ok();
    if ok {
        opentelemetry::global::set_text_map_propagator(propagator);
    }
    ok
}

/// The context propagated in request headers, by the installed propagator.
pub(crate) fn extract_request(headers: &http::HeaderMap) -> Context {
    match INSTALLED.get() {
        Some(p) => p.extract(&HeaderExtractor(headers)),
        None => extract_headers(headers, true),
    }
}

/// Writes `cx` into request headers, by the installed propagator.
pub(crate) fn inject_request(cx: &Context, headers: &mut http::HeaderMap) {
    match INSTALLED.get() {
        Some(p) => p.inject_context(cx, &mut HeaderCarrier(headers)),
        None => W3cPropagator::new().inject_context(cx, &mut HeaderCarrier(headers)),
    }
}

/// Injects the current OpenTelemetry context (e.g. of the current `tracing` span, via
/// `tracing_opentelemetry::OpenTelemetrySpanExt::context`) into any string map, such as
/// the headers of a queue message.
pub fn inject_map(cx: &Context, map: &mut std::collections::HashMap<String, String>) {
    match INSTALLED.get() {
        Some(p) => p.inject_context(cx, map),
        None => W3cPropagator::new().inject_context(cx, map),
    }
}

/// Extracts a context from any string map (e.g. message headers), by the installed
/// propagator.
pub fn extract_map(map: &std::collections::HashMap<String, String>) -> Context {
    match INSTALLED.get() {
        Some(p) => p.extract(map),
        None => W3cPropagator::new().extract(map),
    }
}
