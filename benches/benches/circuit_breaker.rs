//! The circuit breaker's per-call cost against a bare `service_fn`, measured in the same run,
//! next to the peers (tower-resilience 0.13, failsafe 1.3, recloser 1.4).
//!
//! - `closed/*`: `ready().await; call().await` on one thread, breaker closed.
//! - `open/*`: the rejection path (the breaker is open; the inner service is not called).
//! - `threads_2/*` (and `threads_N` with `PALISADE_BENCH_THREADS=N`): N threads, each with
//!   its own clone of one service, all on one shared breaker; the time is per call per
//!   thread, so perfect scaling reads the same as one thread.
//!
//! Futures here are always ready (or become ready by spinning), so each call is driven by
//! polling with a no-op waker: the harness adds no runtime overhead to either side.
//!
//! Measured on the 2-core development machine (shared with other builds, so ±20 %),
//! `cargo bench -p palisade-benches --bench circuit_breaker`, time per call:
//!
//! ```text
//! closed, 1 thread                 threads_2 (per call per thread)
//! bare service_fn          0.6 ns    0.7 ns
//! palisade count window    6.4 ns    6.2 ns    (overhead ~6 ns; 2 threads / 1 thread = 0.97)
//!   with a metrics recorder 30  ns       -      (a counter add in the recorder per call)
//! palisade keyed (u64 key) 33   ns       -      (key function + SipHash map lookup)
//! palisade exact window   49   ns  116   ns    (shared sequence: does not scale, by design)
//! palisade time window    63   ns     -        (one clock read per call, ~23 ns here)
//! recloser 1.4            39   ns  113   ns
//! failsafe 1.3           118   ns  308   ns
//! tower-resilience 0.13  291   ns    9.9 µs
//! open (rejection): palisade 39 ns (a clock read for retry_after and one Box<CircuitOpen>)
//! ```
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use palisade_benches::drive;
use palisade_circuit_breaker::{CircuitBreakerLayer, SlidingWindow};
use tower::{Layer, Service, service_fn};

type Error = std::io::Error;

fn bare() -> impl Service<u64, Response = u64, Error = Error, Future: Send> + Clone + Send {
    service_fn(|x: u64| std::future::ready(Ok::<_, Error>(x)))
}

/// One `ready().await; call().await`.
#[inline]
fn one_call<S: Service<u64>>(svc: &mut S) -> Result<S::Response, S::Error> {
    drive(async {
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
        svc.call(black_box(1)).await
    })
}

/// failsafe as a tower service (it has no layer of its own).
#[derive(Clone)]
struct Failsafe<S, B> {
    inner: S,
    breaker: B,
}

impl<S, B> Service<u64> for Failsafe<S, B>
where
    S: Service<u64>,
    B: failsafe::futures::CircuitBreaker,
{
    type Response = S::Response;
    type Error = failsafe::Error<S::Error>;
    type Future = failsafe::futures::ResponseFuture<
        S::Future,
        B::FailurePolicy,
        B::Instrument,
        failsafe::Any,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(failsafe::Error::Inner)
    }

    fn call(&mut self, req: u64) -> Self::Future {
        self.breaker.call(self.inner.call(req))
    }
}

/// recloser as a tower service (it has no layer of its own).
#[derive(Clone)]
struct Recloser<S> {
    inner: S,
    breaker: recloser::AsyncRecloser,
}

impl<S: Service<u64>> Service<u64> for Recloser<S> {
    type Response = S::Response;
    type Error = recloser::Error<S::Error>;
    type Future = recloser::RecloserFuture<S::Future, recloser::AnyError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(recloser::Error::Inner)
    }

    fn call(&mut self, req: u64) -> Self::Future {
        self.breaker.call(self.inner.call(req))
    }
}

fn palisade_default() -> impl Service<u64, Response = u64, Future: Send> + Clone + Send {
    CircuitBreakerLayer::builder("bench")
        .build()
        .unwrap()
        .layer(bare())
}

fn palisade_window(window: SlidingWindow) -> impl Service<u64, Response = u64> + Clone + Send {
    CircuitBreakerLayer::builder("bench")
        .sliding_window(window)
        .minimum_calls(1)
        .build()
        .unwrap()
        .layer(bare())
}

fn tower_resilience() -> impl Service<u64, Response = u64> + Clone + Send {
    tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .build()
        .unwrap()
        .layer(bare())
}

