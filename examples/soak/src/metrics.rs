//! A small reader of the Prometheus text exposition the services serve on `/metrics`.

use std::collections::BTreeMap;

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name (with any `_count`/`_sum`/`_bucket` suffix).
    pub name: String,
    /// The labels, by name.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// All samples of an exposition, comments skipped; malformed lines are skipped too (this
/// is a test driver, not a validator: `promtool` checks the format in the system tests).
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// The samples, in order.
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the text exposition format.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(parse_line)
            .collect();
        Self { samples }
    }

    /// The sum of the samples named `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Whether any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.trim().parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        None => (series.trim().to_owned(), BTreeMap::new()),
        Some((name, rest)) => (name.to_owned(), parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// `a="x",b="y\"z"` → {a: x, b: y"z}.
fn parse_labels(mut s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    loop {
        s = s.trim_start_matches(',');
        if s.is_empty() {
            return Some(out);
        }
        let (key, rest) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                other => value.push(other),
            }
        };
        out.insert(key.trim().to_owned(), value);
        s = &rest[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_labels_and_values() {
        let text = "# HELP x help\n# TYPE x counter\n\
            palisade_circuit_breaker_transitions_total{breaker=\"inventory\",from=\"closed\",to=\"open\"} 3\n\
            plain 1.5\n\
            odd{v=\"a\\\"b,c\"} 2\n\
            broken{ 1\n";
        let s = Scrape::parse(text);
        assert_eq!(s.samples.len(), 3);
        assert_eq!(
            s.sum(
                "palisade_circuit_breaker_transitions_total",
                &[("to", "open")]
            ),
            3.0
        );
        assert_eq!(s.sum("plain", &[]), 1.5);
        assert_eq!(s.samples[2].labels["v"], "a\"b,c");
        assert_eq!(s.sum("missing", &[]), 0.0);
        assert!(s.has("plain") && !s.has("broken"));
    }
}
