//! Allocations per request through `palisade-health`'s layer: none beyond the bare
//! service for requests that pass through, and only the response's header map for a
//! probe (the body is a reference-counted, pre-rendered snapshot), however many checks
//! are registered.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::Full;
use palisade_benches::{allocation_counter, drive};
use palisade_health::{HealthCheck, HealthRegistry, check_fn};
use tower::{Layer, Service, service_fn};

type Body = Full<Bytes>;

fn bare() -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone {
    service_fn(|_req: Request<Body>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(Full::new(
            Bytes::from_static(b"ok"),
        ))))
    })
}

fn call<S, B>(svc: &mut S, uri: &'static str) -> StatusCode
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    drive(async {
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        let mut req = Request::new(Full::default());
        *req.uri_mut() = Uri::from_static(uri);
        svc.call(req).await.unwrap().status()
    })
}

const CALLS: u64 = 10_000;

fn per_call<S, B>(case: &str, svc: &mut S, uri: &'static str) -> f64
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..100 {
        call(svc, uri);
    }
    let info = allocation_counter::measure(|| {
        for _ in 0..CALLS {
            call(svc, uri);
        }
    });
    let per_call = info.count_total as f64 / CALLS as f64;
    palisade_benches::report_allocations(case, per_call);
    per_call
}

fn registry(rt: &tokio::runtime::Runtime, checks: usize) -> HealthRegistry {
    let _enter = rt.enter();
    let health = HealthRegistry::builder().build().unwrap();
    for i in 0..checks {
        health
            .register(
                HealthCheck::readiness(format!("check{i}"), check_fn(|| async {}))
                    .interval(Duration::from_secs(3600)),
            )
            .unwrap();
    }
    health
}

#[test]
fn pass_through_allocates_nothing_beyond_the_bare_service() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let health = registry(&rt, 20);
    let bare_allocs = per_call("health bare service_fn", &mut bare(), "/orders");
    let mut svc = health.layer().layer(bare());
    let layer_allocs = per_call("health pass-through", &mut svc, "/orders");
    assert_eq!(layer_allocs, bare_allocs);
}

#[test]
fn a_probe_allocates_only_its_header_map_whatever_the_number_of_checks() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let one = registry(&rt, 1);
    let twenty = registry(&rt, 20);
    // Let the first runs finish so both answer from a complete snapshot.
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
    let mut svc = one.layer().layer(bare());
    let a = per_call("health probe, 1 check", &mut svc, "/health/ready");
    let mut svc = twenty.layer().layer(bare());
    let b = per_call("health probe, 20 checks", &mut svc, "/health/ready");
    assert_eq!(a, b, "independent of the number of checks");
    // `content-type` and `cache-control` go into a fresh `HeaderMap`: its index and
    // entry tables.
    assert!(a <= 2.0, "{a} allocations per probe");
}
