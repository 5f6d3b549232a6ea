//! Metrics cardinality stays bounded under hostile traffic: 100,000 requests with random
//! paths and unknown HTTP methods against the real order-service binary leave the
//! `http_server_*` label sets equal to the route templates (`/orders`, `/orders/{id}`),
//! with methods from the standard set (others folded into `_OTHER`).
//!
//! Needs the `inventory-service` and `order-service` binaries of the same profile.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use soak::metrics::Scrape;

const REQUESTS: usize = 100_000;
const CLIENTS: usize = 16;
const TEMPLATES: [&str; 2] = ["/orders", "/orders/{id}"];
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];

/// Characters allowed unescaped in a URI path segment.
const PCHARS: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@";

fn random_segment(rng: &mut fastrand::Rng) -> String {
    let len = rng.usize(0..24);
    let mut s = String::with_capacity(len * 3);
    for _ in 0..len {
        if rng.u8(..8) == 0 {
            s.push_str(&format!("%{:02X}", rng.u8(..)));
        } else {
            s.push(char::from(PCHARS[rng.usize(..PCHARS.len())]));
        }
    }
    s
}

/// A random request: mostly random paths (a few under `/orders/`, which match the
/// `/orders/{id}` template), and a method that is either standard or a random token.
fn random_request(rng: &mut fastrand::Rng) -> (hyper::Method, String) {
    let method = match rng.u8(..4) {
        0 => hyper::Method::GET,
        1 => hyper::Method::POST,
        _ => {
            let token: String = (0..rng.usize(1..12))
                .map(|_| char::from(rng.u8(b'A'..=b'Z')))
                .collect();
            hyper::Method::from_bytes(token.as_bytes()).expect("a token is a valid method")
        }
    };
    let path = match rng.u8(..10) {
        // The id template with a random id, and the exact collection path.
        0 => format!("/orders/{}", random_segment(rng)),
        1 => "/orders".to_owned(),
        _ => (0..rng.usize(1..6))
            .map(|_| format!("/{}", random_segment(rng)))
            .collect(),
    };
    let path = if rng.u8(..5) == 0 {
        format!("{path}?{}={}", random_segment(rng), random_segment(rng))
    } else {
        path
    };
    (method, path)
}

/// What 100,000 hostile requests left in order-service's `/metrics`.
#[derive(Debug)]
struct Outcome {
    /// The distinct `http_server_*` label sets (`le` left out).
    label_sets: BTreeSet<Vec<(String, String)>>,
    routes: BTreeSet<String>,
    methods: BTreeSet<String>,
    statuses: BTreeSet<u16>,
    took: Duration,
}

/// Runs the 100,000 requests once for the tests of this file (they share the result).
fn outcome() -> &'static Outcome {
    static OUTCOME: OnceLock<Outcome> = OnceLock::new();
    OUTCOME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(hammer())
    })
}

async fn hammer() -> Outcome {
    let mut system = soak::System::start(&soak::Options::ci(soak::default_bin_dir()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let base = format!("http://{}", system.http_addr());
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());

    // Both templates seen with ordinary traffic first.
    let order = r#"{"items":[{"sku":"KB-0001","quantity":1}]}"#;
    let created = client
        .request(
            hyper::Request::post(format!("{base}/orders"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(order)))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let body = created.into_body().collect().await.unwrap().to_bytes();
    let id = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = client
        .request(
            hyper::Request::get(format!("{base}/orders/{id}"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(got.status(), 200);

    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = client.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(0x5eed + c as u64);
            let mut statuses = BTreeSet::new();
            // Bounded: a fixed number of requests per client, each with a timeout.
            for _ in 0..REQUESTS / CLIENTS {
                let (method, path) = random_request(&mut rng);
                let request = hyper::Request::builder()
                    .method(method.clone())
                    .uri(format!("{base}{path}"))
                    .body(Full::default())
                    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
                let response =
                    tokio::time::timeout(Duration::from_secs(10), client.request(request))
                        .await
                        .unwrap_or_else(|_| panic!("{method} {path}: no answer within 10 s"))
                        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
                let status = response.status().as_u16();
                assert!(status < 500, "{method} {path} answered {status}");
                statuses.insert(status);
                let _ = response.into_body().collect().await;
            }
            statuses
        }));
    }
    let mut statuses = BTreeSet::new();
    for t in tasks {
        statuses.extend(t.await.unwrap());
    }
    let took = start.elapsed();
    system.check_running().unwrap();

    let metrics = palisade_testkit::http::get(system.http_addr(), "/metrics")
        .await
        .unwrap();
    assert_eq!(metrics.status, 200);
    let scrape = Scrape::parse(&metrics.body);
    let series: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.name.starts_with("http_server_"))
        .collect();
    assert!(
        !series.is_empty(),
        "no http_server_* metrics:\n{}",
        metrics.body
    );
    let label_sets = series
        .iter()
        .map(|s| {
            s.labels
                .iter()
                .filter(|(k, _)| k.as_str() != "le" && k.as_str() != "quantile")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .collect();
    let label = |key: &str| -> BTreeSet<String> {
        series
            .iter()
            .filter_map(|s| s.labels.get(key).cloned())
            .collect()
    };
    Outcome {
        label_sets,
        routes: label("http_route"),
        methods: label("http_request_method"),
        statuses,
        took,
    }
}

#[test]
fn random_paths_leave_only_the_route_templates_as_route_labels() {
    let o = outcome();
    let templates: BTreeSet<String> = TEMPLATES.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(
        o.routes, templates,
        "route labels after {REQUESTS} random requests (answers {:?})",
        o.statuses
    );
    println!(
        "{REQUESTS} random requests in {:?}; answers {:?}; routes {:?}",
        o.took, o.statuses, o.routes
    );
}

#[test]
fn unknown_methods_leave_a_bounded_set_of_method_labels() {
    let o = outcome();
    let unknown: Vec<&String> = o
        .methods
        .iter()
        .filter(|m| !METHODS.contains(&m.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "{} method labels outside the standard set (first: {:?}) after {REQUESTS} requests with \
         random methods: an unknown method must be recorded as `_OTHER`",
        unknown.len(),
        unknown.iter().take(10).collect::<Vec<_>>()
    );
    // Two templates, at most ten methods, a handful of status codes.
    assert!(
        o.label_sets.len() <= TEMPLATES.len() * METHODS.len() * 8,
        "{} http_server_* label sets",
        o.label_sets.len()
    );
    println!(
        "{} http_server_* label sets: {:?}",
        o.label_sets.len(),
        o.label_sets
    );
}
