-- Load reads only the root of the file system; this file must never run.
CREATE TABLE ignored (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));
