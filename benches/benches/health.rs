//! A `/health/ready` probe through `palisade-health`'s layer against a bare `service_fn`
//! answering the same request, measured in the same run; with 1 and with 20 registered
//! checks (half of them slow, one hung), which run in the background on another runtime
//! while the probes are measured. A probe reads the published snapshot, so its cost must
//! not depend on how many checks there are or how slow they are.
//!
//! - `health/ready_1_check/*`, `health/ready_20_checks/*`: `GET /health/ready`;
//! - `health/pass_through/*`: `GET /orders` through the layer (every non-probe request
//!   pays this), against the bare service.
//!
//! Futures here are always ready, so each call is driven by polling with a no-op waker:
//! the harness adds no runtime overhead to either side.
//!
//! Measured on the 2-core development machine (shared with other builds, so ±20 %),
//! `bash benches/run.sh health`, median time per call (target: ≤ 2 µs per probe):
//!
//! ```text
//!                          bare service_fn   palisade      ratio   (two runs, 3 s and 5 s)
//! ready, 1 check            100-122 ns      239-242 ns    2.0-2.4  (+120-140 ns)
//! ready, 20 checks (slow)    88-123 ns      261-268 ns    2.1-3.1  (+140-180 ns)
//! pass-through (/orders)    105-121 ns      125-167 ns    1.0-1.6  (+4-62 ns, noisy)
//! ```
//!
//! So a probe costs about 0.25 µs, far under the 2 µs target, whatever the number and
//! latency of the checks: it reads one published snapshot (an `ArcSwap` load and one
//! clock read for staleness) and clones a reference-counted, pre-rendered body.
//!
//! A probe allocates twice (the response's header map; `benches/tests/alloc_health.rs`),
//! a pass-through request nothing.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::Full;
use palisade_benches::drive;
use palisade_health::{HealthCheck, HealthRegistry, Kind, Status, check_fn};
use tower::{Layer, Service, service_fn};

type Body = Full<Bytes>;

/// The bare baseline: answers every request with a static 200 body, like a hand-written
/// health route.
fn bare() -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone {
    service_fn(|_req: Request<Body>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(Full::new(
            Bytes::from_static(br#"{"status":"pass"}"#),
        ))))
    })
}

fn request(uri: &'static str) -> Request<Body> {
    let mut req = Request::new(Full::default());
    *req.uri_mut() = Uri::from_static(uri);
    req
}

fn one_call<S, B>(svc: &mut S, uri: &'static str) -> StatusCode
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    drive(async {
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        svc.call(request(uri)).await.unwrap().status()
    })
}

/// A registry with `n` readiness checks running in the background on `rt`: the even
/// ones answer at once, the odd ones take 300 ms, and (with more than one check) the
/// last one hangs until its 500 ms timeout, all non-critical so readiness stays 200.
fn registry(rt: &tokio::runtime::Runtime, n: usize) -> HealthRegistry {
    let _enter = rt.enter();
    let health = HealthRegistry::builder().build().unwrap();
    for i in 0..n {
        let slow = i % 2 == 1;
        let hung = n > 1 && i == n - 1;
        let check = check_fn(move || async move {
            if hung {
                std::future::pending::<()>().await;
            } else if slow {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        health
            .register(
                HealthCheck::readiness(format!("check{i}"), check)
                    .interval(Duration::from_secs(1))
                    .timeout(Duration::from_millis(500))
                    .non_critical(),
            )
            .unwrap();
    }
    // Wait (bounded) until every check has reported once.
    for _ in 0..100 {
        if health.status(Kind::Readiness) != Status::Fail {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(600));
    assert_ne!(health.status(Kind::Readiness), Status::Fail);
    health
}

fn probes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for (n, group) in [(1, "health/ready_1_check"), (20, "health/ready_20_checks")] {
        let health = registry(&rt, n);
        let mut g = c.benchmark_group(group);
        let mut svc = bare();
        g.bench_function("bare service_fn", |b| {
            b.iter(|| black_box(one_call(&mut svc, "/health/ready")));
        });
        let mut svc = health.layer().layer(bare());
        assert_eq!(one_call(&mut svc, "/health/ready"), StatusCode::OK);
        g.bench_function(format!("palisade {n} checks"), |b| {
            b.iter(|| black_box(one_call(&mut svc, "/health/ready")));
        });
        g.finish();
    }

    let health = registry(&rt, 20);
    let mut g = c.benchmark_group("health/pass_through");
    let mut svc = bare();
    g.bench_function("bare service_fn", |b| {
        b.iter(|| black_box(one_call(&mut svc, "/orders")));
    });
    let mut svc = health.layer().layer(bare());
    g.bench_function("palisade layer", |b| {
        b.iter(|| black_box(one_call(&mut svc, "/orders")));
    });
    g.finish();
}

criterion_group!(benches, probes);
criterion_main!(benches);
