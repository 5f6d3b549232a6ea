//! End to end through two real axum servers on loopback: one trace, parent/child links,
//! attributes, and the status rules for 4xx vs 5xx on server and client.

mod support;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::{SpanKind, Status};
use palisade_tracing_layer::{ClientTraceLayer, ServerTraceLayer};
use support::{attr, attr_str, find, otel};
use tower::{Service as _, ServiceBuilder, ServiceExt as _};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn backend() -> SocketAddr {
    let app = Router::new()
        .route(
            "/items/{id}",
            get(|Path(id): Path<String>| async move {
                tracing::info!("backend handler");
                match id.as_str() {
                    "boom" => StatusCode::INTERNAL_SERVER_ERROR,
                    "missing" => StatusCode::NOT_FOUND,
                    _ => StatusCode::OK,
                }
            }),
        )
        .route_layer(ServerTraceLayer::http());
    serve(app).await
}

async fn frontend(backend: SocketAddr) -> SocketAddr {
    let app = Router::new()
        .route(
            "/orders/{id}",
            get(move |Path(id): Path<String>| async move {
                let _handler = tracing::info_span!("handler work").entered();
                let mut svc = ServiceBuilder::new()
                    .layer(ClientTraceLayer::http())
                    .service(client());
                let uri = format!("http://user:secret@{backend}/items/{id}?token=abc&x");
                let req = http::Request::get(uri)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                drop(_handler);
                let res = svc.ready().await.unwrap().call(req).await.unwrap();
                let status = res.status();
                let _ = res.into_body().collect().await;
                if status.is_success() {
                    StatusCode::OK
                } else {
                    StatusCode::BAD_GATEWAY
                }
            }),
        )
        .route("/health/live", get(|| async { "ok" }))
        .route_layer(ServerTraceLayer::http());
    serve(app).await
}

async fn call(addr: SocketAddr, path: &str, traceparent: Option<&str>) -> StatusCode {
    let mut req =
        http::Request::get(format!("http://{addr}{path}")).header("user-agent", "e2e-test/1.0");
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let res = client()
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let _ = res.into_body().collect().await;
    status
}

