package landlord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// The isolation cases that need Landlord's internals, which the test kit
// (package landlordtest, where every other case of the attack suite runs)
// cannot reach: switching a defense off here takes the connection manager
// and the routing cache themselves.

// createTenant, must and isCode serve the other tests of this package too.

func createTenant(t testing.TB, l *Landlord, slug string, m tenant.Model) tenant.Tenant {
	t.Helper()
	tn, err := l.CreateTenant(context.Background(), provision.Request{Slug: slug, Model: m})
	if err != nil {
		t.Fatalf("create %s tenant %s: %v", m, slug, err)
	}
	return tn
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// TestAttackI22StaleRouting: a tenant moved to another placement by hand in
// the directory is served from the new placement only: the route and the
// pool are keyed by the routing epoch. Its old pool still reaches the old
// placement, which is what a pool keyed by tenant alone would keep using.
// Pointed at another tenant's placement, its traffic meets the privilege
// layer (SECURITY.md, I22).
func TestAttackI22StaleRouting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, m := range []tenant.Model{tenant.ModelSchema, tenant.ModelDatabase} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			l, db := setup(t, Config{MaxConns: 1})
			a := createTenant(t, l, "alpha", m)
			b := createTenant(t, l, "bravo", m)
			dest := createTenant(t, l, "charlie", m)
			ctxA := WithTenant(ctx, a.ID)
			h := l.Handle()
			for _, s := range []struct {
				tn     tenant.Tenant
				secret string
			}{{a, "A-secret-1"}, {b, "CANARY-B-secret-1"}} {
				_, err := h.Exec(WithTenant(ctx, s.tn.ID), `INSERT INTO items (id, sku, secret) VALUES (1, 'sku-1', $1)`, s.secret)
				must(t, err)
			}
			canaries := []string{"CANARY-B", b.ID.String()}
			leaks := func(o any) bool {
				text := fmt.Sprint(o)
				for _, c := range canaries {
					if strings.Contains(text, c) {
						return true
					}
				}
				return false
			}
			// exec runs statements as the superuser at place: {s} is its
			// schema, {roleA} A's role, {A} A's id.
			supers := map[string]*pgx.Conn{}
			t.Cleanup(func() {
				for _, c := range supers {
					c.Close(context.Background())
				}
			})
			super := func(t *testing.T, database string) *pgx.Conn {
				if c, ok := supers[database]; ok {
					return c
				}
				c, err := pgx.Connect(ctx, db.Server.AdminURL(database))
				must(t, err)
				supers[database] = c
				return c
			}
			exec := func(t *testing.T, place tenant.Tenant, sqls ...string) {
				t.Helper()
				for _, sql := range sqls {
					sql = strings.NewReplacer("{s}", pgx.Identifier{place.Schema}.Sanitize(),
						"{roleA}", pgx.Identifier{a.ID.RoleName()}.Sanitize(), "{A}", a.ID.String()).Replace(sql)
					if _, err := super(t, place.Database).Exec(ctx, sql); err != nil {
						t.Fatalf("%s: %v", sql, err)
					}
				}
			}
			old, err := l.Tenant(ctx, a.ID)
			must(t, err)
			var oldPID int32
			must(t, h.QueryRow(ctxA, `SELECT pg_backend_pid()`).Scan(&oldPID))
			grantA := []string{
				`GRANT USAGE ON SCHEMA {s} TO {roleA}`,
				`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {roleA}`,
			}
			if m == tenant.ModelDatabase {
				grantA = append(grantA, `GRANT CONNECT ON DATABASE `+pgx.Identifier{dest.Database}.Sanitize()+` TO {roleA}`)
			}
			exec(t, dest, grantA...)
			exec(t, dest, `INSERT INTO {s}.items (tenant_id, id, sku, secret) VALUES ('{A}', 1, 'sku-1', 'A-moved-1')`)
			move := func(t *testing.T, to tenant.Tenant) {
				_, err := super(t, db.Name).Exec(ctx, `UPDATE landlord.tenants SET schema_name = $1, database_name = $2 WHERE id = $3`,
					to.Schema, to.Database, a.ID)
				must(t, err)
			}
			type outcome struct {
				rows [][]any
				err  error
			}
			read := func() outcome {
				rows, err := h.Query(ctxA, `SELECT secret, current_database(), current_schema() FROM items`)
				if err != nil {
					return outcome{err: err}
				}
				got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
				return outcome{got, err}
			}
			t.Run("moved", func(t *testing.T) {
				move(t, dest)
				deadline := time.Now().Add(10 * time.Second)
				for {
					o := read()
					if o.err == nil && strings.Contains(fmt.Sprint(o.rows), "A-moved-1") {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("the move never reached the route: %v", o)
					}
					time.Sleep(20 * time.Millisecond)
				}
				for i := 0; i < 10; i++ {
					o := read()
					must(t, o.err)
					if fmt.Sprint(o.rows) != fmt.Sprintf("[[A-moved-1 %s %s]]", dest.Database, dest.Schema) {
						t.Fatalf("after the move A read %v", o.rows)
					}
					var pid int32
					must(t, h.QueryRow(ctxA, `SELECT pg_backend_pid()`).Scan(&pid))
					if m == tenant.ModelDatabase && pid == oldPID {
						t.Fatal("A's traffic still runs on its old pool's connection")
					}
				}
			})
			if m == tenant.ModelDatabase {
				t.Run("defense-off", func(t *testing.T) {
					// The old target, as a pool map keyed by tenant alone
					// would hand it out, still reaches the old database.
					cc, err := l.Provisioner().ConnConfig(ctx, old.Server, old.Database, old.ID.RoleName())
					must(t, err)
					cc.RuntimeParams["search_path"] = pgx.Identifier{old.Database}.Sanitize()
					c, err := pgx.ConnectConfig(ctx, cc)
					must(t, err)
					defer c.Close(ctx)
					var secret string
					err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
						if _, err := tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true), set_config('landlord.tenant_sig', $2, true)`,
							a.ID.String(), l.Provisioner().Roles().SignContext(a.ID, "none")); err != nil {
							return err
						}
						return tx.QueryRow(ctx, `SELECT secret FROM items WHERE id = 1`).Scan(&secret)
					})
					must(t, err)
					if secret != "A-secret-1" {
						t.Fatalf("the old pool read %q, want the stale A-secret-1", secret)
					}
				})
			}
			t.Run("pointed-at-b", func(t *testing.T) {
				move(t, b)
				deadline := time.Now().Add(10 * time.Second)
				for {
					o := read()
					if leaks(o) {
						t.Fatalf("tenant A got tenant B's rows: %v", o)
					}
					// Schemas without USAGE are left out of the search, so
					// in the schema model B's tables are not even found.
					var pgErr *pgconn.PgError
					if errors.As(o.err, &pgErr) && slices.Contains([]string{"42501", "42P01"}, pgErr.Code) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("A's traffic, pointed at B's placement, got %v; want permission denied", o)
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
			t.Run("pointed-at-b-defense-off", func(t *testing.T) {
				grants := slices.Clone(grantA[:2])
				if m == tenant.ModelDatabase {
					grants = append(grants, `GRANT CONNECT ON DATABASE `+pgx.Identifier{b.Database}.Sanitize()+` TO {roleA}`)
				}
				exec(t, b, append(grants,
					`DROP POLICY landlord_tenant ON {s}.items`,
					`DROP POLICY landlord_tenant_access ON {s}.items`,
					`CREATE POLICY atk_open ON {s}.items USING (true) WITH CHECK (true)`)...)
				deadline := time.Now().Add(10 * time.Second)
				for {
					if o := read(); leaks(o) {
						break
					} else if time.Now().After(deadline) {
						t.Fatalf("with B's placement open to A's role the probe found nothing: %v", o)
					}
					// A no-op state change drops the cached route.
					admin, err := l.Admin(ctx, "refresh a route in the stale-routing attack")
					must(t, err)
					_, err = admin.SetState(ctx, a.ID, tenant.StateActive)
					must(t, err)
					time.Sleep(20 * time.Millisecond)
				}
			})
		})
	}
}
