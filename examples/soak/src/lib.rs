//! Soak, chaos and rolling-restart driver for the Palisade examples.
//!
//! [`run`] starts the REAL `inventory-service` and `order-service` binaries on free
//! loopback ports with temporary SQLite databases, sends sustained `POST /orders` load
//! (one request in ten repeats the previous one with the same `Idempotency-Key`), and
//! cycles the inventory service through a chaos schedule:
//!
//! 1. **erroring**: a share of RPCs fails with `UNAVAILABLE` (30 % by default), set at run
//!    time through the admin port;
//! 2. **slow**: every RPC takes longer than order-service's per-try timeout;
//! 3. **down**: the process is killed (SIGKILL) and, after a while, started again on the
//!    same ports and database;
//! 4. **rolling restart**: a new instance binds the same ports (`SO_REUSEPORT`,
//!    `INVENTORY_REUSE_PORT=true`), then the old one gets SIGTERM and drains.
//!
//! each fault followed by a healthy recovery interval. At the end, [`Report::checks`] says
//! whether: every `201` order is stored exactly once with exactly one reservation and the
//! stock balances; every failure a client saw was a clean `503` with `Retry-After` or a
//! `504`; no request took longer than its bound; resident memory of both services stayed
//! within the tolerance of its value after warm-up; the breaker opened during each fault
//! phase that should open it and closed after it; and the rolling restart cost no
//! request.
//!
//! ```no_run
//! # async fn soak() {
//! let options = soak::Options::ci(soak::default_bin_dir());
//! let report = soak::run(&options).await.expect("the services start");
//! println!("{report}");
//! assert!(report.passed());
//! # }
//! ```
//!
//! The `soak` binary is the command-line front end: `cargo run -p soak --release -- --help`.

mod load;
pub mod metrics;
mod process;
mod report;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use palisade_testkit::{TempDir, free_port};

pub use process::{anon_kib, default_bin_dir, rss_kib};
pub use report::{Check, PhaseKind, PhaseReport, Report, RestartReport};

use crate::load::{Answer, Load};
use crate::metrics::Scrape;
use crate::process::Service;

/// The order-service breaker's failure-rate threshold (`examples/order-service/src/client.rs`):
/// an error rate below it is absorbed by retries and must not open the breaker.
pub const BREAKER_FAILURE_RATE_THRESHOLD: f64 = 0.5;

/// What to run, and for how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the `inventory-service` and `order-service` binaries are.
    pub bin_dir: PathBuf,
    /// Total time under load (warm-up included). At least one chaos cycle always runs.
    pub duration: Duration,
    /// Load before the first measured fault phase; memory is measured at its end. Its first
    /// half is healthy; then inventory errors and is slow for a sixth each, and the last
    /// sixth is healthy again. Warm means every path has run once: the memory a service
    /// takes for its fault paths (error responses and their metric series, requests held
    /// open by a slow dependency, reconnections) is reached here, not counted as growth.
    pub warmup: Duration,
    /// Length of each fault phase (erroring, slow, down).
    pub fault_phase: Duration,
    /// Healthy interval after each fault phase, in which the breaker must close.
    pub recovery: Duration,
    /// Orders per second, all workers together.
    pub rate: f64,
    /// Concurrent clients.
    pub workers: usize,
    /// Share of RPCs failed in the erroring phase, 0 to 1.
    pub error_rate: f64,
    /// Per-try timeout of order-service's inventory client (`INVENTORY_TRY_TIMEOUT_MS`).
    pub try_timeout: Duration,
    /// Budget of one inventory call across attempts (`INVENTORY_DEADLINE_MS`).
    pub deadline: Duration,
    /// How long the breaker stays open (`INVENTORY_BREAKER_WAIT_MS`).
    pub breaker_wait: Duration,
    /// Inventory's drain delay on SIGTERM (`INVENTORY_DRAIN_DELAY_MS`).
    pub drain_delay: Duration,
    /// Added to the server-side bound of a request (see [`Options::request_bound`]) for
    /// the database and scheduling on a busy machine.
    pub slack: Duration,
    /// Allowed relative change of resident memory between the baseline (after the warm-up,
    /// or after the first cycle: [`Options::baseline_after_first_cycle`]) and the end
    /// (0.10: 10 %).
    pub rss_tolerance: f64,
    /// Whether a rolling restart is part of each cycle.
    pub rolling_restart: bool,
    /// Take the memory baseline after the first chaos cycle instead of after the warm-up.
    /// The long variant does: its fault phases are longer than the warm-up's, and the
    /// memory a service takes for them (the allocator's high-water mark with more requests
    /// in flight) is reached in the first cycle; growth over the later cycles is what a
    /// leak would show. The CI variant, with one cycle, measures from the warm-up.
    pub baseline_after_first_cycle: bool,
    /// Print a line to stderr as each phase starts.
    pub progress: bool,
}

