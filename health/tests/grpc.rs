//! `grpc.health.v1` over a real tonic server and channel on loopback: `Check`,
//! `Watch` (including an unknown service that later appears) and `List`, following
//! readiness and drain, agreeing with `/health/ready` served by the same server; and
//! one probe with the independent Python grpcio client.
#![cfg(feature = "grpc")]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use palisade_health::grpc::pb::health_check_response::ServingStatus;
use palisade_health::grpc::pb::health_client::HealthClient;
use palisade_health::grpc::pb::{HealthCheckRequest, HealthCheckResponse, HealthListRequest};
use palisade_health::{HealthCheck, HealthRegistry};
use palisade_testkit::http;
use support::{FAIL, PASS, Scripted};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tonic::transport::{Channel, Server};
use tonic::{Code, Streaming};

const BOUND: Duration = Duration::from_secs(10);
const EVERY: Duration = Duration::from_millis(20);
const INVENTORY: &str = "inventory.v1.Inventory";

/// A tonic server with the health layer (HTTP/1 probes) and the gRPC health service,
/// shutting down on the registry's drain.
async fn serve(health: &HealthRegistry) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let router = Server::builder()
        .accept_http1(true)
        .layer(health.layer())
        .add_service(health.grpc_service());
    let shutdown = health.drained();
    let server = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .unwrap();
    });
    (addr, server)
}

async fn client(addr: SocketAddr) -> HealthClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

