package provision

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

// Provisioning benchmarks on the store schema (internal/shopschema: ten tables).
//
//	go test -run '^$' -bench 'Clone|Create' -benchtime 20x ./provision/
//	go test -run '^$' -bench CreateRatio -benchtime 1x ./provision/
//
// BenchmarkClone compares ways to make a schema of the ten tables;
// BenchmarkCreate times Create per model with and without templates and
// the reserve; BenchmarkCreateRatio runs the methods in alternating rounds and
// prints their ratios, which hold better than absolute figures on a shared
// machine (README.md, Performance).

// setupBench is setupShop for a benchmark.
func setupBench(b *testing.B) *env {
	b.Helper()
	set := shopMigrations(0)
	db := srv.NewDB(b, shopInstalled)
	pool, err := pgxpool.New(b.Context(), db.URL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	p, err := New(b.Context(), pool, set, configFor(set))
	if err != nil {
		b.Fatalf("bootstrap: %v", err)
	}
	if err := p.PrepareTemplates(b.Context()); err != nil {
		b.Fatalf("prepare templates: %v", err)
	}
	inst, tpl := p.Installation().ID, p.TemplateDatabase()
	b.Cleanup(func() {
		ctx := context.Background()
		admin, err := pgx.Connect(ctx, db.AdminURL)
		if err != nil {
			return
		}
		defer admin.Close(ctx)
		admin.Exec(ctx, `DROP DATABASE IF EXISTS `+ident.Quote(tpl)+` WITH (FORCE)`)
		rows, _ := admin.Query(ctx, `SELECT 'DROP ROLE IF EXISTS ' || quote_ident(rolname) FROM pg_roles WHERE shobj_description(oid, 'pg_authid') LIKE $1`,
			"% installation "+inst.String()+"%")
		stmts, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, s := range stmts {
			admin.Exec(ctx, s)
		}
	})
	return &env{db: db, pool: pool, p: p}
}

// cloner makes schema s (with grants to role) by one method, in the
// connection's session.
type cloner func(ctx context.Context, e *env, conn *pgx.Conn, s, role string) error

// cloneByScript is method (a): the catalog-generated script, as Create runs it.
func cloneByScript(ctx context.Context, e *env, conn *pgx.Conn, s, role string) error {
	script, ok, err := e.p.schemaScript(ctx)
	if err != nil || !ok {
		return fmt.Errorf("no script: %v", err)
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL ROLE landlord_owner; CREATE SCHEMA %s; SET LOCAL search_path = %s, pg_catalog, pg_temp; SET LOCAL check_function_bodies = off;\n",
			ident.Quote(s), ident.Quote(s))+script.ddl(s)+script.grants(s, role)+script.ledger(s))
		return err
	})
}

// cloneByConsolidated is method (b): every migration's SQL in one
// transaction, then Secure once.
func cloneByConsolidated(ctx context.Context, e *env, conn *pgx.Conn, s, role string) error {
	var sql, ledger strings.Builder
	for _, m := range e.p.Migrator().Set().Migrations() {
		sql.WriteString(m.SQL)
		sql.WriteString(";\n")
		fmt.Fprintf(&ledger, "INSERT INTO landlord.target_migrations (target, version, name, checksum) VALUES (%s, %d, %s, %s);",
			ident.Literal(s), m.Version, ident.Literal(m.Name), ident.Literal(m.Checksum))
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL ROLE landlord_owner; CREATE SCHEMA %s; SET LOCAL search_path = %s, pg_catalog, pg_temp;\n",
			ident.Quote(s), ident.Quote(s))+sql.String()); err != nil {
			return err
		}
		if err := migration.Secure(ctx, tx, migration.Target{Schema: s, Grantee: role}); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, ledger.String())
		return err
	})
}

