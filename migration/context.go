package migration

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
)

// The tenant context is signed, so that SQL running inside one tenant's
// transaction cannot take on another tenant's (SECURITY.md, I31).
//
// A transaction's tenant lives in two transaction-local settings:
// landlord.tenant_id, the tenant's id, and landlord.tenant_sig, which is
// "<expiry>.<mac>": the expiry in Unix seconds and the hex HMAC-SHA256, under
// the installation's context key, of "<tenant id>|<role>|<expiry>". The role
// is the value of the role setting the transaction runs under: "none" for
// the row and database models (the connection's own login role), the
// tenant's role in the schema model.
//
// The policies do not read landlord.tenant_id: they compare tenant_id with
// the one column of ContextView, which is the id only when the signature
// verifies for the role in force and has not expired, and NULL otherwise.
// Any role may read the view and set both settings, but only a holder of
// the key can sign: the key is in a table that only the owner role may
// read, and the view reads it with its owner's rights, as every view does.
// So set_config of another tenant's id, SET ROLE to another tenant's role,
// or RESET ROLE, from a statement, an expression or a DO block, yields a
// context that matches no row and allows no write. Binding the role closes
// the schema model: tenant A switching to B's role keeps A's signature,
// which no longer verifies.
//
// Cost: the predicate's scalar subquery is an init plan, run once per
// statement, not per row: one read of the one-row key table and two
// SHA-256 digests of a few dozen bytes. A view is what PostgreSQL plans
// inline; the first version, a SECURITY DEFINER PL/pgSQL function, cost
// more than twice as much per statement, and in the schema model it was
// re-planned whenever the search path changed, which is every transaction
// (the numbers are in the README's benchmark section).

// ContextSchema holds the tenant context's key, the view that verifies it
// and the functions around them.
const ContextSchema = "landlord_context"

// ContextView has one row and one column, tenant_id: the tenant of the
// current transaction whose signed context verifies, or NULL.
const ContextView = ContextSchema + ".verified"

// ContextFunc returns ContextView's tenant_id, for column defaults, which
// take no subquery.
const ContextFunc = ContextSchema + ".tenant_id()"

// The settings that carry the tenant context.
const (
	TenantSetting    = "landlord.tenant_id"
	SignatureSetting = "landlord.tenant_sig"
)

// ContextLifetime is how long a signature stays valid. A signature seen by
// someone it was not meant for (a server log that records parameters)
// opens its tenant for no longer than this. Signers renew well before the
// end, so the server's and the signer's clocks may differ by up to half of
// it.
const ContextLifetime = time.Hour

// ContextKeySize is the size of a context key in bytes.
const ContextKeySize = 32

// SignContext returns the value of SignatureSetting for tenant id (its
// canonical text form) under role ("none" for the connection's own login
// role) that expires at expires, signed with key.
func SignContext(key []byte, id, role string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "|" + role + "|" + exp))
	return exp + "." + hex.EncodeToString(m.Sum(nil))
}

