//! Property test: for any set of checks (kind × criticality × outcome, pending or not)
//! and drain state, the endpoint statuses and gRPC health equal a simple model of the
//! rules.

mod support;

use std::time::Duration;

use palisade_health::{Criticality, HealthCheck, HealthRegistry, Kind, Status};
use proptest::prelude::*;
use support::{FAIL, HANG, PASS, Scripted, WARN, settle};

#[derive(Debug, Clone, Copy)]
struct Spec {
    kind: Kind,
    criticality: Criticality,
    /// `None`: the check has not completed a run yet.
    status: Option<Status>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop_oneof![
            Just(Kind::Liveness),
            Just(Kind::Readiness),
            Just(Kind::Startup)
        ],
        prop_oneof![Just(Criticality::Critical), Just(Criticality::NonCritical)],
        prop_oneof![
            Just(None),
            Just(Some(Status::Pass)),
            Just(Some(Status::Warn)),
            Just(Some(Status::Fail)),
        ],
    )
        .prop_map(|(kind, criticality, status)| Spec {
            kind,
            criticality,
            status,
        })
}

/// The rules, written as plainly as possible.
fn model(specs: &[Spec], draining: bool) -> (Status, Status, Status) {
    let own = |s: &Spec| match s.status {
        Some(st) => st,
        // Pending: liveness warns, the others fail.
        None if s.kind == Kind::Liveness => Status::Warn,
        None => Status::Fail,
    };
    let worst = |kind: Kind| {
        specs
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.criticality.apply(own(s)))
            .max()
            .unwrap_or(Status::Pass)
    };
    let live = worst(Kind::Liveness);
    // Startup checks gate until each has completed a run and none fails critically.
    let started = specs
        .iter()
        .all(|s| s.kind != Kind::Startup || s.status.is_some())
        && worst(Kind::Startup) != Status::Fail;
    let startup = if started { Status::Pass } else { Status::Fail };
    let ready = if draining || !started || live == Status::Fail {
        Status::Fail
    } else {
        worst(Kind::Readiness)
    };
    (live, ready, startup)
}

fn observe(specs: &[Spec], draining: bool) -> (Status, Status, Status, bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let health = HealthRegistry::builder()
            .without_runtime_heartbeat()
            .build()
            .unwrap();
        for (i, s) in specs.iter().enumerate() {
            let mode = match s.status {
                None => HANG,
                Some(Status::Pass) => PASS,
                Some(Status::Warn) => WARN,
                Some(Status::Fail) => FAIL,
            };
            health
                .register(
                    HealthCheck::new(format!("c{i}"), s.kind, Scripted::new(mode))
                        .criticality(s.criticality)
                        .timeout(Duration::from_secs(60)),
                )
                .unwrap();
        }
        settle().await;
        if draining {
            health.drain();
        }
        let grpc_serving = grpc_all_serving(&health).await;
        (
            health.status(Kind::Liveness),
            health.status(Kind::Readiness),
            health.status(Kind::Startup),
            grpc_serving,
        )
    })
}

#[cfg(feature = "grpc")]
async fn grpc_all_serving(health: &HealthRegistry) -> bool {
    use palisade_health::grpc::pb::HealthCheckRequest;
    use palisade_health::grpc::pb::health_check_response::ServingStatus;
    use palisade_health::grpc::pb::health_server::Health as _;
    let svc = palisade_health::grpc::GrpcHealth::new(health.clone());
    let res = svc
        .check(tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        }))
        .await
        .unwrap();
    res.into_inner().status() == ServingStatus::Serving
}

#[cfg(not(feature = "grpc"))]
async fn grpc_all_serving(health: &HealthRegistry) -> bool {
    health.status(Kind::Readiness) != Status::Fail
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn endpoints_follow_the_model(specs in proptest::collection::vec(spec(), 0..8), draining in any::<bool>()) {
        let (live, ready, startup) = model(&specs, draining);
        let (got_live, got_ready, got_startup, grpc_serving) = observe(&specs, draining);
        prop_assert_eq!(got_live, live, "liveness");
        prop_assert_eq!(got_ready, ready, "readiness");
        prop_assert_eq!(got_startup, startup, "startup");
        prop_assert_eq!(grpc_serving, ready != Status::Fail, "gRPC \"\" agrees with readiness");
    }
}
