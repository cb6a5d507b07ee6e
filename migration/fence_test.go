package migration_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
)

// TestFence: a fenced placement refuses its tenant's new transactions with
// FenceCode, in both checks, while a transaction that began before the
// fence goes on, another tenant and the same tenant under another role are
// not touched, and Unfence opens it again.
func TestFence(t *testing.T) {
	for _, check := range []migration.ContextCheck{migration.ContextSigned, migration.ContextUnsigned} {
		t.Run(string(check), func(t *testing.T) {
			ctx := t.Context()
			e, a, b := twoTenants(t)
			if err := migration.SetContextCheck(ctx, e.conn, e.owner, testContextKey, check); err != nil {
				t.Fatal(err)
			}
			read := func(tx pgx.Tx) (int, error) {
				return count(ctx, tx, `SELECT count(*) FROM app.products`)
			}

			// A transaction of a that begins before the fence.
			early := e.connect(t)
			tx, err := early.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+e.grantee); err != nil {
				t.Fatal(err)
			}
			if err := enterSigned(ctx, tx, a, e.grantee); err != nil {
				t.Fatal(err)
			}

			if _, err := migration.Fence(ctx, e.conn, e.owner, a.String(), e.grantee); err != nil {
				t.Fatal(err)
			}
			if n, err := read(tx); err != nil || n != 1 {
				t.Errorf("a transaction begun before the fence: %d rows, %v; want 1, nil", n, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO app.products (id, sku) VALUES (2, 'early')`); err != nil {
				t.Errorf("a transaction begun before the fence cannot write: %v", err)
			}

			for name, sql := range map[string]string{
				"read":  `SELECT count(*) FROM app.products`,
				"write": `INSERT INTO app.products (id, sku) VALUES (3, 'late') RETURNING 1`,
			} {
				err := asTenant(ctx, e.conn, e.grantee, &a, func(tx pgx.Tx) error {
					_, err := count(ctx, tx, sql)
					return err
				})
				if pe := (*pgconn.PgError)(nil); !errors.As(err, &pe) || pe.Code != migration.FenceCode {
					t.Errorf("%s after the fence: %v, want SQLSTATE %s", name, err, migration.FenceCode)
				}
			}
			if err := asTenant(ctx, e.conn, e.grantee, &b, func(tx pgx.Tx) error {
				n, err := read(tx)
				if err == nil && n != 1 {
					t.Errorf("another tenant sees %d rows, want 1", n)
				}
				return err
			}); err != nil {
				t.Errorf("another tenant is fenced too: %v", err)
			}
			// The fence names a's role: a under the owner's role is not fenced.
			if err := asTenant(ctx, e.conn, e.owner, &a, func(tx pgx.Tx) error {
				_, err := count(ctx, tx, `SELECT count(*) FROM landlord_context.verified WHERE tenant_id IS NOT NULL`)
				return err
			}); err != nil {
				t.Errorf("a under another role: %v", err)
			}
			fences, err := migration.Fenced(ctx, e.conn, e.owner)
			if err != nil || len(fences) != 1 {
				t.Errorf("Fenced = %v, %v; want a's fence", fences, err)
			}

			if err := migration.Unfence(ctx, e.conn, e.owner, a.String(), e.grantee); err != nil {
				t.Fatal(err)
			}
			if err := asTenant(ctx, e.conn, e.grantee, &a, func(tx pgx.Tx) error {
				_, err := read(tx)
				return err
			}); err != nil {
				t.Errorf("after Unfence: %v", err)
			}
			var keys, times int
			if err := e.conn.QueryRow(ctx, `SELECT cardinality(fence_keys), cardinality(fence_since) FROM landlord_context.key`).Scan(&keys, &times); err != nil || keys != 0 || times != 0 {
				t.Errorf("after the last fence went the key row holds %d fence keys and %d times (%v); want none", keys, times, err)
			}
		})
	}
}

// TestFencesOfAnEarlierVersion: a database whose context an earlier version
// made, with its fences in a table of their own, keeps every fence and its
// time when the context is installed again, and the table and the old
// column are gone.
func TestFencesOfAnEarlierVersion(t *testing.T) {
	ctx := t.Context()
	e, a, b := twoTenants(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e.exec(t, `SET ROLE `+ident.Quote(e.owner)+`;
		CREATE TABLE landlord_context.fences (tenant_id uuid NOT NULL, role text NOT NULL, since timestamptz NOT NULL, PRIMARY KEY (tenant_id, role));
		ALTER TABLE landlord_context.key ADD COLUMN fenced boolean NOT NULL DEFAULT false;
		UPDATE landlord_context.key SET fenced = true;
		COMMENT ON SCHEMA landlord_context IS 'landlord tenant context 4';
		RESET ROLE`)
	e.exec(t, `INSERT INTO landlord_context.fences VALUES ($1, $2, $3), ($4, 'none', $3)`, a, e.grantee, at, b)

	if err := migration.InstallContext(ctx, e.conn, e.owner, testContextKey); err != nil {
		t.Fatal(err)
	}
	fences, err := migration.Fenced(ctx, e.conn, e.owner)
	want := map[string]time.Time{a.String() + "|" + e.grantee: at, b.String() + "|none": at}
	if err != nil || len(fences) != len(want) {
		t.Fatalf("Fenced = %v, %v; want %v", fences, err, want)
	}
	for k, w := range want {
		if !fences[k].Equal(w) {
			t.Errorf("fence %s at %v, want %v", k, fences[k], w)
		}
	}
	err = asTenant(ctx, e.conn, e.grantee, &a, func(tx pgx.Tx) error {
		_, err := count(ctx, tx, `SELECT count(*) FROM app.products`)
		return err
	})
	if pe := (*pgconn.PgError)(nil); !errors.As(err, &pe) || pe.Code != migration.FenceCode {
		t.Errorf("a after the upgrade: %v, want SQLSTATE %s", err, migration.FenceCode)
	}
	var table, column bool
	if err := e.conn.QueryRow(ctx, `SELECT to_regclass('landlord_context.fences') IS NOT NULL,
		EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'landlord_context.key'::regclass AND attname = 'fenced' AND NOT attisdropped)`).Scan(&table, &column); err != nil {
		t.Fatal(err)
	}
	if table || column {
		t.Errorf("after the upgrade: fences table %v, fenced column %v; want neither", table, column)
	}
}
