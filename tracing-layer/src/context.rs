//! Carrying the current context into spawned tasks.

use std::future::Future;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::TraceContextExt as _;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The current OpenTelemetry context (for
/// [`propagation::inject_map`](crate::propagation::inject_map) on message headers): the
/// one attached to this thread (tracing-opentelemetry attaches an entered span's; the
/// server layer attaches an unsampled request's, which has no span), else the current
/// `tracing` span's.
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
