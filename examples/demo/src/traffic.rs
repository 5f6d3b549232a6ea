//! The traffic generator: concurrent `POST /orders` over real HTTP, each recorded with its
//! outcome and latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use indicatif::ProgressBar;
use tokio::sync::Mutex;

/// What one request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `201`, a new order.
    Created,
    /// `201` with `Idempotent-Replayed: true`.
    Replayed,
    /// `409`/`422`: refused for a business reason (out of stock).
    Refused,
    /// `503` with code `inventory_circuit_open`: the breaker answered at once.
    FastRejected,
    /// Any other `503`: inventory failed after retries.
    Unavailable,
    /// Anything else (a bug).
    Unexpected,
}

#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) outcome: Outcome,
    pub(crate) latency: Duration,
    /// The order id, for `Created`.
    pub(crate) order_id: Option<String>,
}

/// When a phase stops sending.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Until {
    /// After this many requests.
    Count(u64),
    /// After this long.
    Elapsed(Duration),
}

const CATALOGUE: [&str; 5] = ["KB-0001", "MS-0002", "MN-0003", "HD-0004", "CB-0005"];

#[derive(Debug, Clone)]
pub(crate) struct Traffic {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    phase: &'static str,
}

impl Traffic {
    pub(crate) fn new(order_addr: std::net::SocketAddr, phase: &'static str) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{order_addr}"),
            phase,
        }
    }

    /// Runs `workers` concurrent senders until `until` (or `stop` returns true), ticking
    /// `bar` per request.
    pub(crate) async fn run(
        &self,
        workers: usize,
        until: Until,
        bar: &ProgressBar,
        stop: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Vec<Sample> {
        let sent = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(stop);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..workers {
            let this = self.clone();
            let (sent, samples, stop, bar) =
                (sent.clone(), samples.clone(), stop.clone(), bar.clone());
            tasks.push(tokio::spawn(async move {
                let mut previous: Option<(String, String)> = None;
                loop {
                    let n = sent.fetch_add(1, Ordering::Relaxed);
                    let done = match until {
                        Until::Count(max) => n >= max,
                        Until::Elapsed(d) => start.elapsed() >= d,
                    };
                    if done || stop() {
                        return;
                    }
                    // One request in ten repeats the previous one with its key.
                    let (key, body) = match previous.take() {
                        Some(p) if fastrand::u8(0..10) == 0 => p,
                        _ => (format!("demo-{}-{worker}-{n}", this.phase), order_body()),
                    };
                    let sample = this.post(&key, &body).await;
                    previous = Some((key, body));
                    samples.lock().await.push(sample);
                    bar.inc(1);
                    // A client paces itself a little; keeps the phases readable.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let mut samples = samples.lock().await;
        std::mem::take(&mut *samples)
    }

    async fn post(&self, key: &str, body: &str) -> Sample {
        let start = Instant::now();
        let request = hyper::Request::post(format!("{}/orders", self.base))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Full::new(Bytes::from(body.to_owned())));
        let Ok(request) = request else {
            return Sample {
                outcome: Outcome::Unexpected,
                latency: start.elapsed(),
                order_id: None,
            };
        };
        let Ok(response) = self.client.request(request).await else {
            return Sample {
                outcome: Outcome::Unexpected,
                latency: start.elapsed(),
                order_id: None,
            };
        };
        let status = response.status().as_u16();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let latency = start.elapsed();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let (outcome, order_id) = match status {
            201 if replayed => (Outcome::Replayed, None),
            201 => (Outcome::Created, json["id"].as_str().map(str::to_owned)),
            409 | 422 if json["code"] != "request_in_progress" => (Outcome::Refused, None),
            503 if json["code"] == "inventory_circuit_open" => (Outcome::FastRejected, None),
            503 | 409 => (Outcome::Unavailable, None),
            _ => (Outcome::Unexpected, None),
        };
        Sample {
            outcome,
            latency,
            order_id,
        }
    }
}

/// A random order: one or two catalogue SKUs, and now and then the scarce limited edition
/// (25 units), which runs out and shows business refusals.
fn order_body() -> String {
    let mut items = vec![format!(
        r#"{{"sku":"{}","quantity":{}}}"#,
        CATALOGUE[fastrand::usize(..CATALOGUE.len())],
        fastrand::u32(1..=3)
    )];
    if fastrand::u8(0..4) == 0 {
        items.push(format!(
            r#"{{"sku":"{}","quantity":1}}"#,
            CATALOGUE[fastrand::usize(..CATALOGUE.len())]
        ));
    }
    if fastrand::u8(0..20) == 0 {
        items.push(r#"{"sku":"LT-0006","quantity":3}"#.to_owned());
    }
    format!(r#"{{"items":[{}]}}"#, items.join(","))
}
