//! The order service of the Palisade examples.
//!
//! An axum HTTP API with its own SQLite database, calling the inventory service over gRPC
//! through `Retry -> CircuitBreaker -> ClientTrace -> Timeout -> Channel`:
//!
//! - `POST /orders` with `{"items":[{"sku":"KB-0001","quantity":2}]}` and an optional
//!   `Idempotency-Key`: `201` with the order (a repeat: the same order and
//!   `Idempotent-Replayed: true`); `409` out of stock or the key's first request still
//!   running; `422` unknown SKU, invalid order, or the key reused for another request;
//!   `503` + `Retry-After` when the inventory service cannot be reached (at once while
//!   the breaker is open); errors are `application/problem+json`.
//! - `GET /orders/{id}`; `/metrics`; `/health/live`, `/health/ready`, `/health/startup`.
//!
//! A failure after stock was reserved releases it (compensation), so nothing is
//! half-made; see `examples/README.md` for the rules and the whole system.
//!
//! ```no_run
//! # async fn demo() -> Result<(), order_service::Error> {
//! use order_service::{Config, OrderService};
//!
//! let config = Config::local("orders.db", "http://127.0.0.1:50051");
//! let service = OrderService::bind(config).await?;
//! println!("listening on {}", service.local_addr());
//! service.serve(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod api;
pub mod audit;
mod client;
mod config;
mod error;
mod model;
mod orders;
mod outcomes;
mod retry;
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use palisade_health::checks::BreakerCheck;
use palisade_health::{Details, HealthCheck, HealthRegistry, check_fn};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use client::{BreakerLog, BreakerTransition};
pub use config::{Config, ConfigError};
pub use error::Error;
pub use palisade_circuit_breaker::{CircuitBreakerHandle, State as BreakerState};
pub use retry::RetryStats;

use crate::client::InventoryClient;
use crate::orders::Orders;
use crate::store::Store;

/// How long shutdown waits for order tasks still running.
const TASK_GRACE: Duration = Duration::from_secs(10);

/// The order service, bound to its port and ready to serve.
#[derive(Debug)]
pub struct OrderService {
    listener: TcpListener,
    orders: Orders,
    health: HealthRegistry,
    config: Config,
}

impl OrderService {
    /// Checks the configuration, opens and migrates the database, builds the inventory
    /// client and binds the port. The inventory service need not be up yet.
    ///
    /// # Errors
    ///
    /// Invalid configuration, a database that cannot be opened, created or migrated, or a
    /// port that cannot be bound.
    pub async fn bind(config: Config) -> Result<Self, Error> {
        let inventory = InventoryClient::new(&config)?;
        let store = Store::open(&config.db_path)
            .await
            .map_err(|source| Error::Database {
                path: config.db_path.clone(),
                source,
            })?;
        let health = health(&config, &store, &inventory)?;
        let listener = TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| Error::Bind {
                addr: config.http_addr,
                source,
            })?;
        Ok(Self {
            listener,
            orders: Orders {
                store,
                inventory,
                tasks: TaskTracker::new(),
                outcomes: outcomes::Outcomes::register(),
            },
            health,
            config,
        })
    }

    /// The bound HTTP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The inventory circuit breaker's handle: state, statistics, manual control.
    pub fn breaker(&self) -> CircuitBreakerHandle {
        self.orders.inventory.breaker().clone()
    }

    /// The inventory circuit breaker's transitions, as they happen.
    pub fn breaker_log(&self) -> BreakerLog {
        self.orders.inventory.transitions().clone()
    }

    /// The inventory client's retry counters.
    pub fn retry_stats(&self) -> RetryStats {
        self.orders.inventory.retry_stats().clone()
    }

    /// The health registry: readiness, and drain.
    pub fn health(&self) -> HealthRegistry {
        self.health.clone()
    }

    /// Serves until `shutdown` resolves, then drains: readiness fails at once, requests
    /// are still served for the drain delay, then the server stops accepting, in-flight
    /// requests and order tasks finish, and the shutdown hooks run.
    ///
    /// # Errors
    ///
    /// The server failed.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let token = CancellationToken::new();
        let health = self.health.clone();
        let watcher = tokio::spawn(async move {
            shutdown.await;
            health.drain();
        });
        let reconciler = tokio::spawn(self.orders.clone().reconcile_forever(
            self.config.reconcile_interval,
            self.config.pending_grace,
            token.clone(),
        ));
        // Server stack, outermost first: Health (answers the probe paths) -> the API.
        let mut app = api::router(
            self.orders.clone(),
            self.config.metrics.clone(),
            self.config.middleware,
        );
        if self.config.middleware {
            app = app.layer(self.health.layer());
        }
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(self.health.drained())
            .await
            .map_err(Error::Serve);
        token.cancel();
        watcher.abort();
        self.orders.tasks.close();
        if tokio::time::timeout(TASK_GRACE, self.orders.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "order tasks still running at shutdown; the reconciler will compensate them on restart"
            );
        }
        let _ = reconciler.await;
        self.health.run_shutdown_hooks().await;
        self.orders.store.pool().close().await;
        served
    }
}

/// The health registry: the database and the inventory breaker as readiness checks.
///
/// An open breaker reports `warn`, which keeps readiness at 200: the service still does
/// useful work (it answers `GET /orders/{id}`, and fast `503` + `Retry-After` for new
/// orders), and taking every replica out of rotation because one dependency is down would
/// turn fast, explicit errors into connection failures.
fn health(
    config: &Config,
    store: &Store,
    inventory: &InventoryClient,
) -> Result<HealthRegistry, Error> {
    let details = config
        .health_token
        .as_ref()
        .map_or_else(Details::hidden, |t| Details::token(t.clone()));
    let health = HealthRegistry::builder()
        .service_id("order-service")
        .release_id(env!("CARGO_PKG_VERSION"))
        .details(details)
        .drain_delay(config.drain_delay)
        .build()
        .map_err(Error::Health)?;
    let pool = store.pool().clone();
    health
        .register(
            HealthCheck::readiness(
                "sqlite",
                check_fn(move || {
                    let pool = pool.clone();
                    async move { sqlx::query("SELECT 1").execute(&pool).await.map(|_| ()) }
                }),
            )
            .interval(Duration::from_secs(2))
            .timeout(Duration::from_secs(1)),
        )
        .map_err(Error::Health)?;
    health
        .register(BreakerCheck::new(inventory.breaker().clone()).into_check())
        .map_err(Error::Health)?;
    Ok(health)
}

/// Binds and serves until `shutdown` resolves: [`OrderService::bind`] then
/// [`OrderService::serve`].
///
/// # Errors
///
/// As [`OrderService::bind`] and [`OrderService::serve`].
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    OrderService::bind(config).await?.serve(shutdown).await
}
