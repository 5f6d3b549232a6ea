use crate::{Check, Outcome};

/// Passes when a TCP connection to the address can be opened.
///
/// The address is resolved on every run (`host:port`, or `ip:port`), so DNS changes
/// are picked up. The connection is closed at once. Bound the time with the check's
/// [`timeout`](crate::HealthCheck::timeout).
///
/// ```
/// use palisade_health::{HealthCheck, checks::TcpCheck};
///
/// let redis = HealthCheck::readiness("redis", TcpCheck::new("127.0.0.1:6379")).non_critical();
/// ```
#[derive(Debug, Clone)]
pub struct TcpCheck {
    addr: String,
}

impl TcpCheck {
    /// A check that connects to `addr`.
    pub fn new(addr: impl Into<String>) -> Self {
        Self { addr: addr.into() }
    }
}

impl Check for TcpCheck {
    async fn check(&self) -> Outcome {
        match tokio::net::TcpStream::connect(self.addr.as_str()).await {
            Ok(_) => Outcome::pass(),
            Err(e) => Outcome::fail(format!("connect to {}: {e}", self.addr)),
        }
    }
}
