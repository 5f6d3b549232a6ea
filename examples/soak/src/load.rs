//! The load: workers sending `POST /orders` at a steady pace over keep-alive HTTP/1.1,
//! one in ten a repeat of the worker's previous request with the same `Idempotency-Key`.
//! Every request is timed on the client and recorded with its answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The catalogue SKUs with plenty of stock, with weights in proportion to their seeded
/// stock (thousands of units), so that they run out together, late (the scarce `LT-0006`
/// is left out: refusals stay rare and the run exercises reservations).
const SKUS: [(&str, u32); 5] = [
    ("KB-0001", 5),
    ("MS-0002", 5),
    ("MN-0003", 2),
    ("HD-0004", 3),
    ("CB-0005", 20),
];

/// A SKU index, drawn in proportion to the weights.
fn pick_sku() -> usize {
    let total: u32 = SKUS.iter().map(|(_, w)| w).sum();
    let mut x = fastrand::u32(..total);
    for (i, (_, w)) in SKUS.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    SKUS.len() - 1
}

/// What one request got.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// When it was sent, since the start of the run.
    pub(crate) at: Duration,
    /// Client-side latency (until the whole body was read).
    pub(crate) elapsed: Duration,
    /// The answer: status and problem `code`, or the transport error.
    pub(crate) answer: Answer,
    /// Whether the request repeated an earlier `Idempotency-Key`.
    pub(crate) repeat: bool,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `201 Created`, with the order id; `replayed` from `Idempotent-Replayed: true`.
    Created { id: String, replayed: bool },
    /// Any other status, with the problem `code` and whether `Retry-After` was present
    /// and a whole number of seconds.
    Status {
        status: u16,
        code: String,
        retry_after: bool,
    },
    /// No answer: a connection error, or an unreadable answer.
    Transport(String),
    /// No answer within the hard cap: the request hung and was abandoned.
    Hung,
}

impl Answer {
    /// A short label for the status histogram.
    pub(crate) fn label(&self) -> String {
        match self {
            Answer::Created {
                replayed: false, ..
            } => "201 created".to_owned(),
            Answer::Created { replayed: true, .. } => "201 replayed".to_owned(),
            Answer::Status {
                status,
                code,
                retry_after,
            } => {
                let ra = if *retry_after { " +Retry-After" } else { "" };
                format!("{status} {code}{ra}")
            }
            Answer::Transport(_) => "transport error".to_owned(),
            Answer::Hung => "hung (no answer)".to_owned(),
        }
    }

    /// A business answer: the order was refused for a reason of its own (out of stock),
    /// or its key is still being processed (`409 request_in_progress`).
    pub(crate) fn is_business(&self) -> bool {
        matches!(self, Answer::Status { status: 409, code, .. }
            if code == "insufficient_stock" || code == "request_in_progress")
    }

    /// A clean failure: `503` with `Retry-After`, or `504`.
    pub(crate) fn is_clean_failure(&self) -> bool {
        matches!(
            self,
            Answer::Status {
                status: 503,
                retry_after: true,
                ..
            } | Answer::Status { status: 504, .. }
        )
    }

    /// A failure a client sees (anything but a created or replayed order or a business
    /// answer).
    pub(crate) fn is_failure(&self) -> bool {
        !matches!(self, Answer::Created { .. }) && !self.is_business()
    }
}

/// What a worker saw, beyond its samples: idempotency violations.
#[derive(Debug, Default)]
pub(crate) struct WorkerResult {
    pub(crate) samples: Vec<Sample>,
    /// A repeat of a key answered with another order id than the first `201`.
    pub(crate) idempotency_violations: Vec<String>,
    /// Keys repeated after a `201`, answered `201 replayed` with the same id.
    pub(crate) replays_checked: u64,
}

/// The load generator's settings.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub(crate) base: String,
    pub(crate) workers: usize,
    pub(crate) rate: f64,
    pub(crate) hard_cap: Duration,
}

