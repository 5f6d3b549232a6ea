//! `orders_placed_total{outcome}`: what `POST /orders` answered, one counter per outcome,
//! registered once when the service is built.

use metrics::Counter;

/// The outcome counters.
#[derive(Debug, Clone)]
pub(crate) struct Outcomes {
    pub(crate) created: Counter,
    pub(crate) replayed: Counter,
    pub(crate) refused: Counter,
    pub(crate) circuit_open: Counter,
    pub(crate) unavailable: Counter,
    pub(crate) invalid: Counter,
    pub(crate) conflict: Counter,
    pub(crate) error: Counter,
}

const NAME: &str = "orders_placed_total";

impl Outcomes {
    pub(crate) fn register() -> Self {
        metrics::describe_counter!(
            NAME,
            "POST /orders answers by outcome: created, replayed (Idempotency-Key repeat), \
             refused (out of stock, unknown SKU), circuit_open (fast 503), unavailable \
             (inventory failed after retries), invalid, conflict (key in use), error"
        );
        let c = |outcome: &'static str| metrics::counter!(NAME, "outcome" => outcome);
        Self {
            created: c("created"),
            replayed: c("replayed"),
            refused: c("refused"),
            circuit_open: c("circuit_open"),
            unavailable: c("unavailable"),
            invalid: c("invalid"),
            conflict: c("conflict"),
            error: c("error"),
        }
    }
}