fn req(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

async fn check(client: &mut HealthClient<Channel>, service: &str) -> Result<ServingStatus, Code> {
    client
        .check(req(service))
        .await
        .map(|r| r.into_inner().status())
        .map_err(|s| s.code())
}

/// The next message of a Watch stream (bounded).
async fn next(stream: &mut Streaming<HealthCheckResponse>) -> ServingStatus {
    timeout(BOUND, stream.message())
        .await
        .expect("a Watch message in time")
        .expect("no error")
        .expect("the stream stays open")
        .status()
}

/// Reads Watch messages until `want` arrives; every message differs from the one
/// before (Watch sends changes only).
async fn until(stream: &mut Streaming<HealthCheckResponse>, want: ServingStatus) {
    let mut last = None;
    for _ in 0..10 {
        let got = next(stream).await;
        assert_ne!(Some(got), last, "Watch repeated {got:?}");
        if got == want {
            return;
        }
        last = Some(got);
    }
    panic!("Watch never sent {want:?}");
}

async fn list(client: &mut HealthClient<Channel>) -> Vec<(String, ServingStatus)> {
    let mut v: Vec<_> = client
        .list(HealthListRequest {})
        .await
        .unwrap()
        .into_inner()
        .statuses
        .into_iter()
        .map(|(k, r)| (k, r.status()))
        .collect();
    v.sort();
    v
}

async fn ready_http(addr: SocketAddr) -> u16 {
    http::get(&addr.to_string(), "/health/ready")
        .await
        .unwrap()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_watch_and_list_follow_readiness_and_drain() {
    let health = HealthRegistry::builder()
        .without_runtime_heartbeat()
        .drain_delay(Duration::from_millis(200))
        .build()
        .unwrap();
    let db = Scripted::new(PASS);
    let cache = Scripted::new(PASS);
    health
        .register(HealthCheck::readiness("db", db.clone()).interval(EVERY))
        .unwrap();
    health
        .register(
            HealthCheck::readiness("cache", cache.clone())
                .interval(EVERY)
                .non_critical(),
        )
        .unwrap();
    health.add_grpc_service(INVENTORY, ["db"]).unwrap();
    let (addr, server) = serve(&health).await;
    let mut c = client(addr).await;

    let mut all = c.watch(req("")).await.unwrap().into_inner();
    until(&mut all, ServingStatus::Serving).await;
    let mut inventory = c.watch(req(INVENTORY)).await.unwrap().into_inner();
    until(&mut inventory, ServingStatus::Serving).await;

    assert_eq!(check(&mut c, "").await, Ok(ServingStatus::Serving));
    assert_eq!(check(&mut c, INVENTORY).await, Ok(ServingStatus::Serving));
    assert_eq!(
        check(&mut c, "billing.v1.Billing").await,
        Err(Code::NotFound)
    );
    assert_eq!(
        list(&mut c).await,
        [
            (String::new(), ServingStatus::Serving),
            (INVENTORY.to_owned(), ServingStatus::Serving),
        ]
    );
    assert_eq!(ready_http(addr).await, 200);

    // Watch on an unknown service: SERVICE_UNKNOWN, the stream stays open, and the
    // service's status arrives when it is added.
    let mut billing = c
        .watch(req("billing.v1.Billing"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut billing).await, ServingStatus::ServiceUnknown);
    assert!(
        timeout(Duration::from_millis(200), billing.message())
            .await
            .is_err(),
        "nothing more while it is unknown, and the stream is not closed"
    );
    health
        .add_grpc_service("billing.v1.Billing", ["cache"])
        .unwrap();
    assert_eq!(next(&mut billing).await, ServingStatus::Serving);
    assert_eq!(
        check(&mut c, "billing.v1.Billing").await,
        Ok(ServingStatus::Serving)
    );

    // A critical readiness failure: the whole server and the services depending on
    // it stop serving, in step with /health/ready.
    db.set(FAIL);
    until(&mut all, ServingStatus::NotServing).await;
    until(&mut inventory, ServingStatus::NotServing).await;
    assert_eq!(ready_http(addr).await, 503);
    assert_eq!(check(&mut c, "").await, Ok(ServingStatus::NotServing));
    // billing depends on the non-critical cache only.
    assert_eq!(
        check(&mut c, "billing.v1.Billing").await,
        Ok(ServingStatus::Serving)
    );
    // A non-critical failure still serves.
    cache.set(FAIL);
    db.set(PASS);
    until(&mut all, ServingStatus::Serving).await;
    until(&mut inventory, ServingStatus::Serving).await;
    assert_eq!(ready_http(addr).await, 200);
    assert_eq!(
        check(&mut c, "billing.v1.Billing").await,
        Ok(ServingStatus::Serving)
    );

    // Drain: every service NOT_SERVING at once, HTTP readiness 503, still answering
    // during the delay.
    health.drain();
    until(&mut all, ServingStatus::NotServing).await;
    until(&mut inventory, ServingStatus::NotServing).await;
    until(&mut billing, ServingStatus::NotServing).await;
    assert_eq!(
        list(&mut c).await,
        [
            (String::new(), ServingStatus::NotServing),
            ("billing.v1.Billing".to_owned(), ServingStatus::NotServing),
            (INVENTORY.to_owned(), ServingStatus::NotServing),
        ]
    );
    assert_eq!(ready_http(addr).await, 503);

    // After the delay every Watch stream ends, and the server shuts down although the
    // client still holds its channel.
    for stream in [&mut all, &mut inventory, &mut billing] {
        let end = timeout(BOUND, stream.message()).await.unwrap();
        assert!(matches!(end, Ok(None)), "stream ended: {end:?}");
    }
    timeout(BOUND, server).await.unwrap().unwrap();
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_gates_grpc_health_too() {
    let health = HealthRegistry::builder()
        .without_runtime_heartbeat()
        .build()
        .unwrap();
    let warmup = Scripted::new(FAIL);
    health
        .register(HealthCheck::startup("warmup", warmup.clone()).interval(EVERY))
        .unwrap();
    health
        .add_grpc_service(INVENTORY, Vec::<String>::new())
        .unwrap();
    let (addr, _server) = serve(&health).await;
    let mut c = client(addr).await;
    let mut inventory = c.watch(req(INVENTORY)).await.unwrap().into_inner();
    assert_eq!(next(&mut inventory).await, ServingStatus::NotServing);
    assert_eq!(check(&mut c, "").await, Ok(ServingStatus::NotServing));
    assert_eq!(ready_http(addr).await, 503);
    warmup.set(PASS);
    assert_eq!(next(&mut inventory).await, ServingStatus::Serving);
    assert_eq!(check(&mut c, "").await, Ok(ServingStatus::Serving));
    assert_eq!(ready_http(addr).await, 200);
}

#[tokio::test]
async fn grpc_service_names_are_validated() {
    let health = HealthRegistry::builder().build().unwrap();
    assert_eq!(
        health.add_grpc_service("", ["x"]).unwrap_err().field(),
        "service"
    );
    assert_eq!(
        health
            .add_grpc_service("a".repeat(257), Vec::<String>::new())
            .unwrap_err()
            .field(),
        "service"
    );
    assert_eq!(
        health
            .add_grpc_service(INVENTORY, ["nope"])
            .unwrap_err()
            .field(),
        "checks"
    );
}

/// The independent reference client (Python grpcio + grpcio-health-checking) agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_client_checks_the_server() {
    let Some(python) = palisade_testkit::require_tool(
        "PALISADE_PYTHON",
        "python3",
        "python_grpcio_client_checks_the_server",
    ) else {
        return;
    };
    // A `python3` found on PATH may lack the packages (`.tools/env` points
    // PALISADE_PYTHON at a virtualenv that has them): treat that like a missing tool.
    let has_grpcio = tokio::process::Command::new(&python)
        .args(["-c", "import grpc, grpc_health.v1.health_pb2"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if !has_grpcio {
        let why = format!(
            "{} cannot import grpcio and grpcio-health-checking (source .tools/env)",
            python.display()
        );
        assert!(
            !palisade_testkit::in_ci(),
            "{why}; refusing to skip under CI=true"
        );
        eprintln!("SKIPPED python_grpcio_client_checks_the_server: {why}");
        return;
    }
    let health = HealthRegistry::builder()
        .without_runtime_heartbeat()
        .build()
        .unwrap();
    health
        .add_grpc_service(INVENTORY, Vec::<String>::new())
        .unwrap();
    let (addr, _server) = serve(&health).await;
    let script = r#"
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(sys.argv[1]))
name = health_pb2.HealthCheckResponse.ServingStatus.Name
print("all", name(stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status))
print("inventory", name(stub.Check(health_pb2.HealthCheckRequest(service=sys.argv[2]), timeout=5).status))
try:
    stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
    print("nope", "FOUND")
except grpc.RpcError as e:
    print("nope", e.code().name)
listed = stub.List(health_pb2.HealthListRequest(), timeout=5)
print("list", ",".join(sorted(f"{k or '<all>'}={name(v.status)}" for k, v in listed.statuses.items())))
"#;
    let out = timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(addr.to_string())
            .arg(INVENTORY)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "all SERVING",
            "inventory SERVING",
            "nope NOT_FOUND",
            "list <all>=SERVING,inventory.v1.Inventory=SERVING",
        ]
    );
}
