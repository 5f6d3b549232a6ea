//! The inventory service of the Palisade examples.
//!
//! A tonic server for `inventory.v1.InventoryService` (see the `inventory-api` crate) with
//! stock in an embedded SQLite database, plus an HTTP admin port. See `examples/README.md`
//! for how it fits with the order service.
//!
//! ```no_run
//! # async fn demo() -> Result<(), inventory_service::Error> {
//! use inventory_service::{Config, InventoryService};
//!
//! let service = InventoryService::bind(Config::local("inventory.db")).await?;
//! println!("gRPC on {}, admin on {}", service.grpc_addr(), service.admin_addr());
//! service.serve(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod admin;
pub mod audit;
mod config;
mod error;
mod faults;
mod grpc;
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use std::time::Duration;

use inventory_api::v1::inventory_service_server::{InventoryServiceServer, SERVICE_NAME};
use palisade_health::{Details, HealthCheck, HealthRegistry, check_fn};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

pub use config::{Config, ConfigError};
pub use error::Error;
pub use faults::{FaultControl, FaultSettings, MAX_LATENCY_MS};

use crate::store::Store;

/// The inventory service, bound to its ports and ready to serve.
#[derive(Debug)]
pub struct InventoryService {
    grpc: TcpListener,
    admin: TcpListener,
    store: Store,
    faults: FaultControl,
    health: HealthRegistry,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    middleware: bool,
}

impl InventoryService {
    /// Opens and migrates the database, then binds both ports.
    ///
    /// # Errors
    ///
    /// The database cannot be opened, created or migrated, or a port cannot be bound.
    pub async fn bind(config: Config) -> Result<Self, Error> {
        let faults = FaultControl::new(config.faults).map_err(Error::Faults)?;
        let store = Store::open(&config.db_path)
            .await
            .map_err(|source| Error::Database {
                path: config.db_path.clone(),
                source,
            })?;
        let health = health(&config, &store)?;
        let grpc = bind("gRPC", config.grpc_addr, config.reuse_port)?;
        let admin = bind("admin", config.admin_addr, config.reuse_port)?;
        Ok(Self {
            grpc,
            admin,
            store,
            faults,
            health,
            metrics: config.metrics,
            middleware: config.middleware,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The bound HTTP admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The live fault controls (the same the admin port changes).
    pub fn faults(&self) -> FaultControl {
        self.faults.clone()
    }

    /// The health registry: readiness over HTTP and `grpc.health.v1`, and drain.
    pub fn health(&self) -> HealthRegistry {
        self.health.clone()
    }

    /// Serves until `shutdown` resolves, then drains: readiness (HTTP and gRPC) fails at
    /// once, requests are still served for the drain delay, then both servers stop
    /// accepting, finish in-flight requests, and the shutdown hooks run.
    ///
    /// # Errors
    ///
    /// A server failed.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let health = self.health.clone();
        let watcher = tokio::spawn(async move {
            shutdown.await;
            health.drain();
        });
        let inventory = grpc::Inventory {
            store: self.store.clone(),
            faults: self.faults.clone(),
        };
        let incoming = TcpListenerStream::new(self.grpc);
        let admin_router = admin::router(
            admin::AdminState {
                faults: self.faults.clone(),
                store: self.store.clone(),
            },
            self.metrics.clone(),
        );
        type Serving = Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;
        let (grpc, admin): (Serving, _) = if self.middleware {
            // Server stack, outermost first: Health (HTTP probe paths; gRPC health is the
            // `grpc.health.v1` service below) -> ServerTrace (a SERVER span per RPC,
            // continuing the caller's trace, and RED metrics) -> the inventory service.
            let grpc = tonic::transport::Server::builder()
                .layer(self.health.layer())
                .layer(example_telemetry::ServerTraceLayer::grpc())
                .add_service(self.health.grpc_service())
                .add_service(InventoryServiceServer::new(inventory))
                .serve_with_incoming_shutdown(incoming, self.health.drained());
            (Box::pin(grpc), admin_router.layer(self.health.layer()))
        } else {
            // The benchmark baseline (`INVENTORY_MIDDLEWARE=off`): no Palisade layer.
            let grpc = tonic::transport::Server::builder()
                .add_service(InventoryServiceServer::new(inventory))
                .serve_with_incoming_shutdown(incoming, self.health.drained());
            (Box::pin(grpc), admin_router)
        };
        let admin = axum::serve(self.admin, admin).with_graceful_shutdown(self.health.drained());
        let result = tokio::try_join!(
            async { grpc.await.map_err(|e| Error::Serve("gRPC", e.into())) },
            async { admin.await.map_err(|e| Error::Serve("admin", e.into())) },
        );
        watcher.abort();
        self.health.run_shutdown_hooks().await;
        self.store.pool().close().await;
        result.map(|_| ())
    }
}

/// Binds and serves until `shutdown` resolves: [`InventoryService::bind`] then
/// [`InventoryService::serve`].
///
/// # Errors
///
/// As [`InventoryService::bind`] and [`InventoryService::serve`].
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    InventoryService::bind(config).await?.serve(shutdown).await
}

/// The health registry: the database as a readiness check, which `grpc.health.v1` also
/// reports for the inventory service's name.
fn health(config: &Config, store: &Store) -> Result<HealthRegistry, Error> {
    let health = HealthRegistry::builder()
        .service_id("inventory-service")
        .release_id(env!("CARGO_PKG_VERSION"))
        // The admin port is internal: show which check fails.
        .details(Details::always())
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
        .add_grpc_service(SERVICE_NAME, ["sqlite"])
        .map_err(Error::Health)?;
    Ok(health)
}

/// Binds a listener; with `reuse_port`, with `SO_REUSEPORT` (Unix) so that a new instance
/// can bind the same address while this one drains (the kernel spreads new connections
/// over both until the old listener closes).
fn bind(what: &'static str, addr: SocketAddr, reuse_port: bool) -> Result<TcpListener, Error> {
    // Ignored where the platform has no `SO_REUSEPORT`.
    let _ = reuse_port;
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // What `TcpListener::bind` does on Unix: rebinding a port with connections in
        // TIME_WAIT (a restart) must work.
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        #[cfg(all(
            unix,
            not(target_os = "solaris"),
            not(target_os = "illumos"),
            not(target_os = "cygwin"),
            not(target_os = "nuttx")
        ))]
        if reuse_port {
            socket.set_reuseport(true)?;
        }
        socket.bind(addr)?;
        socket.listen(1024)
    };
    listen().map_err(|source| Error::Bind { what, addr, source })
}
