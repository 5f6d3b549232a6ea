//! Starting the real binaries, and a small HTTP/1.1 client.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use palisade_testkit::{TempDir, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The path of a workspace binary, next to this test's own target directory
/// (`target/<profile>/deps/<test>` → `target/<profile>/<name>`).
///
/// # Panics
///
/// When the binary has not been built, with the command that builds it.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let bin = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `cargo build -p {name}` (with the same profile \
         as the tests), or run `cargo test --workspace`, which builds every binary",
        bin.display()
    );
    bin
}

/// A running binary; killed on drop. Its output goes to a log file shown on failure.
pub struct Proc {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, env: &[(&str, String)], dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(binary(name));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early ({status}):\n{}", self.name, self.log());
        }
    }

    /// Sends SIGTERM, as Kubernetes and docker do.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits (polling, at most `timeout`) for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "{} did not exit within {timeout:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Both services as real processes on free loopback ports.
pub struct System {
    pub inventory: Proc,
    pub orders: Proc,
    pub grpc: String,
    pub admin: String,
    pub http: String,
    pub inventory_db: PathBuf,
    pub orders_db: PathBuf,
    pub dir: TempDir,
}

impl System {
    /// Starts the inventory service, then the order service, with `extra` environment
    /// variables for both (e.g. the OTLP endpoint), and waits until both are ready.
    pub async fn start(extra: &[(&str, String)]) -> Self {
        let dir = TempDir::new("palisade-system");
        let (grpc, admin, http) = (free_port(), free_port(), free_port());
        let inventory_db = dir.path().join("inventory.db");
        let orders_db = dir.path().join("orders.db");
        let mut env: Vec<(&str, String)> = vec![
            ("INVENTORY_GRPC_ADDR", format!("127.0.0.1:{grpc}")),
            ("INVENTORY_ADMIN_ADDR", format!("127.0.0.1:{admin}")),
            ("INVENTORY_DB_PATH", inventory_db.display().to_string()),
            ("INVENTORY_DRAIN_DELAY_MS", "300".into()),
            ("OTEL_SERVICE_NAME", "inventory-service".into()),
        ];
        env.extend(extra.iter().cloned());
        let inventory = Proc::spawn("inventory-service", &env, dir.path());
        let mut env: Vec<(&str, String)> = vec![
            ("ORDER_HTTP_ADDR", format!("127.0.0.1:{http}")),
            ("ORDER_DB_PATH", orders_db.display().to_string()),
            ("INVENTORY_URL", format!("http://127.0.0.1:{grpc}")),
            ("INVENTORY_TRY_TIMEOUT_MS", "300".into()),
            ("INVENTORY_DEADLINE_MS", "1000".into()),
            ("INVENTORY_BREAKER_WAIT_MS", "800".into()),
            ("ORDER_RECONCILE_INTERVAL_MS", "100".into()),
            ("ORDER_PENDING_GRACE_MS", "5000".into()),
            ("ORDER_DRAIN_DELAY_MS", "300".into()),
            ("OTEL_SERVICE_NAME", "order-service".into()),
        ];
        env.extend(extra.iter().cloned());
        let orders = Proc::spawn("order-service", &env, dir.path());
        let mut system = Self {
            inventory,
            orders,
            grpc: format!("127.0.0.1:{grpc}"),
            admin: format!("127.0.0.1:{admin}"),
            http: format!("127.0.0.1:{http}"),
            inventory_db,
            orders_db,
            dir,
        };
        system.wait_ready().await;
        system
    }

    async fn wait_ready(&mut self) {
        let start = Instant::now();
        for addr in [self.admin.clone(), self.http.clone()] {
            loop {
                self.inventory.assert_running();
                self.orders.assert_running();
                if let Ok(r) = palisade_testkit::http::get(&addr, "/health/ready").await
                    && r.status == 200
                {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "{addr} never became ready"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    pub async fn post_order(&self, key: Option<&str>, body: &str) -> Reply {
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(k) = key {
            headers.push(("idempotency-key", k.to_owned()));
        }
        request(&self.http, "POST", "/orders", &headers, body).await
    }

    pub async fn set_faults(&self, body: &str) {
        let method = if body.is_empty() { "DELETE" } else { "PUT" };
        let r = request(
            &self.admin,
            method,
            "/admin/faults",
            &[("content-type", "application/json".into())],
            body,
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
    pub elapsed: Duration,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Reply {
    let start = Instant::now();
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
    let elapsed = start.elapsed();
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
        elapsed,
    }
}
