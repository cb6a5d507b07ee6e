-- Moves (package move): a tenant changes placement (model, server) while
-- it keeps serving. One row per move, written before each phase acts, so
-- that a mover that dies is resumed or rolled back from here. At most one
-- unfinished move per tenant. Rows outlive the move, as the ledger does.
CREATE TABLE moves (
	id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id      uuid        NOT NULL,
	mode           text        NOT NULL CHECK (mode IN ('online', 'offline')),
	from_model     text        NOT NULL CHECK (from_model IN ('row', 'schema', 'database')),
	from_server    text        NOT NULL,
	from_schema    text        NOT NULL CHECK (from_schema ~ '^[a-z_][a-z0-9_]{0,62}$'),
	from_database  text        NOT NULL CHECK (from_database ~ '^[a-z_][a-z0-9_]{0,62}$'),
	to_model       text        NOT NULL CHECK (to_model IN ('row', 'schema', 'database')),
	to_server      text        NOT NULL REFERENCES servers (id),
	to_schema      text        NOT NULL CHECK (to_schema ~ '^[a-z_][a-z0-9_]{0,62}$'),
	to_database    text        NOT NULL CHECK (to_database ~ '^[a-z_][a-z0-9_]{0,62}$'),
	-- planned → target (objects made) → copied (snapshot copied) → fenced
	-- (the old placement refuses new transactions) → flipped (the
	-- directory routes to the new placement) → done (the old placement is
	-- gone); or, before flipped, aborted (the new placement is gone, the
	-- tenant is where it was)
	phase          text        NOT NULL CHECK (phase IN ('planned', 'target', 'copied', 'fenced', 'flipped', 'done', 'aborted')),
	-- the logical replication slot and publication of an online move
	feed           text        NOT NULL DEFAULT '',
	rows_copied    bigint      NOT NULL DEFAULT 0,
	changes        bigint      NOT NULL DEFAULT 0,
	-- whether the old placement may still hold a fence of the tenant
	-- (migration.Fence): it stays after the flip until every router has
	-- certainly seen the new placement (move.Config.Settle)
	source_fenced  boolean     NOT NULL DEFAULT false,
	-- how long new transactions waited at the cutover, fence to flip
	pause_ms       double precision,
	error          text        NOT NULL DEFAULT '',
	started_at     timestamptz NOT NULL DEFAULT now(),
	updated_at     timestamptz NOT NULL DEFAULT now(),
	flipped_at     timestamptz,
	finished_at    timestamptz
);
CREATE UNIQUE INDEX moves_unfinished ON moves (tenant_id) WHERE phase NOT IN ('done', 'aborted');
CREATE INDEX moves_tenant ON moves (tenant_id, id DESC);
CREATE INDEX moves_fenced ON moves (id) WHERE source_fenced;
