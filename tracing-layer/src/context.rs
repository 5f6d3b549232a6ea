//! Carrying the current context into spawned tasks.

use std::future::Future;

use opentelemetry::context::FutureExt as _;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The OpenTelemetry context of the current `tracing` span (for
/// [`propagation::inject_map`](crate::propagation::inject_map) on message headers).
pub fn current_context() -> opentelemetry::Context {
    tracing::Span::current().context()
}

/// Wraps `future` so that it runs inside the current `tracing` span and OpenTelemetry
/// context wherever it is polled: `tokio::spawn(in_current_context(work))` keeps the
/// spawned work in the request's trace.
pub fn in_current_context<F: Future>(
    future: F,
) -> tracing::instrument::Instrumented<opentelemetry::context::WithContext<F>> {
    let span = tracing::Span::current();
    let cx = span.context();
    future.with_context(cx).instrument(span)
}
