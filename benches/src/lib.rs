//! Criterion benches and allocation-count tests for the palisade crates.
//!
//! Nothing here is published. The benches live in `benches/benches/`, one file per
//! subject; the allocation-count tests live in `benches/tests/` and use
//! [`allocation_counter`] (which installs a counting global allocator in this crate's
//! test and bench binaries). See `benches/README.md` for the results and how to
//! reproduce them.

pub use allocation_counter;

/// Records an allocation count for `benches/run.sh`'s table.
///
/// Prints `allocations <case>: <per_call> per call` and, when the environment variable
/// `PALISADE_ALLOC_REPORT` names a file, appends `<case>\t<per_call>` to it. Call it from
/// an allocation-count test right before its assertion, so the table shows the measured
/// value even where a target is missed.
pub fn report_allocations(case: &str, per_call: f64) {
    println!("allocations {case}: {per_call} per call");
    if let Ok(path) = std::env::var("PALISADE_ALLOC_REPORT") {
        use std::io::Write as _;
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{case}\t{per_call}"));
        if let Err(e) = written {
            eprintln!("cannot append to PALISADE_ALLOC_REPORT={path}: {e}");
        }
    }
}

/// A span exporter that drops every batch, so spans are exported without a collector: by
/// the simple span processor (each span's whole cost on the measured thread) in most
/// criterion benches, by the real batch span processor (queueing, batching, the export
/// call) in `tracing_layer/sampled` and `load_target`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropExporter;

impl opentelemetry_sdk::trace::SpanExporter for DropExporter {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        std::hint::black_box(batch);
        Ok(())
    }
}

/// Polls `f` to completion on this thread with a no-op waker: for futures that are ready or
/// become ready without a runtime (in-memory services), so a bench or an allocation count
/// measures the service and not an executor.
#[inline]
pub fn drive<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::hint::spin_loop();
    }
}