// contextSQL creates the context schema, its key, the view that verifies
// and the functions, as the owner. The key table is the owner's alone; the
// view reads it with its owner's rights (a view runs as its owner) and
// shows every role one column, the verified tenant of that role's own
// settings; it is a security barrier, so no caller's function sees a row
// of it before its own conditions do. sign and enter, which make a valid
// context for any tenant, are the owner's (and so the administrator's).
//
// Every function and operator is named with pg_catalog; a view binds its
// names when it is made, so no search path a caller sets redirects it.
// sign pins its search path as well; enter cannot, since a function with a
// pinned path undoes on return the settings it made, which is all enter
// does (the audit knows it by its name, schema and owner). The
// checks are nested CASEs, whose order PostgreSQL keeps: the expiry is
// parsed only once it is digits, the id cast only once the signature
// matched.
var contextSQL = `
CREATE SCHEMA IF NOT EXISTS landlord_context;
REVOKE ALL ON SCHEMA landlord_context FROM PUBLIC;
GRANT USAGE ON SCHEMA landlord_context TO PUBLIC;
CREATE TABLE IF NOT EXISTS landlord_context.key (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	inner_pad bytea NOT NULL,
	outer_pad bytea NOT NULL
);
REVOKE ALL ON TABLE landlord_context.key FROM PUBLIC;
-- A tenant's placement in this database that a move has closed (Fence):
-- transactions of the tenant under a role that began at or after its time
-- are refused with FenceCode. fence_keys holds "<tenant id>|<role>",
-- fence_since the time at the same position. They live in the key row,
-- which the verifier reads anyway, so checking them is an expression on
-- that row, not a subquery planned with every statement. The owner, which
-- copies and removes what is fenced, enters tenants under its own role,
-- which no fence names.
ALTER TABLE landlord_context.key
	ADD COLUMN IF NOT EXISTS fence_keys text[] NOT NULL DEFAULT '{}',
	ADD COLUMN IF NOT EXISTS fence_since timestamptz[] NOT NULL DEFAULT '{}';

CREATE OR REPLACE FUNCTION landlord_context.fenced(tenant text) RETURNS uuid
	LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
BEGIN
	RAISE EXCEPTION 'tenant % is moving: its placement here is closed', tenant
		USING ERRCODE = '` + FenceCode + `', HINT = 'retry: the tenant is served at its new placement once the move finishes';
END
$fn$;
REVOKE ALL ON FUNCTION landlord_context.fenced(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION landlord_context.fenced(text) TO PUBLIC;

-- what an earlier version verified with
DROP FUNCTION IF EXISTS landlord_context.mac(text), landlord_context.inner_pad(), landlord_context.outer_pad();

` + signedViewSQL + `REVOKE ALL ON landlord_context.verified FROM PUBLIC;
GRANT SELECT ON landlord_context.verified TO PUBLIC;

-- Version 4 kept the fences in a table of their own, which the verifier
-- read with a subquery; they move into the key row.
DO $fn$
BEGIN
	IF pg_catalog.to_regclass('landlord_context.fences') IS NOT NULL THEN
		UPDATE landlord_context.key SET (fence_keys, fence_since) = (
			SELECT coalesce(pg_catalog.array_agg(f.tenant_id::text || '|' || f.role ORDER BY f.since, f.tenant_id, f.role), '{}'),
			       coalesce(pg_catalog.array_agg(f.since ORDER BY f.since, f.tenant_id, f.role), '{}')
			FROM landlord_context.fences f);
		DROP TABLE landlord_context.fences;
	END IF;
END
$fn$;
ALTER TABLE landlord_context.key DROP COLUMN IF EXISTS fenced;

-- The same, as a function: for column defaults, which take no subquery,
-- and for SQL that wants the verified tenant. PL/pgSQL keeps the plan of
-- its query for the session; a SQL function's query was planned again on
-- every statement that called it, which was a fifth of an INSERT's server
-- time. The pinned search path keeps that plan from being made again
-- whenever the caller's path differs from the one it was made under
-- (every transaction in the schema model).
CREATE OR REPLACE FUNCTION landlord_context.tenant_id() RETURNS uuid
	LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
	RETURN (SELECT v.tenant_id FROM landlord_context.verified v);
END
$fn$;
REVOKE ALL ON FUNCTION landlord_context.tenant_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION landlord_context.tenant_id() TO PUBLIC;

-- sign and enter make a valid context for any tenant: for Landlord's own
-- administrative work and for tests, never for tenant roles.
CREATE OR REPLACE FUNCTION landlord_context.sign(tenant uuid, role text) RETURNS text
	LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $fn$
	SELECT e OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||)
		pg_catalog.encode(pg_catalog.sha256(k.outer_pad OPERATOR(pg_catalog.||) pg_catalog.sha256(k.inner_pad OPERATOR(pg_catalog.||)
			pg_catalog.convert_to(tenant::pg_catalog.text OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) role
				OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) e, 'UTF8'))), 'hex')
	FROM landlord_context.key k,
		(SELECT (pg_catalog.date_part('epoch', pg_catalog.now())::pg_catalog.int8 OPERATOR(pg_catalog.+) ` + lifetimeSeconds + `)::pg_catalog.text) x(e)
$fn$;
REVOKE ALL ON FUNCTION landlord_context.sign(uuid, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION landlord_context.enter(tenant uuid) RETURNS void
	LANGUAGE sql VOLATILE SECURITY DEFINER AS $fn$
	SELECT pg_catalog.set_config('landlord.tenant_id', tenant::pg_catalog.text, true),
	       pg_catalog.set_config('landlord.tenant_sig', landlord_context.sign(tenant, pg_catalog.current_setting('role')), true)
$fn$;
REVOKE ALL ON FUNCTION landlord_context.enter(uuid) FROM PUBLIC;
COMMENT ON SCHEMA landlord_context IS '` + ContextVersion + `';
`

