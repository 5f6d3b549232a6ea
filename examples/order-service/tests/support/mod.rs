//! Shared helpers: both services in-process on loopback, and a small HTTP/1.1 client.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use inventory_service::{FaultControl, InventoryService};
use order_service::{Config, OrderService};
use palisade_testkit::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

pub struct Inventory {
    pub grpc: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
    pub faults: FaultControl,
    pub db: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), inventory_service::Error>>>,
}

impl Inventory {
    pub async fn start(dir: &TempDir, grpc_port: u16) -> Self {
        Self::start_with(dir, grpc_port, |_| {}).await
    }

    pub async fn start_with(
        dir: &TempDir,
        grpc_port: u16,
        tune: impl FnOnce(&mut inventory_service::Config),
    ) -> Self {
        let db = dir.path().join("inventory.db");
        let mut config = inventory_service::Config::local(&db);
        config.grpc_addr.set_port(grpc_port);
        tune(&mut config);
        let service = InventoryService::bind(config).await.unwrap();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        Self {
            grpc: service.grpc_addr(),
            admin: service.admin_addr(),
            faults: service.faults(),
            db,
            stop: Some(stop),
            task: Some(tokio::spawn(service.serve(async move {
                let _ = rx.await;
            }))),
        }
    }

    pub async fn snapshot(&self) -> inventory_service::audit::InventorySnapshot {
        inventory_service::audit::snapshot(&self.db).await.unwrap()
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

pub struct Orders {
    pub addr: String,
    pub db: PathBuf,
    pub health: palisade_health::HealthRegistry,
    pub breaker: order_service::CircuitBreakerHandle,
    pub breaker_log: order_service::BreakerLog,
    pub retry_stats: order_service::RetryStats,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), order_service::Error>>>,
}

impl Orders {
    pub async fn start(
        dir: &TempDir,
        inventory_grpc: std::net::SocketAddr,
        tune: impl FnOnce(&mut Config),
    ) -> Self {
        let db = dir.path().join("orders.db");
        let mut config = Config::local(&db, format!("http://{inventory_grpc}"));
        config.reconcile_interval = Duration::from_millis(50);
        tune(&mut config);
        let service = OrderService::bind(config).await.unwrap();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        Self {
            addr: service.local_addr().to_string(),
            health: service.health(),
            breaker: service.breaker(),
            breaker_log: service.breaker_log(),
            retry_stats: service.retry_stats(),
            db,
            stop: Some(stop),
            task: Some(tokio::spawn(service.serve(async move {
                let _ = rx.await;
            }))),
        }
    }

    pub async fn snapshot(&self) -> order_service::audit::OrdersSnapshot {
        order_service::audit::snapshot(&self.db).await.unwrap()
    }

    pub async fn post(&self, key: Option<&str>, body: &str) -> Reply {
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(k) = key {
            headers.push(("idempotency-key", k.to_owned()));
        }
        request(&self.addr, "POST", "/orders", &headers, body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        request(&self.addr, "GET", path, &[], "").await
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }

    /// Starts the drain, as SIGTERM would.
    pub fn health_drain(&self) {
        self.health.drain();
    }

    /// Waits for the server to stop on its own (after a drain), at most 10 s.
    pub async fn wait(mut self) {
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the server stops after the drain delay")
            .unwrap()
            .unwrap();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// One HTTP/1.1 request with `Connection: close`; the body must be `Content-Length`
/// delimited or close-delimited (axum sends lengths for these JSON bodies).
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Polls `f` every 20 ms until it returns true, for at most `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !f().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
