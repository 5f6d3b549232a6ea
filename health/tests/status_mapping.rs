//! Every status mapping: critical and non-critical checks that pass, warn, fail, time
//! out, panic or go stale, as the check's own entry and as the endpoint's status.

mod support;

use std::time::Duration;

use palisade_health::{Criticality, Details, HealthCheck, HealthRegistry, Status};
use support::{FAIL, HANG, PANIC, PASS, Scripted, WARN, advance, get, settle};

#[derive(Debug, Clone, Copy)]
enum Case {
    Pass,
    Warn,
    Fail,
    Timeout,
    Panic,
    Stale,
}

/// Runs one case; returns the `/health/ready` answer's HTTP status and JSON body.
async fn run(case: Case, criticality: Criticality) -> (u16, serde_json::Value) {
    let health = HealthRegistry::builder()
        .without_runtime_heartbeat()
        .details(Details::always())
        .build()
        .unwrap();
    let first = match case {
        Case::Pass | Case::Stale => PASS,
        Case::Warn => WARN,
        Case::Fail => FAIL,
        Case::Timeout => HANG,
        Case::Panic => PANIC,
    };
    let check = Scripted::new(first);
    health
        .register(
            HealthCheck::readiness("db", check.clone())
                .criticality(criticality)
                .interval(Duration::from_secs(10))
                .timeout(Duration::from_secs(if matches!(case, Case::Stale) {
                    60
                } else {
                    1
                }))
                .stale_after(Duration::from_secs(15)),
        )
        .unwrap();
    settle().await;
    match case {
        Case::Timeout => advance(Duration::from_millis(1001)).await,
        Case::Stale => {
            // The second run (at 10 s) hangs; at 15 s the 0 s result is stale, long
            // before the 60 s timeout.
            check.set(HANG);
            advance(Duration::from_secs(10)).await;
            assert_eq!(check.runs(), 2);
            let p = get(&health, "/health/ready").await;
            assert_eq!(p.status, 200, "still fresh at 10 s");
            advance(Duration::from_secs(5)).await;
        }
        _ => {}
    }
    let p = get(&health, "/health/ready").await;
    (p.status.as_u16(), p.json())
}

fn entry(body: &serde_json::Value) -> &serde_json::Value {
    &body["checks"]["db:responseTime"][0]
}

#[tokio::test(start_paused = true)]
async fn every_case_maps_to_the_right_statuses() {
    // (case, the check's own status, output contains, endpoint if critical, if not)
    let table = [
        (Case::Pass, "pass", None, Status::Pass, Status::Pass),
        (
            Case::Warn,
            "warn",
            Some("running hot"),
            Status::Warn,
            Status::Warn,
        ),
        (
            Case::Fail,
            "fail",
            Some("connection refused"),
            Status::Fail,
            Status::Warn,
        ),
        (
            Case::Timeout,
            "fail",
            Some("timed out after 1s"),
            Status::Fail,
            Status::Warn,
        ),
        (
            Case::Panic,
            "fail",
            Some("check panicked: scripted panic"),
            Status::Fail,
            Status::Warn,
        ),
        (
            Case::Stale,
            "fail",
            Some("stale: the last result is 15s old"),
            Status::Fail,
            Status::Warn,
        ),
    ];
    for (case, own, output, critical, non_critical) in table {
        for (criticality, expected) in [
            (Criticality::Critical, critical),
            (Criticality::NonCritical, non_critical),
        ] {
            let (code, body) = run(case, criticality).await;
            let ctx = format!("{case:?} {criticality:?}: {body}");
            assert_eq!(body["status"], expected.as_str(), "{ctx}");
            assert_eq!(code, expected.http_status().as_u16(), "{ctx}");
            assert_eq!(entry(&body)["status"], own, "{ctx}");
            match output {
                Some(text) => {
                    let out = entry(&body)["output"].as_str().unwrap_or_default();
                    assert!(out.contains(text), "{ctx}: output {out:?}");
                }
                None => assert!(entry(&body).get("output").is_none(), "{ctx}"),
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_check_keeps_being_run() {
    let health = support::registry();
    let check = Scripted::new(PANIC);
    health
        .register(HealthCheck::readiness("db", check.clone()).interval(Duration::from_secs(10)))
        .unwrap();
    settle().await;
    assert_eq!(support::ready(&health), Status::Fail);
    check.set(PASS);
    advance(Duration::from_secs(10)).await;
    assert_eq!(check.runs(), 2);
    assert_eq!(support::ready(&health), Status::Pass);
}

#[tokio::test(start_paused = true)]
async fn a_hung_check_is_cancelled_and_run_again() {
    let health = support::registry();
    let check = Scripted::new(HANG);
    health
        .register(
            HealthCheck::readiness("db", check.clone())
                .interval(Duration::from_secs(10))
                .timeout(Duration::from_secs(2)),
        )
        .unwrap();
    settle().await;
    // Pending (no result yet) counts as fail for readiness.
    assert_eq!(support::ready(&health), Status::Fail);
    advance(Duration::from_millis(1999)).await;
    assert_eq!(check.runs(), 1);
    check.set(PASS);
    advance(Duration::from_millis(1)).await;
    assert_eq!(support::ready(&health), Status::Fail, "timed out");
    // The next run starts one interval after the previous one started.
    advance(Duration::from_millis(7999)).await;
    assert_eq!(check.runs(), 1);
    advance(Duration::from_millis(1)).await;
    assert_eq!(check.runs(), 2);
    assert_eq!(support::ready(&health), Status::Pass);
}

#[tokio::test(start_paused = true)]
async fn pending_checks_fail_readiness_unless_non_critical() {
    for (criticality, expected) in [
        (Criticality::Critical, Status::Fail),
        (Criticality::NonCritical, Status::Warn),
    ] {
        let health = support::registry();
        health
            .register(
                HealthCheck::readiness("db", Scripted::new(HANG))
                    .criticality(criticality)
                    .timeout(Duration::from_secs(5)),
            )
            .unwrap();
        settle().await;
        let p = get(&health, "/health/ready").await;
        assert_eq!(p.json()["status"], expected.as_str());
    }
}

#[tokio::test(start_paused = true)]
async fn worst_check_decides_and_non_critical_failure_only_warns() {
    let health = support::registry();
    let a = Scripted::new(PASS);
    let b = Scripted::new(PASS);
    health
        .register(HealthCheck::readiness("a", a.clone()).interval(Duration::from_secs(1)))
        .unwrap();
    health
        .register(
            HealthCheck::readiness("b", b.clone())
                .interval(Duration::from_secs(1))
                .non_critical(),
        )
        .unwrap();
    settle().await;
    assert_eq!(support::ready(&health), Status::Pass);
    b.set(FAIL);
    advance(Duration::from_secs(1)).await;
    assert_eq!(support::ready(&health), Status::Warn);
    a.set(WARN);
    advance(Duration::from_secs(1)).await;
    assert_eq!(support::ready(&health), Status::Warn);
    a.set(FAIL);
    advance(Duration::from_secs(1)).await;
    assert_eq!(support::ready(&health), Status::Fail);
    a.set(PASS);
    b.set(PASS);
    advance(Duration::from_secs(1)).await;
    assert_eq!(support::ready(&health), Status::Pass);
}
