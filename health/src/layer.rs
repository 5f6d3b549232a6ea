use tower_layer::Layer;

use crate::{Health, HealthRegistry};

/// Answers the health endpoints in front of a service; see [`Health`].
///
/// Cloning shares the registry (it holds a [`HealthRegistry`] clone).
#[derive(Debug, Clone)]
pub struct HealthLayer {
    registry: HealthRegistry,
}

impl HealthLayer {
    /// A layer answering from `registry` (same as [`HealthRegistry::layer`]).
    pub fn new(registry: HealthRegistry) -> Self {
        Self { registry }
    }
}

impl<S> Layer<S> for HealthLayer {
    type Service = Health<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Health::new(inner, self.registry.clone())
    }
}