impl Options {
    /// The long variant: 10 minutes, 30-second phases.
    pub fn long(bin_dir: PathBuf) -> Self {
        Self {
            bin_dir,
            duration: Duration::from_secs(600),
            warmup: Duration::from_secs(30),
            fault_phase: Duration::from_secs(20),
            recovery: Duration::from_secs(10),
            rate: 30.0,
            workers: 8,
            error_rate: 0.3,
            try_timeout: Duration::from_millis(300),
            deadline: Duration::from_millis(1000),
            breaker_wait: Duration::from_millis(1000),
            drain_delay: Duration::from_millis(1000),
            slack: Duration::from_millis(2000),
            rss_tolerance: 0.10,
            rolling_restart: true,
            baseline_after_first_cycle: true,
            progress: false,
        }
    }

    /// The CI variant: one chaos cycle with a rolling restart in about 60 seconds.
    pub fn ci(bin_dir: PathBuf) -> Self {
        Self {
            duration: Duration::from_secs(60),
            warmup: Duration::from_secs(15),
            fault_phase: Duration::from_secs(6),
            recovery: Duration::from_secs(5),
            rate: 40.0,
            baseline_after_first_cycle: false,
            ..Self::long(bin_dir)
        }
    }

    /// The longest a `POST /orders` may take before the client counts it as past its
    /// deadline: the reserve call's deadline, plus the compensating release's deadline
    /// (a failed reserve is compensated inline, bounded the same way), plus
    /// [`Options::slack`].
    pub fn request_bound(&self) -> Duration {
        self.deadline * 2 + self.slack
    }

    /// The added latency of the slow phase: well above the per-try timeout.
    pub fn slow_latency(&self) -> Duration {
        self.try_timeout * 2
    }

    /// The estimated length of one chaos cycle.
    fn cycle(&self) -> Duration {
        let restart = if self.rolling_restart {
            self.drain_delay + self.recovery + Duration::from_secs(2)
        } else {
            Duration::ZERO
        };
        (self.fault_phase + self.recovery) * 3 + restart
    }

