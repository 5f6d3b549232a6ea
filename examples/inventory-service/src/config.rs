//! Configuration from environment variables, with defaults.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::faults::FaultSettings;

/// The inventory service's configuration.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `INVENTORY_GRPC_ADDR` | `0.0.0.0:50051` | gRPC listen address |
/// | `INVENTORY_ADMIN_ADDR` | `0.0.0.0:9091` | HTTP admin address: `/metrics`, `/health/*`, `/admin/*` |
/// | `INVENTORY_DB_PATH` | `inventory.db` | SQLite file, created and migrated on start |
/// | `INVENTORY_FAULT_ERROR_RATE` | `0` | share of RPCs failed with `UNAVAILABLE`, 0 to 1 |
/// | `INVENTORY_FAULT_LATENCY_MS` | `0` | latency added to every RPC, 0 to 60000 |
/// | `INVENTORY_DRAIN_DELAY_MS` | `5000` | on shutdown, how long readiness fails before the servers stop |
/// | `INVENTORY_MIDDLEWARE` | `on` | `off`: serve with no Palisade layer (no health, trace or metrics layer; `/health/*` and `grpc.health.v1` are not served), the baseline `benches/load.sh` measures the layers against; not for production |
/// | `INVENTORY_REUSE_PORT` | `false` | `true`: bind both ports with `SO_REUSEPORT` (Unix), so a new instance can bind the same addresses before the old one is told to drain (rolling restart on one host) |
#[derive(Debug, Clone)]
pub struct Config {
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// HTTP admin listen address.
    pub admin_addr: SocketAddr,
    /// SQLite database file.
    pub db_path: PathBuf,
    /// Faults injected from the start.
    pub faults: FaultSettings,
    /// How long readiness fails before the servers stop, on shutdown.
    pub drain_delay: Duration,
    /// Renders `/metrics` on the admin port; `None` serves no `/metrics`. Not read from the
    /// environment: the binary installs the recorder and sets it.
    pub metrics: Option<PrometheusHandle>,
    /// Bind both listeners with `SO_REUSEPORT`, so a second instance can take over the same
    /// addresses while this one drains. Ignored where the platform has no `SO_REUSEPORT`.
    pub reuse_port: bool,
    /// Whether the Palisade layers are applied (`true` but for the benchmark baseline:
    /// `false` serves no health endpoints and records no spans or RED metrics).
    pub middleware: bool,
}

impl Config {
    /// Defaults suited to tests and the demo: both servers on free loopback ports, the
    /// database at `db_path`, no faults, no drain delay.
    pub fn local(db_path: impl Into<PathBuf>) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_path: db_path.into(),
            faults: FaultSettings::default(),
            drain_delay: Duration::ZERO,
            metrics: None,
            reuse_port: false,
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
            let value = get(name).unwrap_or_else(|| default.to_owned());
            (name, value)
        };
        let (name, v) = var("INVENTORY_GRPC_ADDR", "0.0.0.0:50051");
        let grpc_addr = parse_addr(name, &v)?;
        let (name, v) = var("INVENTORY_ADMIN_ADDR", "0.0.0.0:9091");
        let admin_addr = parse_addr(name, &v)?;
        let (name, v) = var("INVENTORY_DB_PATH", "inventory.db");
        if v.trim().is_empty() {
            return Err(ConfigError::new(name, &v, "expected a file path"));
        }
        let db_path = PathBuf::from(v);
        let (name, v) = var("INVENTORY_FAULT_ERROR_RATE", "0");
        let error_rate = v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| ConfigError::new(name, &v, "expected a number from 0 to 1"))?;
        let (name, v) = var("INVENTORY_FAULT_LATENCY_MS", "0");
        let latency_ms = parse_ms(name, &v, 60_000)?;
        let (name, v) = var("INVENTORY_DRAIN_DELAY_MS", "5000");
        let drain_ms = parse_ms(name, &v, 600_000)?;
        let (name, v) = var("INVENTORY_REUSE_PORT", "false");
        let reuse_port = match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" | "" => false,
            _ => return Err(ConfigError::new(name, &v, "expected true or false")),
        };
        let (name, v) = var("INVENTORY_MIDDLEWARE", "on");
        let middleware = match v.trim().to_ascii_lowercase().as_str() {
            "on" | "" => true,
            "off" => false,
            _ => return Err(ConfigError::new(name, &v, "expected on or off")),
        };
        let faults = FaultSettings {
            error_rate,
            latency_ms,
        };
        Ok(Self {
            grpc_addr,
            admin_addr,
            db_path,
            faults,
            drain_delay: Duration::from_millis(drain_ms),
            metrics: None,
            reuse_port,
            middleware,
        })
    }
}

pub(crate) fn parse_addr(name: &'static str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.trim().parse().map_err(|_| {
        ConfigError::new(
            name,
            v,
            "expected an IP address and a port from 0 to 65535, e.g. 0.0.0.0:50051",
        )
    })
}

pub(crate) fn parse_ms(name: &'static str, v: &str, max: u64) -> Result<u64, ConfigError> {
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|ms| *ms <= max)
        .ok_or_else(|| ConfigError::new(name, v, &format!("expected milliseconds from 0 to {max}")))
}

/// An invalid environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    var: &'static str,
    value: String,
    expected: String,
}

impl ConfigError {
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
        assert_eq!(c.grpc_addr.port(), 50051);
        assert_eq!(c.admin_addr.port(), 9091);
        assert_eq!(c.db_path, PathBuf::from("inventory.db"));
        assert_eq!(c.faults.error_rate, 0.0);
        assert_eq!(c.drain_delay, Duration::from_secs(5));
        assert!(!c.reuse_port);
        assert!(c.middleware);
        let c = Config::from_lookup(lookup(&[("INVENTORY_MIDDLEWARE", "OFF")])).unwrap();
        assert!(!c.middleware);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("INVENTORY_GRPC_ADDR", "0.0.0.0:70000"),
            ("INVENTORY_ADMIN_ADDR", "localhost"),
            ("INVENTORY_DB_PATH", " "),
            ("INVENTORY_FAULT_ERROR_RATE", "1.5"),
            ("INVENTORY_FAULT_ERROR_RATE", "NaN"),
            ("INVENTORY_FAULT_LATENCY_MS", "-1"),
            ("INVENTORY_DRAIN_DELAY_MS", "soon"),
            ("INVENTORY_REUSE_PORT", "maybe"),
            ("INVENTORY_MIDDLEWARE", "false"),
        ] {
            let err = Config::from_lookup(lookup(&[(var, value)])).unwrap_err();
            assert_eq!(err.var(), var, "{err}");
            let line = err.to_string();
            assert!(line.contains(var) && !line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn values_are_read() {
        let c = Config::from_lookup(lookup(&[
            ("INVENTORY_GRPC_ADDR", "127.0.0.1:1234"),
            ("INVENTORY_FAULT_ERROR_RATE", "0.25"),
            ("INVENTORY_FAULT_LATENCY_MS", "150"),
            ("INVENTORY_REUSE_PORT", "true"),
        ]))
        .unwrap();
        assert!(c.reuse_port);
        assert_eq!(c.grpc_addr, "127.0.0.1:1234".parse().unwrap());
        assert_eq!(c.faults.error_rate, 0.25);
        assert_eq!(c.faults.latency_ms, 150);
    }
}
