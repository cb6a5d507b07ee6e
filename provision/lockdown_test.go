package provision

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/tenant"
)

// publicPrivileges are what bootstrap revokes from PUBLIC in each database
// it administers, as has_*_privilege questions.
var publicPrivileges = map[string]string{
	"PL/pgSQL":         `SELECT has_language_privilege('public', 'plpgsql', 'USAGE')`,
	"lo_get":           `SELECT has_function_privilege('public', 'pg_catalog.lo_get(oid)', 'EXECUTE')`,
	"lo_from_bytea":    `SELECT has_function_privilege('public', 'pg_catalog.lo_from_bytea(oid, bytea)', 'EXECUTE')`,
	"pg_stat_activity": `SELECT has_table_privilege('public', 'pg_catalog.pg_stat_activity', 'SELECT')`,
	"query text":       `SELECT has_function_privilege('public', 'pg_catalog.pg_stat_get_backend_activity(integer)', 'EXECUTE')`,
	"cancel":           `SELECT has_function_privilege('public', 'pg_catalog.pg_cancel_backend(integer)', 'EXECUTE')`,
	"terminate":        `SELECT has_function_privilege('public', 'pg_catalog.pg_terminate_backend(integer, bigint)', 'EXECUTE')`,
	"two-key locks":    `SELECT ` + twoKeyLocksPublicSQL,
}

// TestLockDown bootstraps with a superuser as the administrator: PUBLIC
// loses PL/pgSQL, the large-object functions, other sessions' query text and
// the two-key advisory locks in the control database and in a new tenant database (a copy of the
// template database), and the owner keeps PL/pgSQL. An administrator that
// is not a superuser cannot revoke them, and bootstrap still succeeds.
func TestLockDown(t *testing.T) {
	t.Parallel()
	e := setup(t, 0) // the administrator is not a superuser
	if !queryBool(t, e.pool, publicPrivileges["PL/pgSQL"]) {
		t.Fatal("PUBLIC lost PL/pgSQL before a superuser bootstrapped: the test proves nothing")
	}
	super := openPool(t, e.db.AdminURL, 0)
	p, err := New(t.Context(), super, testMigrations(), Config{})
	if err != nil {
		t.Fatalf("bootstrap as a superuser: %v", err)
	}
	tn, err := p.Create(t.Context(), Request{Slug: "locked-down", Model: tenant.ModelDatabase})
	if err != nil {
		t.Fatal(err)
	}
	// The administrator that is not a superuser still takes Landlord's
	// locks, as a member of the owner role: it provisions, and migrates.
	own, err := New(t.Context(), e.pool, testMigrations(), Config{})
	if err != nil {
		t.Fatalf("open as the administrator after the lock-down: %v", err)
	}
	for _, m := range []tenant.Model{tenant.ModelSchema, tenant.ModelDatabase} {
		if _, err := own.Create(t.Context(), Request{Slug: "after-lock-down-" + string(m), Model: m}); err != nil {
			t.Fatalf("create a %s tenant as the administrator after the lock-down: %v", m, err)
		}
	}
	tdb := openPool(t, e.db.Server.AdminURL(tn.Database), 0)
	for name, q := range map[string]interface {
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	}{"control database": super, "tenant database": tdb} {
		for what, sql := range publicPrivileges {
			if queryBool(t, q, sql) {
				t.Errorf("%s: PUBLIC keeps %s", name, what)
			}
		}
		if !queryBool(t, q, `SELECT has_language_privilege('landlord_owner', 'plpgsql', 'USAGE')`) {
			t.Errorf("%s: the owner lost PL/pgSQL", name)
		}
		if !queryBool(t, q, `SELECT has_function_privilege('landlord_owner', 'pg_catalog.pg_try_advisory_xact_lock(integer, integer)', 'EXECUTE')
			AND has_function_privilege('landlord_owner', 'pg_catalog.pg_advisory_unlock_shared(integer, integer)', 'EXECUTE')`) {
			t.Errorf("%s: the owner lost the two-key advisory locks", name)
		}
	}
}