// signedViewSQL makes the verifier of ContextSigned.
const signedViewSQL = `CREATE OR REPLACE VIEW landlord_context.verified WITH (security_barrier) AS
SELECT CASE WHEN pg_catalog.split_part(pg_catalog.current_setting('landlord.tenant_sig', true), '.', 1) OPERATOR(pg_catalog.~) '^[0-9]{1,15}$' THEN
	CASE WHEN pg_catalog.split_part(pg_catalog.current_setting('landlord.tenant_sig', true), '.', 1)::pg_catalog.int8
	          OPERATOR(pg_catalog.>) pg_catalog.date_part('epoch', pg_catalog.now())::pg_catalog.int8
	      AND pg_catalog.split_part(pg_catalog.current_setting('landlord.tenant_sig', true), '.', 2) OPERATOR(pg_catalog.=)
	          pg_catalog.encode(pg_catalog.sha256(k.outer_pad OPERATOR(pg_catalog.||) pg_catalog.sha256(k.inner_pad OPERATOR(pg_catalog.||)
	              pg_catalog.convert_to(pg_catalog.current_setting('landlord.tenant_id', true) OPERATOR(pg_catalog.||) '|'
	                  OPERATOR(pg_catalog.||) pg_catalog.current_setting('role') OPERATOR(pg_catalog.||) '|'
	                  OPERATOR(pg_catalog.||) pg_catalog.split_part(pg_catalog.current_setting('landlord.tenant_sig', true), '.', 1), 'UTF8'))), 'hex')
	THEN ` + fenceCheck + ` END
END AS tenant_id
FROM landlord_context.key k;
`

// lifetimeSeconds is ContextLifetime in seconds, as SQL text.
var lifetimeSeconds = strconv.Itoa(int(ContextLifetime / time.Second))

// contextKeySQL stores the key's padded blocks ($1 inner, $2 outer).
const contextKeySQL = `INSERT INTO landlord_context.key (inner_pad, outer_pad) VALUES ($1, $2)
	ON CONFLICT (one) DO UPDATE SET inner_pad = EXCLUDED.inner_pad, outer_pad = EXCLUDED.outer_pad`

// contextStateSQL reports whether the context is installed with key blocks
// $1 and $2: the verifier and enter functions exist, made by this version,
// and the key is there.
const contextStateSQL = `SELECT to_regprocedure('landlord_context.tenant_id()') IS NOT NULL
	AND to_regprocedure('landlord_context.enter(uuid)') IS NOT NULL
	AND obj_description('landlord_context'::regnamespace, 'pg_namespace') = '` + ContextVersion + `'
	AND (SELECT count(*) FROM landlord_context.key WHERE inner_pad = $1 AND outer_pad = $2) = 1`

