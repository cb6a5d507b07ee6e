CREATE TABLE products (
	tenant_id uuid   NOT NULL,
	id        bigint NOT NULL,
	sku       text   NOT NULL,
	name      text   NOT NULL,
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, sku)
);
