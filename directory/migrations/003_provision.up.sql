-- Fast provisioning (package provision): the scripts that clone the template
-- schema, and the pool of pre-provisioned tenants.

-- The DDL that recreates the template schema (landlord_template) in a new
-- schema tenant, generated from the template's catalog when the template
-- stood at exactly one migration set, and checked by a trial replay before it
-- was stored. Keyed by that set's hash (migration.Set.Hash), so a script
-- never outlives the migrations it reproduces. A NULL script records that the
-- set cannot be cloned (note says why): creation then migrates each tenant
-- without trying again.
CREATE TABLE template_scripts (
	set_hash   text        PRIMARY KEY CHECK (set_hash ~ '^[0-9a-f]{64}$'),
	version    integer     NOT NULL CHECK (version > 0),
	script     text,
	note       text        NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL DEFAULT now()
);

-- Pre-provisioned tenants nobody has claimed yet. They are not in tenants,
-- so nothing routes to them and no slug is taken; their objects carry a pool
-- marker, not a tenant marker, so Reconcile leaves them to the pool. A claim
-- deletes the row, inserts the tenant and rewrites the markers in one
-- transaction (SKIP LOCKED: two claims never get the same row). A row in
-- state filling is an intent written before its objects were created; the
-- next fill finishes or removes it.
CREATE TABLE tenant_pool (
	id             uuid        PRIMARY KEY,
	model          text        NOT NULL CHECK (model IN ('row', 'schema', 'database')),
	server_id      text        NOT NULL REFERENCES servers (id),
	schema_name    text        NOT NULL CHECK (schema_name ~ '^[a-z_][a-z0-9_]{0,62}$'),
	database_name  text        NOT NULL CHECK (database_name ~ '^[a-z_][a-z0-9_]{0,62}$'),
	state          text        NOT NULL CHECK (state IN ('filling', 'ready')),
	schema_version integer     NOT NULL DEFAULT 0,
	created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenant_pool_ready ON tenant_pool (model, server_id, schema_version, created_at) WHERE state = 'ready';
