-- Staff accounts and an append-only audit trail. The audit id is an
-- identity column, so its sequence is cloned with the table; real shared
-- tables would rather use uuid v7 ids (SECURITY.md, I17).
CREATE TABLE staff (
	tenant_id uuid    NOT NULL,
	id        uuid    NOT NULL,
	email     text    NOT NULL,
	role      text    NOT NULL DEFAULT 'clerk' CHECK (role IN ('owner', 'manager', 'clerk')),
	active    boolean NOT NULL DEFAULT true,
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, email)
);

CREATE TABLE audit (
	tenant_id uuid        NOT NULL,
	id        bigint      GENERATED ALWAYS AS IDENTITY,
	staff_id  uuid,
	action    text        NOT NULL,
	detail    jsonb       NOT NULL DEFAULT '{}',
	at        timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, staff_id) REFERENCES staff (tenant_id, id) ON DELETE SET NULL (staff_id)
);
CREATE INDEX audit_by_time ON audit USING brin (at);
-- Append-only: no row can be changed once written.
CREATE POLICY audit_append_only ON audit AS RESTRICTIVE FOR UPDATE USING (false);
