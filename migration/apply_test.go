package migration_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

func TestApplyTenantTarget(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	m := e.migrator(t, shop(), migration.Config{})
	target := e.target("app")

	res, err := m.Apply(ctx, e.conn, target)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if res.From != 0 || res.To != 3 || !equalInts(res.Applied, []int{1, 2, 3}) {
		t.Fatalf("Apply = %+v, want from 0 to 3 applying [1 2 3]", res)
	}
	if got := e.tables(t, "app"); strings.Join(got, ",") != "orders,products" {
		t.Fatalf("tables in app = %v, want [orders products]", got)
	}
	for _, s := range []string{"public", "landlord"} {
		for _, tb := range e.tables(t, s) {
			if tb != "target_migrations" {
				t.Errorf("table %s.%s created outside the target", s, tb)
			}
		}
	}

	t.Run("ledger", func(t *testing.T) {
		rows, err := e.conn.Query(ctx, `SELECT version, name, checksum FROM landlord.target_migrations WHERE target = 'app' ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		type rec struct {
			Version        int
			Name, Checksum string
		}
		recs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[rec])
		if err != nil {
			t.Fatal(err)
		}
		migs := m.Set().Migrations()
		if len(recs) != len(migs) {
			t.Fatalf("ledger has %d rows, want %d", len(recs), len(migs))
		}
		for i, mg := range migs {
			if got := recs[i]; got.Version != mg.Version || got.Name != mg.Name || got.Checksum != mg.Checksum {
				t.Errorf("ledger row %+v, want version %d name %s checksum %s", got, mg.Version, mg.Name, mg.Checksum)
			}
		}
	})

	t.Run("row level security", func(t *testing.T) {
		rows, err := e.conn.Query(ctx, `SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner)
			FROM pg_class c WHERE c.relnamespace = 'app'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var name, owner string
			var rls, force bool
			if err := rows.Scan(&name, &rls, &force, &owner); err != nil {
				t.Fatal(err)
			}
			n++
			if !rls || !force {
				t.Errorf("%s: row level security enabled=%v forced=%v, want both", name, rls, force)
			}
			if owner != e.owner {
				t.Errorf("%s is owned by %s, want %s", name, owner, e.owner)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Fatalf("checked %d tables, want 2", n)
		}
	})

	t.Run("policies", func(t *testing.T) {
		for _, table := range []string{"products", "orders"} {
			rows, err := e.conn.Query(ctx, `SELECT policyname::text, permissive, roles::text[], cmd, qual, with_check
				FROM pg_policies WHERE schemaname = 'app' AND tablename = $1 ORDER BY policyname`, table)
			if err != nil {
				t.Fatal(err)
			}
			type policy struct {
				Name, Permissive string
				Roles            []string
				Cmd, Qual, Check string
			}
			ps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[policy])
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != 2 {
				t.Fatalf("%s has %d policies, want 2: %+v", table, len(ps), ps)
			}
			want := map[string]string{migration.PolicyRestrictive: "RESTRICTIVE", migration.PolicyPermissive: "PERMISSIVE"}
			for _, p := range ps {
				if want[p.Name] != p.Permissive {
					t.Errorf("%s: policy %s is %s, want %s", table, p.Name, p.Permissive, want[p.Name])
				}
				if p.Cmd != "ALL" || strings.Join(p.Roles, ",") != "public" {
					t.Errorf("%s: policy %s is for %s to %v, want ALL to public", table, p.Name, p.Cmd, p.Roles)
				}
				for _, part := range []string{"tenant_id = ", "FROM " + migration.ContextView} {
					if !strings.Contains(p.Qual, part) {
						t.Errorf("%s: policy %s USING (%s) lacks %q", table, p.Name, p.Qual, part)
					}
				}
				if p.Check != p.Qual {
					t.Errorf("%s: policy %s WITH CHECK (%s) differs from USING (%s)", table, p.Name, p.Check, p.Qual)
				}
			}
			var def string
			err = e.conn.QueryRow(ctx, `SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d
				JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
				WHERE d.adrelid = format('app.%I', $1::text)::regclass AND a.attname = 'tenant_id'`, table).Scan(&def)
			if err != nil {
				t.Fatalf("%s: tenant_id default: %v", table, err)
			}
			if def != migration.ContextFunc {
				t.Errorf("%s: tenant_id default is %s, want the tenant context", table, def)
			}
		}
	})

	t.Run("privileges", func(t *testing.T) {
		want := map[string]bool{
			"SELECT": true, "INSERT": true, "UPDATE": true, "DELETE": true,
			"TRUNCATE": false, "REFERENCES": false, "TRIGGER": false,
		}
		for _, table := range []string{"app.products", "app.orders", "landlord.target_migrations"} {
			for priv, ok := range want {
				if table == "landlord.target_migrations" {
					ok = false
				}
				var has bool
				if err := e.conn.QueryRow(ctx, `SELECT has_table_privilege($1, $2, $3)`, e.grantee, table, priv).Scan(&has); err != nil {
					t.Fatal(err)
				}
				if has != ok {
					t.Errorf("grantee has %s on %s = %v, want %v", priv, table, has, ok)
				}
			}
		}
		var usage, create bool
		if err := e.conn.QueryRow(ctx, `SELECT has_schema_privilege($1, 'app', 'USAGE'), has_schema_privilege($1, 'app', 'CREATE')`,
			e.grantee).Scan(&usage, &create); err != nil {
			t.Fatal(err)
		}
		if !usage || create {
			t.Errorf("grantee on schema app: USAGE=%v CREATE=%v, want USAGE only", usage, create)
		}
	})

	t.Run("apply again", func(t *testing.T) {
		var before string
		if err := e.conn.QueryRow(ctx, `SELECT string_agg(applied_at::text, ',' ORDER BY version) FROM landlord.target_migrations`).Scan(&before); err != nil {
			t.Fatal(err)
		}
		res, err := m.Apply(ctx, e.conn, target)
		if err != nil {
			t.Fatalf("second apply: %v", err)
		}
		if res.From != 3 || res.To != 3 || len(res.Applied) != 0 {
			t.Fatalf("second Apply = %+v, want a no-op at version 3", res)
		}
		var after string
		if err := e.conn.QueryRow(ctx, `SELECT string_agg(applied_at::text, ',' ORDER BY version) FROM landlord.target_migrations`).Scan(&after); err != nil {
			t.Fatal(err)
		}
		if after != before {
			t.Errorf("ledger changed by a no-op apply: %s, then %s", before, after)
		}
		v, err := m.Version(ctx, e.conn, target)
		if err != nil || v != 3 {
			t.Errorf("Version = %d, %v, want 3", v, err)
		}
	})
}

