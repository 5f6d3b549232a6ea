//! End-to-end tests of the Palisade examples live in `tests/`: they start the real
//! `inventory-service` and `order-service` binaries on loopback, with the real OTLP
//! receiver and Prometheus server from `palisade-testkit`, and validate the compose,
//! Dockerfile and Prometheus configuration with the real validators.
//!
//! Build the binaries first (`cargo test --workspace` does); the tests say so if they are
//! missing.