// ContextCheck is how the policies check the tenant context: the
// installation-wide setting that trades forgery resistance for cost
// (README, "The signed tenant context").
type ContextCheck string

const (
	// ContextSigned, the default: the policies see a tenant only through
	// a context signed for the role in force. SQL inside one tenant's
	// transaction cannot take on another's.
	ContextSigned ContextCheck = "signed"
	// ContextUnsigned: the policies take landlord.tenant_id as it is set,
	// as before the context was signed. It saves the key read and the two
	// digests per statement, and SQL inside one tenant's transaction that
	// sets another tenant's id, or switches to another tenant's role, acts
	// as that tenant (SECURITY.md, I31, the known gap it reopens). Signers
	// still sign, so switching back needs no restart.
	ContextUnsigned ContextCheck = "unsigned"
)

// ParseContextCheck returns the ContextCheck named s.
func ParseContextCheck(s string) (ContextCheck, error) {
	switch c := ContextCheck(s); c {
	case ContextSigned, ContextUnsigned:
		return c, nil
	}
	return "", fmt.Errorf("context check %q: want %q or %q", s, ContextSigned, ContextUnsigned)
}

// unsignedViewSQL replaces the verifier with one that takes the setting as
// it is. The view keeps its name, column and owner, so the policies that
// read it stay as they are, and replacing it invalidates every session's
// cached plans that read it.
const unsignedViewSQL = `CREATE OR REPLACE VIEW landlord_context.verified WITH (security_barrier) AS
SELECT CASE WHEN pg_catalog.current_setting('landlord.tenant_id', true) OPERATOR(pg_catalog.<>) '' THEN ` + fenceCheck + ` END AS tenant_id
FROM landlord_context.key k;
`

// fenceCheck is the verified tenant id (the setting, once the signature
// verified), or a FenceCode error when a move has fenced the tenant's
// placement here since before the transaction began (Fence). It is an
// expression on the key row the verifier reads already: with no fence in
// the database it costs one test of the array's length per statement.
//
// The fences are compared as text: the planner evaluates the setting when
// it estimates a condition, and a cast of an unset or garbled id to uuid
// would fail there, for every caller. A key not in the array has no
// position, so its time is NULL and the condition is not true.
const fenceCheck = `CASE WHEN pg_catalog.cardinality(k.fence_keys) OPERATOR(pg_catalog.>) 0
	  AND k.fence_since[pg_catalog.array_position(k.fence_keys, pg_catalog.current_setting('landlord.tenant_id', true)
	      OPERATOR(pg_catalog.||) '|' OPERATOR(pg_catalog.||) pg_catalog.current_setting('role'))] OPERATOR(pg_catalog.<=) pg_catalog.now()
	THEN landlord_context.fenced(pg_catalog.current_setting('landlord.tenant_id', true))
	ELSE pg_catalog.current_setting('landlord.tenant_id', true)::pg_catalog.uuid END`

// contextCheckSQL reads the check the verifier makes, from the view's
// comment; NULL when there is no context.
const contextCheckSQL = `SELECT CASE WHEN to_regclass('landlord_context.verified') IS NOT NULL
	THEN coalesce(obj_description(to_regclass('landlord_context.verified'), 'pg_class'), '') END`

// ContextVersion marks the schema with the version of contextSQL that
// made it, so that an installation made by an earlier one is replaced.
// What is built from tenant tables' policies (the clone script of the
// template schema) is keyed by it too.
const ContextVersion = "landlord tenant context 6"

// contextLock is the two-key advisory lock that serializes installations of
// the context in one database ("LLCX", 1; SECURITY.md, I26: namespaced keys).
const contextLock = `SELECT pg_advisory_xact_lock(1280066392, 1)`

