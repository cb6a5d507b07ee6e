-- One store: its staff users with their sessions, invitations and API
-- tokens; its products with a stock level each and the ledger of every
-- movement; its orders. Every key leads with tenant_id, so the same tables
-- serve a store in the shared tables, in its own schema or in its own
-- database.

CREATE TABLE users (
	tenant_id     uuid        NOT NULL,
	id            uuid        NOT NULL DEFAULT gen_random_uuid(),
	email         text        NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
	name          text        NOT NULL DEFAULT '' CHECK (length(name) <= 200),
	role          text        NOT NULL CHECK (role IN ('owner', 'staff')),
	password_hash text,       -- NULL until an invitation is accepted
	created_at    timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT users_email_key UNIQUE (tenant_id, email)
);

-- Secrets are kept only as SHA-256 hashes.
CREATE TABLE invitations (
	tenant_id  uuid        NOT NULL,
	token_hash bytea       NOT NULL,
	user_id    uuid        NOT NULL,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, token_hash),
	FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE sessions (
	tenant_id       uuid        NOT NULL,
	token_hash      bytea       NOT NULL,
	user_id         uuid        NOT NULL,
	impersonated_by text        NOT NULL DEFAULT '',
	reason          text        NOT NULL DEFAULT '',
	created_at      timestamptz NOT NULL DEFAULT now(),
	expires_at      timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, token_hash),
	FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE api_tokens (
	tenant_id    uuid        NOT NULL,
	id           uuid        NOT NULL DEFAULT gen_random_uuid(),
	user_id      uuid        NOT NULL,
	name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
	token_hash   bytea       NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT now(),
	last_used_at timestamptz,
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT api_tokens_hash_key UNIQUE (tenant_id, token_hash),
	FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE products (
	tenant_id           uuid        NOT NULL,
	id                  uuid        NOT NULL DEFAULT gen_random_uuid(),
	sku                 text        NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
	title               text        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
	description         text        NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
	price_cents         bigint      NOT NULL CHECK (price_cents >= 0),
	active              boolean     NOT NULL DEFAULT true,
	low_stock_threshold integer     NOT NULL DEFAULT 5 CHECK (low_stock_threshold >= 0),
	created_at          timestamptz NOT NULL DEFAULT now(),
	updated_at          timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT products_sku_key UNIQUE (tenant_id, sku)
);
CREATE INDEX products_by_title ON products (tenant_id, lower(title));
CREATE INDEX products_newest ON products (tenant_id, created_at DESC);

-- The level is the sum of the ledger, kept by the trigger below; the CHECK
-- is what keeps stock from going negative, whatever the application does.
CREATE TABLE stock_levels (
	tenant_id  uuid    NOT NULL,
	product_id uuid    NOT NULL,
	on_hand    integer NOT NULL DEFAULT 0 CONSTRAINT stock_never_negative CHECK (on_hand >= 0),
	PRIMARY KEY (tenant_id, product_id),
	FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id) ON DELETE CASCADE
);

-- The bigint ids of movements, outbox events and notifications count per
-- store (store_ids, below): a sequence shared by every store of the shared
-- tables would tell each store how many rows the others write.
CREATE TABLE stock_movements (
	tenant_id  uuid        NOT NULL,
	id         bigint      NOT NULL,
	product_id uuid        NOT NULL,
	kind       text        NOT NULL CHECK (kind IN ('receipt', 'adjustment', 'sale', 'return')),
	quantity   integer     NOT NULL CHECK (quantity <> 0),
	order_id   uuid,
	note       text        NOT NULL DEFAULT '' CHECK (length(note) <= 500),
	created_by uuid,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id) ON DELETE CASCADE,
	CHECK (kind <> 'receipt' OR quantity > 0),
	CHECK (kind <> 'sale' OR quantity < 0),
	CHECK (kind <> 'return' OR quantity > 0)
);
CREATE INDEX stock_movements_by_product ON stock_movements (tenant_id, product_id, id DESC);

