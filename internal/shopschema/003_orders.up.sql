-- Orders, their lines and their payments. Order numbers come from a
-- sequence owned by the column; amounts are integers of the smallest unit.
CREATE TABLE orders (
	tenant_id        uuid        NOT NULL,
	id               uuid        NOT NULL,
	number           bigserial   NOT NULL,
	customer_id      uuid,
	shipping_address uuid,
	status           text        NOT NULL DEFAULT 'open'
	                 CHECK (status IN ('open', 'paid', 'shipped', 'cancelled', 'refunded')),
	currency         char(3)     NOT NULL DEFAULT 'EUR',
	total_cents      bigint      NOT NULL DEFAULT 0,
	placed_at        timestamptz NOT NULL DEFAULT now(),
	updated_at       timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, number),
	FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE SET NULL (customer_id),
	FOREIGN KEY (tenant_id, shipping_address) REFERENCES addresses (tenant_id, id) ON DELETE SET NULL (shipping_address)
);
CREATE INDEX orders_open ON orders (tenant_id, placed_at) WHERE status = 'open';
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders
	FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TABLE order_lines (
	tenant_id   uuid    NOT NULL,
	order_id    uuid    NOT NULL,
	line        integer NOT NULL,
	variant_id  uuid    NOT NULL,
	quantity    integer NOT NULL CHECK (quantity > 0),
	price_cents bigint  NOT NULL,
	PRIMARY KEY (tenant_id, order_id, line),
	FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id) ON DELETE CASCADE,
	FOREIGN KEY (tenant_id, variant_id) REFERENCES variants (tenant_id, id)
);

CREATE TABLE payments (
	tenant_id    uuid        NOT NULL,
	id           uuid        NOT NULL,
	order_id     uuid        NOT NULL,
	provider     text        NOT NULL,
	provider_ref text        NOT NULL,
	amount_cents bigint      NOT NULL,
	captured_at  timestamptz,
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, provider, provider_ref),
	FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id)
);

-- What the storefront shows; security_invoker keeps row-level security of
-- the caller in force (SECURITY.md, I08).
CREATE VIEW order_totals WITH (security_invoker = true) AS
	SELECT o.tenant_id, o.id, o.number, coalesce(sum(l.quantity * l.price_cents), 0) AS lines_cents
	FROM orders o LEFT JOIN order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
	GROUP BY o.tenant_id, o.id, o.number;