fn failsafe() -> impl Service<u64, Response = u64> + Clone + Send {
    Failsafe {
        inner: bare(),
        breaker: failsafe::Config::new().build(),
    }
}

fn recloser() -> impl Service<u64, Response = u64> + Clone + Send {
    Recloser {
        inner: bare(),
        breaker: recloser::AsyncRecloser::from(recloser::Recloser::default()),
    }
}

fn bench_one<S: Service<u64>>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut svc: S,
) {
    g.bench_function(name, |b| b.iter(|| black_box(one_call(&mut svc).is_ok())));
}

fn closed(c: &mut Criterion) {
    // tower-resilience needs a runtime context for its internals.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut g = c.benchmark_group("circuit_breaker/closed");
    g.measurement_time(Duration::from_secs(3));
    bench_one(&mut g, "bare_service_fn", bare());
    bench_one(&mut g, "palisade_count_window", palisade_default());
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let with_metrics = metrics::with_local_recorder(&recorder, palisade_default);
    bench_one(
        &mut g,
        "palisade_count_window_metrics_recorder",
        with_metrics,
    );
    bench_one(
        &mut g,
        "palisade_exact_count_window",
        palisade_window(SlidingWindow::exact_count(100)),
    );
    bench_one(
        &mut g,
        "palisade_time_window",
        palisade_window(SlidingWindow::time(Duration::from_secs(10), 10)),
    );
    let keyed = CircuitBreakerLayer::builder("bench")
        .keyed(|req: &u64| *req)
        .build()
        .unwrap()
        .layer(bare());
    bench_one(&mut g, "palisade_keyed_count_window", keyed);
    bench_one(&mut g, "tower_resilience_0_13", tower_resilience());
    bench_one(&mut g, "failsafe_1_3", failsafe());
    bench_one(&mut g, "recloser_1_4", recloser());
    g.finish();
}

fn open(c: &mut Criterion) {
    let mut g = c.benchmark_group("circuit_breaker/open");
    g.measurement_time(Duration::from_secs(3));
    bench_one(&mut g, "bare_service_fn", bare());
    let layer = CircuitBreakerLayer::builder("bench").build().unwrap();
    layer.handle().force_open();
    bench_one(&mut g, "palisade_rejection", layer.layer(bare()));
    g.finish();
}

/// Runs `iters` calls on each of `threads` threads, each on its own clone of `svc`, and
/// returns the wall time (per call per thread, once divided by `iters`).
fn contended<S>(svc: &S, threads: usize, iters: u64) -> Duration
where
    S: Service<u64> + Clone + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let mut svc = svc.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..iters {
                    black_box(one_call(&mut svc).is_ok());
                }
                barrier.wait();
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    barrier.wait();
    let elapsed = start.elapsed();
    for h in handles {
        h.join().unwrap();
    }
    elapsed
}

fn threads(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let n: usize = std::env::var("PALISADE_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut g = c.benchmark_group(format!("circuit_breaker/threads_{n}"));
    g.measurement_time(Duration::from_secs(3));
    let cases: Vec<(&str, Box<dyn Fn(u64) -> Duration>)> = vec![
        ("bare_service_fn", {
            let s = bare();
            Box::new(move |iters| contended(&s, n, iters))
        }),
        ("palisade_count_window", {
            let s = palisade_default();
            Box::new(move |iters| contended(&s, n, iters))
        }),
        ("palisade_exact_count_window", {
            let s = palisade_window(SlidingWindow::exact_count(100));
            Box::new(move |iters| contended(&s, n, iters))
        }),
        ("palisade_rejection", {
            let layer = CircuitBreakerLayer::builder("bench").build().unwrap();
            layer.handle().force_open();
            let s = layer.layer(bare());
            Box::new(move |iters| contended(&s, n, iters))
        }),
        ("failsafe_1_3", {
            let s = failsafe();
            Box::new(move |iters| contended(&s, n, iters))
        }),
        ("recloser_1_4", {
            let s = recloser();
            Box::new(move |iters| contended(&s, n, iters))
        }),
        ("tower_resilience_0_13", {
            let s = tower_resilience();
            Box::new(move |iters| contended(&s, n, iters))
        }),
    ];
    for (name, run) in &cases {
        g.bench_function(BenchmarkId::from_parameter(name), |b| b.iter_custom(run));
    }
    g.finish();
}

criterion_group!(benches, closed, open, threads);
criterion_main!(benches);
