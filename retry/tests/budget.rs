//! The retry budget under sustained failure, through the service: retries stay within the
//! budget over a long run, and the budget refills after recovery.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use palisade_retry::{Backoff, Budget, Jitter, RetryIf, RetryLayer};
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test(start_paused = true)]
async fn retries_stay_within_budget_and_refill_after_recovery() {
    let failing = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicU32::new(0));
    let (f2, c2) = (failing.clone(), calls.clone());
    let inner = service_fn(move |_: u32| {
        c2.fetch_add(1, Ordering::SeqCst);
        let fail = f2.load(Ordering::SeqCst);
        std::future::ready(if fail { Err("down") } else { Ok(()) })
    });
    let layer = RetryLayer::builder(
        "budget",
        RetryIf::new(|r: &Result<(), &'static str>| r.is_err()),
    )
    .backoff(Backoff::constant(Duration::ZERO))
    .jitter(Jitter::None)
    .max_attempts(3)
    .budget(Budget::new(0.2, 1, Duration::from_secs(10)))
    .build()
    .unwrap();
    // Several clones, as tower makes per connection: they share one budget.
    let services: Vec<_> = (0..4).map(|_| layer.layer(inner.clone())).collect();

    // 60 s of sustained failure at 100 requests per second.
    let mut requests = 0u32;
    for _sec in 0..60 {
        for i in 0..100 {
            let _ = services[i % 4].clone().oneshot(1).await;
            requests += 1;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let retries = calls.load(Ordering::SeqCst) - requests;
    // Budget: 20 % of requests + 1/s floor = 20 + 1 per second; without it: 200 per second.
    let allowed = 0.2f64.mul_add(f64::from(requests), 60.0 + 20.0) as u32;
    assert!(retries <= allowed, "{retries} retries > {allowed}");
    assert!(
        retries >= (0.2 * f64::from(requests)) as u32 - 200,
        "the budget is used: {retries}"
    );

    // Recovery: successes refill it; a later failure is retried again.
    failing.store(false, Ordering::SeqCst);
    for _sec in 0..11 {
        for i in 0..100 {
            services[i % 4].clone().oneshot(1).await.unwrap();
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    failing.store(true, Ordering::SeqCst);
    let before = calls.load(Ordering::SeqCst);
    let _ = services[0].clone().oneshot(1).await;
    assert_eq!(
        calls.load(Ordering::SeqCst) - before,
        3,
        "retried again after recovery"
    );
}
