CREATE TABLE orders (
	tenant_id  uuid   NOT NULL,
	id         bigint NOT NULL,
	product_id bigint NOT NULL,
	quantity   int    NOT NULL CHECK (quantity > 0),
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id)
);

CREATE INDEX orders_product_idx ON orders (tenant_id, product_id);