impl Load {
    /// Runs `workers` tasks until `stop` is set; each sends `rate / workers` requests per
    /// second. Returns what each saw.
    pub(crate) async fn run(self, t0: Instant, stop: Arc<AtomicBool>) -> Vec<WorkerResult> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let period = Duration::from_secs_f64(self.workers as f64 / self.rate.max(0.001));
        let mut tasks = Vec::with_capacity(self.workers);
        for worker in 0..self.workers {
            let client = client.clone();
            let stop = Arc::clone(&stop);
            let this = self.clone();
            tasks.push(tokio::spawn(async move {
                this.worker(worker, client, period, t0, stop).await
            }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            if let Ok(r) = t.await {
                out.push(r);
            }
        }
        out
    }

    async fn worker(
        &self,
        worker: usize,
        client: Client<HttpConnector, Full<Bytes>>,
        period: Duration,
        t0: Instant,
        stop: Arc<AtomicBool>,
    ) -> WorkerResult {
        let mut result = WorkerResult::default();
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Spread the workers over one period.
        tokio::time::sleep(period.mul_f64(worker as f64 / self.workers as f64)).await;
        let mut previous: Option<(String, String)> = None;
        // Key to the id of its first `201`.
        let mut created: BTreeMap<String, String> = BTreeMap::new();
        let mut n: u64 = 0;
        // Bounded by `stop` (set by the driver at the end of the schedule).
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            n += 1;
            let (key, body, repeat) = match &previous {
                Some((key, body)) if fastrand::u8(..10) == 0 => (key.clone(), body.clone(), true),
                _ => (format!("soak-{worker}-{n}"), order_body(), false),
            };
            let at = t0.elapsed();
            let start = Instant::now();
            let answer =
                match tokio::time::timeout(self.hard_cap, post(&client, &self.base, &key, &body))
                    .await
                {
                    Ok(answer) => answer,
                    Err(_) => Answer::Hung,
                };
            let elapsed = start.elapsed();
            if let Answer::Created { id, replayed } = &answer {
                match created.get(&key) {
                    Some(first) if first != id => result.idempotency_violations.push(format!(
                        "key {key}: first 201 was order {first}, a repeat got order {id}"
                    )),
                    Some(_) if !replayed => result.idempotency_violations.push(format!(
                        "key {key}: a repeat was answered 201 without Idempotent-Replayed"
                    )),
                    Some(_) => result.replays_checked += 1,
                    None => {
                        created.insert(key.clone(), id.clone());
                    }
                }
            }
            // Only the last key is ever repeated: forget the older ones.
            if !repeat {
                if let Some((old, _)) = &previous {
                    created.remove(old);
                }
                previous = Some((key, body));
            }
            result.samples.push(Sample {
                at,
                elapsed,
                answer,
                repeat,
            });
        }
        result
    }
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    base: &str,
    key: &str,
    body: &str,
) -> Answer {
    let request = match hyper::Request::post(format!("{base}/orders"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Full::new(Bytes::from(body.to_owned())))
    {
        Ok(r) => r,
        Err(e) => return Answer::Transport(e.to_string()),
    };
    let response = match client.request(request).await {
        Ok(r) => r,
        Err(e) => return Answer::Transport(e.to_string()),
    };
    let status = response.status().as_u16();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().parse::<u64>().is_ok());
    let body = match response.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Answer::Transport(format!("reading the body: {e}")),
    };
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    match (status, json["id"].as_str()) {
        (201, Some(id)) => Answer::Created {
            id: id.to_owned(),
            replayed,
        },
        _ => Answer::Status {
            status,
            code: json["code"].as_str().unwrap_or("-").to_owned(),
            retry_after,
        },
    }
}

/// A random order: one or two SKUs, one unit each.
fn order_body() -> String {
    let first = pick_sku();
    let mut items = vec![format!(r#"{{"sku":"{}","quantity":1}}"#, SKUS[first].0)];
    let second = pick_sku();
    if fastrand::bool() && second != first {
        items.push(format!(r#"{{"sku":"{}","quantity":1}}"#, SKUS[second].0));
    }
    format!(r#"{{"items":[{}]}}"#, items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        let s = |status, code: &str, retry_after| Answer::Status {
            status,
            code: code.to_owned(),
            retry_after,
        };
        assert!(!s(409, "insufficient_stock", false).is_failure());
        assert!(!s(409, "request_in_progress", true).is_failure());
        assert!(s(503, "inventory_circuit_open", true).is_clean_failure());
        assert!(!s(503, "inventory_circuit_open", false).is_clean_failure());
        assert!(s(504, "-", false).is_clean_failure());
        assert!(!s(500, "internal", false).is_clean_failure());
        assert!(!s(422, "idempotency_key_reused", false).is_clean_failure());
        assert!(s(422, "idempotency_key_reused", false).is_failure());
        assert!(!Answer::Hung.is_clean_failure());
        assert!(!Answer::Transport("reset".into()).is_clean_failure());
        let created = Answer::Created {
            id: "o".into(),
            replayed: false,
        };
        assert!(!created.is_failure());
        assert_eq!(created.label(), "201 created");
    }

    #[test]
    fn order_bodies_have_distinct_skus() {
        for _ in 0..1000 {
            let v: serde_json::Value = serde_json::from_str(&order_body()).unwrap();
            let items = v["items"].as_array().unwrap();
            assert!((1..=2).contains(&items.len()));
            if items.len() == 2 {
                assert_ne!(items[0]["sku"], items[1]["sku"]);
            }
        }
    }
}
