//! One breaker per key; see [`KeyedCircuitBreakerLayer`].

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc as StdArc, Mutex as StdMutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tower_layer::Layer;
use tower_service::Service;

use crate::State;
use crate::breaker::Core;
use crate::classify::{Classify, ClassifyResponse};
use crate::config::{Builder, Config, StateChangeHook, validate};
use crate::error::{BoxError, ConfigError};
use crate::fallback::Fallback;
use crate::future::ResponseFuture;
use crate::handle::CircuitBreakerHandle;
use crate::permit::Cell;
use crate::sync::Arc;

const KEYED_STRIPES: usize = 8;

/// Counts open keys against the cap.
#[derive(Debug)]
pub(crate) struct OpenGate {
    open: AtomicUsize,
    keys: AtomicUsize,
    max_ratio: Option<f64>,
}

impl OpenGate {
    /// Whether one more key may open.
    pub(crate) fn may_open(&self) -> bool {
        let Some(ratio) = self.max_ratio else {
            return true;
        };
        let open = self.open.load(Ordering::Acquire);
        open == 0 || (open + 1) as f64 <= ratio * self.keys.load(Ordering::Acquire) as f64
    }

    pub(crate) fn moved(&self, from: State, to: State) {
        let is_open = |s| matches!(s, State::Open | State::HalfOpen | State::ForcedOpen);
        match (is_open(from), is_open(to)) {
            (false, true) => {
                self.open.fetch_add(1, Ordering::AcqRel);
            }
            (true, false) => {
                self.open.fetch_sub(1, Ordering::AcqRel);
            }
            _ => {}
        }
    }
}

#[derive(Debug)]
struct Entry {
    core: Arc<Core>,
    activity: u64,
    active_at: tokio::time::Instant,
}

#[derive(Debug)]
struct Map<K> {
    entries: HashMap<K, Entry>,
    swept_at: tokio::time::Instant,
}

struct Shared<K> {
    name: String,
    config: Config,
    hook: Option<StateChangeHook>,
    max_keys: usize,
    idle_timeout: Duration,
    gate: StdArc<OpenGate>,
    map: StdMutex<Map<K>>,
    overflow: Arc<Core>,
}

impl<K> fmt::Debug for Shared<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBreakers")
            .field("name", &self.name)
            .field("max_keys", &self.max_keys)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone + fmt::Display> Shared<K> {
    fn core(&self, name: String) -> Core {
        Core::new(
            StdArc::from(name),
            self.config.clone(),
            self.hook.clone(),
            KEYED_STRIPES,
        )
        .with_gate(self.gate.clone())
    }

    /// The breaker for `key`, created if there is room (`None`: use the overflow breaker).
    fn get(&self, key: &K) -> Option<Arc<Core>> {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = map.entries.get(key) {
            return Some(e.core.clone());
        }
        let now = tokio::time::Instant::now();
        if map.entries.len() >= self.max_keys || now - map.swept_at >= self.idle_timeout / 2 {
            self.sweep(&mut map, now);
        }
        if map.entries.len() >= self.max_keys {
            return None;
        }
        let core = Core::shared(self.core(format!("{}/{key}", self.name)));
        map.entries.insert(
            key.clone(),
            Entry {
                core: core.clone(),
                activity: core.activity(),
                active_at: now,
            },
        );
        self.gate.keys.store(map.entries.len(), Ordering::Release);
        Some(core)
    }

    /// Evicts closed keys idle for `idle_timeout`.
    fn sweep(&self, map: &mut Map<K>, now: tokio::time::Instant) {
        map.swept_at = now;
        let idle = self.idle_timeout;
        map.entries.retain(|_, e| {
            let activity = e.core.activity();
            if activity != e.activity {
                e.activity = activity;
                e.active_at = now;
                return true;
            }
            let evict = now - e.active_at >= idle && e.core.raw_state() == State::Closed;
            if evict {
                e.core.retired.store(true, Ordering::Release);
            }
            !evict
        });
        self.gate.keys.store(map.entries.len(), Ordering::Release);
    }
}

