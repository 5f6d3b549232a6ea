//! The binaries' lifecycle: gRPC health over a real channel, drain on SIGTERM with a
//! clean exit, and one-line errors for bad configuration.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use palisade_health::grpc::pb::HealthCheckRequest;
use palisade_health::grpc::pb::health_check_response::ServingStatus;
use palisade_health::grpc::pb::health_client::HealthClient;
use support::{System, binary};
use tonic::transport::Channel;

async fn grpc_status(client: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map(|r| r.into_inner().status())
        .unwrap_or(ServingStatus::Unknown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_and_drain_on_sigterm() {
    let mut system = System::start(&[]).await;
    let channel = Channel::from_shared(format!("http://{}", system.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    assert_eq!(grpc_status(&mut health, "").await, ServingStatus::Serving);
    assert_eq!(
        grpc_status(&mut health, "inventory.v1.InventoryService").await,
        ServingStatus::Serving
    );
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope.v1.Nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // SIGTERM: readiness fails at once (gRPC and HTTP), then the process exits 0.
    system.inventory.sigterm();
    let start = Instant::now();
    while grpc_status(&mut health, "").await != ServingStatus::NotServing {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "drain never reached gRPC health"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = system.inventory.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}:\n{}", system.inventory.log());

    system.orders.sigterm();
    let status = system.orders.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "{status}:\n{}", system.orders.log());
}

fn run_with(name: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(binary(name))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configuration_is_one_line_and_a_non_zero_exit() {
    for (name, env, code, needle) in [
        (
            "inventory-service",
            vec![("INVENTORY_GRPC_ADDR", "0.0.0.0:99999")],
            2,
            "INVENTORY_GRPC_ADDR",
        ),
        (
            "inventory-service",
            vec![("INVENTORY_FAULT_ERROR_RATE", "2")],
            2,
            "INVENTORY_FAULT_ERROR_RATE",
        ),
        (
            "order-service",
            vec![("ORDER_HTTP_ADDR", "8080")],
            2,
            "ORDER_HTTP_ADDR",
        ),
        (
            "order-service",
            vec![("INVENTORY_URL", "inventory:50051")],
            2,
            "INVENTORY_URL",
        ),
        (
            "order-service",
            vec![("INVENTORY_MAX_ATTEMPTS", "0")],
            2,
            "INVENTORY_MAX_ATTEMPTS",
        ),
        (
            "order-service",
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
            ],
            2,
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (
            "inventory-service",
            vec![("OTEL_PROPAGATORS", "xray")],
            2,
            "OTEL_PROPAGATORS",
        ),
        (
            "inventory-service",
            vec![("RUST_LOG", "[[[")],
            2,
            "RUST_LOG",
        ),
        (
            "inventory-service",
            vec![("INVENTORY_DB_PATH", "/proc/no/such/dir/inventory.db")],
            1,
            "cannot open database",
        ),
        (
            "order-service",
            vec![("ORDER_DB_PATH", "/proc/no/such/dir/orders.db")],
            1,
            "cannot open database",
        ),
    ] {
        let (got, stderr) = run_with(name, &env);
        assert_eq!(got, Some(code), "{name} {env:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with(name)).collect();
        assert_eq!(lines.len(), 1, "{name} {env:?}: {stderr}");
        assert!(lines[0].contains(needle), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}
