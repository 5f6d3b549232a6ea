//! The soak's figures and checks, and how they are printed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::load::{Answer, Sample};
use crate::{Options, Rss};

/// A phase of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseKind {
    /// Healthy load before the first fault.
    Warmup,
    /// A share of RPCs fails with `UNAVAILABLE`.
    Erroring,
    /// Every RPC is slower than the per-try timeout.
    Slow,
    /// The inventory process is killed, then restarted on the same ports and database.
    Down,
    /// Healthy again, after a fault.
    Recovery,
    /// A new instance takes over while the old one drains.
    RollingRestart,
    /// Healthy load until the end of the run.
    Healthy,
}

impl PhaseKind {
    /// The phase's name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseKind::Warmup => "warm-up",
            PhaseKind::Erroring => "erroring",
            PhaseKind::Slow => "slow",
            PhaseKind::Down => "down",
            PhaseKind::Recovery => "recovery",
            PhaseKind::RollingRestart => "rolling",
            PhaseKind::Healthy => "healthy",
        }
    }
}

/// What order-service's breaker and retries did in a phase.
#[derive(Debug, Clone, Default)]
pub struct BreakerFigures {
    /// Transitions into `open` during the phase.
    pub opened: u64,
    /// Whether the breaker was closed at the end of the recovery that followed.
    pub closed_after: bool,
    /// The state gauge then (0 closed, 1 open, 2 half-open).
    pub state_after: f64,
    /// Retries made (from `palisade_retry_attempts_total{outcome="retried"}`; 0 when not
    /// exported).
    pub retried: u64,
    /// Failed inventory attempts seen by order-service's client.
    pub failed_attempts: u64,
    /// Calls refused by the open breaker.
    pub rejected: u64,
}

/// One phase: when, what clients saw, what the breaker did.
#[derive(Debug, Clone)]
pub struct PhaseReport {
    /// Which phase.
    pub kind: PhaseKind,
    /// Start, since the start of the load.
    pub start: Duration,
    /// End, since the start of the load.
    pub end: Duration,
    /// Requests sent during the phase.
    pub requests: u64,
    /// `201`s, new and replayed.
    pub created: u64,
    /// Business refusals (`409`).
    pub refused: u64,
    /// `503 inventory_circuit_open`.
    pub fast_503: u64,
    /// Other clean failures (`503` with `Retry-After`, `504`).
    pub other_clean: u64,
    /// Anything else (a failed check).
    pub unclean: u64,
    /// Latency percentiles.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Maximum.
    pub max: Duration,
    /// Breaker figures for fault phases and the rolling restart.
    pub breaker: Option<BreakerFigures>,
    /// Whether the breaker had to open in this phase.
    pub expect_open: bool,
}

impl PhaseReport {
    pub(crate) fn new(kind: PhaseKind, start: Duration) -> Self {
        Self {
            kind,
            start,
            end: start,
            requests: 0,
            created: 0,
            refused: 0,
            fast_503: 0,
            other_clean: 0,
            unclean: 0,
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            max: Duration::ZERO,
            breaker: None,
            expect_open: false,
        }
    }

    /// Fills the client figures from the samples sent during the phase.
    pub(crate) fn fill(&mut self, samples: &[Sample]) {
        let mut latencies = Vec::new();
        for s in samples
            .iter()
            .filter(|s| s.at >= self.start && s.at < self.end)
        {
            self.requests += 1;
            latencies.push(s.elapsed);
            match &s.answer {
                Answer::Created { .. } => self.created += 1,
                a if a.is_business() => self.refused += 1,
                Answer::Status { code, .. } if code == "inventory_circuit_open" => {
                    self.fast_503 += 1;
                }
                a if a.is_clean_failure() => self.other_clean += 1,
                _ => self.unclean += 1,
            }
        }
        latencies.sort();
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        self.p50 = pct(0.50);
        self.p99 = pct(0.99);
        self.max = latencies.last().copied().unwrap_or_default();
    }

    /// Requests that failed (clean or not).
    pub fn failures(&self) -> u64 {
        self.fast_503 + self.other_clean + self.unclean
    }
}

