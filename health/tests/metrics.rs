//! `palisade_health_check_status` and `palisade_health_check_duration_seconds`.
#![cfg(feature = "metrics")]

mod support;

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use palisade_health::HealthCheck;
use palisade_health::metrics::{CHECK_DURATION, CHECK_STATUS};
use support::{FAIL, PASS, Scripted, WARN, advance, settle};

/// The gauge's value and the histogram's samples for `check`.
fn read(recorder: &DebuggingRecorder, check: &str) -> (Option<f64>, Vec<f64>) {
    let mut gauge = None;
    let mut samples = Vec::new();
    for (key, _, _, value) in recorder.snapshotter().snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
        if labels != [("check", check)] {
            continue;
        }
        match (key.name(), value) {
            (CHECK_STATUS, DebugValue::Gauge(v)) => gauge = Some(v.0),
            (CHECK_DURATION, DebugValue::Histogram(v)) => {
                samples.extend(v.into_iter().map(|x| x.0));
            }
            (name, value) => panic!("unexpected {name} {value:?}"),
        }
    }
    (gauge, samples)
}

#[tokio::test(start_paused = true)]
async fn status_gauge_and_duration_histogram_per_check() {
    let recorder = DebuggingRecorder::new();
    let health = support::registry();
    let check = Scripted::new(PASS);
    // Handles are registered once, when the check is registered.
    metrics::with_local_recorder(&recorder, || {
        health
            .register(HealthCheck::readiness("db", check.clone()).interval(Duration::from_secs(1)))
            .unwrap();
    });
    settle().await;
    let (gauge, samples) = read(&recorder, "db");
    assert_eq!(gauge, Some(1.0));
    assert_eq!(samples, [0.0], "one run, taking no (paused) time");

    // A snapshot drains the histogram: each read below sees the runs since the last.
    check.set(WARN);
    advance(Duration::from_secs(1)).await;
    assert_eq!(read(&recorder, "db"), (Some(0.5), vec![0.0]));
    check.set(FAIL);
    advance(Duration::from_secs(1)).await;
    assert_eq!(read(&recorder, "db"), (Some(0.0), vec![0.0]));
    advance(Duration::from_secs(1)).await;
    advance(Duration::from_secs(1)).await;
    assert_eq!(read(&recorder, "db"), (Some(0.0), vec![0.0, 0.0]));
}

/// The exposition a Prometheus exporter renders passes `promtool check metrics`.
#[tokio::test(start_paused = true)]
async fn exposition_passes_promtool() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(CHECK_DURATION.to_owned()),
            &[0.005, 0.05, 0.5, 5.0],
        )
        .unwrap()
        .build_recorder();
    let handle = recorder.handle();
    let health = support::registry();
    metrics::with_local_recorder(&recorder, || {
        health
            .register(HealthCheck::readiness("db", Scripted::new(PASS)))
            .unwrap();
        health
            .register(HealthCheck::readiness("cache", Scripted::new(FAIL)))
            .unwrap();
    });
    settle().await;
    let text = handle.render();
    assert!(
        text.contains("palisade_health_check_status{check=\"db\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("palisade_health_check_status{check=\"cache\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "palisade_health_check_duration_seconds_bucket{check=\"db\",le=\"0.005\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("# HELP palisade_health_check_status "),
        "{text}"
    );
    if let Err(e) = palisade_testkit::promtool_check_metrics("exposition_passes_promtool", &text) {
        panic!("{e}\n{text}");
    }
}
