-- A later change, as real schemas accumulate them: a column added with a
-- default, one dropped, an index and comments.
ALTER TABLE customers ADD COLUMN marketing_opt_in boolean NOT NULL DEFAULT false;
ALTER TABLE products DROP COLUMN description;
ALTER TABLE products ADD COLUMN weight_grams integer CHECK (weight_grams > 0);
CREATE INDEX orders_by_customer ON orders (tenant_id, customer_id, placed_at DESC);
COMMENT ON COLUMN orders.number IS 'Shown to customers; per store.';
COMMENT ON COLUMN payments.provider_ref IS 'The payment provider''s own id.';
