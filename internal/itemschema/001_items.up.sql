-- Tenant tables of the core tests: a parent, a child with a unique business
-- key and a foreign key, all leading with tenant_id.
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
