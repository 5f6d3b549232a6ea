//! The order service's deadline travels with its inventory calls as `grpc-timeout`, and each
//! retry carries the time left, not the whole deadline again. A stand-in inventory server on
//! loopback (a real tonic server) records what each call carried.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use inventory_api::v1::inventory_service_server::{InventoryService, InventoryServiceServer};
use inventory_api::v1::{
    CheckAvailabilityRequest, CheckAvailabilityResponse, ReleaseRequest, ReleaseResponse,
    ReserveRequest, ReserveResponse,
};
use palisade_retry::grpc::parse_grpc_timeout;
use palisade_testkit::TempDir;
use support::Orders;
use tonic::{Request, Response, Status};

/// Each call's method and `grpc-timeout`.
type Seen = Arc<Mutex<Vec<(&'static str, Option<Duration>)>>>;

/// Refuses every reservation with `UNAVAILABLE` (retried by the order service) and accepts
/// every release.
#[derive(Clone, Default)]
struct Overloaded {
    seen: Seen,
}

impl Overloaded {
    fn record<T>(&self, method: &'static str, req: &Request<T>) {
        let timeout = req.metadata().get("grpc-timeout").map(|v| {
            let v = http::HeaderValue::from_bytes(v.as_bytes()).unwrap();
            parse_grpc_timeout(&v).expect("a well-formed grpc-timeout")
        });
        self.seen.lock().unwrap().push((method, timeout));
    }
}

#[tonic::async_trait]
impl InventoryService for Overloaded {
    async fn check_availability(
        &self,
        req: Request<CheckAvailabilityRequest>,
    ) -> Result<Response<CheckAvailabilityResponse>, Status> {
        self.record("CheckAvailability", &req);
        Err(Status::unavailable("overloaded"))
    }

    async fn reserve(
        &self,
        req: Request<ReserveRequest>,
    ) -> Result<Response<ReserveResponse>, Status> {
        self.record("Reserve", &req);
        Err(Status::unavailable("overloaded"))
    }

    async fn release(
        &self,
        req: Request<ReleaseRequest>,
    ) -> Result<Response<ReleaseResponse>, Status> {
        self.record("Release", &req);
        Ok(Response::new(ReleaseResponse { released: false }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_calls_carry_the_deadline_and_retries_the_time_left() {
    let inventory = Overloaded::default();
    let seen = inventory.seen.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(InventoryServiceServer::new(inventory))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let dir = TempDir::new("orders-deadline");
    let deadline = Duration::from_secs(2);
    let orders = Orders::start(&dir, addr, |c| {
        c.deadline = deadline;
        c.max_attempts = 3;
    })
    .await;

    let r = orders
        .post(
            Some("k-deadline"),
            r#"{"items":[{"sku":"KB-0001","quantity":1}]}"#,
        )
        .await;
    assert_eq!(r.status, 503, "{r:?}");
    let reserves: Vec<Duration> = {
        let seen = seen.lock().unwrap();
        for (method, timeout) in seen.iter() {
            let timeout = timeout.unwrap_or_else(|| panic!("{method} without grpc-timeout"));
            assert!(timeout <= deadline, "{method}: {timeout:?}");
        }
        seen.iter()
            .filter(|(m, _)| *m == "Reserve")
            .filter_map(|(_, t)| *t)
            .collect()
    };
    assert_eq!(
        reserves.len(),
        3,
        "every attempt reached the server: {reserves:?}"
    );
    for pair in reserves.windows(2) {
        assert!(
            pair[1] < pair[0],
            "each retry carries the time left, less than the attempt before: {reserves:?}"
        );
    }
    orders.stop().await;
}
