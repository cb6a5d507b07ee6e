package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// provision: the time one sign-up takes per model (provision.MeasureCreate),
// on an installation of its own whose tenants have the ten-table store
// schema (internal/shopschema), next to what the same takes by hand: the schema's DDL
// run in one transaction, and CREATE DATABASE ... TEMPLATE of the same
// template database. Claiming a pre-provisioned tenant (Fill, then Create)
// is timed too. The methods alternate in rounds; the p50 of each method is
// the median of its rounds' p50s, its p99 the largest of their p99s.

func provisionCase() benchCase {
	return benchCase{
		name:  "provision",
		what:  "p50/p99 of one sign-up per model on a 10-table schema vs raw DDL / CREATE DATABASE TEMPLATE by hand (goals: row 1, schema 30, database 40, claim 5 ms)",
		needs: func(sizes) needs { return needs{} },
		run:   runProvision,
	}
}

// provisionGoal is the p50 goal of a method in milliseconds.
func provisionGoal(method string) float64 {
	switch method {
	case "row":
		return 1
	case "schema":
		return 30
	case "database":
		return 40
	default: // claiming a pre-provisioned tenant, any model
		return 5
	}
}

// timings collects one method's per-round measurements.
type timings struct{ p50, p99, minimum, maximum []float64 }

func (t *timings) add(m provision.Measurement) {
	t.p50 = append(t.p50, ms(m.P50))
	t.p99 = append(t.p99, ms(m.P99))
	t.minimum = append(t.minimum, ms(m.Min))
	t.maximum = append(t.maximum, ms(m.Max))
}

func (t *timings) addDurations(ds []time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	t.add(provision.Measurement{N: len(s), P50: percentile(s, 0.5), P99: percentile(s, 0.99), Min: s[0], Max: s[len(s)-1]})
}

func (t *timings) summary() map[string]any {
	return map[string]any{
		"p50_ms":        round3(spreadOf(t.p50).Median),
		"p99_ms":        round3(slices.Max(t.p99)),
		"min_ms":        round3(slices.Min(t.minimum)),
		"max_ms":        round3(slices.Max(t.maximum)),
		"round_p50s_ms": roundAll(t.p50),
	}
}

func runProvision(ctx context.Context, e *env) ([]Result, error) {
	db := e.name("_shop")
	if err := e.createDatabase(ctx, db); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(e.url(db, nil))
	if err != nil {
		return nil, err
	}
	pc.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	set, err := migration.Load(shopMigrations())
	if err != nil {
		return nil, err
	}
	owner, app := "lb"+e.tag+"_shop_owner", "lb"+e.tag+"_shop_app"
	e.addRoles(app, owner)
	prov, err := provision.New(ctx, pool, set, provision.Config{OwnerRole: owner, AppRole: app, Logger: e.cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("bootstrap store installation: %w", err)
	}
	e.addInstall(prov.Installation().ID.String(), prov.TemplateDatabase())
	if err := prov.PrepareTemplates(ctx); err != nil {
		return nil, err
	}
	var ddl strings.Builder
	for _, m := range set.Migrations() {
		ddl.WriteString(m.SQL)
		ddl.WriteString(";\n")
	}
	n, claims := e.sz.provisionN, e.sz.claimN
	t := map[string]*timings{}
	for _, k := range []string{"row", "schema", "database", "claim-schema", "claim-database", "raw-schema", "raw-database"} {
		t[k] = &timings{}
	}
	measure := func(key string, m tenant.Model, n int, how provision.Method) error {
		res, err := provision.MeasureCreate(ctx, prov, m, n, how)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		t[key].add(res)
		return nil
	}
	for round := range e.sz.provisionRounds {
		steps := []func() error{
			func() error { return measure("row", tenant.ModelRow, n, provision.MethodTemplate) },
			func() error { return measure("schema", tenant.ModelSchema, n, provision.MethodTemplate) },
			func() error { return e.rawSchemas(ctx, pool, ddl.String(), n, t["raw-schema"]) },
			func() error { return measure("database", tenant.ModelDatabase, n, provision.MethodTemplate) },
			func() error { return e.rawDatabases(ctx, prov.TemplateDatabase(), owner, n, t["raw-database"]) },
			func() error { return measure("claim-schema", tenant.ModelSchema, claims, provision.MethodReserve) },
			func() error { return measure("claim-database", tenant.ModelDatabase, claims, provision.MethodReserve) },
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return nil, err
			}
		}
		e.progressf("provision: round %d/%d: p50 row %.1f, schema %.1f (by hand %.1f), database %.1f (by hand %.1f), claim %.1f / %.1f ms",
			round+1, e.sz.provisionRounds, t["row"].p50[round], t["schema"].p50[round], t["raw-schema"].p50[round],
			t["database"].p50[round], t["raw-database"].p50[round], t["claim-schema"].p50[round], t["claim-database"].p50[round])
	}
	var out []Result
	for _, k := range []string{"row", "schema", "database", "claim-schema", "claim-database"} {
		s := t[k].summary()
		p50 := s["p50_ms"].(float64)
		r := Result{
			Case: "provision/" + k, Unit: "ms (p50)", Ours: p50,
			Goal: fmt.Sprintf("p50 <= %s ms", trimFloat(provisionGoal(k))),
			Met:  p50 <= provisionGoal(k),
			Detail: map[string]any{
				"ours":              s,
				"tenants_per_round": n,
				"rounds":            e.sz.provisionRounds,
				"schema":            "internal/shopschema: ten tables, a view, triggers, an enum, row-level security and grants by Landlord",
			},
		}
		switch k {
		case "row":
			r.Detail["method"] = "provision.MeasureCreate, a directory entry (rows live in the shared tables)"
		case "schema", "database":
			r.Detail["method"] = "provision.MeasureCreate with templates (clone script / CREATE DATABASE ... TEMPLATE, WAL_LOG)"
			raw := t["raw-"+k]
			bs := raw.summary()
			r.Baseline = ptr(bs["p50_ms"].(float64))
			var rr []float64
			for i := range t[k].p50 {
				rr = append(rr, t[k].p50[i]/raw.p50[i])
			}
			r.Ratio = ptr(round3(spreadOf(rr).Median))
			r.Detail["baseline"] = bs
			if k == "schema" {
				r.Detail["baseline_is"] = "the schema's migrations as one transaction by hand: CREATE SCHEMA, SET search_path, the DDL (no row-level security, grants or ledger)"
			} else {
				r.Detail["baseline_is"] = "CREATE DATABASE ... OWNER ... TEMPLATE <the installation's template database> STRATEGY WAL_LOG by hand, the copies kept until the round's last"
			}
		default:
			r.Detail["method"] = "provision.MeasureCreate with the pool: Fill(1) untimed, then Create claims the pre-provisioned tenant"
			r.Detail["tenants_per_round"] = claims
		}
		out = append(out, r)
	}
	return out, nil
}

