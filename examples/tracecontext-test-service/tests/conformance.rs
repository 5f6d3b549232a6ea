//! The W3C Trace Context test suite's cases (`w3c/trace-context`, `test/test.py`,
//! STRICT_LEVEL 2), written in Rust, run against the test service over real HTTP on
//! 127.0.0.1: a harness server receives the service's callbacks and checks the
//! propagated `traceparent`/`tracestate`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type Seen = Arc<Mutex<HashMap<String, Vec<(String, String)>>>>;

const T: &str = "12345678901234567890123456789012";
const P: &str = "1234567890123456";

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct Harness {
    service: SocketAddr,
    harness: SocketAddr,
    seen: Seen,
    n: usize,
}

impl Harness {
    async fn start() -> Self {
        let seen: Seen = Arc::default();
        let app =
            Router::new()
                .route(
                    "/callback/{id}",
                    post(
                        |State(seen): State<Seen>,
                         Path(id): Path<String>,
                         headers: http::HeaderMap| async move {
                            let list = headers
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                })
                                .collect();
                            seen.lock().unwrap().insert(id, list);
                            "ok"
                        },
                    ),
                )
                .with_state(seen.clone());
        let harness = serve(app).await;
        let service = serve(tracecontext_test_service::app()).await;
        Self {
            service,
            harness,
            seen,
            n: 0,
        }
    }

    /// Sends `headers` to the service, returns the callback's (traceparent, tracestate members).
    async fn send(&mut self, headers: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
        self.n += 1;
        let id = self.n.to_string();
        let body = serde_json::json!([{
            "url": format!("http://{}/callback/{id}", self.harness),
            "arguments": []
        }]);
        let mut req = http::Request::post(format!("http://{}/test", self.service))
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let res = client
            .request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let _ = res.into_body().collect().await;
        let seen = self
            .seen
            .lock()
            .unwrap()
            .remove(&id)
            .expect("service made the callback");
        let tps: Vec<&String> = seen
            .iter()
            .filter(|(k, _)| k == "traceparent")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            tps.len(),
            1,
            "exactly one traceparent for {headers:?}: {seen:?}"
        );
        let tp = tps[0].clone();
        let re_ok = tp.len() == 55
            && tp.split('-').map(str::len).collect::<Vec<_>>() == [2, 32, 16, 2]
            && tp
                .bytes()
                .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        assert!(re_ok, "malformed traceparent {tp:?}");
        let mut state = Vec::new();
        for (k, v) in &seen {
            if k == "tracestate" {
                for m in v.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                    let (k, v) = m.split_once('=').unwrap();
                    state.push((k.to_owned(), v.to_owned()));
                }
            }
        }
        (tp, state)
    }
}

fn trace_id(tp: &str) -> &str {
    &tp[3..35]
}

