-- The catalog of a store: products, their variants and the stock of each
-- variant. Every key leads with tenant_id (ARCHITECTURE.md, idea 1).
CREATE TYPE product_status AS ENUM ('draft', 'active', 'archived');

-- Keeps updated_at current. The search_path is pinned so that the trigger
-- never resolves a name through the caller's path (SECURITY.md, I24).
CREATE FUNCTION touch_updated_at() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	NEW.updated_at := now();
	RETURN NEW;
END $$;

CREATE TABLE products (
	tenant_id   uuid           NOT NULL,
	id          uuid           NOT NULL,
	sku         text           NOT NULL,
	name        text           NOT NULL,
	description text           NOT NULL DEFAULT '',
	status      product_status NOT NULL DEFAULT 'draft',
	price_cents bigint         NOT NULL,
	created_at  timestamptz    NOT NULL DEFAULT now(),
	updated_at  timestamptz    NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT products_sku_key UNIQUE (tenant_id, sku),
	CONSTRAINT products_price_positive CHECK (price_cents >= 0)
);
CREATE INDEX products_by_name ON products (tenant_id, lower(name));
CREATE TRIGGER products_touch BEFORE UPDATE ON products
	FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
COMMENT ON TABLE products IS 'Things the store sells.';

CREATE TABLE variants (
	tenant_id   uuid   NOT NULL,
	id          uuid   NOT NULL,
	product_id  uuid   NOT NULL,
	sku         text   NOT NULL,
	options     jsonb  NOT NULL DEFAULT '{}',
	price_cents bigint CHECK (price_cents >= 0),
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, sku),
	FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX variants_by_product ON variants (tenant_id, product_id);

CREATE TABLE stock (
	tenant_id  uuid        NOT NULL,
	variant_id uuid        NOT NULL,
	location   text        NOT NULL DEFAULT 'main',
	on_hand    integer     NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
	reserved   integer     NOT NULL DEFAULT 0,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, variant_id, location),
	FOREIGN KEY (tenant_id, variant_id) REFERENCES variants (tenant_id, id) ON DELETE CASCADE,
	CHECK (reserved BETWEEN 0 AND on_hand)
);
