-- Orders. A row is written ('pending') before stock is reserved, so an Idempotency-Key is
-- claimed exactly once (the UNIQUE constraint) and a crash or a failed reservation leaves a
-- row the reconciler can compensate. Only 'confirmed' orders are visible through the API.
--   pending   : claimed; the request is reserving stock right now
--   aborting  : the request gave up; its reservation (if any) must still be released
--   confirmed : stock reserved and order stored
CREATE TABLE orders (
    id              TEXT    PRIMARY KEY NOT NULL,
    idempotency_key TEXT    UNIQUE,
    request         TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'aborting', 'confirmed')),
    reservation_id  TEXT,
    claimed_at_ms   INTEGER NOT NULL,
    created_at      TEXT    NOT NULL,
    CHECK ((status = 'confirmed') = (reservation_id IS NOT NULL))
) STRICT;

CREATE TABLE order_items (
    order_id TEXT    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    sku      TEXT    NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku)
) STRICT;

CREATE INDEX orders_unfinished ON orders (status, claimed_at_ms) WHERE status != 'confirmed';
