//! gRPC's deadline is the call's, across all attempts (gRFC A6): a call carrying
//! `grpc-timeout` is retried and hedged only while time is left, and every retry or hedge
//! carries `grpc-timeout` rewritten to the time left when it is sent. In-process with paused
//! time (exact schedules); through a real tonic channel and server in `grpc.rs`.
#![cfg(feature = "grpc")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use palisade_retry::grpc::{GrpcPolicy, parse_grpc_timeout};
use palisade_retry::{Backoff, HedgeLayer, Jitter, ReplayBody, RetryLayer};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);
const CHECK: &str = "/inventory.v1.Inventory/CheckStock";

/// What each attempt carried: its `grpc-timeout` (raw) and when it was sent.
type Seen = Arc<Mutex<Vec<(Option<String>, Instant)>>>;

/// Answers every call with a trailers-only UNAVAILABLE (with `pushback`, if any) after `delay`.
fn unavailable(
    seen: Seen,
    delay: Duration,
    pushback: Option<&'static str>,
) -> impl Service<
    http::Request<ReplayBody<Full<Bytes>>>,
    Response = http::Response<()>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone {
    service_fn(move |req: http::Request<ReplayBody<Full<Bytes>>>| {
        let timeout = req
            .headers()
            .get("grpc-timeout")
            .map(|v| v.to_str().unwrap().to_owned());
        seen.lock().unwrap().push((timeout, Instant::now()));
        async move {
            tokio::time::sleep(delay).await;
            let mut res = http::Response::new(());
            res.headers_mut()
                .insert("grpc-status", "14".parse().unwrap());
            if let Some(p) = pushback {
                res.headers_mut()
                    .insert("grpc-retry-pushback-ms", p.parse().unwrap());
            }
            Ok(res)
        }
    })
}

fn call(timeout: Option<&'static str>) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::post(format!("http://127.0.0.1{CHECK}"))
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap();
    if let Some(t) = timeout {
        req.headers_mut().insert("grpc-timeout", t.parse().unwrap());
    }
    req
}

fn layer(backoff: Duration) -> RetryLayer<GrpcPolicy> {
    RetryLayer::builder("inventory", GrpcPolicy::new())
        .backoff(Backoff::constant(backoff))
        .jitter(Jitter::None)
        .max_attempts(10)
        .without_budget()
        .build()
        .unwrap()
}

fn timeouts(seen: &Seen) -> Vec<Option<String>> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(t, _)| t.clone())
        .collect()
}

/// Retries stop once the next one would be sent past the caller's `grpc-timeout`, and each
/// carries the time left, not the whole timeout again.
#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_call_deadline_and_carry_the_time_left() {
    let seen = Seen::default();
    let svc = layer(300 * MS).layer(unavailable(seen.clone(), 10 * MS, None));
    let t0 = Instant::now();
    let res = svc.oneshot(call(Some("1S"))).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "14", "the last failure");
    // Sent at 0, 310, 620 and 930 ms; a fifth would go at 1240 ms, past the deadline.
    let seen = seen.lock().unwrap();
    let sent: Vec<Duration> = seen.iter().map(|(_, at)| *at - t0).collect();
    assert_eq!(sent, [Duration::ZERO, 310 * MS, 620 * MS, 930 * MS]);
    assert_eq!(
        seen[0].0.as_deref(),
        Some("1S"),
        "the first attempt is as the caller sent it"
    );
    for (timeout, at) in &seen[1..] {
        let left = parse_grpc_timeout(&timeout.as_deref().unwrap().parse().unwrap()).unwrap();
        // Tokio's timer fires on whole milliseconds after the call's start.
        let want = Duration::from_secs(1) - (*at - t0);
        assert!(left <= want && want - left < MS, "{left:?} vs {want:?}");
    }
    assert_eq!(t0.elapsed(), 940 * MS, "returned when the fourth answered");
}

/// The deadline is the earlier of `max_elapsed` and the call's own.
#[tokio::test(start_paused = true)]
async fn max_elapsed_and_grpc_timeout_the_earlier_wins() {
    for (timeout, max_elapsed, calls) in [
        (Some("1S"), Duration::from_secs(10), 4),
        (Some("10S"), Duration::from_secs(1), 4),
        (Some("500m"), Duration::from_secs(1), 2),
        (None, Duration::from_secs(1), 4),
    ] {
        let seen = Seen::default();
        let svc = RetryLayer::builder("inventory", GrpcPolicy::new())
            .backoff(Backoff::constant(300 * MS))
            .jitter(Jitter::None)
            .max_attempts(10)
            .max_elapsed(max_elapsed)
            .without_budget()
            .build()
            .unwrap()
            .layer(unavailable(seen.clone(), 10 * MS, None));
        let _ = svc.oneshot(call(timeout)).await.unwrap();
        assert_eq!(
            seen.lock().unwrap().len(),
            calls,
            "{timeout:?}, {max_elapsed:?}"
        );
        if timeout.is_none() {
            assert!(
                timeouts(&seen).iter().all(Option::is_none),
                "no grpc-timeout is added to a call that had none"
            );
        }
    }
}

/// A server's pushback that ends past the deadline stops retrying at once.
#[tokio::test(start_paused = true)]
async fn pushback_past_the_deadline_is_not_waited_for() {
    let seen = Seen::default();
    let svc = layer(MS).layer(unavailable(seen.clone(), MS, Some("2000")));
    let t0 = Instant::now();
    let _ = svc.oneshot(call(Some("1S"))).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(
        t0.elapsed(),
        MS,
        "returned as soon as the answer said to wait too long"
    );
}

/// A malformed `grpc-timeout` sets no deadline and is sent as it is on every attempt.
#[tokio::test(start_paused = true)]
async fn a_malformed_grpc_timeout_is_left_alone() {
    let seen = Seen::default();
    let svc = RetryLayer::builder("inventory", GrpcPolicy::new())
        .backoff(Backoff::constant(300 * MS))
        .jitter(Jitter::None)
        .max_attempts(5)
        .without_budget()
        .build()
        .unwrap()
        .layer(unavailable(seen.clone(), MS, None));
    let _ = svc.oneshot(call(Some("1s"))).await.unwrap();
    assert_eq!(timeouts(&seen), vec![Some("1s".to_owned()); 5]);
}

/// A hedge carries the time left; no hedge is sent once the call's deadline has passed.
#[tokio::test(start_paused = true)]
async fn hedges_carry_the_time_left_and_stop_at_the_deadline() {
    let policy = GrpcPolicy::new().idempotent_methods([CHECK]).unwrap();
    for (timeout, hedged) in [("1S", true), ("50m", false)] {
        let seen = Seen::default();
        let hedge = HedgeLayer::with_budget(policy.clone(), 100 * MS, None).unwrap();
        // Never answers in time: only the hedge (if any) is seen.
        let svc = hedge.layer(unavailable(seen.clone(), Duration::from_secs(3600), None));
        let t0 = Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(2), svc.oneshot(call(Some(timeout))));
        assert!(out.await.is_err(), "neither attempt answers");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), if hedged { 2 } else { 1 }, "{timeout}");
        if hedged {
            assert_eq!(seen[1].1 - t0, 100 * MS);
            let left = parse_grpc_timeout(&seen[1].0.as_deref().unwrap().parse().unwrap());
            let left = left.unwrap();
            assert!(left <= 900 * MS && 900 * MS - left < MS, "{left:?}");
        }
    }
}
