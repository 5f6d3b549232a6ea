//! Retries with backoff, jitter, retry budgets and safe body replay for tower services.

mod attempt;

pub use attempt::Attempt;
