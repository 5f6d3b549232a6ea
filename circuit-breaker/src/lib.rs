//! A fast, lock-free circuit breaker for tower services, with HTTP and gRPC awareness.
