package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/fleet"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// fleet-status: `landlord migrate status` and a no-op `landlord migrate up`
// (fleet.Status and fleet.Up with every target at the head) over 10,000
// schema tenants (500 quick), next to the one query that reads their ledgers by hand.
//
// fleet-migrate: one migration of ADD COLUMN + CREATE INDEX applied by
// fleet.Up across schema tenants and across database tenants, next to the
// same DDL run by hand over one connection, tenant after tenant. The
// methods alternate in rounds, each round a new migration. It runs on an
// installation of its own holding just the tenants it migrates: a fleet
// step checks the shape of its tables with a query over the catalog of the
// whole database, whose cost grows with every other tenant's tables there,
// and the traffic cases' installation holds 10,000 schema tenants.

func fleetStatusCase() benchCase {
	return benchCase{
		name:  "fleet-status",
		what:  "migrate status and a no-op migrate up over 10,000 schema tenants vs reading the ledgers by hand (goal: <= 0.5 s)",
		needs: func(sz sizes) needs { return needs{schemaTenants: sz.statusTargets} },
		run:   runFleetStatus,
	}
}

func fleetMigrateCase() benchCase {
	return benchCase{
		name:  "fleet-migrate",
		what:  "ADD COLUMN + CREATE INDEX across 1,000 schema tenants (goal: <= 2.5 s) and 200 database tenants (goal: <= 3 s) vs the same DDL by hand over one connection",
		needs: func(sizes) needs { return needs{} },
		run:   runFleetMigrate,
	}
}

const (
	statusGoal = 500 * time.Millisecond
	// The migrate goals, for 1,000 schema tenants and 200 database tenants;
	// a quick run migrates fewer and scales them.
	migrateSchemaGoal   = 2500 * time.Millisecond
	migrateSchemaGoalN  = 1000
	migrateDBGoal       = 3 * time.Second
	migrateDBGoalN      = 200
	statusLedgerByHand  = `SELECT target, max(version) FROM landlord.target_migrations WHERE target = ANY($1) GROUP BY target`
	fleetColumnTemplate = "ALTER TABLE items ADD COLUMN %[1]s integer;\nCREATE INDEX items_%[1]s ON items (tenant_id, %[1]s);\n"
)

func slugs(ts []tenant.Tenant) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Slug
	}
	return out
}