// cloneByLike is method (c): CREATE TABLE ... (LIKE template INCLUDING ALL)
// per table, then the foreign keys, row-level security and policies of the
// template. It leaves out the view and the triggers, and still differs from
// a migrated schema (see the catalog-diffs metric).
func cloneByLike(ctx context.Context, e *env, conn *pgx.Conn, s, role string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL search_path = %s, pg_catalog, pg_temp", ident.Quote(TemplateSchema))); err != nil {
			return err
		}
		tables, err := collectStrings(ctx, tx, `SELECT quote_ident(relname) FROM pg_class WHERE relnamespace = $1::regnamespace AND relkind = 'r' ORDER BY oid`, TemplateSchema)
		if err != nil {
			return err
		}
		fks, err := collectStrings(ctx, tx, `SELECT format('ALTER TABLE %I ADD CONSTRAINT %I %s;', c.relname, k.conname, pg_get_constraintdef(k.oid))
			FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE c.relnamespace = $1::regnamespace AND k.contype = 'f' ORDER BY k.oid`, TemplateSchema)
		if err != nil {
			return err
		}
		policies, err := collectStrings(ctx, tx, policiesSQL, TemplateSchema)
		if err != nil {
			return err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "SET LOCAL ROLE landlord_owner; CREATE SCHEMA %s; SET LOCAL search_path = %s, pg_catalog, pg_temp;\n", ident.Quote(s), ident.Quote(s))
		for _, t := range tables {
			fmt.Fprintf(&b, "CREATE TABLE %s (LIKE %s.%s INCLUDING ALL); ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;\n",
				t, ident.Quote(TemplateSchema), t, t)
		}
		b.WriteString(strings.Join(fks, "\n"))
		b.WriteString(strings.Join(policies, "\n"))
		fmt.Fprintf(&b, "GRANT USAGE ON SCHEMA %s TO %s; GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO %s;",
			ident.Quote(s), ident.Quote(role), strings.Join(tables, ", "), ident.Quote(role))
		_, err = tx.Exec(ctx, b.String())
		return err
	})
}

// cloneByMigrating is the baseline: every migration, one transaction each.
func cloneByMigrating(ctx context.Context, e *env, conn *pgx.Conn, s, role string) error {
	if _, err := conn.Exec(ctx, fmt.Sprintf("BEGIN; SET LOCAL ROLE landlord_owner; CREATE SCHEMA %s; COMMIT", ident.Quote(s))); err != nil {
		return err
	}
	_, err := e.p.Migrator().Apply(ctx, conn, migration.Target{Schema: s, Grantee: role})
	return err
}

var cloners = []struct {
	name string
	fn   cloner
}{
	{"catalog-script", cloneByScript},
	{"consolidated-sql", cloneByConsolidated},
	{"like-including-all", cloneByLike},
	{"migrate", cloneByMigrating},
}

// BenchmarkClone times making the ten-table schema by each method, on one
// warm connection, and reports how many catalog lines of the result differ
// from a migrated schema (0: indistinguishable).
func BenchmarkClone(b *testing.B) {
	for _, c := range cloners {
		b.Run(c.name, func(b *testing.B) {
			e := setupBench(b)
			ctx := b.Context()
			conn, err := e.pool.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Release()
			role := tenant.NewID().RoleName()
			if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s NOLOGIN NOINHERIT; COMMENT ON ROLE %s IS %s", ident.Quote(role), ident.Quote(role),
				ident.Literal("bench installation "+e.p.Installation().ID.String()))); err != nil {
				b.Fatal(err)
			}
			var schemas []string
			var took []time.Duration
			for b.Loop() {
				s := tenant.NewID().SchemaName()
				start := time.Now()
				if err := c.fn(ctx, e, conn.Conn(), s, role); err != nil {
					b.Fatalf("%s: %v", c.name, err)
				}
				took = append(took, time.Since(start))
				schemas = append(schemas, s)
			}
			b.StopTimer()
			m := summarize(took)
			b.ReportMetric(float64(m.P50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(m.P99.Microseconds())/1000, "p99-ms")
			refSchema, refRole := tenant.NewID().SchemaName(), role
			if err := cloneByMigrating(ctx, e, conn.Conn(), refSchema, refRole); err != nil {
				b.Fatal(err)
			}
			diffs := 0
			err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				want, err := catalogLines(ctx, tx, refSchema, refRole)
				if err != nil {
					return err
				}
				got, err := catalogLines(ctx, tx, schemas[0], role)
				diffs = len(diffLines(want, got))
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(diffs), "catalog-diffs")
			for _, s := range append(schemas, refSchema) {
				conn.Exec(ctx, fmt.Sprintf("DROP SCHEMA %s CASCADE; DELETE FROM landlord.target_migrations WHERE target = %s", ident.Quote(s), ident.Literal(s)))
			}
			conn.Exec(ctx, "DROP ROLE "+ident.Quote(role))
		})
	}
}

