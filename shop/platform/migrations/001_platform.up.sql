-- What belongs to the platform rather than to one store: the stores it has
-- signed up, its operators and their sessions, and the record of every time
-- an operator looked into or acted as a store. These tables live in the
-- control database, in schema shop, which no tenant traffic role can use.

CREATE TABLE shop.stores (
	tenant_id   uuid        PRIMARY KEY,
	slug        text        NOT NULL UNIQUE,
	name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
	plan        text        NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
	owner_email text        NOT NULL CHECK (owner_email = lower(owner_email) AND length(owner_email) BETWEEN 3 AND 254),
	created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shop.operators (
	id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
	email         text        NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
	name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
	password_hash text        NOT NULL, -- bcrypt
	created_at    timestamptz NOT NULL DEFAULT now()
);

-- Session secrets are kept only as SHA-256 hashes.
CREATE TABLE shop.operator_sessions (
	token_hash  bytea       PRIMARY KEY,
	operator_id uuid        NOT NULL REFERENCES shop.operators (id) ON DELETE CASCADE,
	created_at  timestamptz NOT NULL DEFAULT now(),
	expires_at  timestamptz NOT NULL
);
CREATE INDEX operator_sessions_by_operator ON shop.operator_sessions (operator_id);

-- Every time an operator signed in as a store's user.
CREATE TABLE shop.impersonations (
	id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	operator_id uuid        NOT NULL REFERENCES shop.operators (id),
	tenant_id   uuid        NOT NULL,
	user_id     uuid        NOT NULL,
	reason      text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
	started_at  timestamptz NOT NULL DEFAULT now(),
	expires_at  timestamptz NOT NULL
);
CREATE INDEX impersonations_newest ON shop.impersonations (started_at DESC, id DESC);

-- Every time an operator looked into a store or changed its state, and why.
CREATE TABLE shop.admin_access (
	id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	operator_id uuid        NOT NULL REFERENCES shop.operators (id),
	tenant_id   uuid        NOT NULL,
	action      text        NOT NULL CHECK (action IN ('browse', 'set_state')),
	detail      text        NOT NULL DEFAULT '',
	reason      text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
	at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_access_by_tenant ON shop.admin_access (tenant_id, at DESC);
