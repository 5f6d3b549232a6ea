//! Carrying the current context into spawned tasks.

use std::future::Future;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::TraceContextExt as _;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The current OpenTelemetry context (for
/// [`propagation::inject_map`](crate::propagation::inject_map) on message headers): the
/// one attached to this thread (tracing-opentelemetry attaches an entered span's; the
/// server layer attaches an unsampled request's, which has no span, and that of a SERVER
/// span made with its tracer), else the current `tracing` span's.
pub fn current_context() -> opentelemetry::Context {
    let cx = opentelemetry::Context::current();
    if cx.span().span_context().is_valid() {
        return cx;
    }
    tracing::Span::current().context()
}

/// Wraps `future` so that it runs inside the current `tracing` span and OpenTelemetry
/// context wherever it is polled: `tokio::spawn(in_current_context(work))` keeps the
/// spawned work in the request's trace.
pub fn in_current_context<F: Future>(
    future: F,
) -> tracing::instrument::Instrumented<opentelemetry::context::WithContext<F>> {
    future
        .with_context(current_context())
        .instrument(tracing::Span::current())
}

/// The `tracing-opentelemetry` layer as Palisade's [`telemetry`](crate::telemetry) sets it
/// up, for a subscriber built by hand: spans go to `tracer`, without the attributes that
/// cost on every request and say nothing about it.
///
/// `tracing-opentelemetry`'s defaults add to every span its thread's name and id (the
/// name copied into a new `String` per span; in async code the thread a span started on
/// is not where it ran) and its busy and idle time (two clock reads each time the span is
/// entered and left: once per poll of a request's future). Both are off here; the code
/// location and the `tracing` target stay.
///
/// ```
/// use opentelemetry::trace::TracerProvider as _;
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let subscriber = tracing_subscriber::registry()
///     .with(palisade_tracing_layer::otel_layer(provider.tracer("orders")));
/// # drop(subscriber);
/// ```
pub fn otel_layer<S, T>(tracer: T) -> tracing_opentelemetry::OpenTelemetryLayer<S, T>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    T: opentelemetry::trace::Tracer + 'static,
    T::Span: Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_tracked_inactivity(false)
}

/// A `tracing` layer that records each event emitted outside any `tracing` span, while a
/// recording OpenTelemetry span is attached to the thread, as an event of that span, the
/// way tracing-opentelemetry records an event inside a span: the handler's log events stay
/// on a SERVER span made by
/// [`ServerTraceLayer::otel_tracer`](crate::ServerTraceLayer::otel_tracer), which is not a
/// `tracing` span. [`Telemetry`](crate::telemetry) installs it next to the
/// tracing-opentelemetry layer; add it yourself to a subscriber built by hand.
///
/// As tracing-opentelemetry (0.34, default settings) does: the event is named by its
/// message (else by its callsite's name) and carries `level`, `target`, its code location
/// (`code.file.path`, `code.module.name`, `code.line.number`) and its other fields; an
/// `ERROR` event sets the span's status to Error; an `error` field on an event without a
/// message makes an `exception` event with `exception.message`, and the span's status
/// that message; an error value (`&dyn Error`) adds `exception.message` and
/// `exception.stacktrace` (its source chain) to the event and to the span. Events whose
/// target starts with `opentelemetry` (the SDK's own logs) and events emitted while one is
/// being recorded on this thread are skipped.
///
/// ```
/// use opentelemetry::trace::TracerProvider as _;
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let subscriber = tracing_subscriber::registry()
///     .with(palisade_tracing_layer::otel_layer(provider.tracer("orders")))
///     .with(palisade_tracing_layer::span_events_layer());
/// # drop(subscriber);
/// ```
pub fn span_events_layer() -> SpanEventsLayer {
    SpanEventsLayer { _private: () }
}

/// The layer [`span_events_layer`] returns.
#[derive(Debug, Clone)]
pub struct SpanEventsLayer {
    _private: (),
}

