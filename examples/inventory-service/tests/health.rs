//! Health of the inventory service: `grpc.health.v1` over a real channel and the HTTP
//! endpoints on the admin port agree, and both follow drain.

use std::time::Duration;

use inventory_service::{Config, InventoryService};
use palisade_health::grpc::pb::HealthCheckRequest;
use palisade_health::grpc::pb::health_check_response::ServingStatus;
use palisade_health::grpc::pb::health_client::HealthClient;
use palisade_testkit::TempDir;
use tonic::transport::Channel;

async fn status(
    client: &mut HealthClient<Channel>,
    service: &str,
) -> Result<ServingStatus, tonic::Status> {
    let r = client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    Ok(r.into_inner().status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_and_http_readiness_follow_drain() {
    let dir = TempDir::new("inventory-health");
    let mut config = Config::local(dir.path().join("inventory.db"));
    config.drain_delay = Duration::from_millis(400);
    let service = InventoryService::bind(config).await.unwrap();
    let grpc = service.grpc_addr();
    let admin = service.admin_addr().to_string();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(service.serve(async move {
        let _ = rx.await;
    }));
    let channel = Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);

    // The database check runs in the background; wait for its first result.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while status(&mut client, "").await.unwrap() != ServingStatus::Serving {
        assert!(std::time::Instant::now() < deadline, "never became SERVING");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        status(&mut client, "inventory.v1.InventoryService")
            .await
            .unwrap(),
        ServingStatus::Serving
    );
    assert_eq!(
        status(&mut client, "no.such.Service")
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );
    let ready = palisade_testkit::http::get(&admin, "/health/ready")
        .await
        .unwrap();
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(
        ready.body.contains("sqlite"),
        "details are shown on the admin port: {}",
        ready.body
    );
    let live = palisade_testkit::http::get(&admin, "/health/live")
        .await
        .unwrap();
    assert_eq!(live.status, 200);

    // Drain: readiness fails at once on both protocols while requests are still served.
    stop.send(()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while status(&mut client, "").await.unwrap() != ServingStatus::NotServing {
        assert!(
            std::time::Instant::now() < deadline,
            "drain did not reach gRPC health"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        status(&mut client, "inventory.v1.InventoryService")
            .await
            .unwrap(),
        ServingStatus::NotServing
    );
    let ready = palisade_testkit::http::get(&admin, "/health/ready")
        .await
        .unwrap();
    assert_eq!(ready.status, 503);
    // After the delay the servers stop.
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("servers stop after the drain delay")
        .unwrap()
        .unwrap();
}
