//! The retry layer.

use std::sync::Arc;

use tower_layer::Layer;

use crate::config::{Config, Shared};
use crate::observe::Stats;
use crate::{Builder, Retry};

/// Retries failed requests with backoff, jitter, a retry budget and safe body replay.
///
/// Build one with [`RetryLayer::builder`] and a [`Policy`](crate::Policy). Cloning the layer
/// shares its retry budget, hook and metrics: every service it makes, and every clone of those,
/// draws on the same budget. See the [crate docs](crate) for an example.
#[derive(Debug, Clone)]
pub struct RetryLayer<P> {
    policy: P,
    config: Config,
    shared: Arc<Shared>,
}

impl<P> RetryLayer<P> {
    /// A builder for a layer named `name` (the `retry` label of its metrics) using `policy`.
    pub fn builder(name: impl Into<Arc<str>>, policy: P) -> Builder<P> {
        Builder::new(name, policy)
    }

    pub(crate) fn from_parts(policy: P, config: Config, shared: Arc<Shared>) -> Self {
        Self {
            policy,
            config,
            shared,
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

impl<S, P: Clone> Layer<S> for RetryLayer<P> {
    type Service = Retry<S, P>;

    fn layer(&self, inner: S) -> Retry<S, P> {
        Retry::from_parts(inner, self.policy.clone(), self.config, self.shared.clone())
    }
}