const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test(flavor = "current_thread")]
async fn one_trace_across_two_servers_with_semconv_attributes() {
    let otel = otel();
    let b = backend().await;
    let a = frontend(b).await;
    assert_eq!(call(a, "/orders/42", Some(INCOMING)).await, StatusCode::OK);
    let spans = otel.spans();

    let front = find(&spans, "GET /orders/{id}");
    let outgoing = find(&spans, "GET");
    let back = find(&spans, "GET /items/{id}");
    let trace = front.span_context.trace_id();
    assert_eq!(format!("{trace}"), "4bf92f3577b34da6a3ce929d0e0e4736");
    for s in [front, outgoing, back] {
        assert_eq!(s.span_context.trace_id(), trace, "{}", s.name);
    }
    assert_eq!(format!("{}", front.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(outgoing.parent_span_id, front.span_context.span_id());
    assert_eq!(back.parent_span_id, outgoing.span_context.span_id());
    assert_eq!(front.span_kind, SpanKind::Server);
    assert_eq!(outgoing.span_kind, SpanKind::Client);
    assert_eq!(back.span_kind, SpanKind::Server);

    // Handler spans are children of the server span.
    let work = find(&spans, "handler work");
    assert_eq!(work.parent_span_id, front.span_context.span_id());

    assert_eq!(
        attr_str(front, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attr_str(front, "http.route").as_deref(),
        Some("/orders/{id}")
    );
    assert_eq!(attr_str(front, "url.path").as_deref(), Some("/orders/42"));
    assert_eq!(attr_str(front, "url.scheme").as_deref(), Some("http"));
    assert_eq!(
        attr_str(front, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr(front, "server.port").map(ToString::to_string),
        Some(a.port().to_string())
    );
    assert_eq!(
        attr_str(front, "client.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr_str(front, "user_agent.original").as_deref(),
        Some("e2e-test/1.0")
    );
    assert_eq!(
        attr_str(front, "network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(
        attr(front, "http.response.status_code").map(ToString::to_string),
        Some("200".to_owned())
    );
    assert_eq!(front.status, Status::Unset);
    // Integers are integer attributes, as the conventions type them.
    assert_eq!(
        attr(front, "http.response.status_code"),
        Some(&opentelemetry::Value::I64(200))
    );
    assert_eq!(
        attr(front, "server.port"),
        Some(&opentelemetry::Value::I64(i64::from(a.port())))
    );

    assert_eq!(
        attr_str(outgoing, "url.full").as_deref(),
        Some(format!("http://{b}/items/42?token=REDACTED&x").as_str())
    );
    assert_eq!(
        attr_str(outgoing, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr(outgoing, "server.port").map(ToString::to_string),
        Some(b.port().to_string())
    );
}

#[tokio::test(flavor = "current_thread")]
async fn status_rules_5xx_and_4xx() {
    let otel = otel();
    let b = backend().await;
    let a = frontend(b).await;
    assert_eq!(call(a, "/orders/boom", None).await, StatusCode::BAD_GATEWAY);
    let spans = otel.spans();
    let back = find(&spans, "GET /items/{id}");
    let outgoing = find(&spans, "GET");
    let front = find(&spans, "GET /orders/{id}");
    // No incoming parent: the front span is a root.
    assert_eq!(front.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    for s in [back, outgoing, front] {
        assert!(
            matches!(s.status, Status::Error { .. }),
            "{} {:?}",
            s.name,
            s.status
        );
    }
    assert_eq!(attr_str(back, "error.type").as_deref(), Some("500"));
    assert_eq!(attr_str(front, "error.type").as_deref(), Some("502"));

    otel.exporter.reset();
    assert_eq!(
        call(a, "/orders/missing", None).await,
        StatusCode::BAD_GATEWAY
    );
    let spans = otel.spans();
    let back = find(&spans, "GET /items/{id}");
    let outgoing = find(&spans, "GET");
    // 404: not an error on the server, an error on the client.
    assert_eq!(back.status, Status::Unset);
    assert_eq!(attr(back, "error.type"), None);
    assert!(matches!(outgoing.status, Status::Error { .. }));
    assert_eq!(attr_str(outgoing, "error.type").as_deref(), Some("404"));
}

#[tokio::test(flavor = "current_thread")]
async fn probes_are_not_traced_and_edge_mode_links() {
    let otel = otel();
    let b = backend().await;
    let a = frontend(b).await;
    assert_eq!(
        call(a, "/health/live", Some(INCOMING)).await,
        StatusCode::OK
    );
    assert!(otel.spans().is_empty());

    // Edge mode: a new root with a link to the remote context.
    let app = Router::new()
        .route("/x", get(|| async { "ok" }))
        .route_layer(ServerTraceLayer::http().trust_remote(false));
    let edge = serve(app).await;
    assert_eq!(call(edge, "/x", Some(INCOMING)).await, StatusCode::OK);
    let spans = otel.spans();
    let s = find(&spans, "GET /x");
    assert_ne!(
        format!("{}", s.span_context.trace_id()),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(s.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    assert_eq!(s.links.links.len(), 1);
    assert_eq!(
        format!("{}", s.links.links[0].span_context.trace_id()),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn span_ends_when_the_body_ends_and_response_headers() {
    let otel = otel();
    let svc = ServiceBuilder::new()
        .layer(
            ServerTraceLayer::http()
                .response_trace_header(http::HeaderName::from_static("traceresponse"))
                .server_timing(true),
        )
        .service_fn(|_req: http::Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("body"))))
        });
    let req = http::Request::builder()
        .method("PURGE")
        .uri("/cache")
        .header("traceparent", INCOMING)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert!(otel.spans().is_empty(), "span ended before the body");
    let tr = res.headers()["traceresponse"].to_str().unwrap().to_owned();
    assert!(
        tr.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tr}"
    );
    assert_eq!(
        res.headers()["server-timing"].to_str().unwrap(),
        format!("trace;desc={tr}")
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"body");
    let spans = otel.spans();
    let s = find(&spans, "HTTP");
    assert_eq!(
        attr_str(s, "http.request.method").as_deref(),
        Some("_OTHER")
    );
    assert_eq!(
        attr_str(s, "http.request.method_original").as_deref(),
        Some("PURGE")
    );
    assert!(tr.contains(&format!("{}", s.span_context.span_id())));
}

#[tokio::test(flavor = "current_thread")]
async fn resend_count_from_the_retry_attempt() {
    let otel = otel();
    let svc = ServiceBuilder::new()
        .layer(ClientTraceLayer::http())
        .service_fn(|req: http::Request<Full<Bytes>>| async move {
            assert!(req.headers().contains_key("traceparent"));
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
        });
    let mut req = http::Request::get("http://127.0.0.1:9/x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    req.extensions_mut().insert(palisade_retry::Attempt::new(3));
    let res = svc.oneshot(req).await.unwrap();
    drop(res);
    let spans = otel.spans();
    let s = find(&spans, "GET");
    assert_eq!(
        attr(s, "http.request.resend_count"),
        Some(&opentelemetry::Value::I64(2))
    );
}

#[tokio::test(flavor = "current_thread")]
async fn baggage_and_tracestate_flow_from_server_to_client_calls() {
    let _otel = otel();
    let outgoing = std::sync::Arc::new(std::sync::Mutex::new(http::HeaderMap::new()));
    let seen = outgoing.clone();
    let server = ServiceBuilder::new()
        .layer(ServerTraceLayer::http())
        .service_fn(move |_req: http::Request<Full<Bytes>>| {
            let seen = seen.clone();
            async move {
                let client = ServiceBuilder::new()
                    .layer(ClientTraceLayer::http())
                    .service_fn(move |req: http::Request<Full<Bytes>>| {
                        *seen.lock().unwrap() = req.headers().clone();
                        async {
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::new(),
                            )))
                        }
                    });
                let req = http::Request::get("http://127.0.0.1:9/next")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                drop(client.oneshot(req).await.unwrap());
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
            }
        });
    let req = http::Request::get("/in")
        .header("traceparent", INCOMING)
        .header("tracestate", "vendor=abc")
        .header("baggage", "tenant=acme,user=alice%20b")
        .body(Full::new(Bytes::new()))
        .unwrap();
    drop(server.oneshot(req).await.unwrap());
    let headers = outgoing.lock().unwrap().clone();
    let tp = headers["traceparent"].to_str().unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert!(!tp.contains("00f067aa0ba902b7"), "a new parent id: {tp}");
    assert_eq!(headers["tracestate"], "vendor=abc");
    let mut baggage: Vec<&str> = headers["baggage"].to_str().unwrap().split(',').collect();
    baggage.sort_unstable();
    assert_eq!(baggage, ["tenant=acme", "user=alice%20b"]);
}
