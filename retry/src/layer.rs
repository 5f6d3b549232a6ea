//! The retry layer.

use std::sync::Arc;

use tower_layer::Layer;

use crate::config::{AttemptTimeout, Config, NoTimeout, Shared};
use crate::observe::Stats;
use crate::{Builder, Retry};

/// Retries failed requests with backoff, jitter, a retry budget and safe body replay.
///
/// Build one with [`RetryLayer::builder`] and a [`Policy`](crate::Policy). Cloning the layer
/// shares its retry budget, hook and metrics: every service it makes, and every clone of those,
/// draws on the same budget. See the [crate docs](crate) for an example.
///
/// `T` is [`NoTimeout`] (services keep the inner error type) or [`AttemptTimeout`] (each
/// attempt is bounded by tower's `Timeout`; services return `BoxError`).
#[derive(Debug, Clone)]
pub struct RetryLayer<P, T = NoTimeout> {
    policy: P,
    config: Config,
    shared: Arc<Shared>,
    timeout: T,
}

impl<P> RetryLayer<P> {
    /// A builder for a layer named `name` (the `retry` label of its metrics) using `policy`.
    pub fn builder(name: impl Into<Arc<str>>, policy: P) -> Builder<P> {
        Builder::new(name, policy)
    }
}

impl<P, T> RetryLayer<P, T> {
    pub(crate) fn from_parts(policy: P, config: Config, shared: Arc<Shared>, timeout: T) -> Self {
        Self {
            policy,
            config,
            shared,
            timeout,
        }
    }

    /// The layer's name.
    pub fn name(&self) -> &str {
        &self.shared.observer.name
    }

    /// Retry and budget counters, shared by every clone of this layer and its services.
    pub fn stats(&self) -> Stats {
        Stats {
            shared: self.shared.clone(),
        }
    }
}

impl<S, P: Clone> Layer<S> for RetryLayer<P, NoTimeout> {
    type Service = Retry<S, P>;

    fn layer(&self, inner: S) -> Retry<S, P> {
        Retry::from_parts(inner, self.policy.clone(), self.config, self.shared.clone())
    }
}

impl<S, P: Clone> Layer<S> for RetryLayer<P, AttemptTimeout> {
    type Service = Retry<tower::timeout::Timeout<S>, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_parts(
            tower::timeout::Timeout::new(inner, self.timeout.0),
            self.policy.clone(),
            self.config,
            self.shared.clone(),
        )
    }
}
