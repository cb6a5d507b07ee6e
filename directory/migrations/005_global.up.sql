-- Where the copies of the global tables stand: one row per database that
-- holds a copy (a tenant database, the template database, another server's
-- database), with the version of the global data it was last brought to.
-- The marker inside the copy is the truth; these rows only let a sync skip
-- a copy that is current without connecting to it.
CREATE TABLE global_copies (
	server_id     text        NOT NULL,
	database_name text        NOT NULL,
	data_version  text        NOT NULL,
	synced_at     timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (server_id, database_name)
);
