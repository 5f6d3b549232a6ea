//! Request limits both services enforce, so a request the order service accepts is never
//! refused by the inventory service as malformed.

/// Most distinct SKUs in one order or reservation.
pub const MAX_ITEMS: usize = 50;

/// Most units of one SKU in one order.
pub const MAX_QUANTITY: u32 = 1_000;

/// Longest SKU, in bytes.
pub const MAX_SKU_LEN: usize = 32;

/// Longest order id, in bytes.
pub const MAX_ORDER_ID_LEN: usize = 64;

/// Checks a SKU: 1 to [`MAX_SKU_LEN`] characters from `A-Z`, `0-9` and `-`.
///
/// # Errors
///
/// A lowercase message saying what is wrong, suitable for an API error.
pub fn check_sku(sku: &str) -> Result<(), String> {
    if sku.is_empty() || sku.len() > MAX_SKU_LEN {
        return Err(format!(
            "sku must be 1 to {MAX_SKU_LEN} characters long, got {}",
            sku.len()
        ));
    }
    if !sku
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!("sku {sku:?} may only contain A-Z, 0-9 and '-'"));
    }
    Ok(())
}

/// Checks a quantity: 1 to [`MAX_QUANTITY`].
///
/// # Errors
///
/// A lowercase message naming the allowed range.
pub fn check_quantity(sku: &str, quantity: u32) -> Result<(), String> {
    if quantity == 0 || quantity > MAX_QUANTITY {
        return Err(format!(
            "quantity of {sku} must be 1 to {MAX_QUANTITY}, got {quantity}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus() {
        assert!(check_sku("KB-0001").is_ok());
        assert!(check_sku("").is_err());
        assert!(check_sku("kb-0001").is_err());
        assert!(check_sku("KB 0001").is_err());
        assert!(check_sku(&"A".repeat(MAX_SKU_LEN)).is_ok());
        assert!(check_sku(&"A".repeat(MAX_SKU_LEN + 1)).is_err());
    }

    #[test]
    fn quantities() {
        assert!(check_quantity("A", 1).is_ok());
        assert!(check_quantity("A", MAX_QUANTITY).is_ok());
        assert!(check_quantity("A", 0).is_err());
        assert!(check_quantity("A", MAX_QUANTITY + 1).is_err());
    }
}