    /// Checks the values are usable.
    ///
    /// # Errors
    ///
    /// A message naming the option and its allowed range.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!("error rate {} is outside 0 to 1", self.error_rate));
        }
        if !(self.rate > 0.0 && self.rate <= 10_000.0) {
            return Err(format!("rate {} is outside (0, 10000] orders/s", self.rate));
        }
        if !(1..=1024).contains(&self.workers) {
            return Err(format!("workers {} is outside 1 to 1024", self.workers));
        }
        if self.try_timeout.is_zero() || self.deadline < self.try_timeout {
            return Err("the deadline must be at least the per-try timeout, both > 0".to_owned());
        }
        if !(0.0..1.0).contains(&self.rss_tolerance) {
            return Err(format!(
                "memory tolerance {} is outside 0 to 1",
                self.rss_tolerance
            ));
        }
        if self.fault_phase < Duration::from_secs(1) || self.recovery < self.breaker_wait * 2 {
            return Err(
                "fault phases must last at least 1 s and recovery at least twice the breaker wait"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// The running system: both services as child processes on free loopback ports, with
/// temporary databases; killed when dropped.
#[derive(Debug)]
pub struct System {
    opts: Options,
    dir: TempDir,
    inventory_bin: PathBuf,
    inventory: Service,
    inventory_instances: u32,
    orders: Service,
    grpc: String,
    admin: String,
    http: String,
    inventory_db: PathBuf,
    orders_db: PathBuf,
}

impl System {
    /// Starts inventory-service then order-service (configured from `opts`) and waits
    /// until both are ready.
    ///
    /// # Errors
    ///
    /// A binary is missing, or a service exited or was not ready within 30 s.
    pub async fn start(opts: &Options) -> Result<Self, String> {
        let inventory_bin = process::binary(&opts.bin_dir, "inventory-service")?;
        let orders_bin = process::binary(&opts.bin_dir, "order-service")?;
        let dir = TempDir::new("palisade-soak");
        let (grpc, admin, http) = (free_port(), free_port(), free_port());
        let grpc = format!("127.0.0.1:{grpc}");
        let admin = format!("127.0.0.1:{admin}");
        let http = format!("127.0.0.1:{http}");
        let inventory_db = dir.path().join("inventory.db");
        let orders_db = dir.path().join("orders.db");
        let inventory = Service::spawn(
            "inventory-service",
            &inventory_bin,
            &inventory_env(opts, &grpc, &admin, &inventory_db),
            dir.path().join("inventory-1.log"),
        )?;
        let ms = |d: Duration| d.as_millis().to_string();
        let orders_env: Vec<(&'static str, String)> = vec![
            ("ORDER_HTTP_ADDR", http.clone()),
            ("ORDER_DB_PATH", orders_db.display().to_string()),
            ("INVENTORY_URL", format!("http://{grpc}")),
            ("INVENTORY_TRY_TIMEOUT_MS", ms(opts.try_timeout)),
            ("INVENTORY_DEADLINE_MS", ms(opts.deadline)),
            ("INVENTORY_BREAKER_WAIT_MS", ms(opts.breaker_wait)),
            ("ORDER_RECONCILE_INTERVAL_MS", "200".to_owned()),
            ("ORDER_PENDING_GRACE_MS", ms(opts.deadline * 3 + opts.slack)),
            ("ORDER_DRAIN_DELAY_MS", "300".to_owned()),
            ("OTEL_SERVICE_NAME", "order-service".to_owned()),
        ];
        let orders = Service::spawn(
            "order-service",
            &orders_bin,
            &orders_env,
            dir.path().join("order-service.log"),
        )?;
        let mut system = Self {
            opts: opts.clone(),
            dir,
            inventory_bin,
            inventory,
            inventory_instances: 1,
            orders,
            grpc,
            admin,
            http,
            inventory_db,
            orders_db,
        };
        let admin = system.admin.clone();
        let http = system.http.clone();
        system.wait_ready(&admin).await?;
        system.wait_ready(&http).await?;
        Ok(system)
    }

    /// order-service's HTTP address (`127.0.0.1:port`).
    pub fn http_addr(&self) -> &str {
        &self.http
    }

    /// inventory-service's admin address.
    pub fn admin_addr(&self) -> &str {
        &self.admin
    }

    /// order-service's process id.
    pub fn order_service_pid(&self) -> u32 {
        self.orders.pid()
    }

    /// An error (with the log tail) if either service has exited.
    ///
    /// # Errors
    ///
    /// A service is no longer running.
    pub fn check_running(&mut self) -> Result<(), String> {
        self.orders.check_running()?;
        self.inventory.check_running()
    }

    /// Polls `/health/ready` on `addr` until `200`, at most 30 s.
    async fn wait_ready(&mut self, addr: &str) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            self.inventory.check_running()?;
            self.orders.check_running()?;
            if let Ok(r) = palisade_testkit::http::get(addr, "/health/ready").await
                && r.status == 200
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("{addr} was not ready within 30 s"))
    }

    /// Starts another inventory instance on the same ports and database, and waits until
    /// it has bound them (its "listening" log line; with `SO_REUSEPORT` a readiness probe
    /// could be answered by the old instance).
    async fn spawn_inventory(&mut self) -> Result<Service, String> {
        self.inventory_instances += 1;
        let n = self.inventory_instances;
        let mut service = Service::spawn(
            "inventory-service",
            &self.inventory_bin,
            &inventory_env(&self.opts, &self.grpc, &self.admin, &self.inventory_db),
            self.dir.path().join(format!("inventory-{n}.log")),
        )?;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            service.check_running()?;
            if service.log_tail(50).contains("inventory-service listening") {
                return Ok(service);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!(
            "inventory instance {n} did not start listening within 30 s:\n{}",
            service.log_tail(30)
        ))
    }

    async fn scrape(&self) -> Scrape {
        match palisade_testkit::http::get(&self.http, "/metrics").await {
            Ok(r) if r.status == 200 => Scrape::parse(&r.body),
            _ => Scrape::default(),
        }
    }

    /// Sets inventory's faults through its admin port (`None` clears them).
    async fn set_faults(&self, faults: Option<(f64, Duration)>) -> Result<(), String> {
        let (method, body) = match faults {
            Some((rate, latency)) => (
                "PUT",
                format!(
                    r#"{{"error_rate":{rate},"latency_ms":{}}}"#,
                    latency.as_millis()
                ),
            ),
            None => ("DELETE", String::new()),
        };
        let status = admin_request(&self.admin, method, "/admin/faults", &body).await?;
        if status == 200 {
            Ok(())
        } else {
            Err(format!("{method} /admin/faults answered {status}"))
        }
    }
}