-- Applies each movement to the level in the same transaction. It runs with
-- the caller's rights, so row-level security covers the update too; the
-- search_path is pinned so that no name resolves through the caller's path,
-- and the table is named in the schema of the movement's table (shared for
-- row tenants, the tenant's own otherwise). The level is updated in place:
-- an INSERT ... ON CONFLICT DO UPDATE would check stock_never_negative on
-- the proposed row (the bare quantity) and refuse every sale. A missing
-- level row is created at zero first (concurrent creators meet in ON
-- CONFLICT DO NOTHING).
CREATE FUNCTION apply_stock_movement() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n bigint;
	upd text := format('UPDATE %I.stock_levels SET on_hand = on_hand + $3
		WHERE tenant_id = $1 AND product_id = $2', TG_TABLE_SCHEMA);
BEGIN
	EXECUTE upd USING NEW.tenant_id, NEW.product_id, NEW.quantity;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n = 0 THEN
		EXECUTE format('INSERT INTO %I.stock_levels (tenant_id, product_id, on_hand) VALUES ($1, $2, 0)
			ON CONFLICT (tenant_id, product_id) DO NOTHING', TG_TABLE_SCHEMA)
			USING NEW.tenant_id, NEW.product_id;
		EXECUTE upd USING NEW.tenant_id, NEW.product_id, NEW.quantity;
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER stock_movements_apply AFTER INSERT ON stock_movements
	FOR EACH ROW EXECUTE FUNCTION apply_stock_movement();

-- Order numbers and the ids above count from 1 in every store.
CREATE TABLE counters (
	tenant_id uuid   NOT NULL,
	name      text   NOT NULL,
	value     bigint NOT NULL,
	PRIMARY KEY (tenant_id, name)
);

CREATE TABLE orders (
	tenant_id       uuid        NOT NULL,
	id              uuid        NOT NULL DEFAULT gen_random_uuid(),
	-- NULL only inside the checkout transaction that claimed the idempotency
	-- key and has not yet drawn its number from counters.
	number          bigint      CHECK (number > 0),
	status          text        NOT NULL DEFAULT 'placed' CHECK (status IN ('placed', 'fulfilled', 'cancelled')),
	customer_name   text        NOT NULL CHECK (length(customer_name) BETWEEN 1 AND 200),
	customer_email  text        NOT NULL CHECK (length(customer_email) BETWEEN 3 AND 254),
	address         text        NOT NULL CHECK (length(address) BETWEEN 1 AND 1000),
	total_cents     bigint      NOT NULL CHECK (total_cents >= 0),
	currency        char(3)     NOT NULL,
	country         char(2),
	payment         text        NOT NULL DEFAULT 'test',
	idempotency_key text        NOT NULL,
	created_at      timestamptz NOT NULL DEFAULT now(),
	updated_at      timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT orders_number_key UNIQUE (tenant_id, number),
	CONSTRAINT orders_idempotency_key UNIQUE (tenant_id, idempotency_key),
	-- Platform-wide reference data (the global set, store.Global).
	CONSTRAINT orders_currency_fkey FOREIGN KEY (currency) REFERENCES global.currencies (code),
	CONSTRAINT orders_country_fkey FOREIGN KEY (country) REFERENCES global.countries (code)
);
CREATE INDEX orders_newest ON orders (tenant_id, created_at DESC);

CREATE TABLE order_lines (
	tenant_id   uuid    NOT NULL,
	order_id    uuid    NOT NULL,
	line        integer NOT NULL,
	product_id  uuid    NOT NULL,
	sku         text    NOT NULL,
	title       text    NOT NULL,
	quantity    integer NOT NULL CHECK (quantity > 0),
	price_cents bigint  NOT NULL CHECK (price_cents >= 0),
	PRIMARY KEY (tenant_id, order_id, line),
	FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id) ON DELETE CASCADE,
	FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id)
);

-- Events written in the same transaction as the change that caused them,
-- moved to the job queue by a drainer: a rolled-back sale leaves none.
CREATE TABLE outbox (
	tenant_id  uuid        NOT NULL,
	id         bigint      NOT NULL,
	kind       text        NOT NULL,
	payload    jsonb       NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id)
);

-- Messages for the staff: low-stock alerts, daily sales summaries.
CREATE TABLE notifications (
	tenant_id  uuid        NOT NULL,
	id         bigint      NOT NULL,
	kind       text        NOT NULL CHECK (length(kind) BETWEEN 1 AND 50),
	message    text        NOT NULL CHECK (length(message) BETWEEN 1 AND 2000),
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, id)
);

-- Gives a new row of a per-store numbered table the store's next number,
-- unless the row names its own. Like apply_stock_movement it runs with the
-- caller's rights and a pinned search_path.
CREATE FUNCTION next_store_id() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF NEW.id IS NULL THEN
		EXECUTE format('INSERT INTO %I.counters AS c (tenant_id, name, value) VALUES ($1, $2, 1)
			ON CONFLICT (tenant_id, name) DO UPDATE SET value = c.value + 1 RETURNING value', TG_TABLE_SCHEMA)
			INTO NEW.id USING NEW.tenant_id, TG_TABLE_NAME;
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER stock_movements_id BEFORE INSERT ON stock_movements
	FOR EACH ROW EXECUTE FUNCTION next_store_id();
CREATE TRIGGER outbox_id BEFORE INSERT ON outbox
	FOR EACH ROW EXECUTE FUNCTION next_store_id();
CREATE TRIGGER notifications_id BEFORE INSERT ON notifications
	FOR EACH ROW EXECUTE FUNCTION next_store_id();
