//! Property tests of routing and the details token against simple models, over
//! arbitrary methods, paths and `Authorization` values: never a panic, probes only on
//! exact paths with `GET`/`HEAD`, details only for the exact bearer token.

mod support;

use bytes::Bytes;
use http::{HeaderValue, Method, Request};
use http_body_util::Full;
use palisade_health::{Details, HealthRegistry};
use proptest::prelude::*;

const TOKEN: &str = "s3cret-Token_42";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::HEAD),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::DELETE),
        Just(Method::OPTIONS),
        Just(Method::PATCH),
        "[A-Z]{1,8}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/health/live".to_owned()),
        Just("/health/ready".to_owned()),
        Just("/health/startup".to_owned()),
        "/health/(live|ready|startup)[a-z/?=&%0-9]{0,6}",
        "/[a-zA-Z0-9/._~%-]{0,24}",
    ]
}

fn auth() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        Just(Some(format!("Bearer {TOKEN}").into_bytes())),
        Just(Some(format!("bearer   {TOKEN} ").into_bytes())),
        Just(Some(format!("Bearer {}", &TOKEN[1..]).into_bytes())),
        "(Bearer|bearer|Basic|) ?[ -~]{0,20}".prop_map(|s| Some(s.into_bytes())),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Some),
    ]
}

/// The model of the token check: `Bearer` (any case), one space, optional spaces or
/// tabs around the exact token.
fn shows_details(auth: Option<&[u8]>) -> bool {
    let Some(v) = auth else { return false };
    v.len() >= 7
        && v[..7].eq_ignore_ascii_case(b"bearer ")
        && v[7..].trim_ascii() == TOKEN.as_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn routing_and_details_follow_the_model(method in method(), path in path(), auth in auth()) {
        let rt = runtime();
        let probe = rt.block_on(async {
            let health = HealthRegistry::builder()
                .without_runtime_heartbeat()
                .details(Details::token(TOKEN))
                .release_id("1")
                .build()
                .unwrap();
            let mut req = Request::builder().method(method.clone()).uri(path.as_str());
            let valid_header = auth.as_deref().and_then(|a| HeaderValue::from_bytes(a).ok());
            if let Some(v) = valid_header.clone() {
                req = req.header(http::header::AUTHORIZATION, v);
            }
            let req: Request<Full<Bytes>> = req.body(Full::default()).unwrap();
            let uri_path = req.uri().path().to_owned();
            let p = support::send(&health, req).await;
            (p, uri_path, valid_header)
        });
        let (p, uri_path, header) = probe;
        let is_probe = matches!(method, Method::GET | Method::HEAD)
            && ["/health/live", "/health/ready", "/health/startup"].contains(&uri_path.as_str());
        if is_probe {
            prop_assert_eq!(p.status, 200);
            prop_assert_eq!(&p.headers[http::header::CONTENT_TYPE], "application/health+json");
            if method == Method::GET {
                let detailed = p.json().get("releaseId").is_some();
                prop_assert_eq!(detailed, shows_details(header.as_ref().map(HeaderValue::as_bytes)));
            } else {
                prop_assert!(p.body.is_empty());
            }
        } else {
            prop_assert_eq!(p.body, format!("inner {method} {uri_path}"));
        }
    }
}
