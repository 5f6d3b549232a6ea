//! The HTTP API's request and response bodies, and request validation.

use std::collections::BTreeMap;

use inventory_api::limits::{MAX_ITEMS, check_quantity, check_sku};
use serde::{Deserialize, Serialize};

/// `POST /orders` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOrder {
    pub(crate) items: Vec<Line>,
}

/// One order line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Line {
    pub(crate) sku: String,
    pub(crate) quantity: u32,
}

/// A confirmed order, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Order {
    pub(crate) id: String,
    pub(crate) status: &'static str,
    pub(crate) items: Vec<Line>,
    pub(crate) reservation_id: String,
    pub(crate) created_at: String,
}

/// Validates the lines and returns them in canonical form: one line per SKU (repeated SKUs
/// are added up), sorted by SKU.
pub(crate) fn normalize(lines: Vec<Line>) -> Result<Vec<Line>, String> {
    if lines.is_empty() {
        return Err("items must not be empty".to_owned());
    }
    let mut merged: BTreeMap<String, u32> = BTreeMap::new();
    for line in lines {
        check_sku(&line.sku)?;
        check_quantity(&line.sku, line.quantity)?;
        let q = merged.entry(line.sku).or_default();
        *q = q.saturating_add(line.quantity);
    }
    if merged.len() > MAX_ITEMS {
        return Err(format!(
            "an order may hold at most {MAX_ITEMS} distinct skus, got {}",
            merged.len()
        ));
    }
    merged
        .into_iter()
        .map(|(sku, quantity)| {
            check_quantity(&sku, quantity)?;
            Ok(Line { sku, quantity })
        })
        .collect()
}

/// The canonical text of a request, compared when an `Idempotency-Key` is repeated.
pub(crate) fn canonical(lines: &[Line]) -> String {
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&l.sku);
        out.push('*');
        out.push_str(&l.quantity.to_string());
    }
    out
}

/// Checks an `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub(crate) fn check_key(key: &[u8]) -> Result<&str, String> {
    if key.is_empty() || key.len() > 255 || !key.iter().all(|b| b.is_ascii_graphic()) {
        return Err("Idempotency-Key must be 1 to 255 visible ASCII characters".to_owned());
    }
    // All bytes are ASCII, so this cannot fail.
    std::str::from_utf8(key).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(sku: &str, quantity: u32) -> Line {
        Line {
            sku: sku.to_owned(),
            quantity,
        }
    }

    #[test]
    fn normalizes_merges_and_sorts() {
        let n = normalize(vec![l("MS-0002", 1), l("KB-0001", 2), l("MS-0002", 3)]).unwrap();
        assert_eq!(n, vec![l("KB-0001", 2), l("MS-0002", 4)]);
        assert_eq!(canonical(&n), "KB-0001*2,MS-0002*4");
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(normalize(vec![]).is_err());
        assert!(normalize(vec![l("KB-0001", 0)]).is_err());
        assert!(normalize(vec![l("kb", 1)]).is_err());
        // Merged quantities are bounded too.
        assert!(normalize(vec![l("KB-0001", 1000), l("KB-0001", 1)]).is_err());
        let many: Vec<Line> = (0..51).map(|i| l(&format!("SKU-{i}"), 1)).collect();
        assert!(normalize(many).is_err());
    }

    #[test]
    fn keys() {
        assert_eq!(check_key(b"abc-123").unwrap(), "abc-123");
        assert!(check_key(b"").is_err());
        assert!(check_key(b"has space").is_err());
        assert!(check_key("é".as_bytes()).is_err());
        assert!(check_key(&[b'a'; 256]).is_err());
    }
}
