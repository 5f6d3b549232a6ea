//! Shared helpers for the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_health::{Check, HealthRegistry, Outcome, Status};
use tower::{Service, ServiceExt, service_fn};

/// A registry without the runtime heartbeat (so tests control every check).
pub fn registry() -> HealthRegistry {
    HealthRegistry::builder()
        .without_runtime_heartbeat()
        .build()
        .unwrap()
}

/// The inner service used behind the layer: answers `inner <path>` with 200.
pub fn app()
-> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
+ Clone
+ Send {
    service_fn(|req: Request<Full<Bytes>>| async move {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
            "inner {} {}",
            req.method(),
            req.uri().path()
        )))))
    })
}

/// A probe's answer.
#[derive(Debug)]
pub struct Probe {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Probe {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// Sends one request through the layer in front of [`app`].
pub async fn send(registry: &HealthRegistry, req: Request<Full<Bytes>>) -> Probe {
    let svc = tower::Layer::layer(&registry.layer(), app());
    let res = svc.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Probe {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// `GET path`.
pub async fn get(registry: &HealthRegistry, path: &str) -> Probe {
    send(registry, Request::get(path).body(Full::default()).unwrap()).await
}

/// A check whose outcome the test sets, counting its runs.
#[derive(Clone)]
pub struct Scripted {
    pub mode: Arc<AtomicU32>,
    pub runs: Arc<AtomicUsize>,
}

pub const PASS: u32 = 0;
pub const WARN: u32 = 1;
pub const FAIL: u32 = 2;
/// Never completes.
pub const HANG: u32 = 3;
pub const PANIC: u32 = 4;

impl Scripted {
    pub fn new(mode: u32) -> Self {
        Self {
            mode: Arc::new(AtomicU32::new(mode)),
            runs: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn set(&self, mode: u32) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

impl Check for Scripted {
    async fn check(&self) -> Outcome {
        self.runs.fetch_add(1, Ordering::SeqCst);
        match self.mode.load(Ordering::SeqCst) {
            PASS => Outcome::pass(),
            WARN => Outcome::warn("running hot"),
            FAIL => Outcome::fail("connection refused"),
            HANG => std::future::pending().await,
            _ => panic!("scripted panic"),
        }
    }
}

/// Lets background tasks run (paused time: auto-advance only moves when idle).
pub async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// Advances paused time by `d`, letting tasks run on both sides.
pub async fn advance(d: Duration) {
    settle().await;
    tokio::time::advance(d).await;
    settle().await;
}

/// The readiness status as the registry sees it.
pub fn ready(registry: &HealthRegistry) -> Status {
    registry.status(palisade_health::Kind::Readiness)
}