/// A rolling restart's figures.
#[derive(Debug, Clone)]
pub struct RestartReport {
    /// From SIGTERM to the old instance's exit.
    pub drained_in: Duration,
    /// Whether the old instance exited with status 0.
    pub exit_ok: bool,
    /// Its exit status, as text.
    pub exit: String,
    /// Readiness probes answered `200` while it drained (the new instance).
    pub readiness_200: u32,
    /// Readiness probes answered `503` while it drained (the old instance, draining).
    pub readiness_503: u32,
}

/// One check: what, whether it held, the figures behind it.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// The figures.
    pub detail: String,
}

impl Check {
    /// A check result.
    pub fn new(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }
}

pub(crate) struct Inputs {
    pub(crate) opts: Options,
    pub(crate) load_time: Duration,
    pub(crate) samples: Vec<Sample>,
    pub(crate) phases: Vec<PhaseReport>,
    pub(crate) restarts: Vec<RestartReport>,
    pub(crate) rss: Rss,
    pub(crate) violations: Vec<String>,
    pub(crate) idempotency_violations: Vec<String>,
    pub(crate) replays_checked: u64,
    pub(crate) accepted: usize,
    pub(crate) confirmed: usize,
    pub(crate) active_reservations: usize,
    pub(crate) released: u64,
    pub(crate) inventory_instances: u32,
}

/// The outcome of a soak run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The options it ran with.
    pub options: Options,
    /// Time under load.
    pub load_time: Duration,
    /// Requests sent.
    pub requests: u64,
    /// Answers by status and problem code.
    pub histogram: BTreeMap<String, u64>,
    /// The phases, in order.
    pub phases: Vec<PhaseReport>,
    /// The rolling restarts.
    pub restarts: Vec<RestartReport>,
    /// Resident memory.
    pub rss: Rss,
    /// Inventory processes started in all (restarts included).
    pub inventory_instances: u32,
    /// The checks.
    pub checks: Vec<Check>,
}

