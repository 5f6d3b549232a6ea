//! `grpc.health.v1` served from the registry (feature `grpc`).
//!
//! [`HealthRegistry::grpc_service`] returns a tonic service implementing the whole
//! protocol, including `List`, which tonic-health 0.14 lacks:
//!
//! - `""` is the whole server, and is `SERVING` exactly when `/health/ready` answers
//!   200 (both read the same snapshot, so they never disagree);
//! - a service added with [`HealthRegistry::add_grpc_service`] is `SERVING` when the
//!   checks it depends on are healthy (a non-critical failure still serves), or, with
//!   no dependencies listed, when readiness is; before startup has completed, while
//!   liveness fails and while draining, every service is `NOT_SERVING`;
//! - `Check` on an unknown service fails with `NOT_FOUND`;
//! - `Watch` sends the current status at once and then every change; on an unknown
//!   service it sends `SERVICE_UNKNOWN` and keeps the stream open, and sends the real
//!   status once the service is added. When the drain delay is over, `Watch` streams
//!   end (after `NOT_SERVING`), so that open streams do not hold the server's graceful
//!   shutdown; clients reconnect elsewhere;
//! - `List` returns every service, `""` included (at most 100, else
//!   `RESOURCE_EXHAUSTED`).
//!
//! The protobuf code is generated from the upstream `grpc/health/v1/health.proto`
//! (vendored under `proto/`) and committed, so building needs no protobuf compiler; a
//! test regenerates it and fails on any difference.
//!
//! Mount only this service on `/grpc.health.v1.Health`, not tonic-health's as well.

use std::pin::Pin;
use std::sync::{Arc, Weak};

use futures_util::Stream;
use tonic::{Request, Response, Status};

use crate::registry::{Inner, lock};
use crate::{ConfigError, HealthRegistry};

/// The `grpc.health.v1` protobuf messages, client and server, generated from the
/// upstream proto (with `List`).
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic,
    rustdoc::bare_urls,
    rustdoc::invalid_html_tags
)]
pub mod pb {
    include!("generated/grpc.health.v1.rs");
}

use pb::health_check_response::ServingStatus;
use pb::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};

/// The most services `List` returns before failing with `RESOURCE_EXHAUSTED`.
pub const LIST_LIMIT: usize = 100;

/// The `grpc.health.v1.Health` implementation; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct GrpcHealth {
    registry: HealthRegistry,
}

impl GrpcHealth {
    /// The implementation answering from `registry`, for wrapping in
    /// [`HealthServer`](pb::health_server::HealthServer) yourself (to set compression or
    /// message size limits); [`HealthRegistry::grpc_service`] does that with the
    /// defaults.
    pub fn new(registry: HealthRegistry) -> Self {
        Self { registry }
    }
}

struct WatchState {
    weak: Weak<Inner>,
    rx: tokio::sync::watch::Receiver<u64>,
    drained: tokio::sync::watch::Receiver<bool>,
    service: String,
    last: Option<ServingStatus>,
    done: bool,
}

/// The stream type of `Watch`.
pub type WatchStream =
    Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>>;

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

/// The service's status now, or `None` if it is unknown.
fn serving(inner: &Inner, service: &str) -> Option<ServingStatus> {
    inner.current().services.get(service).map(|&serving| {
        if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    })
}

#[tonic::async_trait]
impl pb::health_server::Health for GrpcHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = &request.get_ref().service;
        match serving(&self.registry.inner, service) {
            Some(s) => Ok(Response::new(response(s))),
            None => Err(Status::not_found(format!("unknown service {service:?}"))),
        }
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        let snap = self.registry.inner.current();
        if snap.services.len() > LIST_LIMIT {
            return Err(Status::resource_exhausted(format!(
                "{} services exceed the List limit of {LIST_LIMIT}",
                snap.services.len()
            )));
        }
        let statuses = snap
            .services
            .iter()
            .map(|(name, &serving)| {
                let s = if serving {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                (name.clone(), response(s))
            })
            .collect();
        Ok(Response::new(HealthListResponse { statuses }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let service = request.into_inner().service;
        // Subscribe before reading the first status, so no change is missed.
        let rx = self.registry.inner.changes.subscribe();
        let drained = self.registry.inner.drained.subscribe();
        let weak: Weak<Inner> = Arc::downgrade(&self.registry.inner);
        let stream = futures_util::stream::unfold(
            WatchState {
                weak,
                rx,
                drained,
                service,
                last: None,
                done: false,
            },
            |mut st| async move {
                if st.done {
                    return None;
                }
                loop {
                    let inner = st.weak.upgrade()?;
                    let now = serving(&inner, &st.service).unwrap_or(ServingStatus::ServiceUnknown);
                    drop(inner);
                    // Once the drain delay is over, end the stream (after sending the
                    // final status): an open Watch would otherwise keep the server's
                    // graceful shutdown waiting for the client.
                    let finished = *st.drained.borrow_and_update();
                    if st.last != Some(now) {
                        st.last = Some(now);
                        st.done = finished;
                        return Some((Ok(response(now)), st));
                    }
                    if finished {
                        return None;
                    }
                    // Either channel closing means the registry is gone: end the stream.
                    tokio::select! {
                        r = st.rx.changed() => r.ok()?,
                        r = st.drained.changed() => r.ok()?,
                    }
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

impl HealthRegistry {
    /// The `grpc.health.v1.Health` service for tonic, answering from this registry.
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
    pub fn grpc_service(&self) -> pb::health_server::HealthServer<GrpcHealth> {
        pb::health_server::HealthServer::new(GrpcHealth {
            registry: self.clone(),
        })
    }

    /// Adds (or redefines) a gRPC service name, such as `inventory.v1.Inventory`, whose
    /// status follows the named checks; with no checks, it follows readiness. `Watch`
    /// calls waiting on the name hear of it at once.
    ///
    /// # Errors
    ///
    /// `service` when it is empty (`""` is the whole server and always present) or
    /// longer than 256 bytes; `checks` when a name is not a registered check.
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
    pub fn add_grpc_service<I, N>(
        &self,
        service: impl Into<String>,
        checks: I,
    ) -> Result<(), ConfigError>
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        let service = service.into();
        if service.is_empty() || service.len() > 256 {
            return Err(ConfigError::new(
                "service",
                "must be 1 to 256 bytes; \"\" is the whole server and always present",
            ));
        }
        let checks: Vec<String> = checks.into_iter().map(Into::into).collect();
        {
            let mut state = lock(&self.inner.state);
            if let Some(missing) = checks
                .iter()
                .find(|c| !state.checks.iter().any(|e| &e.reg.name == *c))
            {
                return Err(ConfigError::new(
                    "checks",
                    format!("no check named {missing:?} is registered"),
                ));
            }
            state.services.insert(service, checks);
        }
        self.inner.rebuild();
        Ok(())
    }
}