// enterSigned sets the signed context of tenant id under role in tx, as the
// handle does.
func enterSigned(ctx context.Context, tx pgx.Tx, id tenant.ID, role string) error {
	_, err := tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true), set_config('landlord.tenant_sig', $2, true)`,
		id.String(), migration.SignContext(testContextKey, id.String(), role, time.Now().Add(time.Hour)))
	return err
}

// asTenant runs fn in a transaction as role with the tenant context set to
// id (none when id is nil), the way a tenant handle does.
func asTenant(ctx context.Context, conn *pgx.Conn, role string, id *tenant.ID, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(role)); err != nil {
			return err
		}
		if id != nil {
			if err := enterSigned(ctx, tx, *id, role); err != nil {
				return err
			}
		}
		return fn(tx)
	})
}

func count(ctx context.Context, tx pgx.Tx, sql string, args ...any) (int, error) {
	var n int
	err := tx.QueryRow(ctx, sql, args...).Scan(&n)
	return n, err
}

func TestApplyRowLevelBehaviour(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	if _, err := e.migrator(t, shop(), migration.Config{}).Apply(ctx, e.conn, e.target("app")); err != nil {
		t.Fatalf("apply: %v", err)
	}
	a, b := tenant.NewID(), tenant.NewID()
	seed := func(id tenant.ID, sku string) {
		t.Helper()
		err := asTenant(ctx, e.conn, e.grantee, &id, func(tx pgx.Tx) error {
			// tenant_id comes from the context through its default.
			if _, err := tx.Exec(ctx, `INSERT INTO app.products (id, sku, name) VALUES (1, $1, 'one'), (2, 'shared-sku', 'two')`, sku); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO app.orders (id, product_id, quantity) VALUES (1, 1, 3)`)
			return err
		})
		if err != nil {
			t.Fatalf("seed %s: %v", sku, err)
		}
	}
	seed(a, "sku-a")
	// The same business keys in another tenant do not collide (SECURITY.md, I12).
	seed(b, "sku-b")
	err := asTenant(ctx, e.conn, e.grantee, &b, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO app.products (id, sku, name) VALUES (3, 'sku-b-3', 'three')`)
		return err
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}

	wantPgError := func(t *testing.T, err error, code string) {
		t.Helper()
		if !isCode(err, code) {
			t.Fatalf("error = %v, want SQLSTATE %s", err, code)
		}
	}

	t.Run("sees only its rows", func(t *testing.T) {
		err := asTenant(ctx, e.conn, e.grantee, &a, func(tx pgx.Tx) error {
			n, err := count(ctx, tx, `SELECT count(*) FROM app.products`)
			if err != nil {
				return err
			}
			if n != 2 {
				t.Errorf("tenant A sees %d products, want 2", n)
			}
			n, err = count(ctx, tx, `SELECT count(*) FROM app.products WHERE tenant_id = $1 OR sku = 'sku-b'`, b)
			if err != nil {
				return err
			}
			if n != 0 {
				t.Errorf("tenant A sees %d rows of tenant B", n)
			}
			var owner tenant.ID
			if err := tx.QueryRow(ctx, `SELECT DISTINCT tenant_id FROM app.orders`).Scan(&owner); err != nil {
				return err
			}
			if owner != a {
				t.Errorf("tenant A sees orders of %s", owner)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("cannot write another tenant's row", func(t *testing.T) {
		err := asTenant(ctx, e.conn, e.grantee, &a, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO app.products (tenant_id, id, sku, name) VALUES ($1, 10, 'x', 'x')`, b)
			return err
		})
		wantPgError(t, err, pgerrcode.InsufficientPrivilege)
		if !strings.Contains(err.Error(), "row-level security") {
			t.Errorf("error = %v, want a row-level security violation", err)
		}
	})

	t.Run("cannot move a row to another tenant", func(t *testing.T) {
		err := asTenant(ctx, e.conn, e.grantee, &a, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE app.orders SET tenant_id = $1`, b)
			return err
		})
		wantPgError(t, err, pgerrcode.InsufficientPrivilege)
	})

	t.Run("cannot reference another tenant's row", func(t *testing.T) {
		err := asTenant(ctx, e.conn, e.grantee, &a, func(tx pgx.Tx) error {
			// Product 3 exists only for tenant B. The foreign key includes
			// tenant_id, so A's order cannot point at it.
			_, err := tx.Exec(ctx, `INSERT INTO app.orders (id, product_id, quantity) VALUES (2, 3, 1)`)
			return err
		})
		wantPgError(t, err, pgerrcode.ForeignKeyViolation)
	})

	t.Run("cannot delete another tenant's rows", func(t *testing.T) {
		err := asTenant(ctx, e.conn, e.grantee, &a, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `DELETE FROM app.orders WHERE tenant_id = $1`, b)
			if err == nil && tag.RowsAffected() != 0 {
				t.Errorf("tenant A deleted %d orders of tenant B", tag.RowsAffected())
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("cannot truncate", func(t *testing.T) {
		err := asTenant(ctx, e.conn, e.grantee, &a, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `TRUNCATE app.orders`)
			return err
		})
		wantPgError(t, err, pgerrcode.InsufficientPrivilege)
	})

	for _, c := range []struct {
		name    string
		setting *string
	}{
		{"no context", nil},
		{"empty context", new(string)},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, role := range []string{e.grantee, e.owner} {
				err := pgx.BeginFunc(ctx, e.conn, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(role)); err != nil {
						return err
					}
					if c.setting != nil {
						if _, err := tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true)`, *c.setting); err != nil {
							return err
						}
					}
					// The owner too: row level security is forced (SECURITY.md, I01).
					for _, table := range []string{"app.products", "app.orders"} {
						n, err := count(ctx, tx, `SELECT count(*) FROM `+table)
						if err != nil {
							return err
						}
						if n != 0 {
							t.Errorf("%s with %s sees %d rows of %s, want 0", role, c.name, n, table)
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				err = pgx.BeginFunc(ctx, e.conn, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(role)); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, `INSERT INTO app.products (tenant_id, id, sku, name) VALUES ($1, 20, 'y', 'y')`, a)
					return err
				})
				wantPgError(t, err, pgerrcode.InsufficientPrivilege)
			}
		})
	}

	// Nothing above changed tenant B's rows.
	err = asTenant(ctx, e.conn, e.grantee, &b, func(tx pgx.Tx) error {
		var products, orders int
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM app.products), (SELECT count(*) FROM app.orders)`).Scan(&products, &orders); err != nil {
			return err
		}
		if products != 3 || orders != 1 {
			t.Errorf("tenant B has %d products and %d orders, want 3 and 1", products, orders)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
