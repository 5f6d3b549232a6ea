//! The retry layer's per-call cost against a bare `service_fn`, measured in the same run,
//! next to `tower::retry` (with its exponential backoff) and tower-resilience 0.13's retry.
//!
//! - `success/*`: `ready().await; call().await` of a `u64` request that succeeds (no retry).
//!   Palisade with its default retry budget (one deposit in the clone's own stripe) and without.
//! - `http_success/*`: an `http::Request` with an empty body: palisade's HTTP policy (method
//!   check, parts kept for a replay, the body wrapped; the first attempt carries no `Attempt`)
//!   against a bare service taking the same request; and the same with a Prometheus recorder
//!   (`palisade_prometheus_recorder`: the per-request counter and histogram sample recorded).
//! - `retry_once/*`: a PUT with a 1 KiB in-memory body answered 503 then 200; the inner service
//!   reads the body each time. Palisade captures it and replays it (zero backoff), against a
//!   bare service called once.
//!
//! - `threads_N/*` (N = 2, or `PALISADE_BENCH_THREADS`): N threads, each with its own clone
//!   of one service, all drawing on one shared retry budget; time per call per thread, so
//!   perfect scaling reads the same as one thread.
//!
//! Futures here are always ready, so each call is driven by polling with a no-op waker: the
//! harness adds no runtime overhead to either side.
//!
//! Results, with the targets met and missed: `benches/README.md` (`bash benches/run.sh retry`).
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use palisade_benches::drive;
use palisade_retry::http::HttpPolicy;
use palisade_retry::{Attempt, Backoff, Jitter, ReplayBody, RetryIf, RetryLayer};
use tower::retry::backoff::{
    Backoff as _, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff,
};
use tower::util::rng::HasherRng;
use tower::{Layer, Service, service_fn};

type Error = std::io::Error;

fn bare() -> impl Service<u64, Response = u64, Error = Error, Future: Send> + Clone + Send {
    service_fn(|x: u64| std::future::ready(Ok::<_, Error>(x)))
}

#[inline]
fn one_call<R, S: Service<R>>(svc: &mut S, req: R) -> Result<S::Response, S::Error> {
    drive(async {
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
        svc.call(req).await
    })
}

/// `tower::retry` with its exponential backoff, retrying errors up to 2 times.
#[derive(Clone)]
struct TowerPolicy {
    retries: u32,
    backoff: ExponentialBackoff,
}