fn inventory_env(
    opts: &Options,
    grpc: &str,
    admin: &str,
    db: &std::path::Path,
) -> Vec<(&'static str, String)> {
    vec![
        ("INVENTORY_GRPC_ADDR", grpc.to_owned()),
        ("INVENTORY_ADMIN_ADDR", admin.to_owned()),
        ("INVENTORY_DB_PATH", db.display().to_string()),
        (
            "INVENTORY_DRAIN_DELAY_MS",
            opts.drain_delay.as_millis().to_string(),
        ),
        ("INVENTORY_REUSE_PORT", "true".to_owned()),
        ("OTEL_SERVICE_NAME", "inventory-service".to_owned()),
    ]
}

/// One HTTP/1.1 request with a JSON body and `Connection: close`; the status code.
async fn admin_request(addr: &str, method: &str, path: &str, body: &str) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("{method} {path}: no answer within 10 s"))?
        .map_err(|e| format!("{method} {path}: {e}"))?;
    String::from_utf8_lossy(&raw)
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{method} {path}: malformed answer"))
}

/// Counters read from order-service's `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counters {
    /// Transitions into `open` (from closed or half-open).
    opened: f64,
    /// Transitions into `closed`.
    closed: f64,
    /// The state gauge: 0 closed, 1 open, 2 half-open.
    state: f64,
    /// Retries made (`palisade_retry_attempts_total{outcome="retried"}`), if exported.
    retried: f64,
    /// Failed client attempts at `Reserve`/`Release` (status code not 0).
    failed_attempts: f64,
    /// Client attempts at inventory RPCs.
    attempts: f64,
    /// Calls the breaker refused.
    rejected: f64,
}

impl Counters {
    fn read(s: &Scrape) -> Self {
        let breaker = ("breaker", "inventory");
        let attempts = s.sum("rpc_client_call_duration_seconds_count", &[]);
        let ok = s.sum(
            "rpc_client_call_duration_seconds_count",
            &[("rpc_status_code", "0")],
        );
        Self {
            opened: s.sum(
                "palisade_circuit_breaker_transitions_total",
                &[breaker, ("to", "open")],
            ),
            closed: s.sum(
                "palisade_circuit_breaker_transitions_total",
                &[breaker, ("to", "closed")],
            ),
            state: s.sum("palisade_circuit_breaker_state", &[breaker]),
            retried: s.sum("palisade_retry_attempts_total", &[("outcome", "retried")]),
            failed_attempts: attempts - ok,
            attempts,
            rejected: s.sum(
                "palisade_circuit_breaker_calls_total",
                &[breaker, ("outcome", "rejected")],
            ),
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            opened: self.opened - before.opened,
            closed: self.closed - before.closed,
            state: self.state,
            retried: self.retried - before.retried,
            failed_attempts: self.failed_attempts - before.failed_attempts,
            attempts: self.attempts - before.attempts,
            rejected: self.rejected - before.rejected,
        }
    }
}

