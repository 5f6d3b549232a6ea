//! `cargo run -p demo --release`: the Palisade example system in one command, no docker.
//!
//! Starts the inventory and order services in-process on free loopback ports with
//! temporary SQLite files, then drives orders over real HTTP through three phases:
//!
//! 1. **healthy** — every order is reserved and stored; repeats with the same
//!    `Idempotency-Key` are replayed; the scarce `LT-0006` runs out (business refusals,
//!    which do not count against the breaker);
//! 2. **faults** — the inventory service fails most calls: the breaker opens and new
//!    orders are refused at once with `503` + `Retry-After`;
//! 3. **recovery** — faults stop: the breaker half-opens, its trial calls succeed, and it
//!    closes.
//!
//! Then it prints a table per phase, the breaker's transitions, and checks that every
//! accepted order holds exactly one reservation and the stock arithmetic balances. It
//! exits non-zero if anything does not.

mod report;
mod trace_tree;
mod traffic;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use inventory_service::{FaultSettings, InventoryService};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use order_service::{BreakerState, OrderService};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::report::PhaseStats;
use crate::traffic::{Traffic, Until};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `println!` that ignores a closed stdout (`demo | head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

const WORKERS: usize = 8;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("demo: an invariant was broken (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::from(2)
        }
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("palisade-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Spans go to an in-memory exporter, for the trace tree at the end. Both services run in
/// this process and share the provider; the tree tells them apart by the crate a span
/// comes from.
fn telemetry() -> Result<(SdkTracerProvider, InMemorySpanExporter), BoxError> {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = Targets::new()
        .with_target("order_service", LevelFilter::INFO)
        .with_target("inventory_service", LevelFilter::INFO)
        .with_target("example_telemetry", LevelFilter::INFO)
        .with_target("palisade_tracing_layer", LevelFilter::INFO);
    let subscriber = tracing_subscriber::registry().with(
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("demo"))
            .with_filter(filter),
    );
    tracing::subscriber::set_global_default(subscriber)?;
    Ok((provider, exporter))
}

#[allow(clippy::too_many_lines)]
async fn run() -> Result<bool, BoxError> {
    let (provider, spans) = telemetry()?;
    let dir = TempDir::new()?;
    let inventory_db = dir.0.join("inventory.db");
    let orders_db = dir.0.join("orders.db");

    // Inventory service.
    let inventory = InventoryService::bind(inventory_service::Config::local(&inventory_db)).await?;
    let faults = inventory.faults();
    let inventory_url = format!("http://{}", inventory.grpc_addr());
    let inventory_grpc = inventory_url.clone();
    let (stop_inventory, rx) = oneshot::channel::<()>();
    let inventory_task = tokio::spawn(inventory.serve(async move {
        let _ = rx.await;
    }));

    // Order service, tuned so the phases take seconds, not minutes.
    let mut config = order_service::Config::local(&orders_db, inventory_url);
    config.try_timeout = Duration::from_millis(250);
    config.deadline = Duration::from_secs(1);
    config.breaker_wait = Duration::from_millis(1500);
    config.reconcile_interval = Duration::from_millis(200);
    config.pending_grace = Duration::from_secs(5);
    let orders = OrderService::bind(config).await?;
    let order_addr = orders.local_addr();
    let breaker = orders.breaker();
    let breaker_log = orders.breaker_log();
    let retries = orders.retry_stats();
    let (stop_orders, rx) = oneshot::channel::<()>();
    let orders_task = tokio::spawn(orders.serve(async move {
        let _ = rx.await;
    }));

    let on_hand: BTreeMap<String, u32> = inventory_service::audit::snapshot(&inventory_db)
        .await?
        .stock
        .into_iter()
        .map(|l| (l.sku, l.on_hand))
        .collect();

    say!(
        "Palisade demo: order-service on http://{order_addr}, inventory-service on {inventory_grpc}"
    );
    let t0 = Instant::now();
    let mut phases = Vec::new();
    let mut accepted = BTreeSet::new();

    // 1. Healthy.
    let bar = new_bar(Some(300), "healthy ");
    let start = Instant::now();
    let retried = retries.retries();
    let samples = Traffic::new(order_addr, "healthy")
        .run(WORKERS, Until::Count(300), &bar, || false)
        .await;
    bar.finish_and_clear();
    phases.push(PhaseStats::new(
        "healthy",
        start.elapsed(),
        &samples,
        retries.retries() - retried,
    ));
    accepted.extend(samples.iter().filter_map(|s| s.order_id.clone()));

    // 2. Faults: most inventory calls fail.
    faults.set(FaultSettings {
        error_rate: 0.8,
        latency_ms: 20,
    })?;
    let bar = new_bar(None, "faults  ");
    let watcher = watch_breaker(&bar, breaker.clone());
    let start = Instant::now();
    let retried = retries.retries();
    // Four seconds of faults, longer if the breaker has not opened yet (a slow machine
    // sends fewer calls), at most 20 s.
    let opened = {
        let log = breaker_log.clone();
        move || log.transitions().iter().any(|t| t.to == BreakerState::Open)
    };
    let samples = Traffic::new(order_addr, "faults")
        .run(
            WORKERS,
            Until::Elapsed(Duration::from_secs(20)),
            &bar,
            move || opened() && start.elapsed() >= Duration::from_secs(4),
        )
        .await;
    watcher.abort();
    bar.finish_and_clear();
    phases.push(PhaseStats::new(
        "faults",
        start.elapsed(),
        &samples,
        retries.retries() - retried,
    ));
    accepted.extend(samples.iter().filter_map(|s| s.order_id.clone()));

    // 3. Recovery: faults stop; run until the breaker has closed (at most 15 s).
    faults.set(FaultSettings::default())?;
    let bar = new_bar(None, "recovery");
    let watcher = watch_breaker(&bar, breaker.clone());
    let start = Instant::now();
    let retried = retries.retries();
    let closed_at = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
    let samples = {
        let breaker = breaker.clone();
        let closed_at = closed_at.clone();
        Traffic::new(order_addr, "recovery")
            .run(
                WORKERS,
                Until::Elapsed(Duration::from_secs(15)),
                &bar,
                move || {
                    let Ok(mut closed) = closed_at.lock() else {
                        return true;
                    };
                    if breaker.state() != BreakerState::Closed {
                        *closed = None;
                        return false;
                    }
                    // Keep sending for a second after closing, to show it stays closed.
                    closed.get_or_insert_with(Instant::now).elapsed() >= Duration::from_secs(1)
                        && start.elapsed() >= Duration::from_secs(2)
                },
            )
            .await
    };
    watcher.abort();
    bar.finish_and_clear();
    phases.push(PhaseStats::new(
        "recovery",
        start.elapsed(),
        &samples,
        retries.retries() - retried,
    ));
    accepted.extend(samples.iter().filter_map(|s| s.order_id.clone()));

    // Let the reconciler release what failed orders left behind.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = order_service::audit::snapshot(&orders_db).await?;
        if o.unfinished == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_orders.send(());
    orders_task.await??;
    let _ = stop_inventory.send(());
    inventory_task.await??;

    say!();
    say!("{}", report::table(&phases));
    say!(
        "retries not made because the retry budget was spent: {}",
        retries.budget_exhausted()
    );
    say!();
    say!("circuit breaker `inventory` transitions:");
    for t in breaker_log.transitions() {
        say!(
            "  {:>6.2} s  {:<9} -> {:<9} (failure rate {:.0} %)",
            t.at.duration_since(t0).as_secs_f64(),
            t.from.as_str(),
            t.to.as_str(),
            t.failure_rate
        );
    }

    let _ = provider.force_flush();
    let nodes: Vec<trace_tree::Node> = spans
        .get_finished_spans()?
        .iter()
        .map(trace_tree::Node::from_span)
        .collect();
    match trace_tree::pick(&nodes, "place_order") {
        Some(trace) => {
            say!();
            say!("one order's trace ({} spans recorded in all):", nodes.len());
            say!("{}", trace_tree::render(&nodes, trace).trim_end());
        }
        None => say!("no order trace was recorded"),
    }

    let orders_snap = order_service::audit::snapshot(&orders_db).await?;
    let inventory_snap = inventory_service::audit::snapshot(&inventory_db).await?;
    let violations = demo::violations(&orders_snap, &inventory_snap, &on_hand, Some(&accepted));
    say!();
    say!(
        "{} orders accepted, {} reservations active, {} released; stock on hand unchanged: {}",
        orders_snap.confirmed.len(),
        inventory_snap.active.len(),
        inventory_snap.released,
        violations.iter().all(|v| !v.contains("on hand")),
    );
    let mut ok = violations.is_empty();
    for v in &violations {
        say!("  VIOLATION: {v}");
    }
    let unexpected: usize = phases.iter().map(|p| p.unexpected).sum();
    if unexpected > 0 {
        say!("  VIOLATION: {unexpected} requests got an unexpected answer");
        ok = false;
    }
    let transitions: Vec<_> = breaker_log
        .transitions()
        .iter()
        .map(|t| (t.from, t.to))
        .collect();
    if !transitions.contains(&(BreakerState::Closed, BreakerState::Open))
        || transitions.last() != Some(&(BreakerState::HalfOpen, BreakerState::Closed))
    {
        say!(
            "  VIOLATION: the breaker did not open under faults and close after them: {transitions:?}"
        );
        ok = false;
    }
    if ok {
        say!(
            "invariants hold: every accepted order has exactly one reservation, and the stock balances"
        );
    }
    Ok(ok)
}

fn new_bar(len: Option<u64>, phase: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} orders {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{prefix} {spinner} {pos} orders, {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_prefix(phase.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Shows the breaker's state in the bar's message while a phase runs.
fn watch_breaker(
    bar: &ProgressBar,
    breaker: order_service::CircuitBreakerHandle,
) -> tokio::task::JoinHandle<()> {
    let bar = bar.clone();
    tokio::spawn(async move {
        loop {
            bar.set_message(format!("breaker: {}", breaker.state()));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}