fn within(warm: u64, end: u64, tolerance: f64) -> bool {
    warm > 0 && end > 0 && (end as f64 - warm as f64).abs() <= warm as f64 * tolerance
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

impl Report {
    pub(crate) fn build(i: Inputs) -> Self {
        let mut histogram = BTreeMap::new();
        for s in &i.samples {
            *histogram.entry(s.answer.label()).or_insert(0u64) += 1;
        }
        let requests = i.samples.len() as u64;
        let repeats = i.samples.iter().filter(|s| s.repeat).count();
        let mut checks = Vec::new();

        let mut detail = format!(
            "{} orders answered 201, {} confirmed in orders.db, {} active reservations, {} released",
            i.accepted, i.confirmed, i.active_reservations, i.released
        );
        for v in i.violations.iter().take(10) {
            detail.push_str(&format!("\n      {v}"));
        }
        checks.push(Check::new(
            "every 201 order stored exactly once, with exactly one reservation; stock balances",
            i.violations.is_empty() && i.accepted > 0,
            detail,
        ));

        let mut detail = format!(
            "{repeats} requests repeated an Idempotency-Key; {} repeats of a 201 replayed the same order",
            i.replays_checked
        );
        for v in i.idempotency_violations.iter().take(10) {
            detail.push_str(&format!("\n      {v}"));
        }
        checks.push(Check::new(
            "an Idempotency-Key repeat returns the same order",
            i.idempotency_violations.is_empty() && i.replays_checked > 0,
            detail,
        ));

        let failures: Vec<&Sample> = i.samples.iter().filter(|s| s.answer.is_failure()).collect();
        let unclean: Vec<&Sample> = failures
            .iter()
            .copied()
            .filter(|s| !s.answer.is_clean_failure())
            .collect();
        let mut detail = format!(
            "{} failures, {} clean (503 + Retry-After, 504), {} not",
            failures.len(),
            failures.len() - unclean.len(),
            unclean.len()
        );
        for s in unclean.iter().take(5) {
            detail.push_str(&format!(
                "\n      at {:.1} s: {:?}",
                s.at.as_secs_f64(),
                s.answer
            ));
        }
        checks.push(Check::new(
            "every failure a client saw was a clean 503 with Retry-After or a 504",
            unclean.is_empty(),
            detail,
        ));

        let bound = i.opts.request_bound();
        let over: Vec<&Sample> = i.samples.iter().filter(|s| s.elapsed > bound).collect();
        let max = i
            .samples
            .iter()
            .map(|s| s.elapsed)
            .max()
            .unwrap_or_default();
        checks.push(Check::new(
            "no request took longer than its bound",
            over.is_empty(),
            format!(
                "bound {} ms (2 x INVENTORY_DEADLINE_MS {} ms + {} ms slack); slowest {:.0} ms; {} over",
                bound.as_millis(),
                i.opts.deadline.as_millis(),
                i.opts.slack.as_millis(),
                max.as_secs_f64() * 1000.0,
                over.len()
            ),
        ));

        let tol = i.opts.rss_tolerance;
        let baseline = if i.rss.after_first_cycle {
            "its value after the first chaos cycle"
        } else {
            "warm-up"
        };
        let pct = |w: u64, e: u64| {
            if w == 0 {
                0.0
            } else {
                (e as f64 - w as f64) / w as f64 * 100.0
            }
        };
        checks.push(Check::new(
            format!(
                "order-service memory at the end within {:.0} % of {}",
                tol * 100.0,
                baseline
            ),
            within(i.rss.orders_warm, i.rss.orders_end, tol),
            format!(
                "VmRSS {} at the baseline, {} at the end ({:+.1} %); of which anonymous (RssAnon) {} -> {}",
                mib(i.rss.orders_warm),
                mib(i.rss.orders_end),
                pct(i.rss.orders_warm, i.rss.orders_end),
                mib(i.rss.orders_warm_anon),
                mib(i.rss.orders_end_anon),
            ),
        ));
        let before_stop: Vec<String> = i
            .rss
            .inventory_before_stop
            .iter()
            .map(|k| mib(*k))
            .collect();
        let worst = i
            .rss
            .inventory_before_stop
            .iter()
            .copied()
            .chain([i.rss.inventory_end])
            .max_by_key(|k| k.abs_diff(i.rss.inventory_warm))
            .unwrap_or(0);
        checks.push(Check::new(
            format!(
                "inventory-service memory at the end (and before each stop) within {:.0} % of {}",
                tol * 100.0,
                baseline
            ),
            within(i.rss.inventory_warm, i.rss.inventory_end, tol)
                && i
                    .rss
                    .inventory_before_stop
                    .iter()
                    .all(|k| within(i.rss.inventory_warm, *k, tol)),
            format!(
                "VmRSS {} at the baseline, {} at the end ({:+.1} %), before each stop [{}]; {} instances",
                mib(i.rss.inventory_warm),
                mib(i.rss.inventory_end),
                pct(i.rss.inventory_warm, worst),
                before_stop.join(", "),
                i.inventory_instances
            ),
        ));

        for p in i
            .phases
            .iter()
            .filter(|p| p.kind != PhaseKind::RollingRestart)
        {
            let Some(b) = &p.breaker else { continue };
            let at = format!("{:.0}-{:.0} s", p.start.as_secs_f64(), p.end.as_secs_f64());
            if p.expect_open {
                checks.push(Check::new(
                    format!("breaker opened in the {} phase ({at}) and closed after it", p.kind.as_str()),
                    b.opened > 0 && b.closed_after,
                    format!(
                        "{} openings, {} calls refused, {} failed attempts, {} retries; state after recovery {}",
                        b.opened, b.rejected, b.failed_attempts, b.retried, state_name(b.state_after)
                    ),
                ));
            } else {
                checks.push(Check::new(
                    format!(
                        "breaker stayed closed in the {} phase ({at}): {:.0} % errors are under its {:.0} % threshold, retries absorb them",
                        p.kind.as_str(),
                        i.opts.error_rate * 100.0,
                        crate::BREAKER_FAILURE_RATE_THRESHOLD * 100.0
                    ),
                    b.opened == 0 && b.closed_after && b.failed_attempts > 0,
                    format!(
                        "{} openings, {} failed attempts, {} retries, {} of {} requests failed",
                        b.opened, b.failed_attempts, b.retried, p.failures(), p.requests
                    ),
                ));
            }
        }

        for (n, (p, r)) in i
            .phases
            .iter()
            .filter(|p| p.kind == PhaseKind::RollingRestart)
            .zip(&i.restarts)
            .enumerate()
        {
            let b = p.breaker.clone().unwrap_or_default();
            checks.push(Check::new(
                format!("rolling restart {}: zero failed requests", n + 1),
                p.failures() == 0 && p.requests > 0 && r.exit_ok && r.readiness_503 > 0,
                format!(
                    "{} requests, {} failed; old instance drained in {:.2} s, {}; readiness while draining: {} x 200, {} x 503; \
                     {} failed attempts absorbed, {} retries, {} breaker openings",
                    p.requests,
                    p.failures(),
                    r.drained_in.as_secs_f64(),
                    r.exit,
                    r.readiness_200,
                    r.readiness_503,
                    b.failed_attempts,
                    b.retried,
                    b.opened
                ),
            ));
        }

        Self {
            options: i.opts,
            load_time: i.load_time,
            requests,
            histogram,
            phases: i.phases,
            restarts: i.restarts,
            rss: i.rss,
            inventory_instances: i.inventory_instances,
            checks,
        }
    }

    /// Adds a check.
    pub fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The checks that failed.
    pub fn failed(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }
}

fn state_name(v: f64) -> &'static str {
    match v as u8 {
        0 => "closed",
        1 => "open",
        2 => "half_open",
        _ => "other",
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "soak: {:.0} s under load, {} requests ({:.1}/s, {} workers); per-try timeout {} ms, \
             deadline {} ms, breaker wait {} ms; faults: {:.0} % errors, {} ms latency, kill",
            self.load_time.as_secs_f64(),
            self.requests,
            self.requests as f64 / self.load_time.as_secs_f64().max(0.001),
            o.workers,
            o.try_timeout.as_millis(),
            o.deadline.as_millis(),
            o.breaker_wait.as_millis(),
            o.error_rate * 100.0,
            o.slow_latency().as_millis()
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<9} {:>11} {:>8} {:>7} {:>7} {:>8} {:>9} {:>7} {:>9} {:>9} {:>9} {:>7} {:>8}",
            "phase",
            "time",
            "requests",
            "201",
            "409",
            "fast 503",
            "other 503",
            "unclean",
            "p50",
            "p99",
            "max",
            "opened",
            "closed"
        )?;
        for p in &self.phases {
            let (opened, closed) = match &p.breaker {
                Some(b) => (
                    b.opened.to_string(),
                    if b.closed_after { "yes" } else { "NO" }.to_owned(),
                ),
                None => ("-".to_owned(), "-".to_owned()),
            };
            writeln!(
                f,
                "{:<9} {:>11} {:>8} {:>7} {:>7} {:>8} {:>9} {:>7} {:>9} {:>9} {:>9} {:>7} {:>8}",
                p.kind.as_str(),
                format!("{:.0}-{:.0} s", p.start.as_secs_f64(), p.end.as_secs_f64()),
                p.requests,
                p.created,
                p.refused,
                p.fast_503,
                p.other_clean,
                p.unclean,
                ms(p.p50),
                ms(p.p99),
                ms(p.max),
                opened,
                closed
            )?;
        }
        writeln!(f)?;
        writeln!(f, "answers:")?;
        for (label, n) in &self.histogram {
            writeln!(f, "  {n:>8}  {label}")?;
        }
        writeln!(f)?;
        for c in &self.checks {
            writeln!(f, "[{}] {}", if c.ok { "PASS" } else { "FAIL" }, c.name)?;
            writeln!(f, "      {}", c.detail)?;
        }
        writeln!(f)?;
        if self.passed() {
            write!(f, "soak PASSED: {} checks", self.checks.len())
        } else {
            write!(
                f,
                "soak FAILED: {} of {} checks",
                self.failed().len(),
                self.checks.len()
            )
        }
    }
}
