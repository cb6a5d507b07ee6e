-- Customers and their addresses.
CREATE TABLE customers (
	tenant_id  uuid        NOT NULL,
	id         uuid        NOT NULL,
	email      text        NOT NULL,
	name       text        NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id)
);
-- E-mail addresses are unique per store, whatever their case.
CREATE UNIQUE INDEX customers_email_key ON customers (tenant_id, lower(email));

CREATE TABLE addresses (
	tenant_id   uuid    NOT NULL,
	id          uuid    NOT NULL,
	customer_id uuid    NOT NULL,
	kind        text    NOT NULL DEFAULT 'shipping' CHECK (kind IN ('shipping', 'billing')),
	line1       text    NOT NULL,
	line2       text,
	city        text    NOT NULL,
	postcode    text    NOT NULL,
	country     char(2) NOT NULL,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX addresses_by_customer ON addresses (tenant_id, customer_id);
