package migration_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

// twoTenants returns a database with the products table migrated into
// schema app and one row for each of two tenants, a and b.
func twoTenants(t *testing.T) (e *env, a, b tenant.ID) {
	t.Helper()
	ctx := context.Background()
	e = setup(t)
	m := e.migrator(t, files("001_products.up.sql", productsSQL), migration.Config{})
	if _, err := m.Apply(ctx, e.conn, e.target("app")); err != nil {
		t.Fatal(err)
	}
	a, b = tenant.NewID(), tenant.NewID()
	for _, id := range []tenant.ID{a, b} {
		err := asTenant(ctx, e.conn, e.grantee, &id, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO app.products (id, sku) VALUES (1, $1)`, id.String())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return e, a, b
}

// TestSignedContext: the policies see a tenant only through a context signed
// with the installation's key for the role in force (SECURITY.md, I31).
// Every forged context matches no row and allows no write; the way a tenant
// handle signs matches the way the database verifies.
func TestSignedContext(t *testing.T) {
	ctx := context.Background()
	e, a, b := twoTenants(t)
	hour := time.Now().Add(time.Hour)
	otherKey := []byte("another installation's key......")
	cases := []struct {
		name     string
		id, sig  string
		role     string // SET LOCAL ROLE before the context is read; "" the grantee
		want     int    // rows of app.products visible
		wantSeen string // the tenant_id of what is seen
	}{
		{"signed", a.String(), migration.SignContext(testContextKey, a.String(), e.grantee, hour), "", 1, a.String()},
		{"unsigned", b.String(), "", "", 0, ""},
		{"a's signature with b's id", b.String(), migration.SignContext(testContextKey, a.String(), e.grantee, hour), "", 0, ""},
		{"signed for another role", a.String(), migration.SignContext(testContextKey, a.String(), "none", hour), "", 0, ""},
		{"signed, then another role", a.String(), migration.SignContext(testContextKey, a.String(), e.grantee, hour), e.owner, 0, ""},
		{"expired", a.String(), migration.SignContext(testContextKey, a.String(), e.grantee, time.Now().Add(-time.Second)), "", 0, ""},
		{"another key", a.String(), migration.SignContext(otherKey, a.String(), e.grantee, hour), "", 0, ""},
		{"garbage signature", a.String(), "9999999999.zz", "", 0, ""},
		{"expiry out of range", a.String(), "99999999999999999999.00", "", 0, ""},
		{"upper-case id", "A" + a.String()[1:], migration.SignContext(testContextKey, "A"+a.String()[1:], e.grantee, hour), "", 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := pgx.BeginFunc(ctx, e.conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(e.grantee)); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true), set_config('landlord.tenant_sig', $2, true)`, c.id, c.sig); err != nil {
					return err
				}
				if c.role != "" {
					if _, err := tx.Exec(ctx, "RESET ROLE; SET LOCAL ROLE "+ident.Quote(c.role)); err != nil {
						return err
					}
				}
				var n int
				var seen string
				if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(min(tenant_id::text), '') FROM app.products`).Scan(&n, &seen); err != nil {
					return err
				}
				if n != c.want || seen != c.wantSeen {
					t.Errorf("sees %d rows of %q, want %d of %q", n, seen, c.want, c.wantSeen)
				}
				// No context here writes a row for b.
				sp, err := tx.Begin(ctx)
				if err != nil {
					return err
				}
				defer sp.Rollback(ctx)
				_, err = sp.Exec(ctx, `INSERT INTO app.products (tenant_id, id, sku) VALUES ($1, 2, 'forged')`, b)
				if !isCode(err, pgerrcode.InsufficientPrivilege) {
					t.Errorf("a write for b: %v, want refused by row-level security", err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("key out of reach", func(t *testing.T) {
		for _, sql := range []string{
			`SELECT inner_pad FROM landlord_context.key`,
			`CREATE OR REPLACE VIEW landlord_context.verified AS SELECT NULL::uuid AS tenant_id`,
			`ALTER VIEW landlord_context.verified SET (security_barrier = false)`,
			`CREATE OR REPLACE FUNCTION landlord_context.tenant_id() RETURNS uuid LANGUAGE sql AS 'SELECT NULL::uuid'`,
			fmt.Sprintf(`SELECT landlord_context.sign(%s, 'none')`, ident.Literal(b.String())),
			fmt.Sprintf(`SELECT landlord_context.enter(%s)`, ident.Literal(b.String())),
			`ALTER FUNCTION landlord_context.tenant_id() SECURITY INVOKER`,
			`CREATE FUNCTION landlord_context.x() RETURNS int LANGUAGE sql AS 'SELECT 1'`,
		} {
			err := pgx.BeginFunc(ctx, e.conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(e.grantee)); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, sql)
				return err
			})
			if !isCode(err, pgerrcode.InsufficientPrivilege) {
				t.Errorf("%s as the grantee: %v, want permission denied", sql, err)
			}
		}
	})

	t.Run("view shows the tenant alone", func(t *testing.T) {
		// The view runs as its owner over the key: it must show nothing
		// but the verified tenant.
		var cols []string
		rows, err := e.conn.Query(ctx, `SELECT attname FROM pg_attribute WHERE attrelid = 'landlord_context.verified'::regclass AND attnum > 0 ORDER BY attnum`)
		if err != nil {
			t.Fatal(err)
		}
		if cols, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		if len(cols) != 1 || cols[0] != "tenant_id" {
			t.Errorf("the view's columns: %q, want tenant_id alone", cols)
		}
	})

	t.Run("enter", func(t *testing.T) {
		// The owner's (and so the administrator's) way into a tenant.
		err := pgx.BeginFunc(ctx, e.conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(e.owner)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "SELECT landlord_context.enter($1)", b); err != nil {
				return err
			}
			var seen string
			if err := tx.QueryRow(ctx, `SELECT tenant_id::text FROM app.products`).Scan(&seen); err != nil {
				return err
			}
			if seen != b.String() {
				t.Errorf("enter(b) sees %s", seen)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("new key", func(t *testing.T) {
		// A session that verified with the old key verifies with the new
		// one after the key changes.
		c := e.connect(t)
		check := func(key []byte) int {
			t.Helper()
			var n int
			err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(e.grantee)); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true), set_config('landlord.tenant_sig', $2, true)`,
					a.String(), migration.SignContext(key, a.String(), e.grantee, hour)); err != nil {
					return err
				}
				return tx.QueryRow(ctx, `SELECT count(*) FROM app.products`).Scan(&n)
			})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := check(testContextKey); n != 1 {
			t.Fatalf("old key: %d rows, want 1", n)
		}
		if err := migration.InstallContext(ctx, e.conn, e.owner, otherKey); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := migration.InstallContext(ctx, e.conn, e.owner, testContextKey); err != nil {
				t.Error(err)
			}
		})
		if n := check(testContextKey); n != 0 {
			t.Errorf("old key after the change: %d rows, want 0", n)
		}
		if n := check(otherKey); n != 1 {
			t.Errorf("new key: %d rows, want 1", n)
		}
	})

	t.Run("short key", func(t *testing.T) {
		if err := migration.InstallContext(ctx, e.conn, e.owner, []byte("short")); err == nil {
			t.Error("a 5-byte key was accepted")
		}
	})
}

