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

/// A retried request: what only retries need (the next request, the wait, the jitter state)
/// is allocated once, when the first retry is decided, and reused. Each further retry costs
/// only its resend's [`Attempt`](palisade_retry::Attempt), which the `http::Extensions` map
/// boxes (3 allocations), not a new wait or a new box for the request.
#[test]
fn each_further_retry_allocates_only_the_resends_attempt() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let per_request = |failures: u32| {
        let layer = RetryLayer::builder("alloc", HttpPolicy::new())
            .max_attempts(failures + 1)
            .backoff(palisade_retry::Backoff::constant(
                std::time::Duration::from_millis(10),
            ))
            .jitter(palisade_retry::Jitter::None)
            .without_budget()
            .build()
            .unwrap();
        let mut svc = layer.layer(service_fn(move |req: Request<ReplayBody<Empty<Bytes>>>| {
            let attempt = palisade_retry::Attempt::of(req.extensions()).number();
            let mut res = Response::new(());
            if attempt <= failures {
                *res.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            }
            std::future::ready(Ok::<_, std::io::Error>(res))
        }));
        const REQUESTS: u64 = 200;
        let mut send = || {
            rt.block_on(async {
                std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
                let res = svc.call(Request::new(Empty::<Bytes>::new())).await.unwrap();
                assert_eq!(res.status(), http::StatusCode::OK);
            })
        };
        for _ in 0..20 {
            send();
        }
        let info = allocation_counter::measure(|| {
            for _ in 0..REQUESTS {
                send();
            }
        });
        info.count_total as f64 / REQUESTS as f64
    };
    let one = per_request(1);
    let three = per_request(3);
    report_allocations("retry: a GET retried once (503, 200)", one);
    report_allocations("retry: a GET retried three times", three);
    let per_further_retry = (three - one) / 2.0;
    assert!(
        per_further_retry <= 3.0,
        "{per_further_retry} allocations per further retry ({one} for one retry, {three} for three)"
    );
}

/// A retryable failure the budget refuses (an outage: every request fails fast) allocates
/// nothing: what only retries need is boxed once a retry is decided, not before.
#[test]
fn a_failure_the_budget_refuses_allocates_nothing() {
    let layer = RetryLayer::builder("alloc", HttpPolicy::new())
        .budget(palisade_retry::Budget::new(
            0.0,
            0,
            std::time::Duration::from_secs(10),
        ))
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(|_: Request<ReplayBody<Empty<Bytes>>>| {
        let mut res = Response::new(());
        *res.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        std::future::ready(Ok::<_, std::io::Error>(res))
    }));
    let n = per_call(&mut svc, || Request::new(Empty::<Bytes>::new()));
    report_allocations("retry: a 503 the budget refuses to retry", n);
    assert_eq!(n, 0.0, "{n} allocations per call");
    assert!(layer.stats().budget_exhausted() > 0);
}

/// With a Prometheus recorder the success path records a counter add and a histogram sample
/// per request. The exporter keeps samples in blocks it allocates now and then; per request
/// that rounds to nothing.
#[test]
fn success_path_with_a_prometheus_recorder_allocates_next_to_nothing() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let layer = metrics::with_local_recorder(&recorder, || {
        RetryLayer::builder("alloc", HttpPolicy::new())
            .build()
            .unwrap()
    });
    let mut svc = layer.layer(service_fn(|_: Request<ReplayBody<Empty<Bytes>>>| {
        std::future::ready(Ok::<_, std::io::Error>(Response::new(())))
    }));
    let n = per_call(&mut svc, || Request::new(Empty::<Bytes>::new()));
    report_allocations("retry success (bodiless http GET, Prometheus recorder)", n);
    assert!(n < 0.1, "{n} allocations per call");
    // Every request was recorded: 100 warm-up calls and the measured ones.
    let text = recorder.handle().render();
    let done = format!(
        "palisade_retry_attempts_total{{retry=\"alloc\",outcome=\"done\"}} {}",
        CALLS + 100
    );
    assert!(text.contains(&done), "{done} not in\n{text}");
    let count = format!(
        "palisade_retry_attempts_per_request_count{{retry=\"alloc\"}} {}",
        CALLS + 100
    );
    assert!(text.contains(&count), "{count} not in\n{text}");
}
