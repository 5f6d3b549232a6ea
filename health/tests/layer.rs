//! Unit tests of the layer with tower-test's mock: probes never reach the inner
//! service, everything else does unchanged, readiness (backpressure) is the inner
//! service's, and the types are `Send`/`Sync`/`Clone` as a server needs.

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use palisade_health::{Drained, Health, HealthLayer, HealthRegistry, ResponseBody};
use tokio_test::{assert_pending, assert_ready_ok};
use tower_test::mock;

type Req = Request<Full<Bytes>>;
type Res = Response<Full<Bytes>>;

#[tokio::test(start_paused = true)]
async fn probes_are_answered_without_calling_the_inner_service() {
    let health = support::registry();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(health.layer());
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
    let res = svc
        .call(Request::get("/health/ready").body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        r#"{"status":"pass"}"#
    );
    // The inner service saw nothing.
    assert!(
        tokio_test::task::spawn(handle.next_request())
            .poll()
            .is_pending()
    );
}

#[tokio::test(start_paused = true)]
async fn other_requests_reach_the_inner_service_unchanged() {
    let health = support::registry();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(health.layer());
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
    let req = Request::post("/health/ready?x=1")
        .header("x-request-id", "42")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    let fut = svc.call(req);
    let (got, send) = handle.next_request().await.unwrap();
    assert_eq!(got.method(), "POST");
    assert_eq!(got.uri(), "/health/ready?x=1");
    assert_eq!(got.headers()["x-request-id"], "42");
    assert_eq!(
        got.into_body().collect().await.unwrap().to_bytes(),
        "payload"
    );
    send.send_response(
        Response::builder()
            .status(201)
            .header("x-inner", "yes")
            .body(Full::new(Bytes::from_static(b"created")))
            .unwrap(),
    );
    let res = fut.await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["x-inner"], "yes");
    assert!(matches!(res.body(), ResponseBody::Inner { .. }));
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "created"
    );
}

#[tokio::test(start_paused = true)]
async fn readiness_and_errors_are_the_inner_services() {
    let health = support::registry();
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(health.layer());
    handle.allow(0);
    assert_pending!(svc.poll_ready());
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
    let fut = svc.call(Request::get("/orders").body(Full::default()).unwrap());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(std::io::Error::other("inner failed"));
    let err = fut.await.unwrap_err();
    assert_eq!(err.to_string(), "inner failed");
}

#[test]
fn types_are_send_sync_and_clone() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    type Inner = tower::util::BoxCloneSyncService<Req, Res, Infallible>;
    send_sync_clone::<HealthRegistry>();
    send_sync_clone::<HealthLayer>();
    send_sync_clone::<Health<Inner>>();
    send::<<Health<Inner> as tower::Service<Req>>::Future>();
    send::<ResponseBody<Full<Bytes>>>();
    send::<Drained>();
    #[cfg(feature = "grpc")]
    send_sync_clone::<palisade_health::grpc::GrpcHealth>();
}