thread_local! {
    /// Set while this thread records an event (the fields' `Debug` and `Display` code
    /// runs then, and may log): those events are not recorded.
    static RECORDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl<S> tracing_subscriber::Layer<S> for SpanEventsLayer
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        // Inside a `tracing` span, tracing-opentelemetry records it.
        if !event.is_contextual() || ctx.lookup_current().is_some() {
            return;
        }
        let meta = event.metadata();
        if meta.target().starts_with("opentelemetry") || RECORDING.with(std::cell::Cell::get) {
            return;
        }
        // Taken out of the thread's context first: the fields' code may attach another.
        let Some(cx) =
            opentelemetry::Context::map_current(|cx| cx.has_active_span().then(|| cx.clone()))
        else {
            return;
        };
        let span = cx.span();
        if !span.is_recording() {
            return;
        }
        RECORDING.with(|r| r.set(true));
        let mut fields = EventFields {
            name: None,
            attributes: Vec::with_capacity(8),
            status: None,
            span_attributes: Vec::new(),
        };
        event.record(&mut fields);
        RECORDING.with(|r| r.set(false));
        let mut attributes = vec![
            opentelemetry::KeyValue::new("level", meta.level().as_str()),
            opentelemetry::KeyValue::new("target", meta.target().to_owned()),
        ];
        attributes.append(&mut fields.attributes);
        if let Some(file) = meta.file() {
            attributes.push(opentelemetry::KeyValue::new("code.file.path", file));
        }
        if let Some(module) = meta.module_path() {
            attributes.push(opentelemetry::KeyValue::new("code.module.name", module));
        }
        if let Some(line) = meta.line() {
            attributes.push(opentelemetry::KeyValue::new(
                "code.line.number",
                i64::from(line),
            ));
        }
        if *meta.level() == tracing::Level::ERROR {
            span.set_status(opentelemetry::trace::Status::error(""));
        }
        if let Some(status) = fields.status {
            span.set_status(status);
        }
        if !fields.span_attributes.is_empty() {
            span.set_attributes(fields.span_attributes);
        }
        let name = fields.name.map_or(
            std::borrow::Cow::Borrowed(meta.name()),
            std::borrow::Cow::Owned,
        );
        span.add_event(name, attributes);
    }
}

/// An event's message and fields, as OpenTelemetry attributes.
struct EventFields {
    name: Option<String>,
    attributes: Vec<opentelemetry::KeyValue>,
    /// The span's status, from an `error` field.
    status: Option<opentelemetry::trace::Status>,
    /// Attributes for the span itself, from an error value.
    span_attributes: Vec<opentelemetry::KeyValue>,
}

impl EventFields {
    fn push(&mut self, field: &tracing::field::Field, value: opentelemetry::Value) {
        self.attributes
            .push(opentelemetry::KeyValue::new(field.name(), value));
    }

    /// A string value: the message names the event; an `error` field of an event with no
    /// message (yet) makes it an `exception`.
    fn text(&mut self, field: &tracing::field::Field, text: String, debug: String) {
        match field.name() {
            "message" => self.name = Some(text),
            "error" if self.name.is_none() => {
                self.status = Some(opentelemetry::trace::Status::error(debug.clone()));
                self.name = Some("exception".to_owned());
                self.attributes
                    .push(opentelemetry::KeyValue::new("exception.message", debug));
            }
            _ => self.push(field, text.into()),
        }
    }
}

impl tracing::field::Visit for EventFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.text(field, text.clone(), text);
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.text(field, value.to_owned(), format!("{value:?}"));
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        if field.name() == "message" {
            self.name = Some(value.to_string());
        } else {
            self.push(field, value.into());
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.record_i64(field, v),
            Err(_) => self.push(field, value.to_string().into()),
        }
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.push(field, value.into());
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.push(field, value.into());
    }

    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        let mut chain: Vec<opentelemetry::StringValue> = Vec::new();
        let mut next = value.source();
        while let Some(e) = next {
            chain.push(e.to_string().into());
            next = e.source();
        }
        let message = value.to_string();
        for target in [&mut self.attributes, &mut self.span_attributes] {
            target.push(opentelemetry::KeyValue::new(
                "exception.message",
                message.clone(),
            ));
            target.push(opentelemetry::KeyValue::new(
                "exception.stacktrace",
                opentelemetry::Value::Array(chain.clone().into()),
            ));
        }
        self.push(field, message.into());
        self.attributes.push(opentelemetry::KeyValue::new(
            format!("{}.chain", field.name()),
            opentelemetry::Value::Array(chain.into()),
        ));
    }
}
