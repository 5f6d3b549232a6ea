//! Retries with backoff, jitter, retry budgets and safe body replay for tower services (HTTP and gRPC).