// BenchmarkCreate times Create per model and method: migrate (no
// templates), template, and reserve (a tenant is pre-provisioned before
// each Create, outside the timing).
func BenchmarkCreate(b *testing.B) {
	for _, m := range tenant.Models {
		for _, how := range []Method{MethodMigrate, MethodTemplate, MethodReserve} {
			if m == tenant.ModelRow && how == MethodReserve {
				continue
			}
			b.Run(string(m)+"/"+string(how), func(b *testing.B) {
				e := setupBench(b)
				ctx := b.Context()
				mode := map[Method]method{MethodMigrate: methodMigrate, MethodTemplate: methodTemplate, MethodReserve: methodAuto}[how]
				var ids []tenant.ID
				var took []time.Duration
				i := 0
				for b.Loop() {
					if how == MethodReserve {
						b.StopTimer()
						if _, err := e.p.FillReserve(ctx, m, 1); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					start := time.Now()
					t, err := e.p.create(ctx, Request{Slug: fmt.Sprintf("bench-%d", i), Model: m}, mode)
					if err != nil {
						b.Fatal(err)
					}
					took = append(took, time.Since(start))
					ids = append(ids, t.ID)
					i++
				}
				b.StopTimer()
				s := summarize(took)
				b.ReportMetric(float64(s.P50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(s.P99.Microseconds())/1000, "p99-ms")
				for _, id := range ids {
					if err := deleteRetrying(ctx, e.p, id); err != nil {
						b.Errorf("delete %s: %v", id, err)
					}
				}
			})
		}
	}
}

// BenchmarkCreateRatio runs MeasureCreate for every model and method in
// alternating rounds and prints each method's p50 and p99 and its ratio to
// migrating, median over the rounds (min–max).
func BenchmarkCreateRatio(b *testing.B) {
	const rounds, perRound = 5, 10
	e := setupBench(b)
	ctx := b.Context()
	type key struct {
		m   tenant.Model
		how Method
	}
	p50s := map[key][]time.Duration{}
	p99s := map[key][]time.Duration{}
	methods := []Method{MethodMigrate, MethodTemplate, MethodReserve}
	for b.Loop() {
		for range rounds {
			for _, m := range tenant.Models {
				for _, how := range methods {
					if m == tenant.ModelRow && how == MethodReserve {
						continue
					}
					r, err := MeasureCreate(ctx, e.p, m, perRound, how)
					if err != nil {
						b.Fatalf("%s %s: %v", m, how, err)
					}
					k := key{m, how}
					p50s[k] = append(p50s[k], r.P50)
					p99s[k] = append(p99s[k], r.P99)
				}
			}
		}
	}
	median := func(xs []float64) (med, lo, hi float64) {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2], s[0], s[len(s)-1]
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	var out strings.Builder
	fmt.Fprintf(&out, "\n%d rounds × %d creates per model and method, alternating; PostgreSQL %s\n", rounds, perRound, serverVersion(b, e))
	fmt.Fprintf(&out, "%-9s %-9s %10s %10s %22s\n", "model", "method", "p50 ms", "p99 ms", "p50 / migrate")
	for _, m := range tenant.Models {
		for _, how := range methods {
			k := key{m, how}
			if len(p50s[k]) == 0 {
				continue
			}
			var a, c, ratios []float64
			for i := range p50s[k] {
				a = append(a, ms(p50s[k][i]))
				c = append(c, ms(p99s[k][i]))
				ratios = append(ratios, ms(p50s[k][i])/ms(p50s[key{m, MethodMigrate}][i]))
			}
			p50, _, _ := median(a)
			p99, _, _ := median(c)
			r, lo, hi := median(ratios)
			fmt.Fprintf(&out, "%-9s %-9s %10.2f %10.2f %8.3f (%.3f–%.3f)\n", m, how, p50, p99, r, lo, hi)
			b.ReportMetric(p50, string(m)+"-"+string(how)+"-p50-ms")
		}
	}
	// Printed, not logged: benchmark logs are cut at a few lines.
	fmt.Print(out.String())
}

func serverVersion(b *testing.B, e *env) string {
	var v string
	if err := e.pool.QueryRow(b.Context(), `SHOW server_version`).Scan(&v); err != nil {
		return "?"
	}
	return v
}