/// Builds a [`KeyedCircuitBreakerLayer`]; get one from [`Builder::keyed`].
///
/// # Default
///
/// - `max_keys`: 1024
/// - `idle_timeout`: 10 minutes
/// - `max_open_ratio`: none (any number of keys may be open)
#[must_use]
pub struct KeyedBuilder<K, KF, C, F> {
    builder: Builder<C, F>,
    _key: std::marker::PhantomData<fn() -> K>,
    key_fn: KF,
    max_keys: usize,
    idle_timeout: Duration,
    max_open_ratio: Option<f64>,
}

impl<K, KF, C: fmt::Debug, F: fmt::Debug> fmt::Debug for KeyedBuilder<K, KF, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBuilder")
            .field("builder", &self.builder)
            .field("max_keys", &self.max_keys)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_open_ratio", &self.max_open_ratio)
            .finish_non_exhaustive()
    }
}

impl<C, F> Builder<C, F> {
    /// One breaker per key: `key_fn` derives the key from each request (a host, a route
    /// template, a gRPC method). Every key's breaker uses this builder's settings. See the
    /// [`KeyedCircuitBreakerLayer`] docs.
    pub fn keyed<Req, K, KF>(self, key_fn: KF) -> KeyedBuilder<K, KF, C, F>
    where
        KF: Fn(&Req) -> K,
    {
        KeyedBuilder {
            builder: self,
            _key: std::marker::PhantomData,
            key_fn,
            max_keys: 1024,
            idle_timeout: Duration::from_secs(600),
            max_open_ratio: None,
        }
    }
}

impl<K, KF, C, F> KeyedBuilder<K, KF, C, F> {
    /// The most keys with their own breaker, in `[1, 100000]`; further keys share the
    /// overflow breaker. Defaults to 1024.
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }

    /// A closed key without calls for this long may be evicted. Defaults to 10 minutes.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The most keys open at once, as a share of the keys in `(0, 1]` (at least one key may
    /// always open). Defaults to no cap.
    pub fn max_open_ratio(mut self, ratio: f64) -> Self {
        self.max_open_ratio = Some(ratio);
        self
    }

    /// Validates the settings and builds the layer.
    ///
    /// # Errors
    ///
    /// Every error of [`Builder::build`], and a [`ConfigError`] when `max_keys` is not in
    /// `[1, 100000]`, `idle_timeout` is 0, or `max_open_ratio` is not in `(0, 1]`.
    pub fn build(self) -> Result<KeyedCircuitBreakerLayer<K, KF, C, F>, ConfigError>
    where
        K: Hash + Eq + Clone + fmt::Display,
    {
        let (name, config, classifier, fallback, hook) = self.builder.into_parts();
        let config = validate(&name, config)?;
        if !(1..=100_000).contains(&self.max_keys) {
            return Err(ConfigError::new(
                "max_keys",
                format!("must be in [1, 100000], got {}", self.max_keys),
            ));
        }
        if self.idle_timeout.is_zero() {
            return Err(ConfigError::new(
                "idle_timeout",
                "must be greater than 0, got 0",
            ));
        }
        if let Some(r) = self.max_open_ratio
            && !(r > 0.0 && r <= 1.0)
        {
            return Err(ConfigError::new(
                "max_open_ratio",
                format!("must be in (0, 1], got {r}"),
            ));
        }
        let gate = StdArc::new(OpenGate {
            open: AtomicUsize::new(0),
            keys: AtomicUsize::new(0),
            max_ratio: self.max_open_ratio,
        });
        let overflow = Core::shared(Core::new(
            StdArc::from(format!("{name}/_overflow")),
            config.clone(),
            hook.clone(),
            KEYED_STRIPES,
        ));
        Ok(KeyedCircuitBreakerLayer {
            shared: StdArc::new(Shared {
                name,
                config,
                hook,
                max_keys: self.max_keys,
                idle_timeout: self.idle_timeout,
                gate,
                map: StdMutex::new(Map {
                    entries: HashMap::new(),
                    swept_at: tokio::time::Instant::now(),
                }),
                overflow,
            }),
            key_fn: self.key_fn,
            classifier,
            fallback,
        })
    }
}