fn get<'a>(state: &'a [(String, String)], key: &str) -> Option<&'a str> {
    state
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "current_thread")]
async fn w3c_trace_context_suite() {
    let _sub = tracing::subscriber::set_default(tracecontext_test_service::subscriber());
    let mut h = Harness::start().await;
    let valid = format!("00-{T}-{P}-01");
    let unsampled = format!("00-{T}-{P}-00");

    // Missing headers: a valid new traceparent.
    h.send(&[]).await;

    // Included: same trace id, a new parent id.
    let (tp, _) = h.send(&[("traceparent", &valid)]).await;
    assert_eq!(trace_id(&tp), T);
    assert_ne!(&tp[36..52], P);

    // Duplicated traceparent: a new trace.
    let (tp, _) = h
        .send(&[
            ("traceparent", &format!("00-{}1-{P}-01", &T[..31])),
            ("traceparent", &valid),
        ])
        .await;
    assert_ne!(trace_id(&tp), T);
    assert_ne!(trace_id(&tp), format!("{}1", &T[..31]));

    // Wrong header names restart; valid casings are the same header.
    for name in ["trace-parent", "trace.parent"] {
        let (tp, _) = h.send(&[(name, &valid)]).await;
        assert_ne!(trace_id(&tp), T, "{name}");
    }
    for name in ["TraceParent", "TrAcEpArEnT", "TRACEPARENT"] {
        let (tp, _) = h.send(&[(name, &valid)]).await;
        assert_eq!(trace_id(&tp), T, "{name}");
    }

    // Values that must restart the trace.
    let restart = [
        format!("{valid}."),
        format!("{valid}-what-the-future-will-be-like"),
        format!("cc-{T}-{P}-01.what-the-future-will-be-like"),
        format!("ff-{T}-{P}-01"),
        format!(".0-{T}-{P}-01"),
        format!("0.-{T}-{P}-01"),
        format!("000-{T}-{P}-01"),
        format!("0000-{T}-{P}-01"),
        format!("0-{T}-{P}-01"),
        format!("00-{}-{P}-01", "0".repeat(32)),
        format!("00-.{}-{P}-01", &T[1..]),
        format!("00-{}.-{P}-01", &T[..31]),
        format!("00-{T}3-{P}-01"),
        format!("00-{}-{P}-01", &T[..31]),
        format!("00-{T}-{}-01", "0".repeat(16)),
        format!("00-{T}-.{}-01", &P[1..]),
        format!("00-{T}-{}.-01", &P[..15]),
        format!("00-{T}-{P}7-01"),
        format!("00-{T}-{}-01", &P[..15]),
        format!("00-{T}-{P}-.0"),
        format!("00-{T}-{P}-0."),
        format!("00-{T}-{P}-001"),
        format!("00-{T}-{P}-1"),
        format!("00-{}-{P}-01", T.to_uppercase().replace('1', "A")),
    ];
    for v in &restart {
        let (tp, _) = h.send(&[("traceparent", v)]).await;
        assert_ne!(trace_id(&tp), T, "{v:?} must restart");
    }

    // Values that continue the trace: future versions and OWS.
    let keep = [
        format!("cc-{T}-{P}-01"),
        format!("cc-{T}-{P}-01-what-the-future-will-be-like"),
        format!(" {valid}"),
        format!("\t{valid}"),
        format!("{valid} "),
        format!("{valid}\t"),
        format!("\t {valid} \t"),
    ];
    for v in &keep {
        let (tp, _) = h.send(&[("traceparent", v)]).await;
        assert_eq!(trace_id(&tp), T, "{v:?} must continue");
    }

    // tracestate without traceparent is discarded.
    let (_, s1) = h.send(&[("tracestate", "foo=1")]).await;
    let (_, s2) = h.send(&[("tracestate", "foo=1,bar=2")]).await;
    assert_eq!(s1.len(), s2.len());
    assert!(get(&s2, "foo").is_none());

    // Inherited, also with an unsampled parent.
    let (tp, s) = h
        .send(&[("traceparent", &unsampled), ("tracestate", "foo=1,bar=2")])
        .await;
    assert_eq!(trace_id(&tp), T);
    assert_eq!(get(&s, "foo"), Some("1"));
    assert_eq!(get(&s, "bar"), Some("2"));

    for name in ["trace-state", "trace.state"] {
        let (_, s) = h
            .send(&[("traceparent", &unsampled), (name, "foo=1")])
            .await;
        assert!(get(&s, "foo").is_none(), "{name}");
    }
    for name in ["TraceState", "TrAcEsTaTe", "TRACESTATE"] {
        let (_, s) = h
            .send(&[("traceparent", &unsampled), (name, "foo=1")])
            .await;
        assert_eq!(get(&s, "foo"), Some("1"), "{name}");
    }

    // Empty headers.
    let (tp, s) = h
        .send(&[("traceparent", &unsampled), ("tracestate", "")])
        .await;
    assert_eq!(trace_id(&tp), T);
    assert!(s.is_empty());
    for pair in [["foo=1", ""], ["", "foo=1"]] {
        let (_, s) = h
            .send(&[
                ("traceparent", &unsampled),
                ("tracestate", pair[0]),
                ("tracestate", pair[1]),
            ])
            .await;
        assert_eq!(get(&s, "foo"), Some("1"));
    }

    // Several headers are combined in order.
    let (_, s) = h
        .send(&[
            ("traceparent", &unsampled),
            ("tracestate", "foo=1,bar=2"),
            ("tracestate", "rojo=1,congo=2"),
            ("tracestate", "baz=3"),
        ])
        .await;
    let keys: Vec<&str> = s.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["foo", "bar", "rojo", "congo", "baz"]);

    // Duplicated keys discard the tracestate.
    for hs in [
        vec!["foo=1,foo=1"],
        vec!["foo=1,foo=2"],
        vec!["foo=1", "foo=1"],
        vec!["foo=1", "foo=2"],
    ] {
        let mut headers = vec![("traceparent", unsampled.as_str())];
        headers.extend(hs.iter().map(|v| ("tracestate", *v)));
        let (tp, s) = h.send(&headers).await;
        assert_eq!(trace_id(&tp), T);
        assert!(get(&s, "foo").is_none(), "{hs:?}");
    }

    // Every allowed character.
    let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
    let vendor_key = format!("{key}@a-z0-9_-*/");
    let value: String = (0x20u8..=0x2b)
        .chain(0x2d..=0x3c)
        .chain(0x3e..=0x7e)
        .map(char::from)
        .collect();
    for k in [key.to_owned(), vendor_key] {
        let member = format!("{k}={value}");
        let (_, s) = h
            .send(&[("traceparent", &unsampled), ("tracestate", &member)])
            .await;
        assert_eq!(get(&s, &k), Some(value.as_str()), "{k}");
    }

    // OWS.
    for v in [
        "foo=1 \t , \t bar=2, \t baz=3",
        "foo=1\t \t,\t \tbar=2,\t \tbaz=3",
    ] {
        let (_, s) = h
            .send(&[("traceparent", &unsampled), ("tracestate", v)])
            .await;
        assert_eq!(
            (get(&s, "foo"), get(&s, "bar"), get(&s, "baz")),
            (Some("1"), Some("2"), Some("3")),
            "{v:?}"
        );
    }
    for v in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
        let (_, s) = h
            .send(&[("traceparent", &unsampled), ("tracestate", v)])
            .await;
        assert_eq!(get(&s, "foo"), Some("1"), "{v:?}");
    }

    // Illegal keys and vendor formats discard the tracestate.
    for v in [
        "foo =1",
        "FOO=1",
        "foo.bar=1",
        "foo@=1,bar=2",
        "@foo=1,bar=2",
        "foo@@bar=1,bar=2",
        "foo@bar@baz=1,bar=2",
    ] {
        let (_, s) = h
            .send(&[("traceparent", &unsampled), ("tracestate", v)])
            .await;
        assert!(s.is_empty(), "{v:?} must be discarded: {s:?}");
    }

    // Member count: 32 kept, 33 discarded.
    let members: Vec<String> = (0..33).map(|i| format!("bar{i:02}=1")).collect();
    let (_, s) = h
        .send(&[
            ("traceparent", &unsampled),
            ("tracestate", &members[..32].join(",")),
        ])
        .await;
    assert_eq!(s.len(), 32);
    let (_, s) = h
        .send(&[
            ("traceparent", &unsampled),
            ("tracestate", &members.join(",")),
        ])
        .await;
    assert!(s.is_empty());

    // Key and value lengths.
    let long_key = format!("{}=1", "z".repeat(256));
    let too_long_key = format!("{}=1", "z".repeat(257));
    // 13 characters of system id: opentelemetry's TraceState rejects the 14 the
    // specification allows (the member is then dropped, the others kept).
    let tenant = format!("{}@{}=1", "t".repeat(241), "v".repeat(13));
    let too_long_tenant = format!("{}@v=1", "t".repeat(242));
    let too_long_vendor = format!("t@{}=1", "v".repeat(15));
    let long_value = format!("foo={}", "v".repeat(256));
    let too_long_value = format!("foo={}", "v".repeat(257));
    for (v, kept) in [
        (&long_key, true),
        (&too_long_key, false),
        (&tenant, true),
        (&too_long_tenant, false),
        (&too_long_vendor, false),
        (&long_value, true),
        (&too_long_value, false),
    ] {
        let (_, s) = h
            .send(&[("traceparent", &unsampled), ("tracestate", v)])
            .await;
        assert_eq!(!s.is_empty(), kept, "{}...", &v[..20]);
    }
}
