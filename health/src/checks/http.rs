use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::{Check, ConfigError, Outcome};

/// Passes when `GET uri` answers with a 2xx status (HTTP/1.1, plain `http://` only).
///
/// Built on the hyper-util client; connections are pooled between runs (a body up to
/// 64 KiB is read and discarded so the connection can be reused; only the status
/// counts). Bound the time with the check's
/// [`timeout`](crate::HealthCheck::timeout).
///
/// ```
/// use palisade_health::{HealthCheck, checks::HttpGetCheck};
///
/// let check = HttpGetCheck::new("http://127.0.0.1:8081/health/ready")?;
/// let inventory = HealthCheck::readiness("inventory", check).non_critical();
/// # Ok::<(), palisade_health::ConfigError>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "http-check")))]
#[derive(Debug, Clone)]
pub struct HttpGetCheck {
    uri: http::Uri,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl HttpGetCheck {
    /// A check that GETs `uri`.
    ///
    /// # Errors
    ///
    /// `uri` when it does not parse, or is not an absolute `http://` URI with a host.
    pub fn new(uri: &str) -> Result<Self, ConfigError> {
        let parsed: http::Uri = uri
            .parse()
            .map_err(|e| ConfigError::new("uri", format!("{uri:?} is not a valid URI: {e}")))?;
        if parsed.scheme() != Some(&http::uri::Scheme::HTTP) || parsed.host().is_none() {
            return Err(ConfigError::new(
                "uri",
                format!("must be an absolute http:// URI with a host, got {uri:?}"),
            ));
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self {
            uri: parsed,
            client,
        })
    }
}

/// Bodies up to this size are read and discarded, so the connection goes back to the
/// pool; a larger body closes it.
const DRAIN_LIMIT: usize = 64 * 1024;

impl Check for HttpGetCheck {
    async fn check(&self) -> Outcome {
        match self.client.get(self.uri.clone()).await {
            Ok(res) => {
                let status = res.status();
                // Only the status counts; reading the (small) body lets the pool reuse
                // the connection. It is bounded by the check's timeout like the rest.
                let _ = Limited::new(res.into_body(), DRAIN_LIMIT).collect().await;
                if status.is_success() {
                    Outcome::pass()
                } else {
                    Outcome::fail(format!("GET {} answered {status}", self.uri))
                }
            }
            Err(e) => Outcome::fail(format!("GET {}: {e}", self.uri)),
        }
    }
}
