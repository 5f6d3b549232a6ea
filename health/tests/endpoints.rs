//! The HTTP endpoints: routing (GET/HEAD, pass-through), startup gating, liveness
//! gating, the runtime heartbeat, details hidden or shown, probe storms and the JSON
//! body field by field against the IETF draft "Health Check Response Format for HTTP
//! APIs".

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use palisade_health::{
    CONTENT_TYPE_HEALTH_JSON, Details, HealthCheck, HealthRegistry, Kind, Outcome, Status, check_fn,
};
use serde_json::{Value, json};
use support::{FAIL, HANG, PASS, Scripted, WARN, advance, get, send, settle};
use tower::{Service, ServiceExt};

fn request(method: Method, path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Full::default())
        .unwrap()
}

fn with_auth(path: &str, auth: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header(AUTHORIZATION, auth)
        .body(Full::default())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn get_answers_each_probe_path_with_health_json() {
    let health = support::registry();
    for path in ["/health/live", "/health/ready", "/health/startup"] {
        let p = get(&health, path).await;
        assert_eq!(p.status, StatusCode::OK, "{path}");
        assert_eq!(p.headers[CONTENT_TYPE], CONTENT_TYPE_HEALTH_JSON, "{path}");
        assert_eq!(p.headers[CACHE_CONTROL], "no-store", "{path}");
        assert_eq!(p.body, r#"{"status":"pass"}"#, "{path}");
    }
}

#[tokio::test(start_paused = true)]
async fn head_gets_the_status_and_length_without_a_body() {
    let health = support::registry();
    let check = Scripted::new(FAIL);
    health
        .register(HealthCheck::readiness("db", check.clone()))
        .unwrap();
    settle().await;
    let get = get(&health, "/health/ready").await;
    let head = send(&health, request(Method::HEAD, "/health/ready")).await;
    assert_eq!(get.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(head.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(head.body.is_empty(), "HEAD has no body: {:?}", head.body);
    assert_eq!(head.headers[CONTENT_TYPE], CONTENT_TYPE_HEALTH_JSON);
    assert_eq!(
        head.headers[CONTENT_LENGTH],
        get.body.len().to_string().as_str()
    );
    let live = send(&health, request(Method::HEAD, "/health/live")).await;
    assert_eq!(live.status, StatusCode::OK);
    assert!(live.body.is_empty());
}

#[tokio::test(start_paused = true)]
async fn other_requests_pass_through_untouched() {
    let health = support::registry();
    // A failing readiness must not affect other routes.
    health
        .register(HealthCheck::readiness("db", Scripted::new(FAIL)))
        .unwrap();
    settle().await;
    for (method, path) in [
        (Method::GET, "/orders"),
        (Method::POST, "/health/ready"),
        (Method::PUT, "/health/live"),
        (Method::DELETE, "/health/startup"),
        (Method::OPTIONS, "/health/ready"),
        (Method::GET, "/health/ready/"),
        (Method::GET, "/health/readyz"),
        (Method::GET, "/health"),
        (Method::GET, "/HEALTH/READY"),
    ] {
        let p = send(&health, request(method.clone(), path)).await;
        assert_eq!(p.status, StatusCode::OK, "{method} {path}");
        assert_eq!(p.body, format!("inner {method} {path}"), "{method} {path}");
    }
    // The query string does not change which endpoint answers.
    let p = get(&health, "/health/ready?verbose=1").await;
    assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(start_paused = true)]
async fn paths_are_configurable_and_validated() {
    let health = HealthRegistry::builder()
        .without_runtime_heartbeat()
        .live_path("/livez")
        .ready_path("/readyz")
        .startup_path("/startupz")
        .build()
        .unwrap();
    for path in ["/livez", "/readyz", "/startupz"] {
        assert_eq!(get(&health, path).await.body, r#"{"status":"pass"}"#);
    }
    assert_eq!(
        get(&health, "/health/ready").await.body,
        "inner GET /health/ready"
    );

    for (builder, field) in [
        (HealthRegistry::builder().ready_path("ready"), "paths.ready"),
        (HealthRegistry::builder().live_path("/l?x"), "paths.live"),
        (
            HealthRegistry::builder().startup_path("/s#"),
            "paths.startup",
        ),
        (
            HealthRegistry::builder().live_path("/health/ready"),
            "paths",
        ),
        (
            HealthRegistry::builder().details(Details::token("")),
            "details",
        ),
        (
            HealthRegistry::builder().details(Details::token("a b")),
            "details",
        ),
        (
            HealthRegistry::builder().shutdown_timeout(Duration::ZERO),
            "shutdown_timeout",
        ),
        (
            HealthRegistry::builder().runtime_heartbeat(Duration::ZERO, Duration::from_secs(1)),
            "runtime_heartbeat.interval",
        ),
        (
            HealthRegistry::builder().runtime_heartbeat(Duration::from_secs(1), Duration::ZERO),
            "runtime_heartbeat.max_lag",
        ),
    ] {
        let err = builder.build().unwrap_err();
        assert_eq!(err.field(), field, "{err}");
    }
}

#[test]
fn building_outside_a_runtime_is_an_error_not_a_panic() {
    let err = HealthRegistry::builder().build().unwrap_err();
    assert_eq!(err.field(), "runtime");
}

#[tokio::test(start_paused = true)]
async fn duplicate_check_names_are_rejected() {
    let health = HealthRegistry::builder().build().unwrap();
    health
        .register(HealthCheck::readiness("db", Scripted::new(PASS)))
        .unwrap();
    let err = health
        .register(HealthCheck::liveness("db", Scripted::new(PASS)))
        .unwrap_err();
    assert_eq!(err.field(), "name");
    // `runtime` is the built-in heartbeat's name.
    let err = health
        .register(HealthCheck::liveness("runtime", Scripted::new(PASS)))
        .unwrap_err();
    assert_eq!(err.field(), "name");
    assert_eq!(health.check_names(), ["runtime", "db"]);
}

#[tokio::test(start_paused = true)]
async fn startup_gates_readiness_until_startup_checks_pass_once() {
    let health = support::registry();
    let startup = Scripted::new(FAIL);
    let ready = Scripted::new(PASS);
    let live = Scripted::new(PASS);
    let every = Duration::from_secs(1);
    health
        .register(HealthCheck::startup("migrations", startup.clone()).interval(every))
        .unwrap();
    health
        .register(HealthCheck::readiness("db", ready.clone()).interval(every))
        .unwrap();
    health
        .register(HealthCheck::liveness("loop", live.clone()).interval(every))
        .unwrap();
    settle().await;

    assert!(!health.is_started());
    let s = get(&health, "/health/startup").await;
    assert_eq!(s.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = get(&health, "/health/ready").await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "ready waits for startup"
    );
    let l = get(&health, "/health/live").await;
    assert_eq!(l.status, StatusCode::OK, "liveness passes while starting");

    startup.set(PASS);
    advance(every).await;
    assert!(health.is_started());
    assert_eq!(get(&health, "/health/startup").await.status, StatusCode::OK);
    assert_eq!(get(&health, "/health/ready").await.status, StatusCode::OK);

    // Once started, a later startup failure changes nothing: Kubernetes has stopped
    // probing startup, and readiness follows the readiness checks only.
    startup.set(FAIL);
    advance(every).await;
    assert!(health.is_started());
    assert_eq!(get(&health, "/health/startup").await.status, StatusCode::OK);
    assert_eq!(get(&health, "/health/ready").await.status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn startup_that_is_pending_fails_ready_and_startup_with_a_reason() {
    let health = HealthRegistry::builder()
        .without_runtime_heartbeat()
        .details(Details::always())
        .build()
        .unwrap();
    health
        .register(
            HealthCheck::startup("warmup", Scripted::new(HANG)).timeout(Duration::from_secs(30)),
        )
        .unwrap();
    settle().await;
    let body = get(&health, "/health/ready").await.json();
    assert_eq!(body["status"], "fail");
    let output = body["output"].as_str().unwrap();
    assert!(output.starts_with("starting"), "{output}");
    assert!(output.contains("warmup"), "{output}");
    // The startup check is listed in readiness while it gates it.
    assert_eq!(body["checks"]["warmup:responseTime"][0]["status"], "fail");
    let startup = get(&health, "/health/startup").await.json();
    assert_eq!(startup["status"], "fail");
    assert_eq!(get(&health, "/health/live").await.status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn failing_liveness_fails_readiness_but_readiness_never_fails_liveness() {
    let health = support::registry();
    let live = Scripted::new(PASS);
    let ready = Scripted::new(FAIL);
    let every = Duration::from_secs(1);
    health
        .register(HealthCheck::liveness("loop", live.clone()).interval(every))
        .unwrap();
    health
        .register(HealthCheck::readiness("db", ready.clone()).interval(every))
        .unwrap();
    settle().await;
    assert_eq!(health.status(Kind::Liveness), Status::Pass);
    assert_eq!(health.status(Kind::Readiness), Status::Fail);

    live.set(FAIL);
    ready.set(PASS);
    advance(every).await;
    assert_eq!(health.status(Kind::Liveness), Status::Fail);
    assert_eq!(health.status(Kind::Readiness), Status::Fail);
    assert_eq!(get(&health, "/health/live").await.status, 503);

    live.set(WARN);
    advance(every).await;
    assert_eq!(health.status(Kind::Liveness), Status::Warn);
    assert_eq!(health.status(Kind::Readiness), Status::Pass);
    assert_eq!(get(&health, "/health/live").await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn runtime_heartbeat_fails_liveness_when_the_runtime_stalls() {
    let health = HealthRegistry::builder()
        .details(Details::always())
        .runtime_heartbeat(Duration::from_secs(1), Duration::from_secs(5))
        .build()
        .unwrap();
    assert_eq!(
        health.status(Kind::Liveness),
        Status::Pass,
        "live from the first probe"
    );
    settle().await;
    let live = get(&health, "/health/live").await.json();
    assert_eq!(live["status"], "pass", "{live}");
    let beat = &live["checks"]["runtime:lag"][0];
    assert_eq!(beat["status"], "pass");
    assert_eq!(beat["observedUnit"], "ms");
    assert_eq!(beat["componentType"], "system");

    // The clock jumps 10 s past a beat that was due in 1 s: it wakes 9 s late.
    tokio::time::advance(Duration::from_secs(10)).await;
    settle().await;
    let live = get(&health, "/health/live").await;
    assert_eq!(live.status, StatusCode::SERVICE_UNAVAILABLE);
    let beat = live.json()["checks"]["runtime:lag"][0].clone();
    assert_eq!(beat["status"], "fail");
    assert!(beat["observedValue"].as_f64().unwrap() > 5000.0, "{beat}");
    assert!(beat["output"].as_str().unwrap().contains("runtime stalled"));
    assert_eq!(health.status(Kind::Readiness), Status::Fail);

    // The next beat is on time again.
    advance(Duration::from_secs(1)).await;
    assert_eq!(health.status(Kind::Liveness), Status::Pass);
    assert_eq!(health.status(Kind::Readiness), Status::Pass);
}

#[tokio::test(start_paused = true)]
async fn details_are_hidden_by_default() {
    let health = HealthRegistry::builder()
        .without_runtime_heartbeat()
        .version("1")
        .release_id("1.2.3")
        .service_id("svc")
        .build()
        .unwrap();
    health
        .register(HealthCheck::readiness(
            "db",
            check_fn(|| async { Err::<(), _>("password authentication failed for 10.0.0.7") }),
        ))
        .unwrap();
    settle().await;
    let p = get(&health, "/health/ready").await;
    assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(p.body, r#"{"status":"fail"}"#);
    // Even with a token-looking header.
    let p = send(&health, with_auth("/health/ready", "Bearer anything")).await;
    assert_eq!(p.body, r#"{"status":"fail"}"#);
}

#[tokio::test(start_paused = true)]
async fn details_are_shown_only_for_the_configured_token() {
    let health = HealthRegistry::builder()
        .without_runtime_heartbeat()
        .details(Details::token("s3cret-token"))
        .release_id("1.2.3")
        .build()
        .unwrap();
    health
        .register(HealthCheck::readiness(
            "db",
            check_fn(|| async { Err::<(), _>("connection refused") }),
        ))
        .unwrap();
    settle().await;
    let hidden = r#"{"status":"fail"}"#;
    for auth in [
        None,
        Some("Bearer s3cret-toke"),
        Some("Bearer s3cret-token2"),
        Some("Bearer S3CRET-TOKEN"),
        Some("Basic s3cret-token"),
        Some("s3cret-token"),
        Some("Bearer "),
    ] {
        let req = match auth {
            Some(a) => with_auth("/health/ready", a),
            None => request(Method::GET, "/health/ready"),
        };
        let p = send(&health, req).await;
        assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE, "{auth:?}");
        assert_eq!(p.body, hidden, "{auth:?}");
    }
    for auth in ["Bearer s3cret-token", "bearer  s3cret-token "] {
        let p = send(&health, with_auth("/health/ready", auth)).await;
        let body = p.json();
        assert_eq!(body["releaseId"], "1.2.3", "{auth}");
        assert_eq!(
            body["checks"]["db:responseTime"][0]["output"],
            "connection refused"
        );
    }
    // A second Authorization header carrying the token also counts.
    let req = Request::get("/health/ready")
        .header(AUTHORIZATION, "Basic x")
        .header(AUTHORIZATION, "Bearer s3cret-token")
        .body(Full::default())
        .unwrap();
    assert!(send(&health, req).await.json().get("checks").is_some());
}

/// The JSON body, field by field, against the draft's rules.
#[tokio::test(start_paused = true)]
async fn json_body_follows_the_draft_field_by_field() {
    let health = HealthRegistry::builder()
        .without_runtime_heartbeat()
        .details(Details::always())
        .version("1")
        .release_id("1.2.3")
        .service_id("f03e522f-1f44-4062-9b55-9587f91c9c41")
        .description("orders")
        .build()
        .unwrap();
    health
        .register(
            HealthCheck::readiness(
                "db",
                check_fn(|| async { Outcome::pass().observed(12, "connections") }),
            )
            .measurement("connections")
            .component_type("datastore")
            .component_id("primary"),
        )
        .unwrap();
    health
        .register(
            HealthCheck::readiness("cache", check_fn(|| async { Outcome::warn("slow") }))
                .non_critical(),
        )
        .unwrap();
    health
        .register(
            HealthCheck::readiness("search", check_fn(|| async { Err::<(), _>("refused") }))
                .non_critical(),
        )
        .unwrap();
    settle().await;
    let p = get(&health, "/health/ready").await;
    assert_eq!(p.status, StatusCode::OK, "warn is 200");
    assert_eq!(p.headers[CONTENT_TYPE], "application/health+json");
    let body = p.json();
    let top = body.as_object().unwrap();

    // Top level: status, output (not for pass), version, releaseId, serviceId,
    // description, checks; nothing else.
    let mut keys: Vec<&str> = top.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "checks",
            "description",
            "output",
            "releaseId",
            "serviceId",
            "status",
            "version"
        ]
    );
    assert_eq!(top["status"], "warn");
    assert_eq!(top["version"], "1");
    assert_eq!(top["releaseId"], "1.2.3");
    assert_eq!(top["serviceId"], "f03e522f-1f44-4062-9b55-9587f91c9c41");
    assert_eq!(top["description"], "orders");
    let output = top["output"].as_str().unwrap();
    assert!(
        output.contains("cache") && output.contains("search"),
        "{output}"
    );

    // checks: keyed `component:measurement`, each an array of objects.
    let checks = top["checks"].as_object().unwrap();
    let mut keys: Vec<&str> = checks.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "cache:responseTime",
            "db:connections",
            "search:responseTime"
        ]
    );
    for (key, value) in checks {
        let arr = value
            .as_array()
            .unwrap_or_else(|| panic!("{key} is an array"));
        assert_eq!(arr.len(), 1, "{key}");
        let time = arr[0]["time"].as_str().unwrap();
        assert_rfc3339(time);
    }

    let db = checks["db:connections"][0].as_object().unwrap();
    assert_eq!(db["status"], "pass");
    assert_eq!(db["observedValue"], 12);
    assert_eq!(db["observedUnit"], "connections");
    assert_eq!(db["componentType"], "datastore");
    assert_eq!(db["componentId"], "primary");
    assert!(!db.contains_key("output"), "no output for pass");

    let cache = checks["cache:responseTime"][0].as_object().unwrap();
    assert_eq!(cache["status"], "warn");
    assert_eq!(cache["output"], "slow");
    // Without an observed value, the run time in milliseconds.
    assert!(cache["observedValue"].as_f64().unwrap() >= 0.0);
    assert_eq!(cache["observedUnit"], "ms");
    assert!(!cache.contains_key("componentType"));

    // A non-critical failure reports its own `fail`; the endpoint only warns.
    let search = checks["search:responseTime"][0].as_object().unwrap();
    assert_eq!(search["status"], "fail");
    assert_eq!(search["output"], "refused");

    // A passing endpoint has no top-level output, and liveness lists no readiness check.
    let live = get(&health, "/health/live").await.json();
    assert_eq!(
        live,
        json!({"status": "pass", "version": "1", "releaseId": "1.2.3",
               "serviceId": "f03e522f-1f44-4062-9b55-9587f91c9c41", "description": "orders"})
    );
}

/// Instances of one component (their own names and `componentId`s, one `component`) are
/// listed together under one `component:measurement` key, in registration order, and the
/// worst of them decides; other checks keep their own keys.
#[tokio::test(start_paused = true)]
async fn instances_of_one_component_share_one_key() {
    let health = HealthRegistry::builder()
        .without_runtime_heartbeat()
        .details(Details::always())
        .build()
        .unwrap();
    for (name, id, outcome) in [
        ("db-primary", "primary", Outcome::pass()),
        ("db-replica", "replica", Outcome::warn("lagging 12 s")),
    ] {
        health
            .register(
                HealthCheck::readiness(
                    name,
                    check_fn(move || {
                        let o = outcome.clone();
                        async move { o }
                    }),
                )
                .non_critical()
                .component("postgres")
                .component_id(id),
            )
            .unwrap();
    }
    health
        .register(HealthCheck::readiness(
            "cache",
            check_fn(|| async { Outcome::pass() }),
        ))
        .unwrap();
    settle().await;
    let p = get(&health, "/health/ready").await;
    assert_eq!(p.status, StatusCode::OK);
    let body = p.json();
    assert_eq!(body["status"], "warn");
    let checks = body["checks"].as_object().unwrap();
    let mut keys: Vec<&str> = checks.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["cache:responseTime", "postgres:responseTime"]);
    let instances = checks["postgres:responseTime"].as_array().unwrap();
    let seen: Vec<(&str, &str)> = instances
        .iter()
        .map(|i| {
            (
                i["componentId"].as_str().unwrap(),
                i["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, [("primary", "pass"), ("replica", "warn")]);
    assert_eq!(instances[1]["output"], "lagging 12 s");
    assert_eq!(checks["cache:responseTime"].as_array().unwrap().len(), 1);

    // The component obeys the name rules.
    let err = health
        .register(
            HealthCheck::readiness("x", check_fn(|| async { Outcome::pass() })).component("a:b"),
        )
        .unwrap_err();
    assert!(err.to_string().contains("component"), "{err}");
}

fn assert_rfc3339(t: &str) {
    let b = t.as_bytes();
    assert_eq!(b.len(), 24, "{t}");
    for (i, c) in b.iter().enumerate() {
        match i {
            4 | 7 => assert_eq!(*c, b'-', "{t}"),
            10 => assert_eq!(*c, b'T', "{t}"),
            13 | 16 => assert_eq!(*c, b':', "{t}"),
            19 => assert_eq!(*c, b'.', "{t}"),
            23 => assert_eq!(*c, b'Z', "{t}"),
            _ => assert!(c.is_ascii_digit(), "{t}"),
        }
    }
    let year: u32 = t[..4].parse().unwrap();
    assert!(year >= 2024, "{t}");
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_probes_in_one_interval_run_the_check_once() {
    let health = support::registry();
    let check = Scripted::new(PASS);
    health
        .register(HealthCheck::readiness("db", check.clone()).interval(Duration::from_secs(10)))
        .unwrap();
    settle().await;
    assert_eq!(check.runs(), 1);

    let mut svc = tower::Layer::layer(&health.layer(), support::app());
    for i in 0..10_000u32 {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(request(Method::GET, "/health/ready"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "probe {i}");
        // Spread over 9.999 s of the 10 s interval.
        tokio::time::advance(Duration::from_micros(999)).await;
    }
    settle().await;
    assert_eq!(check.runs(), 1, "probes never run a check");
    advance(Duration::from_millis(10)).await;
    assert_eq!(check.runs(), 2, "the next interval does");
}

#[tokio::test(start_paused = true)]
async fn stale_results_fail_even_without_a_new_run() {
    // The staleness bound also covers a checker that cannot run at all: a probe that
    // finds the snapshot past its expiry rebuilds it.
    let health = HealthRegistry::builder()
        .without_runtime_heartbeat()
        .details(Details::always())
        .build()
        .unwrap();
    let check = Scripted::new(PASS);
    health
        .register(
            HealthCheck::readiness("db", check.clone())
                .interval(Duration::from_secs(10))
                .timeout(Duration::from_secs(60))
                .stale_after(Duration::from_secs(12)),
        )
        .unwrap();
    settle().await;
    check.set(HANG);
    advance(Duration::from_millis(11_999)).await;
    assert_eq!(get(&health, "/health/ready").await.status, StatusCode::OK);
    tokio::time::advance(Duration::from_millis(1)).await;
    let p = get(&health, "/health/ready").await;
    assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = p.json();
    assert!(
        v["checks"]["db:responseTime"][0]["output"]
            .as_str()
            .unwrap()
            .starts_with("stale")
    );
}

#[tokio::test(start_paused = true)]
async fn closure_checks_accept_results_bools_and_outcomes() {
    let health = HealthRegistry::builder()
        .without_runtime_heartbeat()
        .details(Details::always())
        .build()
        .unwrap();
    health
        .register(HealthCheck::readiness("unit", check_fn(|| async {})))
        .unwrap();
    health
        .register(HealthCheck::readiness("flag", check_fn(|| async { false })).non_critical())
        .unwrap();
    health
        .register(HealthCheck::readiness(
            "ok",
            check_fn(|| async { Ok::<_, std::io::Error>(Outcome::pass().observed(1.5, "ms")) }),
        ))
        .unwrap();
    settle().await;
    let body = get(&health, "/health/ready").await.json();
    assert_eq!(body["status"], "warn");
    assert_eq!(body["checks"]["unit:responseTime"][0]["status"], "pass");
    assert_eq!(body["checks"]["flag:responseTime"][0]["status"], "fail");
    assert_eq!(
        body["checks"]["flag:responseTime"][0]["output"],
        "check returned false"
    );
    assert_eq!(body["checks"]["ok:responseTime"][0]["observedValue"], 1.5);
}
