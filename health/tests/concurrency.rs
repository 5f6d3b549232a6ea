//! Probes from several threads while results change under them: every answer is one
//! consistent snapshot (the status code matches the body's status, and the body lists
//! the check with a status allowed by the endpoint's).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use palisade_health::{Details, HealthCheck, HealthRegistry};
use support::{FAIL, PASS, Scripted, WARN};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_probes_see_consistent_snapshots_while_results_change() {
    let health = HealthRegistry::builder()
        .details(Details::always())
        .build()
        .unwrap();
    let db = Scripted::new(PASS);
    health
        .register(HealthCheck::readiness("db", db.clone()).interval(Duration::from_millis(1)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = tokio::spawn({
        let (db, stop) = (db.clone(), Arc::clone(&stop));
        async move {
            for i in 0..10_000u32 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                db.set([PASS, WARN, FAIL][i as usize % 3]);
                tokio::time::sleep(Duration::from_micros(300)).await;
            }
        }
    });
    let mut probers = Vec::new();
    for _ in 0..4 {
        let health = health.clone();
        probers.push(tokio::spawn(async move {
            let mut seen = [0usize; 3];
            for _ in 0..2_000 {
                let p = support::get(&health, "/health/ready").await;
                let body = p.json();
                let status = body["status"].as_str().unwrap().to_owned();
                let own = body["checks"]["db:responseTime"][0]["status"]
                    .as_str()
                    .map(str::to_owned);
                match (p.status.as_u16(), status.as_str()) {
                    (200, "pass") => {
                        seen[0] += 1;
                        assert_eq!(own.as_deref(), Some("pass"), "{body}");
                    }
                    (200, "warn") => {
                        seen[1] += 1;
                        assert_eq!(own.as_deref(), Some("warn"), "{body}");
                    }
                    (503, "fail") => {
                        seen[2] += 1;
                        // Failing db, or pending before its first run.
                        assert_eq!(own.as_deref(), Some("fail"), "{body}");
                    }
                    other => panic!("inconsistent answer {other:?}: {body}"),
                }
                tokio::task::yield_now().await;
            }
            seen
        }));
    }
    let mut total = [0usize; 3];
    for p in probers {
        let seen = p.await.unwrap();
        for i in 0..3 {
            total[i] += seen[i];
        }
    }
    stop.store(true, Ordering::SeqCst);
    flipper.await.unwrap();
    assert_eq!(total.iter().sum::<usize>(), 8_000);
    assert!(
        total.iter().filter(|n| **n > 0).count() >= 2,
        "results changed under the probes: {total:?}"
    );
}
