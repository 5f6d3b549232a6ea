-- Demo catalogue. LT-0006 is a limited edition with little stock, so the demo and the
-- tests can show an order refused for insufficient stock.
INSERT INTO stock (sku, name, on_hand) VALUES
    ('KB-0001', 'Mechanical keyboard', 5000),
    ('MS-0002', 'Wireless mouse', 5000),
    ('MN-0003', '27" monitor', 2000),
    ('HD-0004', 'Headset', 3000),
    ('CB-0005', 'USB-C cable', 20000),
    ('LT-0006', 'Limited edition keycaps', 25);
