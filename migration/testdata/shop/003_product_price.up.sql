ALTER TABLE products ADD COLUMN price_cents bigint NOT NULL DEFAULT 0;
