-- Tenant tables and objects Landlord's own run of the attack suite
-- (package landlordtest, SECURITY.md) uses as an application's: beyond the
-- core pair, the kinds of object whose probes run only where an
-- application has them. The same file is applied to the shared schema, to
-- each tenant schema and inside each tenant database, like any
-- application's migrations.

-- The core pair, as in internal/itemschema, with a CHECK constraint.
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
	sku       text   NOT NULL CHECK (length(sku) BETWEEN 1 AND 40),
	secret    text   NOT NULL,
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, sku),
	FOREIGN KEY (tenant_id, parent_id) REFERENCES parents (tenant_id, id)
);

-- I15: a partitioned tenant table; each partition gets its own policies.
CREATE TABLE events (
	tenant_id uuid   NOT NULL,
	id        bigint NOT NULL,
	body      text   NOT NULL,
	PRIMARY KEY (tenant_id, id)
) PARTITION BY HASH (tenant_id);
CREATE TABLE events_p0 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE events_p1 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 1);

-- I17: ids from a sequence, which the row model shares between tenants.
CREATE TABLE tickets (
	tenant_id uuid      NOT NULL,
	id        bigserial NOT NULL,
	note      text      NOT NULL,
	PRIMARY KEY (tenant_id, id)
);

-- I24: notes are audited by two triggers, one resolving audit_log through
-- the caller's search path, one pinned to the schema of the table that fired.
CREATE TABLE notes (
	tenant_id uuid   NOT NULL,
	id        bigint NOT NULL,
	body      text   NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
CREATE TABLE audit_log (
	tenant_id uuid NOT NULL,
	id        uuid NOT NULL DEFAULT gen_random_uuid(),
	note_id   bigint NOT NULL,
	how       text NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
CREATE FUNCTION audit_unpinned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO audit_log (tenant_id, note_id, how) VALUES (NEW.tenant_id, NEW.id, 'unpinned');
	RETURN NEW;
END $$;
CREATE FUNCTION audit_pinned() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	EXECUTE format('INSERT INTO %I.audit_log (tenant_id, note_id, how) VALUES ($1, $2, $3)', TG_TABLE_SCHEMA)
	USING NEW.tenant_id, NEW.id, 'pinned';
	RETURN NEW;
END $$;
CREATE TRIGGER notes_audit_unpinned AFTER INSERT ON notes FOR EACH ROW EXECUTE FUNCTION audit_unpinned();
CREATE TRIGGER notes_audit_pinned AFTER INSERT ON notes FOR EACH ROW EXECUTE FUNCTION audit_pinned();

-- I08: views over items, run as their owner or as the caller.
CREATE VIEW items_owner_view AS SELECT tenant_id, id, secret FROM items;
CREATE VIEW items_invoker_view WITH (security_invoker = true) AS SELECT tenant_id, id, secret FROM items;

-- I09: SECURITY DEFINER functions, one with its search path pinned where it
-- was created, one resolving names through the caller's.
CREATE FUNCTION definer_secrets() RETURNS SETOF text LANGUAGE sql STABLE SECURITY DEFINER
SET search_path FROM CURRENT AS $$ SELECT secret FROM items ORDER BY id $$;
CREATE FUNCTION definer_unpinned() RETURNS SETOF text LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
BEGIN
	RETURN QUERY EXECUTE 'SELECT secret FROM items ORDER BY id';
END $$;
