-- The one tenant table of the integration test.
CREATE TABLE notes (
	tenant_id uuid   NOT NULL,
	id        bigint NOT NULL,
	body      text   NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
