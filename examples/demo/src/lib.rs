//! The invariants the demo (and the end-to-end tests) check at the end of a run: nothing
//! lost, nothing duplicated, nothing half-made.
//!
//! The demo itself is the `demo` binary: `cargo run -p demo --release`.

use std::collections::{BTreeMap, BTreeSet};

use inventory_service::audit::InventorySnapshot;
use order_service::audit::OrdersSnapshot;

/// Checks orders against reservations against stock.
///
/// - no order is left half-made (`pending` or `aborting`);
/// - every confirmed order has exactly one active reservation, with the same id and
///   items, and every active reservation belongs to a confirmed order;
/// - for every SKU, the reserved units equal the sum of the active reservations and never
///   exceed the units on hand;
/// - the units on hand are those at the start (`on_hand_at_start`, SKU to units):
///   reserving moves units, it never creates or destroys them;
/// - if `accepted` is given (the ids the API answered `201 Created` for), it is exactly
///   the set of confirmed orders.
///
/// Returns one line per violation; empty when everything balances.
pub fn violations(
    orders: &OrdersSnapshot,
    inventory: &InventorySnapshot,
    on_hand_at_start: &BTreeMap<String, u32>,
    accepted: Option<&BTreeSet<String>>,
) -> Vec<String> {
    let mut out = Vec::new();
    if orders.unfinished > 0 {
        out.push(format!(
            "{} orders are still pending or aborting",
            orders.unfinished
        ));
    }
    let reservations: BTreeMap<&str, _> = inventory
        .active
        .iter()
        .map(|r| (r.order_id.as_str(), r))
        .collect();
    for order in &orders.confirmed {
        match reservations.get(order.id.as_str()) {
            None => out.push(format!("order {} has no active reservation", order.id)),
            Some(r) if r.reservation_id != order.reservation_id => out.push(format!(
                "order {} points at reservation {} but holds {}",
                order.id, order.reservation_id, r.reservation_id
            )),
            Some(r) if r.items != order.items => out.push(format!(
                "order {} has items {:?} but its reservation holds {:?}",
                order.id, order.items, r.items
            )),
            Some(_) => {}
        }
    }
    let confirmed: BTreeSet<&str> = orders.confirmed.iter().map(|o| o.id.as_str()).collect();
    for r in &inventory.active {
        if !confirmed.contains(r.order_id.as_str()) {
            out.push(format!(
                "reservation {} holds stock for order {}, which was not accepted",
                r.reservation_id, r.order_id
            ));
        }
    }
    out.extend(inventory.violations());
    for level in &inventory.stock {
        match on_hand_at_start.get(&level.sku) {
            Some(start) if *start != level.on_hand => out.push(format!(
                "{}: {} on hand at the end, {start} at the start",
                level.sku, level.on_hand
            )),
            None => out.push(format!("{}: not in the starting stock", level.sku)),
            Some(_) => {}
        }
    }
    if let Some(accepted) = accepted {
        let accepted: BTreeSet<&str> = accepted.iter().map(String::as_str).collect();
        for id in accepted.difference(&confirmed) {
            out.push(format!("order {id} was answered 201 but is not stored"));
        }
        for id in confirmed.difference(&accepted) {
            out.push(format!("order {id} is stored but was never answered 201"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use inventory_service::audit::{ActiveReservation, StockLevel};
    use order_service::audit::ConfirmedOrder;

    fn items(q: u32) -> BTreeMap<String, u32> {
        BTreeMap::from([("KB-0001".to_owned(), q)])
    }

    fn world(reserved: u32) -> (OrdersSnapshot, InventorySnapshot, BTreeMap<String, u32>) {
        let orders = OrdersSnapshot {
            confirmed: vec![ConfirmedOrder {
                id: "o1".into(),
                reservation_id: "r1".into(),
                items: items(2),
            }],
            unfinished: 0,
        };
        let inventory = InventorySnapshot {
            stock: vec![StockLevel {
                sku: "KB-0001".into(),
                name: "Keyboard".into(),
                on_hand: 10,
                reserved,
                available: 10 - reserved,
            }],
            active: vec![ActiveReservation {
                order_id: "o1".into(),
                reservation_id: "r1".into(),
                items: items(2),
            }],
            released: 0,
        };
        (
            orders,
            inventory,
            BTreeMap::from([("KB-0001".to_owned(), 10)]),
        )
    }

    #[test]
    fn a_balanced_world_passes() {
        let (o, i, start) = world(2);
        let accepted = BTreeSet::from(["o1".to_owned()]);
        assert!(violations(&o, &i, &start, Some(&accepted)).is_empty());
    }

    #[test]
    fn each_kind_of_imbalance_is_reported() {
        let (o, i, start) = world(3);
        assert_eq!(
            violations(&o, &i, &start, None).len(),
            1,
            "reserved column off"
        );

        let (mut o, i, start) = world(2);
        o.unfinished = 1;
        assert_eq!(violations(&o, &i, &start, None).len(), 1);

        let (o, mut i, start) = world(2);
        i.active[0].items = items(1);
        assert!(!violations(&o, &i, &start, None).is_empty());

        let (mut o, i, start) = world(2);
        o.confirmed.clear();
        assert!(
            violations(&o, &i, &start, None)
                .iter()
                .any(|v| v.contains("not accepted"))
        );

        let (o, i, start) = world(2);
        let accepted = BTreeSet::from(["o1".to_owned(), "o2".to_owned()]);
        assert_eq!(violations(&o, &i, &start, Some(&accepted)).len(), 1);

        let (o, mut i, start) = world(2);
        i.stock[0].on_hand = 11;
        assert!(!violations(&o, &i, &start, None).is_empty());
    }
}