impl<E> tower::retry::Policy<u64, u64, E> for TowerPolicy {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, _: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        match result {
            Err(_) if self.retries > 0 => {
                self.retries -= 1;
                Some(self.backoff.next_backoff())
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

fn success(c: &mut Criterion) {
    let mut g = c.benchmark_group("success");
    let mut svc = bare();
    g.bench_function("bare", |b| b.iter(|| one_call(&mut svc, black_box(1))));

    let predicate = RetryIf::new(|r: &Result<u64, Error>| r.is_err());
    let layer = RetryLayer::builder("bench", predicate.clone())
        .build()
        .unwrap();
    let mut svc = layer.layer(bare());
    g.bench_function("palisade", |b| b.iter(|| one_call(&mut svc, black_box(1))));

    let layer = RetryLayer::builder("bench", predicate)
        .without_budget()
        .build()
        .unwrap();
    let mut svc = layer.layer(bare());
    g.bench_function("palisade_no_budget", |b| {
        b.iter(|| one_call(&mut svc, black_box(1)))
    });

    let backoff = ExponentialBackoffMaker::new(
        Duration::from_millis(100),
        Duration::from_secs(10),
        1.0,
        HasherRng::default(),
    )
    .unwrap()
    .make_backoff();
    let mut svc = tower::retry::RetryLayer::new(TowerPolicy {
        retries: 2,
        backoff,
    })
    .layer(bare());
    g.bench_function("tower_retry", |b| {
        b.iter(|| one_call(&mut svc, black_box(1)))
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let layer = tower_resilience::retry::RetryLayer::<u64, u64, Error>::builder()
        .max_attempts(3)
        .exponential_backoff(Duration::from_millis(100))
        .build();
    let mut svc = layer.layer(bare());
    g.bench_function("tower_resilience", |b| {
        b.iter(|| one_call(&mut svc, black_box(1)))
    });
    g.finish();
}

fn empty_get() -> Request<Empty<Bytes>> {
    let mut req = Request::new(Empty::new());
    *req.uri_mut() = http::Uri::from_static("http://127.0.0.1/stock");
    req
}

fn http_success(c: &mut Criterion) {
    let mut g = c.benchmark_group("http_success");
    let mut svc = service_fn(|req: Request<Empty<Bytes>>| {
        black_box(&req);
        std::future::ready(Ok::<_, Error>(Response::new(())))
    });
    g.bench_function("bare", |b| b.iter(|| one_call(&mut svc, empty_get())));

    let layer = RetryLayer::builder("bench", HttpPolicy::new())
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(|req: Request<ReplayBody<Empty<Bytes>>>| {
        black_box(&req);
        std::future::ready(Ok::<_, Error>(Response::new(())))
    }));
    g.bench_function("palisade", |b| b.iter(|| one_call(&mut svc, empty_get())));

    // The same with a Prometheus recorder bound when the layer is built, as a service that
    // exports metrics runs it: a counter add and a histogram sample per request.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let layer = metrics::with_local_recorder(&recorder, || {
        RetryLayer::builder("bench", HttpPolicy::new())
            .build()
            .unwrap()
    });
    let mut svc = layer.layer(service_fn(|req: Request<ReplayBody<Empty<Bytes>>>| {
        black_box(&req);
        std::future::ready(Ok::<_, Error>(Response::new(())))
    }));
    g.bench_function("palisade_prometheus_recorder", |b| {
        b.iter(|| one_call(&mut svc, empty_get()))
    });
    g.finish();
}

const KIB: &[u8] = &[b'x'; 1024];

fn put() -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::from_static(KIB)));
    *req.method_mut() = Method::PUT;
    *req.uri_mut() = http::Uri::from_static("http://127.0.0.1/stock");
    req
}

fn retry_once(c: &mut Criterion) {
    let mut g = c.benchmark_group("retry_once");
    let mut svc = service_fn(|req: Request<Full<Bytes>>| {
        let body = drive(req.into_body().collect()).unwrap().to_bytes();
        black_box(body);
        std::future::ready(Ok::<_, Error>(Response::new(())))
    });
    g.bench_function("bare_single_call", |b| b.iter(|| one_call(&mut svc, put())));

    let layer = RetryLayer::builder("bench", HttpPolicy::new())
        .backoff(Backoff::constant(Duration::ZERO))
        .jitter(Jitter::None)
        .without_budget()
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(|req: Request<ReplayBody<Full<Bytes>>>| {
        let first = !Attempt::of(req.extensions()).is_retry();
        let body = drive(req.into_body().collect()).unwrap().to_bytes();
        black_box(body);
        let mut res = Response::new(());
        if first {
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        std::future::ready(Ok::<_, Error>(res))
    }));
    g.bench_function("palisade_503_then_200", |b| {
        b.iter(|| {
            let res = one_call(&mut svc, put()).unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        })
    });
    g.finish();
}

fn contended<S>(svc: &S, threads: usize, iters: u64) -> Duration
where
    S: Service<u64> + Clone + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let mut svc = svc.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..iters {
                    black_box(one_call(&mut svc, black_box(1)).is_ok());
                }
                barrier.wait();
            })
        })
        .collect();
    barrier.wait();
    let start = std::time::Instant::now();
    barrier.wait();
    let elapsed = start.elapsed();
    for h in handles {
        h.join().unwrap();
    }
    elapsed
}

fn threads(c: &mut Criterion) {
    let n: usize = std::env::var("PALISADE_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut g = c.benchmark_group(format!("threads_{n}"));
    let bare_svc = bare();
    g.bench_function("bare", |b| b.iter_custom(|i| contended(&bare_svc, n, i)));
    let layer = RetryLayer::builder("bench", RetryIf::new(|r: &Result<u64, Error>| r.is_err()))
        .build()
        .unwrap();
    let svc = layer.layer(bare());
    g.bench_function("palisade", |b| b.iter_custom(|i| contended(&svc, n, i)));
    g.finish();
}

criterion_group!(benches, success, http_success, retry_once, threads);
criterion_main!(benches);
