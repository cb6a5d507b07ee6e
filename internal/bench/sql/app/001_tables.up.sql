-- The tenant tables of the traffic cases: ten tables in Landlord's shape
-- (ARCHITECTURE.md, idea 1). Lookups read items; the catalog case reads all
-- ten, so a backend that serves a tenant caches the catalog entries of ten
-- tables.
CREATE TABLE parents (
	tenant_id uuid   NOT NULL,
	id        bigint NOT NULL,
	name      text   NOT NULL,
	PRIMARY KEY (tenant_id, id)
);

CREATE TABLE items (
	tenant_id uuid   NOT NULL,
	id        bigint NOT NULL,
	parent_id bigint,
	sku       text   NOT NULL,
	secret    text   NOT NULL,
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, sku),
	FOREIGN KEY (tenant_id, parent_id) REFERENCES parents (tenant_id, id)
);

CREATE TABLE customers (
	tenant_id  uuid        NOT NULL,
	id         bigint      NOT NULL,
	email      text        NOT NULL,
	name       text        NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, email)
);

CREATE TABLE addresses (
	tenant_id   uuid   NOT NULL,
	id          bigint NOT NULL,
	customer_id bigint NOT NULL,
	line1       text   NOT NULL,
	city        text   NOT NULL,
	country     text   NOT NULL,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

CREATE TABLE orders (
	tenant_id   uuid        NOT NULL,
	id          bigint      NOT NULL,
	customer_id bigint,
	status      text        NOT NULL DEFAULT 'open',
	total_cents bigint      NOT NULL DEFAULT 0,
	placed_at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);
CREATE INDEX orders_by_customer ON orders (tenant_id, customer_id);

CREATE TABLE order_lines (
	tenant_id uuid    NOT NULL,
	id        bigint  NOT NULL,
	order_id  bigint  NOT NULL,
	item_id   bigint  NOT NULL,
	quantity  integer NOT NULL CHECK (quantity > 0),
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id),
	FOREIGN KEY (tenant_id, item_id) REFERENCES items (tenant_id, id)
);

CREATE TABLE payments (
	tenant_id    uuid   NOT NULL,
	id           bigint NOT NULL,
	order_id     bigint NOT NULL,
	provider_ref text   NOT NULL,
	amount_cents bigint NOT NULL,
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, provider_ref),
	FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id)
);

CREATE TABLE stock (
	tenant_id uuid    NOT NULL,
	id        bigint  NOT NULL,
	item_id   bigint  NOT NULL,
	on_hand   integer NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, item_id) REFERENCES items (tenant_id, id)
);

CREATE TABLE staff (
	tenant_id uuid   NOT NULL,
	id        bigint NOT NULL,
	email     text   NOT NULL,
	role      text   NOT NULL DEFAULT 'clerk',
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, email)
);

CREATE TABLE audit (
	tenant_id uuid        NOT NULL,
	id        bigint      NOT NULL,
	staff_id  bigint,
	action    text        NOT NULL,
	at        timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, staff_id) REFERENCES staff (tenant_id, id)
);
