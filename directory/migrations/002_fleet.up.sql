-- landlord:earlier-checksum ad60dbcd766d08ccc287e9b3b38eeeaad981f79ee5b5e2b3a76df62783ca62b2
-- Fleet migrations (package fleet): every run of the tenant-table migrations
-- over the fleet, and where each target stands. A run writes its intent here
-- before it touches a target (ARCHITECTURE.md, idea 7); the truth about a target's
-- version stays in the ledger of its own database (target_migrations).

-- One row per fleet run. While a run is under way its process holds a
-- session advisory lock on (0x4c4c4652, id) in this database; a run marked
-- running whose lock nobody holds was stopped (process killed, connection
-- lost), and the next run marks it interrupted and takes its targets over.
CREATE TABLE migration_runs (
	id          integer     GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	status      text        NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
	set_hash    text        NOT NULL,
	head        integer     NOT NULL,
	options     jsonb       NOT NULL DEFAULT '{}',
	targets     integer     NOT NULL DEFAULT 0,
	done        integer     NOT NULL DEFAULT 0,
	failed      integer     NOT NULL DEFAULT 0,
	error       text        NOT NULL DEFAULT '',
	started_at  timestamptz NOT NULL DEFAULT now(),
	finished_at timestamptz
);
CREATE INDEX migration_runs_running ON migration_runs (id) WHERE status = 'running';

-- One row per target a run has selected: its state in the latest run that
-- selected it. A target belongs to at most one running run at a time: a run
-- takes a row over only when the row is done or failed, or when the run that
-- holds it is no longer running.
CREATE TABLE migration_targets (
	target        text        PRIMARY KEY, -- server/database/schema
	kind          text        NOT NULL CHECK (kind IN ('shared', 'schema', 'database', 'template')),
	tenant_id     uuid,
	server_id     text        NOT NULL,
	database_name text        NOT NULL,
	schema_name   text        NOT NULL,
	run_id        integer     NOT NULL REFERENCES migration_runs (id),
	status        text        NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
	from_version  integer     NOT NULL, -- the target's version when the run planned it
	to_version    integer     NOT NULL, -- the head the run migrates to
	version       integer     NOT NULL, -- the version reached so far
	attempts      integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0), -- tries towards to_version
	duration_ms   bigint      NOT NULL DEFAULT 0,
	error         text        NOT NULL DEFAULT '',
	started_at    timestamptz,
	finished_at   timestamptz
);
CREATE INDEX migration_targets_run ON migration_targets (run_id);