func runFleetStatus(ctx context.Context, e *env) ([]Result, error) {
	ts := e.w.schema[:min(e.sz.statusTargets, len(e.w.schema))]
	f, err := fleet.New(e.w.prov, fleet.Config{Tenants: slugs(ts)})
	if err != nil {
		return nil, err
	}
	if rep, err := f.Up(ctx); err != nil {
		return nil, fmt.Errorf("bring targets to the head: %w", err)
	} else if rep.Run.ID != 0 {
		return nil, fmt.Errorf("targets were not at the head: run %d migrated %d", rep.Run.ID, rep.Run.Targets)
	}
	schemas := make([]string, len(ts))
	for i, t := range ts {
		schemas[i] = t.Schema
	}
	var status, noop, byHand []float64
	var targets int
	for range e.sz.statusRounds {
		start := time.Now()
		st, err := f.Status(ctx)
		if err != nil {
			return nil, err
		}
		status = append(status, time.Since(start).Seconds())
		targets = st.Summary.Targets
		if st.Summary.AtHead != st.Summary.Targets {
			return nil, fmt.Errorf("status: %d of %d targets at the head", st.Summary.AtHead, st.Summary.Targets)
		}
		start = time.Now()
		rep, err := f.Up(ctx)
		if err != nil {
			return nil, err
		}
		noop = append(noop, time.Since(start).Seconds())
		if rep.Run.ID != 0 {
			return nil, fmt.Errorf("no-op up recorded run %d", rep.Run.ID)
		}
		start = time.Now()
		rows, err := e.w.pool.Query(ctx, statusLedgerByHand, schemas)
		if err != nil {
			return nil, err
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		byHand = append(byHand, time.Since(start).Seconds())
		if n != len(schemas) {
			return nil, fmt.Errorf("ledger by hand: %d of %d targets", n, len(schemas))
		}
	}
	mk := func(name string, ours []float64) Result {
		var rr []float64
		for i := range ours {
			if byHand[i] > 0 {
				rr = append(rr, ours[i]/byHand[i])
			}
		}
		med := spreadOf(ours).Median
		return Result{
			Case: name, Unit: "s", Ours: round3(med), Baseline: ptr(round3(spreadOf(byHand).Median)),
			Ratio: ptr(round3(spreadOf(rr).Median)),
			Goal:  fmt.Sprintf("<= %s s", trimFloat(statusGoal.Seconds())), Met: med <= statusGoal.Seconds(),
			Detail: map[string]any{
				"targets":     targets,
				"rounds":      e.sz.statusRounds,
				"ours_min_s":  round3(spreadOf(ours).Min),
				"ours_max_s":  round3(spreadOf(ours).Max),
				"baseline_is": "one query reading the ledgers of the same targets by hand (landlord.target_migrations)",
				"selection":   "fleet.Config.Tenants = the tenants' slugs",
			},
		}
	}
	return []Result{mk("fleet-status", status), mk("fleet-status/up-noop", noop)}, nil
}

// migrationSet returns the app's migrations plus n fleet steps.
func migrationSet(n int) (fs.FS, error) {
	base := appMigrations()
	out := fstest.MapFS{}
	err := fs.WalkDir(base, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(base, p)
		if err != nil {
			return err
		}
		out[p] = &fstest.MapFile{Data: b}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		out[fmt.Sprintf("%03d_bench_c%d.up.sql", 1+i, i)] = &fstest.MapFile{Data: fmt.Appendf(nil, fleetColumnTemplate, fmt.Sprintf("c%d", i))}
	}
	return out, nil
}

func runFleetMigrate(ctx context.Context, e *env) ([]Result, error) {
	w := e.fleet
	if err := e.ensure(ctx, w, needs{schemaTenants: e.sz.fleetSchemas, dbTenants: e.sz.fleetDBs}); err != nil {
		return nil, fmt.Errorf("build data: %w", err)
	}
	schemas := w.schema[:min(e.sz.fleetSchemas, len(w.schema))]
	dbs := w.database[:min(e.sz.fleetDBs, len(w.database))]
	type side struct{ ours, byHand []float64 }
	var sch, dbt side
	var failed []string
	for round := 1; round <= e.sz.fleetRounds; round++ {
		fsys, err := migrationSet(round)
		if err != nil {
			return nil, err
		}
		set, err := migration.Load(fsys)
		if err != nil {
			return nil, err
		}
		prov, err := provision.New(ctx, w.pool, set, provision.Config{OwnerRole: w.owner, AppRole: w.app, Logger: e.cfg.Logger})
		if err != nil {
			return nil, err
		}
		up := func(ts []tenant.Tenant) (float64, error) {
			f, err := fleet.New(prov, fleet.Config{Tenants: slugs(ts), Logger: e.cfg.Logger})
			if err != nil {
				return 0, err
			}
			start := time.Now()
			rep, err := f.Up(ctx)
			d := time.Since(start).Seconds()
			if errors.Is(err, fleet.ErrTargetsFailed) {
				for _, t := range rep.Failed() {
					failed = append(failed, t.Key+": "+t.Error)
				}
			} else if err != nil {
				return 0, err
			}
			if rep.Run.Targets != len(ts) {
				return 0, fmt.Errorf("fleet run migrated %d targets, want %d", rep.Run.Targets, len(ts))
			}
			return d, nil
		}
		col := fmt.Sprintf("h%d", round)
		if len(schemas) > 0 {
			d, err := up(schemas)
			if err != nil {
				return nil, fmt.Errorf("schema tenants: %w", err)
			}
			sch.ours = append(sch.ours, d)
			if d, err = e.ddlSchemasByHand(ctx, w, schemas, col); err != nil {
				return nil, err
			}
			sch.byHand = append(sch.byHand, d)
		}
		if len(dbs) > 0 {
			d, err := up(dbs)
			if err != nil {
				return nil, fmt.Errorf("database tenants: %w", err)
			}
			dbt.ours = append(dbt.ours, d)
			if d, err = e.ddlDatabasesByHand(ctx, w, dbs, col); err != nil {
				return nil, err
			}
			dbt.byHand = append(dbt.byHand, d)
		}
		e.progressf("fleet-migrate: round %d/%d: schema tenants %s (by hand %s), database tenants %s (by hand %s)",
			round, e.sz.fleetRounds, last(sch.ours), last(sch.byHand), last(dbt.ours), last(dbt.byHand))
	}
	mk := func(name string, s side, n int, goal time.Duration, goalN int) Result {
		scaled := goal.Seconds() * float64(n) / float64(goalN)
		var rr []float64
		for i := range s.ours {
			rr = append(rr, s.ours[i]/s.byHand[i])
		}
		med := spreadOf(s.ours).Median
		r := Result{
			Case: name, Unit: "s", Ours: round3(med), Baseline: ptr(round3(spreadOf(s.byHand).Median)),
			Ratio: ptr(round3(spreadOf(rr).Median)),
			Goal:  fmt.Sprintf("<= %s s for %d targets", trimFloat(round3(scaled)), n),
			Met:   med <= scaled && len(failed) == 0,
			Detail: map[string]any{
				"targets":            n,
				"rounds":             len(s.ours),
				"ms_per_target":      round3(med * 1000 / float64(n)),
				"parallel":           fmt.Sprintf("fleet defaults: Parallel %d, PerDatabase = Parallel", fleet.DefaultParallel),
				"migration":          "ALTER TABLE items ADD COLUMN + CREATE INDEX, one new migration per round",
				"baseline_is":        "the same DDL by hand over one connection, tenant after tenant, one transaction each",
				"baseline_per_round": roundAll(s.byHand),
				"ours_per_round":     roundAll(s.ours),
				"installation":       fmt.Sprintf("of its own: %d schema and %d database tenants of the ten-table schema", len(schemas), len(dbs)),
				"data_setup_s":       w.times,
			},
		}
		if n != goalN {
			r.Detail["goal_stated"] = fmt.Sprintf("<= %s s for %d targets, scaled linearly to the %d here", trimFloat(goal.Seconds()), goalN, n)
		}
		if len(failed) > 0 {
			r.Detail["failed_targets"] = failed
		}
		return r
	}
	var out []Result
	if len(schemas) > 0 {
		out = append(out, mk("fleet-migrate/schema", sch, len(schemas), migrateSchemaGoal, migrateSchemaGoalN))
	}
	if len(dbs) > 0 {
		out = append(out, mk("fleet-migrate/database", dbt, len(dbs), migrateDBGoal, migrateDBGoalN))
	}
	return out, nil
}

func last(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fs", xs[len(xs)-1])
}

// byHandDDL is the fleet step's DDL for column col in schema, as the owner.
func byHandDDL(owner, schema, col string) string {
	s := ident(schema)
	return fmt.Sprintf("BEGIN; SET LOCAL ROLE %s; ALTER TABLE %s.items ADD COLUMN %s integer; CREATE INDEX ON %s.items (tenant_id, %s); COMMIT",
		ident(owner), s, ident(col), s, ident(col))
}

// ddlSchemasByHand runs the step's DDL in every schema over one connection
// and returns the seconds it took.
func (e *env) ddlSchemasByHand(ctx context.Context, w *world, ts []tenant.Tenant, col string) (float64, error) {
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	start := time.Now()
	for _, t := range ts {
		if _, err := conn.Exec(ctx, byHandDDL(w.owner, t.Schema, col)); err != nil {
			return 0, fmt.Errorf("DDL by hand in %s: %w", t.Schema, err)
		}
	}
	return time.Since(start).Seconds(), nil
}

// ddlDatabasesByHand connects to every tenant database in turn, runs the
// step's DDL and disconnects, and returns the seconds it took.
func (e *env) ddlDatabasesByHand(ctx context.Context, w *world, ts []tenant.Tenant, col string) (float64, error) {
	start := time.Now()
	for _, t := range ts {
		cc := e.base.Copy()
		cc.Database = t.Database
		conn, err := pgx.ConnectConfig(ctx, cc)
		if err != nil {
			return 0, err
		}
		_, err = conn.Exec(ctx, byHandDDL(w.owner, t.Schema, col))
		conn.Close(ctx)
		if err != nil {
			return 0, fmt.Errorf("DDL by hand in %s: %w", t.Database, err)
		}
	}
	return time.Since(start).Seconds(), nil
}