// InstallContext creates or repairs the tenant context's schema, functions
// and key in the database conn is connected to, owned by owner, in one
// transaction. It changes nothing when all is in place. A new key replaces
// the old and the view is replaced with it, which invalidates every
// session's cached plan that reads it. The check in force stays: a context
// installed here for the first time is ContextSigned.
//
// The connecting role must be able to SET ROLE to owner.
func InstallContext(ctx context.Context, conn Beginner, owner string, key []byte) error {
	return installContext(ctx, conn, owner, key, "")
}

// SetContextCheck is InstallContext that also makes the verifier check the
// way check says, in the database conn is connected to. It changes nothing
// when all is in place already.
func SetContextCheck(ctx context.Context, conn Beginner, owner string, key []byte, check ContextCheck) error {
	if _, err := ParseContextCheck(string(check)); err != nil {
		return fmt.Errorf("install the tenant context: %w", err)
	}
	return installContext(ctx, conn, owner, key, check)
}

// ReadContextCheck returns the check the verifier makes in the database
// conn is connected to; ok is false when the database holds no tenant
// context. A verifier whose comment names no known check is reported as
// ContextCheck of that comment, for the caller to name.
func ReadContextCheck(ctx context.Context, conn Querier) (check ContextCheck, ok bool, err error) {
	var c *string
	if err := conn.QueryRow(ctx, contextCheckSQL).Scan(&c); err != nil {
		return "", false, fmt.Errorf("read the tenant context's check: %w", err)
	}
	if c == nil {
		return "", false, nil
	}
	return ContextCheck(*c), true, nil
}

// Beginner begins transactions: a *pgx.Conn, a pool or a transaction.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Querier runs a query that returns one row.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// installContext is InstallContext and SetContextCheck: check "" keeps the
// check in force.
func installContext(ctx context.Context, conn Beginner, owner string, key []byte, check ContextCheck) error {
	if len(key) != ContextKeySize {
		return fmt.Errorf("install the tenant context: a key of %d bytes, want %d", len(key), ContextKeySize)
	}
	inner, outer := hmacPads(key)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, contextLock); err != nil {
			return fmt.Errorf("lock the tenant context: %w", err)
		}
		var exists, ok bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass('landlord_context.key') IS NOT NULL`).Scan(&exists); err != nil {
			return fmt.Errorf("read the tenant context: %w", err)
		}
		if exists {
			if err := tx.QueryRow(ctx, contextStateSQL, inner, outer).Scan(&ok); err != nil {
				return fmt.Errorf("read the tenant context: %w", err)
			}
		}
		marked, _, err := ReadContextCheck(ctx, tx)
		if err != nil {
			return err
		}
		if check == "" {
			// Keep what is in force: unsigned only when it says so, so an
			// earlier version's verifier, which had no mark, is signed.
			check = ContextSigned
			if marked == ContextUnsigned {
				check = ContextUnsigned
			}
		}
		if ok && check == marked {
			return nil
		}
		sql := "SET LOCAL ROLE " + ident.Quote(owner) + ";"
		if !ok {
			sql += contextSQL
		}
		if check == ContextUnsigned {
			sql += unsignedViewSQL
		} else if ok {
			sql += signedViewSQL
		}
		sql += "COMMENT ON VIEW landlord_context.verified IS '" + string(check) + "';"
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("install the tenant context: %w", err)
		}
		if !ok {
			if _, err := tx.Exec(ctx, contextKeySQL, inner, outer); err != nil {
				return fmt.Errorf("store the tenant context key: %w", err)
			}
		}
		return nil
	})
}

// hmacPads returns the HMAC-SHA256 key blocks of key XORed with the inner
// and outer pads (RFC 2104), which the verifier hashes in front of the
// message and of the inner digest.
func hmacPads(key []byte) (inner, outer []byte) {
	const block = 64
	inner, outer = make([]byte, block), make([]byte, block)
	for i := range block {
		var k byte
		if i < len(key) {
			k = key[i]
		}
		inner[i], outer[i] = k^0x36, k^0x5c
	}
	return inner, outer
}
