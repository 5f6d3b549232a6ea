//! Metrics (`palisade_circuit_breaker_*` with HELP descriptions) and a tracing event on
//! every transition.
#![cfg(all(feature = "metrics", feature = "tracing"))]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use palisade_circuit_breaker::{CircuitBreakerLayer, SlidingWindow, State};
use support::{FAIL, OK, scripted, send};
use tower::Layer;

type Snapshot = Vec<(
    CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

/// A counter's or gauge's value.
fn value(snap: &Snapshot, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    snap.iter().find_map(|(key, _, _, v)| {
        let key = key.key();
        let matches = key.name() == name
            && labels
                .iter()
                .all(|(k, want)| key.labels().any(|l| l.key() == *k && l.value() == *want));
        matches.then(|| match v {
            DebugValue::Counter(n) => *n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(_) => f64::NAN,
        })
    })
}

fn counter(snap: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
    value(snap, name, labels).map_or(0, |v| v as u64)
}

#[tokio::test(start_paused = true)]
async fn metrics_count_outcomes_states_and_transitions() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Handles are registered once, when the layer is built, against the current recorder.
    let layer = metrics::with_local_recorder(&recorder, || {
        CircuitBreakerLayer::builder("inventory")
            .sliding_window(SlidingWindow::count(4))
            .minimum_calls(4)
            .slow_call_duration(Duration::from_secs(1))
            .wait_duration(Duration::from_secs(5))
            .permitted_calls_in_half_open(1)
            .build()
            .unwrap()
    });
    let mut svc = layer.layer(scripted(Default::default()));
    send(&mut svc, OK).await.unwrap();
    send(&mut svc, support::slow(false, Duration::from_secs(2)))
        .await
        .unwrap();
    send(&mut svc, FAIL).await.unwrap();
    send(&mut svc, FAIL).await.unwrap();
    assert_eq!(layer.handle().state(), State::Open);
    send(&mut svc, OK).await.unwrap_err();

    // One snapshot: the debugging recorder's counters read as deltas between snapshots.
    let snap = snapshotter.snapshot().into_vec();
    let calls = "palisade_circuit_breaker_calls_total";
    let b = ("breaker", "inventory");
    assert_eq!(counter(&snap, calls, &[b, ("outcome", "success")]), 1);
    assert_eq!(counter(&snap, calls, &[b, ("outcome", "slow")]), 1);
    assert_eq!(counter(&snap, calls, &[b, ("outcome", "failure")]), 2);
    assert_eq!(counter(&snap, calls, &[b, ("outcome", "rejected")]), 1);
    let transitions = "palisade_circuit_breaker_transitions_total";
    assert_eq!(
        counter(&snap, transitions, &[b, ("from", "closed"), ("to", "open")]),
        1
    );
    assert_eq!(
        value(&snap, "palisade_circuit_breaker_state", &[b]),
        Some(1.0)
    );
    // Every instrument is described, so Prometheus gets HELP lines.
    let described: Vec<_> = snap
        .iter()
        .filter(|(_, _, desc, _)| desc.is_some())
        .map(|(k, ..)| k.key().name().to_owned())
        .collect();
    for name in [calls, transitions, "palisade_circuit_breaker_state"] {
        assert!(described.iter().any(|d| d == name), "{name} has no HELP");
    }
}

/// A `MakeWriter` collecting formatted events.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn every_transition_emits_a_tracing_event_with_rates() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let layer = CircuitBreakerLayer::builder("payments")
        .sliding_window(SlidingWindow::count(2))
        .minimum_calls(2)
        .wait_duration(Duration::from_secs(1))
        .permitted_calls_in_half_open(1)
        .build()
        .unwrap();
    let mut svc = layer.layer(scripted(Default::default()));
    send(&mut svc, OK).await.unwrap();
    send(&mut svc, FAIL).await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    send(&mut svc, OK).await.unwrap();
    layer.handle().force_open();

    let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].contains("WARN"), "{}", lines[0]);
    assert!(lines[0].contains("circuit breaker opened"), "{}", lines[0]);
    assert!(
        lines[0].contains(
            "breaker=\"payments\" from=\"closed\" to=\"open\" failure_rate=50.0 slow_call_rate=0.0"
        ),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("from=\"open\" to=\"half_open\""),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains("INFO"), "{}", lines[2]);
    assert!(
        lines[2].contains("from=\"half_open\" to=\"closed\""),
        "{}",
        lines[2]
    );
    assert!(lines[3].contains("to=\"forced_open\""), "{}", lines[3]);
}
