//! Fallbacks answer rejected calls in place of the inner service, and are not recorded.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use palisade_circuit_breaker::error::{BoxError, CircuitOpen};
use palisade_circuit_breaker::{CircuitBreakerLayer, State, fallback_fn, fallback_service};
use support::{FAIL, OK, scripted};
use tower::{Layer, Service, ServiceExt, service_fn};

#[tokio::test]
async fn a_closure_answers_while_open_and_sees_the_rejection() {
    let layer = CircuitBreakerLayer::builder("prices")
        .with_fallback(fallback_fn(
            |call: support::Call, open: CircuitOpen| async move {
                assert!(!call.fail);
                assert_eq!(open.breaker(), "prices");
                Ok::<_, BoxError>("cached")
            },
        ))
        .build()
        .unwrap();
    let handle = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = layer.layer(scripted(calls.clone()));
    assert_eq!(svc.ready().await.unwrap().call(OK).await.unwrap(), "ok");
    handle.force_open();
    for _ in 0..3 {
        assert_eq!(svc.ready().await.unwrap().call(OK).await.unwrap(), "cached");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the inner service was not called"
    );
    let stats = handle.stats();
    assert_eq!(stats.total_rejected, 3);
    assert_eq!(
        stats.total_calls, 1,
        "fallback answers are not recorded as calls"
    );
}

#[tokio::test]
async fn a_service_answers_while_open() {
    let answered = Arc::new(AtomicUsize::new(0));
    let backup = service_fn({
        let answered = answered.clone();
        move |_: support::Call| {
            answered.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, std::io::Error>("from the backup") }
        }
    });
    let layer = CircuitBreakerLayer::builder("primary")
        .sliding_window(palisade_circuit_breaker::SlidingWindow::count(2))
        .minimum_calls(2)
        .with_fallback(fallback_service(backup))
        .build()
        .unwrap();
    let mut svc = layer.layer(scripted(Default::default()));
    assert!(svc.ready().await.unwrap().call(FAIL).await.is_err());
    assert!(svc.ready().await.unwrap().call(FAIL).await.is_err());
    assert_eq!(layer.handle().state(), State::Open);
    let got = svc.ready().await.unwrap().call(OK).await.unwrap();
    assert_eq!(got, "from the backup");
    assert_eq!(answered.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failing_fallback_returns_its_error() {
    let layer = CircuitBreakerLayer::builder("x")
        .with_fallback(fallback_fn(|_: support::Call, _open: CircuitOpen| async {
            Err::<&'static str, BoxError>("no cache either".into())
        }))
        .build()
        .unwrap();
    layer.handle().force_open();
    let mut svc = layer.layer(scripted(Default::default()));
    let err = svc.ready().await.unwrap().call(OK).await.unwrap_err();
    assert_eq!(err.to_string(), "no cache either");
}
