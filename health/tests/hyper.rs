//! The layer in front of a plain hyper service (no axum, no tonic), over real
//! connections on loopback, including `HEAD` on the wire.

mod support;

use std::convert::Infallible;

use ::http::{Request, Response};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use palisade_health::{HealthCheck, HealthRegistry};
use palisade_testkit::http as probe;
use support::{FAIL, Scripted};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Layer, service_fn};

/// Serves connections with hyper's HTTP/1 server until the test ends.
async fn serve(health: &HealthRegistry) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let svc = health
        .layer()
        .layer(service_fn(|req: Request<Incoming>| async move {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                "inner {}",
                req.uri().path()
            )))))
        }));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Sends a raw request and returns the response head and body as text.
async fn raw(addr: &str, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    )
    .await
    .unwrap()
    .unwrap();
    String::from_utf8(out).unwrap().to_ascii_lowercase()
}

#[tokio::test]
async fn plain_hyper_service_get_head_and_pass_through() {
    let health = HealthRegistry::builder().build().unwrap();
    let addr = serve(&health).await;

    let live = probe::get(&addr, "/health/live").await.unwrap();
    assert_eq!(
        (live.status, live.body.as_str()),
        (200, r#"{"status":"pass"}"#)
    );
    let other = probe::get(&addr, "/orders").await.unwrap();
    assert_eq!((other.status, other.body.as_str()), (200, "inner /orders"));

    health
        .register(HealthCheck::readiness("db", Scripted::new(FAIL)))
        .unwrap();
    for _ in 0..200 {
        if probe::get(&addr, "/health/ready").await.unwrap().status == 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let get = raw(
        &addr,
        "GET /health/ready HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(get.starts_with("http/1.1 503"), "{get}");
    assert!(
        get.contains("content-type: application/health+json"),
        "{get}"
    );
    assert!(get.contains("content-length: 17\r\n"), "{get}");
    assert!(get.ends_with("\r\n\r\n{\"status\":\"fail\"}"), "{get}");

    // HEAD: same status and headers, the GET body's length, and no body on the wire.
    let head = raw(
        &addr,
        "HEAD /health/ready HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(
        head.contains("content-type: application/health+json"),
        "{head}"
    );
    assert!(head.contains("content-length: 17\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body: {head:?}");
}
