//! Configuration from environment variables, with defaults.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

/// The order service's configuration.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `ORDER_HTTP_ADDR` | `0.0.0.0:8080` | HTTP listen address (API, `/metrics`, `/health/*`) |
/// | `ORDER_DB_PATH` | `orders.db` | SQLite file, created and migrated on start |
/// | `INVENTORY_URL` | `http://127.0.0.1:50051` | the inventory service's gRPC endpoint |
/// | `INVENTORY_TRY_TIMEOUT_MS` | `500` | timeout of one attempt, 1 to 60000 |
/// | `INVENTORY_MAX_ATTEMPTS` | `3` | attempts per call, retries included, 1 to 10 |
/// | `INVENTORY_DEADLINE_MS` | `3000` | budget of one call across attempts and backoff, 1 to 600000 |
/// | `INVENTORY_BREAKER_WAIT_MS` | `5000` | how long the breaker stays open before a trial call, 1 to 600000 |
/// | `ORDER_RECONCILE_INTERVAL_MS` | `2000` | how often unfinished orders are compensated, 10 to 600000 |
/// | `ORDER_PENDING_GRACE_MS` | `30000` | age after which a pending order counts as abandoned; more than `INVENTORY_DEADLINE_MS` |
/// | `ORDER_DRAIN_DELAY_MS` | `5000` | on shutdown, how long readiness fails before the server stops |
/// | `ORDER_MIDDLEWARE` | `on` | `off`: serve and call the inventory service with no Palisade layer (no retry, breaker, trace, metrics, timeout or health layer; `/health/*` is not served), the baseline `benches/load.sh` measures the layers against; not for production |
/// | `ORDER_HEALTH_TOKEN` | unset | health check details are shown to probes sending `Authorization: Bearer <token>`; hidden otherwise |
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address.
    pub http_addr: SocketAddr,
    /// SQLite database file.
    pub db_path: PathBuf,
    /// The inventory service's gRPC endpoint, `http://host:port`.
    pub inventory_url: String,
    /// Timeout of one attempt.
    pub try_timeout: Duration,
    /// Attempts per call, retries included.
    pub max_attempts: u32,
    /// Budget of one call across all attempts and backoff.
    pub deadline: Duration,
    /// How long the breaker stays open before a trial call.
    pub breaker_wait: Duration,
    /// How often unfinished orders are compensated.
    pub reconcile_interval: Duration,
    /// Age after which a pending order counts as abandoned.
    pub pending_grace: Duration,
    /// How long readiness fails before the server stops, on shutdown.
    pub drain_delay: Duration,
    /// Token that reveals health check details; `None` hides them from everyone.
    pub health_token: Option<String>,
    /// Whether the Palisade layers are applied (`true` but for the benchmark baseline:
    /// `false` calls the inventory channel directly, once, under the deadline only, and
    /// serves the API with no health endpoints, spans or RED metrics).
    pub middleware: bool,
    /// Renders `/metrics`; `None` serves no `/metrics`. Not read from the environment:
    /// the binary installs the recorder and sets it.
    pub metrics: Option<PrometheusHandle>,
}