// rawSchemas creates n schemas of the store's tables by hand, one
// transaction each, times them, and drops them again.
func (e *env) rawSchemas(ctx context.Context, pool *pgxpool.Pool, ddl string, n int, t *timings) error {
	var took []time.Duration
	var names []string
	defer func() {
		for _, s := range names {
			_, _ = pool.Exec(context.WithoutCancel(ctx), "DROP SCHEMA IF EXISTS "+ident(s)+" CASCADE")
		}
	}()
	for i := range n {
		s := fmt.Sprintf("bench_ddl_%s_%d", e.tag, i)
		names = append(names, s)
		start := time.Now()
		if _, err := pool.Exec(ctx, fmt.Sprintf("BEGIN; CREATE SCHEMA %[1]s; SET LOCAL search_path = %[1]s, pg_catalog, pg_temp;\n%[2]s\nCOMMIT",
			ident(s), ddl)); err != nil {
			return fmt.Errorf("raw DDL: %w", err)
		}
		took = append(took, time.Since(start))
		if _, err := pool.Exec(ctx, "DROP SCHEMA "+ident(s)+" CASCADE"); err != nil {
			return err
		}
	}
	names = nil
	t.addDurations(took)
	return nil
}

// rawDatabases copies the template database n times by hand, times it, and
// drops the copies again once all are made. A copy dropped at once gives
// its shared buffers back to the next one, which then copies into buffers
// already in use; tenants' databases stay, so each fills buffers of its
// own, as these do (quick run: 75–77 ms p50 when each copy was dropped at
// once, 100–103 ms kept).
func (e *env) rawDatabases(ctx context.Context, template, owner string, n int, t *timings) error {
	var took []time.Duration
	var names []string
	for i := range n {
		name := e.name(fmt.Sprintf("_copy_%d", i))
		names = append(names, name)
		e.mu.Lock()
		e.drops = append(e.drops, name)
		e.mu.Unlock()
		start := time.Now()
		if _, err := e.admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s TEMPLATE %s STRATEGY WAL_LOG",
			ident(name), ident(owner), ident(template))); err != nil {
			return fmt.Errorf("copy template by hand: %w", err)
		}
		took = append(took, time.Since(start))
	}
	for _, name := range names {
		if _, err := e.admin.Exec(ctx, "DROP DATABASE "+ident(name)); err != nil {
			return err
		}
	}
	t.addDurations(took)
	return nil
}
