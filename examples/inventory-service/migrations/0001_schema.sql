-- Stock per SKU. `reserved` never exceeds `on_hand`; what can still be reserved is
-- `on_hand - reserved`. Reservations move units between the two columns, never create
-- or destroy them, so `on_hand` only changes by restocking.
CREATE TABLE stock (
    sku      TEXT    PRIMARY KEY NOT NULL,
    name     TEXT    NOT NULL,
    on_hand  INTEGER NOT NULL CHECK (on_hand >= 0),
    reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand)
) STRICT;

-- One row per order id: the primary key is what makes Reserve idempotent. A released row
-- stays as a tombstone, so a late or repeated Reserve for that order is refused.
CREATE TABLE reservations (
    order_id       TEXT PRIMARY KEY NOT NULL,
    reservation_id TEXT NOT NULL UNIQUE,
    status         TEXT NOT NULL CHECK (status IN ('active', 'released')),
    created_at     TEXT NOT NULL,
    released_at    TEXT
) STRICT;

CREATE TABLE reservation_items (
    order_id TEXT    NOT NULL REFERENCES reservations (order_id),
    sku      TEXT    NOT NULL REFERENCES stock (sku),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku)
) STRICT;

CREATE INDEX reservation_items_by_sku ON reservation_items (sku);
