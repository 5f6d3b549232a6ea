//! Transient inventory failures are retried within the budget, and retried reservations
//! never reserve twice.

mod support;

use inventory_service::FaultSettings;
use palisade_testkit::TempDir;
use support::{Inventory, Orders};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_without_double_reservations() {
    let dir = TempDir::new("orders-retry");
    let inv = Inventory::start(&dir, 0).await;
    // Ten attempts: with one call in ten failing at random, an order fails only if ten
    // attempts in a row do (0.1^10).
    let orders = Orders::start(&dir, inv.grpc, |c| c.max_attempts = 10).await;
    // One call in ten fails: well within the budget, and below the breaker's threshold (50 %
    // of at least 10 calls): it opens only if 5 of the first 10 calls fail, about 0.2 % of
    // runs. (At one in five that was about 4 %, and CI met it: the breaker sees every
    // attempt, and this test is about retries, not the breaker.) A run of 40 orders without a
    // fault is likely enough, though, that orders go on (200 at most) until one was injected.
    inv.faults
        .set(FaultSettings {
            error_rate: 0.1,
            latency_ms: 0,
        })
        .unwrap();
    let mut placed: u32 = 0;
    while placed < 40 || (inv.faults.injected() == 0 && placed < 200) {
        let r = orders
            .post(
                Some(&format!("retry-{placed}")),
                r#"{"items":[{"sku":"CB-0005","quantity":2}]}"#,
            )
            .await;
        assert_eq!(r.status, 201, "order {placed}: {r:?}");
        placed += 1;
    }
    assert!(inv.faults.injected() > 0);
    assert!(
        orders.retry_stats.retries() > 0,
        "failed attempts were retried"
    );
    let s = inv.snapshot().await;
    assert_eq!(s.active.len(), placed as usize);
    let cables = s.stock.iter().find(|l| l.sku == "CB-0005").unwrap();
    assert_eq!(
        cables.reserved,
        2 * placed,
        "each order reserved exactly once"
    );
    assert!(s.violations().is_empty());
    orders.stop().await;
    inv.stop().await;
}