/// One breaker per key: per host, per route, per gRPC method.
///
/// A [`KeyedCircuitBreakerLayer`] derives a key from each request with a key function and
/// keeps an independent breaker (same settings) per key, so one failing backend or method
/// does not open the circuit for the others.
///
/// - **Bounded keys.** At most `max_keys` breakers exist; calls whose key finds no room go
///   through one shared overflow breaker, named `{name}/_overflow` (and take the key map's
///   lock on each call, so that they get their own breaker as soon as there is room).
/// - **Idle eviction.** A key whose breaker is closed and saw no call for `idle_timeout` is
///   evicted when room is needed (and by a sweep at most every `idle_timeout / 2`, run when
///   a new key arrives). Calls are not timestamped (that would read the clock per call):
///   a sweep notes which keys saw calls since the previous sweep, so a key is evicted
///   between `idle_timeout` and about twice that after its last call. An open breaker is
///   never evicted, so it keeps protecting its key.
/// - **Open-share cap.** With `max_open_ratio`, a key's breaker does not trip while that
///   share of the keys is already open (at least one key may always open), as Envoy's
///   outlier detection caps ejections: a shared outage should not open every key at once.
///
/// Each breaker is named `{name}/{key}` in rejections, metrics and events. Each service
/// clone caches its per-key cells, so a call costs the key function, a hash lookup in the
/// clone's own map and the breaker's usual path. A fresh clone resolves each key once
/// through the shared key map (a short lock and a small allocation), so keep clones for
/// a connection or a task rather than making one per call.
///
/// ```
/// use std::time::Duration;
/// use palisade_circuit_breaker::CircuitBreakerLayer;
///
/// // One breaker per backend host, from a (host, payload) request.
/// let layer = CircuitBreakerLayer::builder("inventory")
///     .keyed(|req: &(String, Vec<u8>)| req.0.clone())
///     .max_keys(64)
///     .idle_timeout(Duration::from_secs(600))
///     .max_open_ratio(0.5)
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), palisade_circuit_breaker::error::ConfigError>(())
/// ```
///
/// Cloning the layer (and the services it makes) shares the breakers.
pub struct KeyedCircuitBreakerLayer<K, KF, C, F> {
    shared: StdArc<Shared<K>>,
    key_fn: KF,
    classifier: C,
    fallback: F,
}

impl<K, KF, C, F> KeyedCircuitBreakerLayer<K, KF, C, F>
where
    K: Hash + Eq + Clone + fmt::Display,
{
    /// A handle on `key`'s breaker, if it exists.
    pub fn handle(&self, key: &K) -> Option<CircuitBreakerHandle> {
        let map = self
            .shared
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entries.get(key).map(|e| CircuitBreakerHandle {
            core: e.core.clone(),
        })
    }

    /// A handle on the overflow breaker shared by keys beyond `max_keys`.
    pub fn overflow_handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            core: self.shared.overflow.clone(),
        }
    }

    /// The keys that have their own breaker now.
    pub fn keys(&self) -> Vec<K> {
        let map = self
            .shared
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entries.keys().cloned().collect()
    }
}

impl<S, K, KF: Clone, C: Clone, F: Clone> Layer<S> for KeyedCircuitBreakerLayer<K, KF, C, F> {
    type Service = KeyedCircuitBreaker<S, K, KF, C, F>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedCircuitBreaker {
            inner,
            shared: self.shared.clone(),
            key_fn: self.key_fn.clone(),
            classifier: self.classifier.clone(),
            fallback: self.fallback.clone(),
            cells: HashMap::new(),
            overflow: None,
        }
    }
}

