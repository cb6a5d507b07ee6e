CREATE TABLE products (
	tenant_id   uuid    NOT NULL,
	id          bigint  NOT NULL,
	name        text    NOT NULL,
	price_cents integer NOT NULL CHECK (price_cents >= 0),
	PRIMARY KEY (tenant_id, id)
);
