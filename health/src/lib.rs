//! Liveness, readiness and startup health endpoints with background checks and graceful drain, for axum, tonic and hyper.
