//! Shared helpers for the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use palisade_circuit_breaker::error::{BoxError, CircuitOpen};
use tower::{Service, ServiceExt, service_fn};

/// What the scripted inner service should do with one call.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub fail: bool,
    pub delay: Duration,
}

pub const OK: Call = Call {
    fail: false,
    delay: Duration::ZERO,
};
pub const FAIL: Call = Call {
    fail: true,
    delay: Duration::ZERO,
};

pub fn slow(fail: bool, delay: Duration) -> Call {
    Call { fail, delay }
}

/// An inner service that does what each request says and counts its calls.
pub fn scripted(
    calls: Arc<AtomicUsize>,
) -> impl Service<Call, Response = &'static str, Error = std::io::Error, Future: Send> + Clone + Send
{
    service_fn(move |c: Call| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if !c.delay.is_zero() {
                tokio::time::sleep(c.delay).await;
            }
            if c.fail {
                Err(std::io::Error::other("scripted failure"))
            } else {
                Ok("ok")
            }
        }
    })
}

/// Sends one call and returns `Ok(true)` for a success, `Ok(false)` for an inner failure,
/// `Err(rejection)` for a breaker rejection.
pub async fn send<S>(svc: &mut S, call: Call) -> Result<bool, CircuitOpen>
where
    S: Service<Call, Error = BoxError>,
{
    let svc = svc.ready().await.expect("inner is always ready");
    match svc.call(call).await {
        Ok(_) => Ok(true),
        Err(e) => match e.downcast::<CircuitOpen>() {
            Ok(open) => Err(*open),
            Err(other) => {
                assert!(other.downcast_ref::<std::io::Error>().is_some(), "{other}");
                Ok(false)
            }
        },
    }
}
