//! The end-of-run report: a table per phase and the breaker's transitions.

use std::fmt::Write as _;
use std::time::Duration;

use crate::traffic::{Outcome, Sample};

/// One phase's numbers.
#[derive(Debug, Clone)]
pub(crate) struct PhaseStats {
    pub(crate) name: &'static str,
    pub(crate) wall: Duration,
    pub(crate) requests: usize,
    pub(crate) created: usize,
    pub(crate) replayed: usize,
    pub(crate) refused: usize,
    pub(crate) fast_rejected: usize,
    pub(crate) unavailable: usize,
    pub(crate) unexpected: usize,
    pub(crate) retries: u64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) fast_p99: Option<Duration>,
}

impl PhaseStats {
    pub(crate) fn new(
        name: &'static str,
        wall: Duration,
        samples: &[Sample],
        retries: u64,
    ) -> Self {
        let count = |o: Outcome| samples.iter().filter(|s| s.outcome == o).count();
        let mut all: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
        let mut fast: Vec<Duration> = samples
            .iter()
            .filter(|s| s.outcome == Outcome::FastRejected)
            .map(|s| s.latency)
            .collect();
        Self {
            name,
            wall,
            requests: samples.len(),
            created: count(Outcome::Created),
            replayed: count(Outcome::Replayed),
            refused: count(Outcome::Refused),
            fast_rejected: count(Outcome::FastRejected),
            unavailable: count(Outcome::Unavailable),
            unexpected: count(Outcome::Unexpected),
            retries,
            p50: percentile(&mut all, 50.0),
            p99: percentile(&mut all, 99.0),
            fast_p99: (!fast.is_empty()).then(|| percentile(&mut fast, 99.0)),
        }
    }
}

/// The `p`th percentile (nearest rank); zero for no samples.
pub(crate) fn percentile(values: &mut [Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    // Nearest rank: ceil(p/100 * n), 1-based.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The per-phase table.
pub(crate) fn table(phases: &[PhaseStats]) -> String {
    let header = [
        "phase",
        "time",
        "requests",
        "created",
        "replayed",
        "refused",
        "fast 503",
        "other 503",
        "retries",
        "p50",
        "p99",
        "fast 503 p99",
    ];
    let rows: Vec<Vec<String>> = phases
        .iter()
        .map(|p| {
            vec![
                p.name.to_owned(),
                format!("{:.1} s", p.wall.as_secs_f64()),
                p.requests.to_string(),
                p.created.to_string(),
                p.replayed.to_string(),
                p.refused.to_string(),
                p.fast_rejected.to_string(),
                p.unavailable.to_string(),
                p.retries.to_string(),
                ms(p.p50),
                ms(p.p99),
                p.fast_p99.map_or_else(|| "-".to_owned(), ms),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 0 {
                let _ = write!(l, "{c:<w$}", w = widths[i]);
            } else {
                let _ = write!(l, "  {c:>w$}", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.iter().map(|h| (*h).to_owned()).collect(), &mut out);
    line(widths.iter().map(|w| "-".repeat(*w)).collect(), &mut out);
    for r in rows {
        line(r, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&mut v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&mut v, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&mut [], 99.0), Duration::ZERO);
        assert_eq!(
            percentile(&mut [Duration::from_millis(7)], 1.0),
            Duration::from_millis(7)
        );
    }

    #[test]
    fn table_lines_up() {
        let s = PhaseStats::new("healthy", Duration::from_secs(2), &[], 0);
        let t = table(&[s]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("phase"));
        assert!(lines[2].starts_with("healthy"));
    }
}
