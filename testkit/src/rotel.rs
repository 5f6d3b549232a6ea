//! A real OTLP receiver: the rotel agent on loopback, with a Python trace processor that
//! appends one JSON line per received span to a file the test reads.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

use crate::{ChildGuard, TempDir, free_port, poll_until, require_tool};

const PROCESSOR: &str = include_str!("rotel_processor.py");

/// OTLP span kind numbers as they appear in [`SpanRecord::kind`].
pub mod kind {
    /// `SPAN_KIND_INTERNAL`
    pub const INTERNAL: &str = "1";
    /// `SPAN_KIND_SERVER`
    pub const SERVER: &str = "2";
    /// `SPAN_KIND_CLIENT`
    pub const CLIENT: &str = "3";
}

/// OTLP status codes as they appear in [`SpanRecord::status`].
pub mod status {
    /// `STATUS_CODE_UNSET`
    pub const UNSET: &str = "0";
    /// `STATUS_CODE_OK`
    pub const OK: &str = "1";
    /// `STATUS_CODE_ERROR`
    pub const ERROR: &str = "2";
}

/// One span as received by rotel.
#[derive(Debug, Clone, Deserialize)]
pub struct SpanRecord {
    /// `service.name` from the resource.
    pub service: Option<String>,
    /// Trace id, 32 lowercase hex digits.
    pub trace_id: String,
    /// Span id, 16 lowercase hex digits.
    pub span_id: String,
    /// Parent span id, or empty for a root span.
    pub parent_span_id: String,
    /// Span name.
    pub name: String,
    /// OTLP span kind number (see [`kind`]).
    pub kind: String,
    /// Attributes, with OTLP values turned into JSON values.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// OTLP status code number (see [`status`]).
    pub status: Option<String>,
    /// Status message.
    pub status_message: Option<String>,
    /// Span ids of linked spans.
    pub links: Vec<String>,
}

impl SpanRecord {
    /// The attribute `key` as a string, if it is one.
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(|v| v.as_str())
    }

    /// The attribute `key` as an integer, if it is one.
    pub fn attr_i64(&self, key: &str) -> Option<i64> {
        self.attributes.get(key).and_then(|v| v.as_i64())
    }
}

/// A running rotel agent. Killed on drop.
#[derive(Debug)]
pub struct Rotel {
    /// OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`.
    pub grpc_endpoint: String,
    /// OTLP/HTTP endpoint base, e.g. `http://127.0.0.1:4318`.
    pub http_endpoint: String,
    spans_file: PathBuf,
    child: ChildGuard,
    _dir: TempDir,
}

impl Rotel {
    /// Starts rotel on two free loopback ports and waits until it answers.
    ///
    /// Returns `None` (after printing `SKIPPED`) when the binary is missing outside CI.
    pub async fn start(test: &str) -> Option<Self> {
        let agent = require_tool("PALISADE_ROTEL_AGENT", "rotel-agent", test)?;
        let dir = TempDir::new("palisade-rotel");
        let processor = dir.path().join("processor.py");
        std::fs::write(&processor, PROCESSOR).expect("write processor");
        let spans_file = dir.path().join("spans.jsonl");
        let (grpc, http) = (free_port(), free_port());
        let mut cmd = Command::new(agent);
        cmd.args(["start", "--exporter", "blackhole"])
            .arg("--otlp-grpc-endpoint")
            .arg(format!("127.0.0.1:{grpc}"))
            .arg("--otlp-http-endpoint")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--otlp-with-trace-processor")
            .arg(&processor)
            .env("PALISADE_SPAN_FILE", &spans_file);
        let mut child = ChildGuard::spawn("rotel", cmd, &dir.path().join("rotel.log"))
            .expect("spawn rotel-agent");
        let addr = format!("127.0.0.1:{http}");
        poll_until("rotel to listen", Duration::from_secs(20), || {
            child.assert_running();
            let addr = addr.clone();
            async move { crate::http::get(&addr, "/").await.ok().map(|_| ()) }
        })
        .await;
        Some(Self {
            grpc_endpoint: format!("http://127.0.0.1:{grpc}"),
            http_endpoint: format!("http://127.0.0.1:{http}"),
            spans_file,
            child,
            _dir: dir,
        })
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<SpanRecord> {
        let text = std::fs::read_to_string(&self.spans_file).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("processor writes valid JSON"))
            .collect()
    }

    /// Polls until `ready` holds for the received spans (at most `timeout`), then returns them.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&[SpanRecord]) -> bool,
    ) -> Vec<SpanRecord> {
        poll_until(what, timeout, || {
            let spans = self.spans();
            let done = ready(&spans);
            async move { done.then_some(spans) }
        })
        .await
    }

    /// The agent's log so far (useful in assertion messages).
    pub fn log(&self) -> String {
        self.child.log()
    }
}
