-- landlord:earlier-checksum badf8f33a595c8f7ea99a63c9542db64afac3f024bb0471cd721d467215d5a96
-- The tenant directory: the one source of routing (ARCHITECTURE.md, idea 5).

-- One row: who this installation is. The secret derives the passwords of the
-- roles Landlord creates; only the owner role can read it.
CREATE TABLE installation (
	singleton    boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
	id           uuid        NOT NULL,
	database_oid oid         NOT NULL,
	secret       bytea       NOT NULL CHECK (length(secret) >= 32),
	created_at   timestamptz NOT NULL DEFAULT now()
);

-- PostgreSQL servers that hold tenants. A NULL host means the server that
-- holds this directory, reached with the same connection settings.
CREATE TABLE servers (
	id         text        PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_-]{0,39}$'),
	host       text,
	port       integer     CHECK (port BETWEEN 1 AND 65535),
	database   text        NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenants (
	id             uuid        PRIMARY KEY,
	slug           text        NOT NULL UNIQUE CHECK (slug ~ '^[a-z][a-z0-9-]{2,39}$'),
	display_name   text        NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
	model          text        NOT NULL CHECK (model IN ('row', 'schema', 'database')),
	server_id      text        NOT NULL REFERENCES servers (id),
	schema_name    text        NOT NULL CHECK (schema_name ~ '^[a-z_][a-z0-9_]{0,62}$'),
	database_name  text        NOT NULL CHECK (database_name ~ '^[a-z_][a-z0-9_]{0,62}$'),
	state          text        NOT NULL CHECK (state IN ('provisioning', 'active', 'read_only', 'moving', 'suspended', 'deleting')),
	schema_version integer     NOT NULL DEFAULT 0,
	routing_epoch  bigint      NOT NULL DEFAULT 1,
	created_at     timestamptz NOT NULL DEFAULT now(),
	updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenants_server_model ON tenants (server_id, model);

-- Every step of every long operation on a tenant, written before the step
-- acts (ARCHITECTURE.md, idea 7). Rows outlive the tenant.
CREATE TABLE provisioning_ledger (
	id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id uuid        NOT NULL,
	operation text        NOT NULL,
	step      text        NOT NULL,
	detail    text        NOT NULL DEFAULT '',
	at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX provisioning_ledger_tenant ON provisioning_ledger (tenant_id, id);

-- A change to where or whether a tenant is served bumps its routing epoch, so
-- caches can tell a stale entry from a current one.
CREATE FUNCTION tenants_bump_epoch() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
	IF (NEW.model, NEW.server_id, NEW.schema_name, NEW.database_name, NEW.state)
	   IS DISTINCT FROM (OLD.model, OLD.server_id, OLD.schema_name, OLD.database_name, OLD.state) THEN
		NEW.routing_epoch := OLD.routing_epoch + 1;
	END IF;
	NEW.updated_at := now();
	RETURN NEW;
END $$;
CREATE TRIGGER tenants_bump_epoch BEFORE UPDATE ON tenants
FOR EACH ROW EXECUTE FUNCTION tenants_bump_epoch();

-- Routers LISTEN on landlord_directory. The payload is "<id> <epoch>", or
-- "<id> deleted"; ids only, never tenant data (THREATS I25).
CREATE FUNCTION tenants_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		PERFORM pg_notify('landlord_directory', OLD.id::text || ' deleted');
	ELSE
		PERFORM pg_notify('landlord_directory', NEW.id::text || ' ' || NEW.routing_epoch::text);
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER tenants_notify AFTER INSERT OR UPDATE OR DELETE ON tenants
FOR EACH ROW EXECUTE FUNCTION tenants_notify();
