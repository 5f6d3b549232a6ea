//! The [`Layer`] that wraps services in a circuit breaker.

use std::fmt;
use std::sync::Arc as StdArc;

use tower_layer::Layer;

use crate::breaker::{Core, default_stripes};
use crate::classify::ErrorsAsFailures;
use crate::config::{Builder, Config, StateChangeHook};
use crate::fallback::NoFallback;
use crate::handle::CircuitBreakerHandle;
use crate::permit::Cell;
use crate::service::CircuitBreaker;
use crate::sync::Arc;

/// Wraps services in one circuit breaker.
///
/// **Cloning shares state.** The breaker's state lives in an `Arc`: every clone of the
/// layer, and every service it makes (and their clones), feed and obey the same breaker,
/// like tower's `GlobalConcurrencyLimitLayer`. Build a second layer for a second breaker.
///
/// Each service the layer makes, and each clone of a service, gets its own counter stripe,
/// so clones used from different threads (tower clones a service per connection or task)
/// do not write to the same memory on the success path.
///
/// See the [crate example](crate) and [`Builder`] for the settings and their defaults.
pub struct CircuitBreakerLayer<C = ErrorsAsFailures, F = NoFallback> {
    core: Arc<Core>,
    classifier: C,
    fallback: F,
}

impl CircuitBreakerLayer {
    /// Starts configuring a breaker named `name` (used in rejections, metric labels and
    /// tracing events).
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name)
    }
}

impl<C, F> CircuitBreakerLayer<C, F> {
    pub(crate) fn from_parts(
        name: String,
        config: Config,
        classifier: C,
        fallback: F,
        hook: Option<StateChangeHook>,
    ) -> Self {
        let core = Core::new(StdArc::from(name), config, hook, default_stripes());
        CircuitBreakerLayer {
            core: Core::shared(core),
            classifier,
            fallback,
        }
    }

    /// A handle to read and steer this breaker.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            core: self.core.clone(),
        }
    }
}

impl<S, C: Clone, F: Clone> Layer<S> for CircuitBreakerLayer<C, F> {
    type Service = CircuitBreaker<S, C, F>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::from_parts(
            inner,
            Cell::new(self.core.clone()),
            self.classifier.clone(),
            self.fallback.clone(),
        )
    }
}

impl<C: Clone, F: Clone> Clone for CircuitBreakerLayer<C, F> {
    fn clone(&self) -> Self {
        CircuitBreakerLayer {
            core: self.core.clone(),
            classifier: self.classifier.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

impl<C: fmt::Debug, F: fmt::Debug> fmt::Debug for CircuitBreakerLayer<C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.core)
            .field("classifier", &self.classifier)
            .field("fallback", &self.fallback)
            .finish()
    }
}