impl Config {
    /// Defaults suited to tests and the demo: a free loopback port, the database at
    /// `db_path`, the inventory service at `inventory_url`, no drain delay.
    pub fn local(db_path: impl Into<PathBuf>, inventory_url: impl Into<String>) -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_path: db_path.into(),
            inventory_url: inventory_url.into(),
            try_timeout: Duration::from_millis(500),
            max_attempts: 3,
            deadline: Duration::from_secs(3),
            breaker_wait: Duration::from_secs(5),
            reconcile_interval: Duration::from_secs(2),
            pending_grace: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
            health_token: None,
            metrics: None,
            middleware: true,
        }
    }

    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the variable, its value and what is allowed.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get` (a variable name to its value).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the variable, its value and what is allowed.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &'static str, default: &str| {
            (name, get(name).unwrap_or_else(|| default.to_owned()))
        };
        let ms = |name: &'static str, default: &str, min: u64, max: u64| {
            let (name, v) = var(name, default);
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| (min..=max).contains(ms))
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    ConfigError::new(
                        name,
                        &v,
                        &format!("expected milliseconds from {min} to {max}"),
                    )
                })
        };
        let (name, v) = var("ORDER_HTTP_ADDR", "0.0.0.0:8080");
        let http_addr = v.trim().parse().map_err(|_| {
            ConfigError::new(
                name,
                &v,
                "expected an IP address and a port from 0 to 65535, e.g. 0.0.0.0:8080",
            )
        })?;
        let (name, v) = var("ORDER_DB_PATH", "orders.db");
        if v.trim().is_empty() {
            return Err(ConfigError::new(name, &v, "expected a file path"));
        }
        let db_path = PathBuf::from(v);
        let (name, inventory_url) = var("INVENTORY_URL", "http://127.0.0.1:50051");
        check_url(&inventory_url).map_err(|e| ConfigError::new(name, &inventory_url, &e))?;
        let try_timeout = ms("INVENTORY_TRY_TIMEOUT_MS", "500", 1, 60_000)?;
        let (name, v) = var("INVENTORY_MAX_ATTEMPTS", "3");
        let max_attempts = v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=10).contains(n))
            .ok_or_else(|| ConfigError::new(name, &v, "expected a whole number from 1 to 10"))?;
        let deadline = ms("INVENTORY_DEADLINE_MS", "3000", 1, 600_000)?;
        let breaker_wait = ms("INVENTORY_BREAKER_WAIT_MS", "5000", 1, 600_000)?;
        let reconcile_interval = ms("ORDER_RECONCILE_INTERVAL_MS", "2000", 10, 600_000)?;
        let pending_grace = ms("ORDER_PENDING_GRACE_MS", "30000", 1, 3_600_000)?;
        if pending_grace <= deadline {
            return Err(ConfigError::new(
                "ORDER_PENDING_GRACE_MS",
                &pending_grace.as_millis().to_string(),
                &format!(
                    "must be more than INVENTORY_DEADLINE_MS ({} ms), or live requests would be compensated",
                    deadline.as_millis()
                ),
            ));
        }
        let drain_delay = ms("ORDER_DRAIN_DELAY_MS", "5000", 0, 600_000)?;
        let health_token = match get("ORDER_HEALTH_TOKEN") {
            None => None,
            Some(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()) => Some(t),
            Some(t) => {
                return Err(ConfigError::new(
                    "ORDER_HEALTH_TOKEN",
                    &"*".repeat(t.len().min(8)),
                    "expected visible ASCII characters without spaces",
                ));
            }
        };
        let (name, v) = var("ORDER_MIDDLEWARE", "on");
        let middleware = match v.trim().to_ascii_lowercase().as_str() {
            "on" | "" => true,
            "off" => false,
            _ => return Err(ConfigError::new(name, &v, "expected on or off")),
        };
        Ok(Self {
            http_addr,
            db_path,
            inventory_url,
            try_timeout,
            max_attempts,
            deadline,
            breaker_wait,
            reconcile_interval,
            pending_grace,
            drain_delay,
            health_token,
            metrics: None,
            middleware,
        })
    }
}

/// Checks an inventory URL: `http` or `https`, a host, and nothing after the authority.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "expected a URL such as http://inventory:50051".to_owned())?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("expected an http:// or https:// URL".to_owned());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("expected a host, e.g. http://inventory:50051".to_owned());
    }
    if uri
        .path_and_query()
        .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
    {
        return Err("expected no path after the host and port".to_owned());
    }
    Ok(())
}

/// An invalid environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    var: &'static str,
    value: String,
    expected: String,
}

impl ConfigError {
    pub(crate) fn invalid(var: &'static str, value: &str, expected: &str) -> Self {
        Self::new(var, value, expected)
    }

    fn new(var: &'static str, value: &str, expected: &str) -> Self {
        Self {
            var,
            value: value.to_owned(),
            expected: expected.to_owned(),
        }
    }

    /// The variable that is wrong.
    pub fn var(&self) -> &'static str {
        self.var
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}={:?}: {}",
            self.var, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults() {
        let c = Config::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c.http_addr.port(), 8080);
        assert_eq!(c.inventory_url, "http://127.0.0.1:50051");
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.try_timeout, Duration::from_millis(500));
        assert!(c.middleware);
        let c = Config::from_lookup(lookup(&[("ORDER_MIDDLEWARE", "off")])).unwrap();
        assert!(!c.middleware);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("ORDER_HTTP_ADDR", "0.0.0.0:99999"),
            ("ORDER_MIDDLEWARE", "none"),
            ("ORDER_HTTP_ADDR", ""),
            ("ORDER_DB_PATH", ""),
            ("INVENTORY_URL", "inventory:50051"),
            ("INVENTORY_URL", "ftp://inventory:50051"),
            ("INVENTORY_URL", "http://inventory:50051/x"),
            ("INVENTORY_TRY_TIMEOUT_MS", "0"),
            ("INVENTORY_MAX_ATTEMPTS", "11"),
            ("INVENTORY_DEADLINE_MS", "3s"),
            ("INVENTORY_BREAKER_WAIT_MS", "-5"),
            ("ORDER_RECONCILE_INTERVAL_MS", "1"),
            ("ORDER_PENDING_GRACE_MS", "1000"),
            ("ORDER_DRAIN_DELAY_MS", "x"),
            ("ORDER_HEALTH_TOKEN", "a b"),
        ] {
            let err = Config::from_lookup(lookup(&[(var, value)])).unwrap_err();
            assert_eq!(err.var(), var, "{err}");
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn urls() {
        assert!(check_url("http://inventory:50051").is_ok());
        assert!(check_url("https://10.0.0.1:443/").is_ok());
        assert!(check_url("http://").is_err());
    }
}
