//! `Retry-After` and `grpc-retry-pushback-ms` parsing, and the retry layer driven by arbitrary
//! settings and server hints (paused time): building never panics (bad settings are a
//! `ConfigError`), parsing never panics, and a call always ends within `max_attempts`, with
//! no wait longer than `max_delay` and none past the deadline.
#![no_main]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, Request, Response};
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use palisade_retry::grpc::{Pushback, parse_pushback};
use palisade_retry::http::{HttpPolicy, parse_retry_after};
use palisade_retry::{Backoff, Jitter, RetryLayer};
use tower::{BoxError, Layer as _, ServiceExt as _, service_fn};

struct Case {
    max_attempts: u32,
    max_delay: Duration,
    max_elapsed: Option<Duration>,
    backoff: Backoff,
    jitter: Jitter,
    method: Method,
    idempotency_key: bool,
    /// Per attempt: status and raw `Retry-After` bytes.
    answers: Vec<(u16, Option<Vec<u8>>)>,
}

fn duration(u: &mut Unstructured<'_>) -> ArbResult<Duration> {
    // Mostly small, sometimes absurd.
    Ok(if u.ratio(1, 8)? {
        Duration::new(u.arbitrary()?, u.int_in_range(0..=999_999_999)?)
    } else {
        Duration::from_millis(u.int_in_range(0..=120_000)?)
    })
}

fn case(u: &mut Unstructured<'_>) -> ArbResult<Case> {
    let backoff = match u.int_in_range(0..=2)? {
        0 => Backoff::constant(duration(u)?),
        1 => Backoff::linear(duration(u)?, duration(u)?),
        _ => Backoff::exponential(duration(u)?, f64::from(u.int_in_range(0..=40u8)?) / 8.0),
    };
    let jitter = *u.choose(&[
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ])?;
    let method = u
        .choose(&[Method::GET, Method::POST, Method::PUT, Method::PATCH])?
        .clone();
    let mut answers = Vec::new();
    for _ in 0..u.int_in_range(1..=6)? {
        let status = *u.choose(&[200, 404, 429, 500, 502, 503, 504])?;
        let hint = if u.arbitrary()? {
            Some(u.arbitrary::<Vec<u8>>()?)
        } else {
            None
        };
        answers.push((status, hint));
    }
    Ok(Case {
        max_attempts: u.int_in_range(0..=12)?,
        max_delay: duration(u)?,
        max_elapsed: if u.arbitrary()? { Some(duration(u)?) } else { None },
        backoff,
        jitter,
        method,
        idempotency_key: u.arbitrary()?,
        answers,
    })
}

fuzz_target!(|data: &[u8]| {
    // The parsers on their own, with the raw bytes as one header value.
    if let Ok(v) = HeaderValue::from_bytes(data) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let _ = parse_retry_after(&v, now);
        match parse_pushback(Some(&v)) {
            Pushback::Wait(_) => assert!(v.as_bytes().iter().any(u8::is_ascii_digit)),
            Pushback::DoNotRetry | Pushback::Absent => {}
        }
    }

    let mut u = Unstructured::new(data);
    let Ok(c) = case(&mut u) else { return };
    // Retries decided: each is one wait, which may end in the retry or, at the deadline, in
    // the failed answer returned.
    let decided = Arc::new(AtomicU32::new(0));
    let counted = decided.clone();
    let mut builder = RetryLayer::builder("fuzz", HttpPolicy::new())
        .on_retry(move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
        })
        .max_attempts(c.max_attempts)
        .max_delay(c.max_delay)
        .backoff(c.backoff)
        .jitter(c.jitter)
        .seed(7)
        .without_budget();
    if let Some(d) = c.max_elapsed {
        builder = builder.max_elapsed(d);
    }
    let Ok(layer) = builder.build() else { return };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let calls = Arc::new(AtomicU32::new(0));
        let answers = Arc::new(c.answers);
        let (calls2, answers2) = (calls.clone(), answers.clone());
        let inner = service_fn(move |_req: Request<_>| {
            let n = calls2.fetch_add(1, Ordering::Relaxed) as usize;
            let (status, hint) = answers2[n.min(answers2.len() - 1)].clone();
            let mut res = Response::new(String::new());
            *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
            if let Some(v) = hint.and_then(|h| HeaderValue::from_bytes(&h).ok()) {
                res.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
            std::future::ready(Ok::<_, BoxError>(res))
        });
        let mut req = Request::builder()
            .method(c.method)
            .uri("http://127.0.0.1/x")
            .body(String::from("body"))
            .unwrap();
        if c.idempotency_key {
            req.headers_mut()
                .insert("idempotency-key", HeaderValue::from_static("k"));
        }
        let start = tokio::time::Instant::now();
        let res = layer.layer(inner).oneshot(req).await;
        assert!(res.is_ok());
        let made = calls.load(Ordering::Relaxed);
        assert!(made >= 1 && made <= c.max_attempts, "{made} attempts");
        let waits = decided.load(Ordering::Relaxed);
        // Every retry sent was decided first; at most one decided is not sent.
        assert!(waits + 1 == made || waits == made, "{waits} waits, {made} attempts");
        // Each wait is at most max_delay; with a deadline, no wait ends past it. (tokio's
        // timer has millisecond resolution: each sleep may end up to 1 ms late.)
        let waited = start.elapsed();
        let timer_slack = Duration::from_millis(u64::from(waits + 1));
        // (Saturating: the settings may be absurd, the harness must not overflow on them.)
        assert!(
            waited <= c.max_delay.saturating_mul(waits).saturating_add(timer_slack),
            "waited {waited:?} for {made} attempts and {waits} waits, max_delay {:?}",
            c.max_delay
        );
        if let Some(deadline) = c.max_elapsed {
            assert!(
                waited <= deadline.saturating_add(timer_slack),
                "waited {waited:?} past {deadline:?}"
            );
        }
    });
});
