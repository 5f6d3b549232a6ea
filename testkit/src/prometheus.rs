//! A real Prometheus server on loopback that scrapes the test's services, and
//! `promtool check metrics` over an exposition.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{ChildGuard, TempDir, free_port, poll_until, require_tool};

/// One scrape job: a name, a `host:port` target and the metrics path.
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    /// The `job` label Prometheus gives the series.
    pub job: String,
    /// `host:port` to scrape.
    pub address: String,
    /// Metrics path, e.g. `/metrics`.
    pub path: String,
}

impl ScrapeTarget {
    /// A target scraped at `path` on `address`.
    pub fn new(job: &str, address: impl Into<String>, path: &str) -> Self {
        Self {
            job: job.to_owned(),
            address: address.into(),
            path: path.to_owned(),
        }
    }
}

/// A running Prometheus server with a 1 s scrape interval. Killed on drop.
#[derive(Debug)]
pub struct Prometheus {
    /// `127.0.0.1:port` of its web API.
    pub address: String,
    child: ChildGuard,
    _dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` and waits until `/-/ready` answers 200.
    ///
    /// Returns `None` (after printing `SKIPPED`) when the binary is missing outside CI.
    pub async fn start(test: &str, targets: &[ScrapeTarget]) -> Option<Self> {
        let bin = require_tool("PALISADE_PROMETHEUS", "prometheus", test)?;
        let dir = TempDir::new("palisade-prometheus");
        let mut cfg = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n",
        );
        for t in targets {
            cfg.push_str(&format!(
                "  - job_name: {:?}\n    metrics_path: {:?}\n    static_configs:\n      - targets: [{:?}]\n",
                t.job, t.path, t.address
            ));
        }
        let cfg_path = dir.path().join("prometheus.yml");
        std::fs::write(&cfg_path, cfg).expect("write prometheus.yml");
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"));
        let mut child = ChildGuard::spawn("prometheus", cmd, &dir.path().join("prometheus.log"))
            .expect("spawn prometheus");
        poll_until("prometheus to be ready", Duration::from_secs(30), || {
            child.assert_running();
            let address = address.clone();
            async move {
                let r = crate::http::get(&address, "/-/ready").await.ok()?;
                (r.status == 200).then_some(())
            }
        })
        .await;
        Some(Self {
            address,
            child,
            _dir: dir,
        })
    }

    /// Runs an instant query and returns the `data.result` array.
    pub async fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", crate::http::encode(promql));
        let Ok(r) = crate::http::get(&self.address, &path).await else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls `promql` until it returns at least one series (at most `timeout`).
    pub async fn wait_for_series(&self, promql: &str, timeout: Duration) -> Vec<serde_json::Value> {
        poll_until(&format!("series for `{promql}`"), timeout, || async {
            let r = self.query(promql).await;
            (!r.is_empty()).then_some(r)
        })
        .await
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.child.log()
    }
}

/// Runs `promtool check metrics` over an exposition.
///
/// Returns `Ok(None)` when promtool is missing outside CI (after printing `SKIPPED`),
/// `Ok(Some(()))` when promtool exits 0 (no parse errors and no lint problems), and
/// `Err(output)` otherwise.
pub fn promtool_check_metrics(test: &str, exposition: &str) -> Result<Option<()>, String> {
    let Some(bin) = require_tool("PALISADE_PROMTOOL", "promtool", test) else {
        return Ok(None);
    };
    let mut child = Command::new(bin)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn promtool: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(exposition.as_bytes())
        .map_err(|e| format!("write to promtool: {e}"))?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(Some(()))
    } else {
        Err(format!(
            "promtool check metrics exited {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
