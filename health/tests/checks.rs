//! The ready-made checks against real sockets and a real HTTP server on loopback.

use palisade_health::checks::TcpCheck;
use palisade_health::{Check, Status};

#[tokio::test]
async fn tcp_check_passes_when_the_port_accepts_and_fails_when_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let outcome = TcpCheck::new(addr.clone()).check().await;
    assert_eq!(outcome.status(), Status::Pass, "{outcome:?}");
    drop(listener);
    let outcome = TcpCheck::new(addr.clone()).check().await;
    assert_eq!(outcome.status(), Status::Fail);
    let output = outcome.output().unwrap();
    assert!(
        output.starts_with(&format!("connect to {addr}:")),
        "{output}"
    );
    // An address that does not resolve fails too, with the reason.
    let outcome = TcpCheck::new("not an address").check().await;
    assert_eq!(outcome.status(), Status::Fail);
}

#[cfg(feature = "http-check")]
mod http_get {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use palisade_health::checks::HttpGetCheck;
    use palisade_health::{Check, Status};

    #[tokio::test]
    async fn http_get_check_expects_2xx() {
        let app = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/no-content", get(|| async { StatusCode::NO_CONTENT }))
            .route("/down", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
            .route("/moved", get(|| async { StatusCode::MOVED_PERMANENTLY }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let status = |path: &str| {
            let check = HttpGetCheck::new(&format!("http://{addr}{path}")).unwrap();
            async move { check.check().await }
        };
        assert_eq!(status("/ok").await.status(), Status::Pass);
        assert_eq!(status("/no-content").await.status(), Status::Pass);
        let down = status("/down").await;
        assert_eq!(down.status(), Status::Fail);
        assert!(down.output().unwrap().contains("500"), "{down:?}");
        assert_eq!(status("/moved").await.status(), Status::Fail);
        assert_eq!(status("/missing").await.status(), Status::Fail);

        // The same check reuses its pooled connection across runs.
        let check = HttpGetCheck::new(&format!("http://{addr}/ok")).unwrap();
        for _ in 0..3 {
            assert_eq!(check.check().await.status(), Status::Pass);
        }

        server.abort();
        let _ = server.await;
        let refused = status("/ok").await;
        assert_eq!(refused.status(), Status::Fail);
    }

    /// The body is read, so the pooled connection is reused across runs.
    #[tokio::test]
    async fn http_get_check_reuses_its_connection() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        use hyper_util::rt::TokioIo;
        use hyper_util::service::TowerToHyperService;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let app = Router::new().route("/ok", get(|| async { "x".repeat(60_000) }));
        let server = tokio::spawn({
            let accepted = Arc::clone(&accepted);
            async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let svc = TowerToHyperService::new(app.clone());
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc),
                    );
                }
            }
        });
        let check = HttpGetCheck::new(&format!("http://{addr}/ok")).unwrap();
        for _ in 0..5 {
            assert_eq!(check.check().await.status(), Status::Pass);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one pooled connection");
        server.abort();
    }

    #[test]
    fn http_get_check_rejects_bad_uris() {
        for uri in [
            "",
            "not a uri",
            "/relative",
            "https://example.com/",
            "ftp://x/",
        ] {
            let err = HttpGetCheck::new(uri).unwrap_err();
            assert_eq!(err.field(), "uri", "{uri}: {err}");
        }
    }
}
