-- Purges (package provision): a deleted tenant is purged, all of it, at
-- once or after a grace period in which it can still be restored. One row
-- per tenant that was deleted: which tenant and where it lived, so that
-- the purge can be finished and its verifier run after the tenant's
-- directory row is gone, and so that an operator can see what was purged
-- and what the verifier found. Rows outlive the tenant, as the ledger does.
CREATE TABLE purges (
	tenant_id      uuid        PRIMARY KEY,
	slug           text        NOT NULL,
	model          text        NOT NULL CHECK (model IN ('row', 'schema', 'database')),
	server_id      text        NOT NULL,
	schema_name    text        NOT NULL CHECK (schema_name ~ '^[a-z_][a-z0-9_]{0,62}$'),
	database_name  text        NOT NULL CHECK (database_name ~ '^[a-z_][a-z0-9_]{0,62}$'),
	-- the state the tenant had before it was deleted: what a restore gives back
	prior_state    text        NOT NULL,
	-- scheduled: waiting for purge_after, restorable; purging: the purge
	-- has begun and only finishing it is left; purged: nothing is left
	state          text        NOT NULL CHECK (state IN ('scheduled', 'purging', 'purged')),
	deleted_at     timestamptz NOT NULL DEFAULT now(),
	purge_after    timestamptz NOT NULL,
	started_at     timestamptz,
	purged_at      timestamptz,
	-- the verifier's last run: whether it found nothing left, and its checks
	verified_at    timestamptz,
	verified_clean boolean,
	verification   jsonb
);
CREATE INDEX purges_due ON purges (purge_after) WHERE state <> 'purged';
CREATE INDEX purges_slug ON purges (slug, deleted_at DESC);
