//! Metrics (feature `metrics`) and tracing events (feature `tracing`) of retries and of an
//! exhausted budget.
#![cfg(all(feature = "metrics", feature = "tracing"))]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use palisade_retry::{Backoff, Budget, Jitter, RetryIf, RetryLayer};
use tower::{Layer, ServiceExt, service_fn};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);
impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn metrics_and_events_for_retries_and_an_exhausted_budget() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let logs = Buf::default();
    let l2 = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || l2.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Handles are registered once, when the layer is built.
    let layer = metrics::with_local_recorder(&recorder, || {
        RetryLayer::builder(
            "inventory",
            RetryIf::new(|r: &Result<u32, &'static str>| r.is_err()),
        )
        .backoff(Backoff::constant(Duration::from_millis(5)))
        .jitter(Jitter::None)
        .max_attempts(3)
        // A floor of 1 retry per second over 1 s, no ratio: the second request finds it spent.
        .budget(Budget::new(0.0, 1, Duration::from_secs(1)))
        .build()
        .unwrap()
    });
    let svc = layer.layer(service_fn(|x: u32| {
        std::future::ready(if x == 0 { Err("down") } else { Ok(x) })
    }));
    assert_eq!(svc.clone().oneshot(7).await, Ok(7));
    assert_eq!(svc.clone().oneshot(0).await, Err("down")); // one retry, then the budget is spent
    assert_eq!(svc.clone().oneshot(0).await, Err("down")); // budget spent at once

    let stats = layer.stats();
    assert_eq!((stats.retries(), stats.budget_exhausted()), (1, 2));

    let snap = snapshotter.snapshot().into_vec();
    let get = |name: &str, outcome: Option<&str>| {
        snap.iter()
            .find(|(k, _, _, _)| {
                let key = k.key();
                key.name() == name
                    && key
                        .labels()
                        .any(|l| l.key() == "retry" && l.value() == "inventory")
                    && outcome.is_none_or(|o| {
                        key.labels().any(|l| l.key() == "outcome" && l.value() == o)
                    })
            })
            .map(|(_, _, _, v)| v)
    };
    assert_eq!(
        get("palisade_retry_attempts_total", Some("done")),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        get("palisade_retry_attempts_total", Some("retried")),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        get("palisade_retry_attempts_total", Some("gave_up")),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(
        get("palisade_retry_budget_exhausted_total", None),
        Some(&DebugValue::Counter(2))
    );
    let Some(DebugValue::Histogram(h)) = get("palisade_retry_attempts_per_request", None) else {
        panic!("no histogram");
    };
    let mut attempts: Vec<f64> = h.iter().map(|v| v.into_inner()).collect();
    attempts.sort_by(f64::total_cmp);
    assert_eq!(attempts, [1.0, 1.0, 2.0]);

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("retrying")
            && logs.contains("reason=\"predicate\"")
            && logs.contains("delay_ms=5"),
        "{logs}"
    );
    assert!(logs.contains("retry budget exhausted"), "{logs}");
}