/// Runs the soak: starts both services, drives the load through the chaos schedule, and
/// checks the outcome. The returned report says whether it [passed](Report::passed).
///
/// # Errors
///
/// The run could not be carried out: a binary is missing, a service did not start, or the
/// admin port refused a fault setting. (A failed *check* is not an error: see the report.)
pub async fn run(opts: &Options) -> Result<Report, String> {
    opts.validate()?;
    let mut sys = System::start(opts).await?;
    let on_hand_at_start = inventory_service::audit::snapshot(&sys.inventory_db)
        .await
        .map_err(|e| format!("reading the inventory database: {e}"))?
        .stock
        .into_iter()
        .map(|s| (s.sku, s.on_hand))
        .collect();
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Load {
        base: format!("http://{}", sys.http),
        workers: opts.workers,
        rate: opts.rate,
        hard_cap: opts.request_bound() * 5,
    };
    let load = tokio::spawn(load.run(t0, Arc::clone(&stop)));
    let schedule = chaos(&mut sys, opts, t0).await;
    stop.store(true, Ordering::Relaxed);
    let workers = load
        .await
        .map_err(|e| format!("the load generator failed: {e}"))?;
    let (mut phases, restarts, rss) = schedule?;
    let load_time = t0.elapsed();
    let orders_running = sys.orders.check_running();
    let inventory_running = sys.inventory.check_running();

    // Let the reconciler finish what requests abandoned (bounded), then audit.
    let mut orders_snapshot = None;
    let audit_start = Instant::now();
    while audit_start.elapsed() < Duration::from_secs(30) {
        let s = order_service::audit::snapshot(&sys.orders_db)
            .await
            .map_err(|e| format!("reading the orders database: {e}"))?;
        let done = s.unfinished == 0;
        orders_snapshot = Some(s);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let orders_snapshot = orders_snapshot.unwrap_or_default();
    let inventory_snapshot = inventory_service::audit::snapshot(&sys.inventory_db)
        .await
        .map_err(|e| format!("reading the inventory database: {e}"))?;

    let mut samples = Vec::new();
    let mut idempotency_violations = Vec::new();
    let mut replays_checked = 0;
    for w in workers {
        samples.extend(w.samples);
        idempotency_violations.extend(w.idempotency_violations);
        replays_checked += w.replays_checked;
    }
    samples.sort_by_key(|s| s.at);
    let accepted: BTreeSet<String> = samples
        .iter()
        .filter_map(|s| match &s.answer {
            Answer::Created { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    let violations = demo::violations(
        &orders_snapshot,
        &inventory_snapshot,
        &on_hand_at_start,
        Some(&accepted),
    );
    for p in &mut phases {
        p.fill(&samples);
    }
    let mut report = Report::build(report::Inputs {
        opts: opts.clone(),
        load_time,
        samples,
        phases,
        restarts,
        rss,
        violations,
        idempotency_violations,
        replays_checked,
        accepted: accepted.len(),
        confirmed: orders_snapshot.confirmed.len(),
        active_reservations: inventory_snapshot.active.len(),
        released: inventory_snapshot.released,
        inventory_instances: sys.inventory_instances,
    });
    if let Err(e) = orders_running {
        report.push(Check::new("order-service stayed up", false, e));
    }
    if let Err(e) = inventory_running {
        report.push(Check::new(
            "the last inventory instance stayed up",
            false,
            e,
        ));
    }
    Ok(report)
}

/// Memory figures, KiB: resident memory (`VmRSS`), which the checks compare, and for
/// order-service its anonymous part (`RssAnon`: heap, stacks) too, printed for reference.
#[derive(Debug, Clone, Default)]
pub struct Rss {
    /// order-service after warm-up.
    pub orders_warm: u64,
    /// order-service at the end of the load.
    pub orders_end: u64,
    /// order-service's `RssAnon` after warm-up.
    pub orders_warm_anon: u64,
    /// order-service's `RssAnon` at the end of the load.
    pub orders_end_anon: u64,
    /// inventory-service (first instance) after warm-up.
    pub inventory_warm: u64,
    /// inventory-service (the last instance) at the end of the load.
    pub inventory_end: u64,
    /// Each inventory instance just before it was stopped (after the baseline).
    pub inventory_before_stop: Vec<u64>,
    /// Whether the baseline (`*_warm`) was taken after the first chaos cycle rather than
    /// after the warm-up ([`Options::baseline_after_first_cycle`]).
    pub after_first_cycle: bool,
}

type Schedule = Result<(Vec<PhaseReport>, Vec<RestartReport>, Rss), String>;

/// Drives the chaos schedule until `opts.duration` has passed since `t0`.
async fn chaos(sys: &mut System, opts: &Options, t0: Instant) -> Schedule {
    let mut phases = Vec::new();
    let mut restarts = Vec::new();
    let mut rss = Rss::default();
    let end = t0 + opts.duration;
    let phase = |kind: PhaseKind, start: Duration| {
        if opts.progress {
            eprintln!("soak: {:>6.1} s  {}", start.as_secs_f64(), kind.as_str());
        }
        PhaseReport::new(kind, start)
    };

    let mut warm = phase(PhaseKind::Warmup, t0.elapsed());
    let sixth = opts.warmup / 6;
    sleep_checked(sys, opts.warmup - sixth * 3).await?;
    sys.set_faults(Some((opts.error_rate, Duration::ZERO)))
        .await?;
    sleep_checked(sys, sixth).await?;
    sys.set_faults(Some((0.0, opts.slow_latency()))).await?;
    sleep_checked(sys, sixth).await?;
    sys.set_faults(None).await?;
    sleep_checked(sys, sixth).await?;
    warm.end = t0.elapsed();
    rss.orders_warm = sys.orders.rss_kib().unwrap_or(0);
    rss.orders_warm_anon = sys.orders.anon_kib().unwrap_or(0);
    rss.inventory_warm = sys.inventory.rss_kib().unwrap_or(0);
    phases.push(warm);

    let mut first = true;
    // Bounded: each cycle takes at least `opts.cycle()`, and a new one starts only if it
    // fits (the first one always runs).
    while first || Instant::now() + opts.cycle() <= end {
        first = false;
        for kind in [PhaseKind::Erroring, PhaseKind::Slow, PhaseKind::Down] {
            let before = Counters::read(&sys.scrape().await);
            let mut p = phase(kind, t0.elapsed());
            match kind {
                PhaseKind::Erroring => {
                    sys.set_faults(Some((opts.error_rate, Duration::ZERO)))
                        .await?;
                    sleep_checked(sys, opts.fault_phase).await?;
                }
                PhaseKind::Slow => {
                    sys.set_faults(Some((0.0, opts.slow_latency()))).await?;
                    sleep_checked(sys, opts.fault_phase).await?;
                }
                _ => {
                    rss.inventory_before_stop
                        .push(sys.inventory.rss_kib().unwrap_or(0));
                    sys.inventory.kill();
                    sleep_orders_checked(sys, opts.fault_phase).await?;
                    let new = sys.spawn_inventory().await?;
                    sys.inventory = new;
                }
            }
            let during = Counters::read(&sys.scrape().await);
            p.end = t0.elapsed();
            if kind != PhaseKind::Down {
                sys.set_faults(None).await?;
            }
            let mut r = phase(PhaseKind::Recovery, t0.elapsed());
            sleep_checked(sys, opts.recovery).await?;
            let after = Counters::read(&sys.scrape().await);
            r.end = t0.elapsed();
            p.breaker = Some(report::BreakerFigures {
                opened: during.since(before).opened as u64,
                closed_after: after.state == 0.0 && after.closed >= during.closed,
                state_after: after.state,
                retried: during.since(before).retried as u64,
                failed_attempts: during.since(before).failed_attempts as u64,
                rejected: during.since(before).rejected as u64,
            });
            p.expect_open = match kind {
                PhaseKind::Erroring => opts.error_rate >= BREAKER_FAILURE_RATE_THRESHOLD,
                _ => true,
            };
            phases.push(p);
            phases.push(r);
        }
        if opts.rolling_restart {
            let (p, restart, before_stop) = rolling_restart(sys, opts, t0).await?;
            rss.inventory_before_stop.push(before_stop);
            phases.push(p);
            restarts.push(restart);
        }
        if opts.baseline_after_first_cycle && !rss.after_first_cycle {
            rss.after_first_cycle = true;
            rss.orders_warm = sys.orders.rss_kib().unwrap_or(0);
            rss.orders_warm_anon = sys.orders.anon_kib().unwrap_or(0);
            rss.inventory_warm = sys.inventory.rss_kib().unwrap_or(0);
            rss.inventory_before_stop.clear();
        }
    }
    let mut tail = phase(PhaseKind::Healthy, t0.elapsed());
    let left = end.saturating_duration_since(Instant::now());
    sleep_checked(sys, left).await?;
    tail.end = t0.elapsed();
    if !tail.end.saturating_sub(tail.start).is_zero() {
        phases.push(tail);
    }
    rss.orders_end = sys.orders.rss_kib().unwrap_or(0);
    rss.orders_end_anon = sys.orders.anon_kib().unwrap_or(0);
    rss.inventory_end = sys.inventory.rss_kib().unwrap_or(0);
    Ok((phases, restarts, rss))
}

/// A rolling restart: a new instance binds the same ports, the old one gets SIGTERM and
/// drains while readiness is probed, then a recovery interval. Returns the phase (its
/// samples are the restart window), the restart's figures, and the old instance's memory.
async fn rolling_restart(
    sys: &mut System,
    opts: &Options,
    t0: Instant,
) -> Result<(PhaseReport, RestartReport, u64), String> {
    let before = Counters::read(&sys.scrape().await);
    let mut p = PhaseReport::new(PhaseKind::RollingRestart, t0.elapsed());
    if opts.progress {
        eprintln!(
            "soak: {:>6.1} s  {}",
            p.start.as_secs_f64(),
            p.kind.as_str()
        );
    }
    let new = sys.spawn_inventory().await?;
    let mut old = std::mem::replace(&mut sys.inventory, new);
    let rss_before_stop = old.rss_kib().unwrap_or(0);
    let signalled = Instant::now();
    old.sigterm()?;
    // Probe readiness on the shared admin port while the old instance drains: each probe
    // is a new connection, which the kernel hands to either listener.
    let (mut ready_200, mut ready_503) = (0u32, 0u32);
    let mut exit = None;
    // Bounded: the drain delay plus 30 s for in-flight requests.
    while signalled.elapsed() < opts.drain_delay + Duration::from_secs(30) {
        if let Ok(r) = palisade_testkit::http::get(&sys.admin, "/health/ready").await {
            match r.status {
                200 => ready_200 += 1,
                503 => ready_503 += 1,
                _ => {}
            }
        }
        if let Some(status) = old.try_exit() {
            exit = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let drained_in = signalled.elapsed();
    let exit = match exit {
        Some(s) => s,
        None => old.wait_exit(Duration::from_secs(1)).await?,
    };
    sleep_checked(sys, opts.recovery).await?;
    let after = Counters::read(&sys.scrape().await);
    p.end = t0.elapsed();
    let d = after.since(before);
    p.breaker = Some(report::BreakerFigures {
        opened: d.opened as u64,
        closed_after: after.state == 0.0,
        state_after: after.state,
        retried: d.retried as u64,
        failed_attempts: d.failed_attempts as u64,
        rejected: d.rejected as u64,
    });
    p.expect_open = false;
    let restart = RestartReport {
        drained_in,
        exit_ok: exit.success(),
        exit: exit.to_string(),
        readiness_200: ready_200,
        readiness_503: ready_503,
    };
    Ok((p, restart, rss_before_stop))
}

/// Sleeps `d` in steps, failing early if a service died.
async fn sleep_checked(sys: &mut System, d: Duration) -> Result<(), String> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        sys.orders.check_running()?;
        sys.inventory.check_running()?;
        let step = end
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(250));
        tokio::time::sleep(step).await;
    }
    Ok(())
}

/// As [`sleep_checked`], while inventory is down on purpose.
async fn sleep_orders_checked(sys: &mut System, d: Duration) -> Result<(), String> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        sys.orders.check_running()?;
        let step = end
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(250));
        tokio::time::sleep(step).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_bounded() {
        for o in [Options::long(PathBuf::new()), Options::ci(PathBuf::new())] {
            o.validate().unwrap();
            assert!(o.slow_latency() > o.try_timeout);
            assert!(o.warmup + o.cycle() <= o.duration, "{o:?}");
        }
        let ci = Options::ci(PathBuf::new());
        assert!(ci.duration <= Duration::from_secs(60));
    }

    #[test]
    fn bad_options_are_named() {
        let base = Options::ci(PathBuf::new());
        let cases = [
            Options {
                error_rate: 1.5,
                ..base.clone()
            },
            Options {
                workers: 0,
                ..base.clone()
            },
            Options {
                rate: 0.0,
                ..base.clone()
            },
            Options {
                recovery: Duration::from_millis(100),
                ..base
            },
        ];
        for (o, word) in cases
            .iter()
            .zip(["error rate", "workers", "rate", "recovery"])
        {
            let e = o.validate().unwrap_err();
            assert!(e.contains(word), "{e}");
        }
    }
}