impl<K, KF: Clone, C: Clone, F: Clone> Clone for KeyedCircuitBreakerLayer<K, KF, C, F> {
    fn clone(&self) -> Self {
        KeyedCircuitBreakerLayer {
            shared: self.shared.clone(),
            key_fn: self.key_fn.clone(),
            classifier: self.classifier.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

impl<K, KF, C: fmt::Debug, F: fmt::Debug> fmt::Debug for KeyedCircuitBreakerLayer<K, KF, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreakerLayer")
            .field("breakers", &self.shared)
            .field("classifier", &self.classifier)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

/// A service behind one circuit breaker per key; made by [`KeyedCircuitBreakerLayer`].
///
/// Like [`CircuitBreaker`](crate::CircuitBreaker): `poll_ready` is the inner service's,
/// rejections are [`CircuitOpen`](crate::error::CircuitOpen) errors (or the fallback's
/// answers). Each clone keeps its own cache of per-key cells.
pub struct KeyedCircuitBreaker<S, K, KF, C, F> {
    inner: S,
    shared: StdArc<Shared<K>>,
    key_fn: KF,
    classifier: C,
    fallback: F,
    cells: HashMap<K, Arc<Cell>>,
    overflow: Option<Arc<Cell>>,
}

/// The clone's cell for `key`: cached, or made (after dropping retired cells and, if the
/// cache is full, all of them).
fn cell_for<'a, K>(
    cells: &'a mut HashMap<K, Arc<Cell>>,
    overflow: &'a mut Option<Arc<Cell>>,
    shared: &Shared<K>,
    key: K,
) -> &'a Arc<Cell>
where
    K: Hash + Eq + Clone + fmt::Display,
{
    use std::collections::hash_map::Entry as MapEntry;
    if cells.len() >= shared.max_keys && !cells.contains_key(&key) {
        cells.retain(|_, c| !c.core.retired.load(Ordering::Acquire));
        if cells.len() >= shared.max_keys {
            cells.clear();
        }
    }
    match cells.entry(key) {
        MapEntry::Occupied(e) if !e.get().core.retired.load(Ordering::Acquire) => e.into_mut(),
        MapEntry::Occupied(mut e) => {
            // Evicted from the key map since: join the key's current breaker.
            match shared.get(e.key()) {
                Some(core) => {
                    e.insert(Cell::new(core));
                    e.into_mut()
                }
                None => {
                    e.remove();
                    overflow.get_or_insert_with(|| Cell::new(shared.overflow.clone()))
                }
            }
        }
        MapEntry::Vacant(e) => match shared.get(e.key()) {
            Some(core) => e.insert(Cell::new(core)),
            // No room: share the overflow breaker, and ask again on the next call (the key
            // is not cached, so it gets its own breaker once an idle key is evicted).
            None => overflow.get_or_insert_with(|| Cell::new(shared.overflow.clone())),
        },
    }
}

impl<S, K, KF, C, F, Req> Service<Req> for KeyedCircuitBreaker<S, K, KF, C, F>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: Hash + Eq + Clone + fmt::Display,
    KF: Fn(&Req) -> K,
    C: Classify<Req, S::Response, S::Error>,
    F: Fallback<Req, S::Response>,
{
    type Response = <C::Classifier as ClassifyResponse<S::Response, S::Error>>::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C::Classifier, F::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let key = (self.key_fn)(&req);
        let cell = cell_for(&mut self.cells, &mut self.overflow, &self.shared, key);
        match Cell::acquire(cell) {
            Ok(permit) => {
                let classifier = self.classifier.classify_request(&req);
                ResponseFuture::called(self.inner.call(req), classifier, permit)
            }
            Err(open) => ResponseFuture::fallback(self.fallback.call(req, open)),
        }
    }
}

impl<S: Clone, K, KF: Clone, C: Clone, F: Clone> Clone for KeyedCircuitBreaker<S, K, KF, C, F> {
    fn clone(&self) -> Self {
        KeyedCircuitBreaker {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            key_fn: self.key_fn.clone(),
            classifier: self.classifier.clone(),
            fallback: self.fallback.clone(),
            cells: HashMap::new(),
            overflow: None,
        }
    }
}

impl<S: fmt::Debug, K, KF, C: fmt::Debug, F: fmt::Debug> fmt::Debug
    for KeyedCircuitBreaker<S, K, KF, C, F>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreaker")
            .field("inner", &self.inner)
            .field("breakers", &self.shared)
            .field("classifier", &self.classifier)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}
