//! `poll_ready` is the inner service's, and a rejected call leaves the inner untouched
//! (tower-test mock, stepped poll by poll).

use palisade_circuit_breaker::error::CircuitOpen;
use palisade_circuit_breaker::{CircuitBreakerLayer, State};
use tokio_test::{assert_pending, assert_ready_err, assert_ready_ok};
use tower_test::{assert_request_eq, mock};

#[tokio::test]
async fn readiness_is_the_inner_services() {
    let layer = CircuitBreakerLayer::builder("ready").build().unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<&'static str, &'static str, _>(layer);
    handle.allow(0);
    assert_pending!(svc.poll_ready());
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
    let fut = svc.call("hello");
    assert_request_eq!(handle, "hello").send_response("world");
    assert_eq!(fut.await.unwrap(), "world");
}

#[tokio::test]
async fn an_open_breaker_stays_ready_and_rejects_in_call_without_reaching_the_inner() {
    let layer = CircuitBreakerLayer::builder("open").build().unwrap();
    layer.handle().force_open();
    let (mut svc, mut handle) = mock::spawn_layer::<&'static str, &'static str, _>(layer);
    handle.allow(1);
    // Not ready-gated by the breaker: a caller (Buffer, a balancer) is not left waiting.
    assert_ready_ok!(svc.poll_ready());
    let err = svc.call("hello").await.unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().expect("a rejection");
    assert_eq!(open.state(), State::ForcedOpen);
    // The inner service saw nothing.
    assert_pending!(handle.poll_request());
}

#[tokio::test]
async fn inner_readiness_errors_pass_through_as_box_errors() {
    let layer = CircuitBreakerLayer::builder("err").build().unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<&'static str, &'static str, _>(layer);
    handle.send_error("inner not ready");
    let err = assert_ready_err!(svc.poll_ready());
    assert_eq!(err.to_string(), "inner not ready");
}
