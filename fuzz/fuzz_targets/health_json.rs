//! Health JSON rendering of arbitrary check outputs: checks with arbitrary names, outputs,
//! observed values and units, component types and ids, and registry metadata. Registering
//! either succeeds or is a `ConfigError`; every probe then answers valid
//! `application/health+json` whose `status` matches the HTTP status, and with details hidden
//! no check appears.
#![no_main]

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use palisade_health::{Details, HealthCheck, HealthRegistry, Kind, Outcome, check_fn};
use tower::{Layer as _, ServiceExt as _, service_fn};

struct CheckSpec {
    name: String,
    kind: Kind,
    outcome: u8,
    output: String,
    value: Option<(u8, i64, f64, String)>,
    unit: String,
    component_type: Option<String>,
    component_id: Option<String>,
}

fn spec(u: &mut Unstructured<'_>) -> ArbResult<CheckSpec> {
    Ok(CheckSpec {
        name: u.arbitrary()?,
        kind: *u.choose(&[Kind::Liveness, Kind::Readiness, Kind::Startup])?,
        outcome: u.int_in_range(0..=2)?,
        output: u.arbitrary()?,
        value: if u.arbitrary()? {
            Some((
                u.int_in_range(0..=3)?,
                u.arbitrary()?,
                u.arbitrary()?,
                u.arbitrary()?,
            ))
        } else {
            None
        },
        unit: u.arbitrary()?,
        component_type: u.arbitrary()?,
        component_id: u.arbitrary()?,
    })
}

fn outcome(s: &CheckSpec) -> Outcome {
    let o = match s.outcome {
        0 => Outcome::pass(),
        1 => Outcome::warn(s.output.clone()),
        _ => Outcome::fail(s.output.clone()),
    };
    match &s.value {
        None => o,
        Some((0, i, _, _)) => o.observed(*i, s.unit.clone()),
        Some((1, _, f, _)) => o.observed(*f, s.unit.clone()),
        Some((2, i, _, _)) => o.observed(*i % 2 == 0, s.unit.clone()),
        Some((_, _, _, t)) => o.observed(t.clone(), s.unit.clone()),
    }
}

async fn probe(health: &HealthRegistry, path: &str) -> (StatusCode, serde_json::Value) {
    let app = service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let res = health
        .layer()
        .layer(app)
        .oneshot(Request::get(path).body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body:?}"));
    (status, json)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(n) = u.int_in_range(0..=6u8) else { return };
    let mut specs = Vec::new();
    for _ in 0..n {
        let Ok(s) = spec(&mut u) else { return };
        specs.push(s);
    }
    let release: String = u.arbitrary().unwrap_or_default();
    let show = u.arbitrary().unwrap_or(true);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let Ok(health) = HealthRegistry::builder()
            .without_runtime_heartbeat()
            .release_id(release)
            .details(if show {
                Details::always()
            } else {
                Details::hidden()
            })
            .build()
        else {
            return;
        };
        for s in specs {
            let o = outcome(&s);
            let mut check = HealthCheck::new(
                s.name.clone(),
                s.kind,
                check_fn(move || {
                    let o = o.clone();
                    async move { o }
                }),
            )
            .interval(Duration::from_secs(1));
            if let Some(t) = s.component_type {
                check = check.component_type(t);
            }
            if let Some(id) = s.component_id {
                check = check.component_id(id);
            }
            // Bad names are a ConfigError, not a panic.
            let _ = health.register(check);
        }
        // Let the background checks run once.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        tokio::time::advance(Duration::from_millis(10)).await;
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        for path in ["/health/live", "/health/ready", "/health/startup"] {
            let (status, json) = probe(&health, path).await;
            let s = json["status"].as_str().expect("a status string");
            assert!(matches!(s, "pass" | "warn" | "fail"), "{path}: {s}");
            assert_eq!(status == StatusCode::OK, s != "fail", "{path}: {status} {s}");
            if !show {
                assert!(json.get("checks").is_none(), "{path}: details leaked: {json}");
            }
        }
    });
});