// TestContextCheck: the check is a setting of the database's verifier. Set
// to unsigned, the policies take landlord.tenant_id as it is set, so that
// a forged id reads the other tenant (the trade-off it documents); set back
// to signed, the forgery sees nothing again. Sessions with cached plans
// follow each change, a new key keeps the check, and a bad value changes
// nothing.
func TestContextCheck(t *testing.T) {
	ctx := context.Background()
	e, a, b := twoTenants(t)
	// c keeps its cached plans across the changes.
	c := e.connect(t)
	hour := time.Now().Add(time.Hour)
	signedA := migration.SignContext(testContextKey, a.String(), e.grantee, hour)
	sees := func(id, sig string) string {
		t.Helper()
		var seen string
		err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(e.grantee)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true), set_config('landlord.tenant_sig', $2, true)`, id, sig); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `SELECT coalesce(string_agg(tenant_id::text, ','), '') FROM app.products`).Scan(&seen)
		})
		if err != nil {
			t.Fatal(err)
		}
		return seen
	}
	checkIs := func(want migration.ContextCheck) {
		t.Helper()
		got, ok, err := migration.ReadContextCheck(ctx, e.conn)
		if err != nil || !ok || got != want {
			t.Fatalf("ReadContextCheck = %q, %t, %v; want %q", got, ok, err, want)
		}
	}
	checkIs(migration.ContextSigned)
	if got := sees(a.String(), signedA); got != a.String() {
		t.Fatalf("signed a sees %q", got)
	}
	if got := sees(b.String(), signedA); got != "" {
		t.Fatalf("signed: b's id with a's signature sees %q", got)
	}

	if err := migration.SetContextCheck(ctx, e.conn, e.owner, testContextKey, migration.ContextUnsigned); err != nil {
		t.Fatal(err)
	}
	checkIs(migration.ContextUnsigned)
	if got := sees(a.String(), signedA); got != a.String() {
		t.Errorf("unsigned: signed a sees %q", got)
	}
	if got := sees(b.String(), ""); got != b.String() {
		t.Errorf("unsigned: b's id without a signature sees %q, want b's row (what the setting gives up)", got)
	}
	if got := sees("", ""); got != "" {
		t.Errorf("unsigned: no tenant sees %q", got)
	}
	// Neither a new key nor a repeated install turns it back.
	if err := migration.InstallContext(ctx, e.conn, e.owner, []byte("another installation's key......")); err != nil {
		t.Fatal(err)
	}
	if err := migration.InstallContext(ctx, e.conn, e.owner, testContextKey); err != nil {
		t.Fatal(err)
	}
	checkIs(migration.ContextUnsigned)

	if err := migration.SetContextCheck(ctx, e.conn, e.owner, testContextKey, "none"); err == nil {
		t.Error(`SetContextCheck("none") succeeded`)
	}
	checkIs(migration.ContextUnsigned)

	if err := migration.SetContextCheck(ctx, e.conn, e.owner, testContextKey, migration.ContextSigned); err != nil {
		t.Fatal(err)
	}
	checkIs(migration.ContextSigned)
	if got := sees(b.String(), ""); got != "" {
		t.Errorf("signed again: b's id without a signature sees %q", got)
	}
	if got := sees(a.String(), signedA); got != a.String() {
		t.Errorf("signed again: signed a sees %q", got)
	}

	// A tenant role cannot change the check.
	err := pgx.BeginFunc(ctx, e.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(e.grantee)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `COMMENT ON VIEW landlord_context.verified IS 'unsigned'`)
		return err
	})
	if !isCode(err, pgerrcode.InsufficientPrivilege) {
		t.Errorf("the grantee comments on the verifier: %v, want permission denied", err)
	}
}
