//! Allocations per call on the retry layer's success path.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use palisade_benches::{allocation_counter, drive, report_allocations};
use palisade_retry::http::HttpPolicy;
use palisade_retry::{ReplayBody, RetryIf, RetryLayer};
use tower::{Layer, Service, service_fn};

fn call<R, S: Service<R>>(svc: &mut S, req: R) -> Result<S::Response, S::Error> {
    drive(async {
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
        svc.call(req).await
    })
}

const CALLS: u64 = 10_000;

fn per_call<R>(svc: &mut impl Service<R>, mut req: impl FnMut() -> R) -> f64 {
    for _ in 0..100 {
        let _ = call(svc, req());
    }
    // The requests are made outside the measured region.
    let reqs: Vec<R> = (0..CALLS).map(|_| req()).collect();
    let mut reqs = reqs.into_iter();
    let info = allocation_counter::measure(|| {
        for r in reqs.by_ref() {
            let _ = call(svc, r);
        }
    });
    info.count_total as f64 / CALLS as f64
}

#[test]
fn success_path_allocates_nothing_for_a_cloneable_request_with_the_default_budget() {
    let layer = RetryLayer::builder(
        "alloc",
        RetryIf::new(|r: &Result<u64, std::io::Error>| r.is_err()),
    )
    .build()
    .unwrap();
    let mut svc = layer.layer(service_fn(|x: u64| {
        std::future::ready(Ok::<_, std::io::Error>(x))
    }));
    let n = per_call(&mut svc, || 1u64);
    report_allocations("retry success (u64 request, default budget)", n);
    assert_eq!(n, 0.0);
}

/// A bodiless `http::Request`: the body costs nothing (no capture buffer, no lock), the parts
/// kept for a replay are clones of empty or static values, and the first attempt carries no
/// [`Attempt`](palisade_retry::Attempt) (inserting one would box it into the extensions map).
#[test]
fn success_path_for_a_bodiless_http_request_allocates_nothing() {
    let layer = RetryLayer::builder("alloc", HttpPolicy::new())
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(|_: Request<ReplayBody<Empty<Bytes>>>| {
        std::future::ready(Ok::<_, std::io::Error>(Response::new(())))
    }));
    let n = per_call(&mut svc, || Request::new(Empty::<Bytes>::new()));
    report_allocations("retry success (bodiless http GET)", n);
    assert_eq!(n, 0.0, "{n} allocations per call");
}

/// A realistic GET: a URI and two header values parsed from strings. Keeping the parts for a
/// replay copies the header map (its entries and its index table: 2 allocations), and the
/// first clone of each parsed `Bytes` (the URI's, each header value's) moves it to shared
/// storage (3 allocations): what `Req: Clone` costs `tower::retry` too. Values made with
/// `from_static` cost nothing.
#[test]
fn success_path_for_a_get_with_headers_allocates_only_the_copies_of_its_parts() {
    let layer = RetryLayer::builder("alloc", HttpPolicy::new())
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(|_: Request<ReplayBody<Empty<Bytes>>>| {
        std::future::ready(Ok::<_, std::io::Error>(Response::new(())))
    }));
    let n = per_call(&mut svc, || {
        Request::get("http://inventory.internal:8080/stock/KB-0001?fields=all")
            .header("accept", "application/json")
            .header("x-request-id", "5f0c6e1e")
            .body(Empty::<Bytes>::new())
            .unwrap()
    });
    report_allocations("retry success (GET, parsed URI, 2 parsed headers)", n);
    assert!(n <= 5.0, "{n} allocations per call");
}
