package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/tenant"
)

// schema-lookup: the same lookup as row-lookup, as schema tenants (each its
// own schema and role), with uniform and with Zipf(1.1) tenant choice. The
// baseline is the same raw pgx lookup on the shared table. A second
// baseline is what one writes by hand for schemas: a pgx batch that sets the
// search path (and the tenant, for the tables' row-level security) and runs
// the unqualified lookup, which PostgreSQL re-plans whenever the search path
// differs from the one the statement was planned with.
//
// Replans are counted with pg_stat_statements (track_planning): planner runs
// per call of the lookup, over the measured rounds only. Landlord's
// statements run as the tenants' roles, the hand-written ones as the
// baseline's role, which tells them apart.

func schemaLookupCase() benchCase {
	return benchCase{
		name: "schema-lookup",
		what: "primary key lookups as schema tenants, uniform and Zipf(1.1), vs raw pgx on shared tables; replans and SET search_path per call (goal: ratio >= 0.85)",
		needs: func(sz sizes) needs {
			return needs{schemaTenants: sz.schemaLookups, schemaRows: sz.schemaLookups}
		},
		run: runSchemaLookup,
	}
}

const schemaLookupGoal = 0.85

// naiveLookup sets the search path and the tenant in a pgx batch in front of
// the unqualified lookup: one round trip, and a replan whenever the path
// changes.
func naiveLookup(name string, pool *pgxpool.Pool, ts []tenant.Tenant, sigs []string, pick picker, rows, workers int) load {
	return load{name: name, workers: workers, worker: func(r *rand.Rand) func(context.Context) error {
		next := pick(r, len(ts))
		return func(ctx context.Context) error {
			i := next()
			t := ts[i]
			b := &pgx.Batch{}
			b.Queue(`SELECT set_config('search_path', $1, true), set_config('landlord.tenant_id', $2, true), set_config('landlord.tenant_sig', $3, true)`,
				ident(t.Schema)+", pg_temp", t.ID.String(), sigs[i])
			var id int64
			var sku, secret string
			b.Queue(lookupSQL, 1+r.IntN(rows)).QueryRow(func(row pgx.Row) error { return row.Scan(&id, &sku, &secret) })
			return pool.SendBatch(ctx, b).Close()
		}
	}}
}

// plans reads planner runs and calls of a statement from
// pg_stat_statements: of role raw when own is false, of every other role
// when it is true.
func (e *env) plans(ctx context.Context, sql string, own bool) (plans, calls int64, err error) {
	err = e.w.pool.QueryRow(ctx, `SELECT coalesce(sum(plans), 0)::int8, coalesce(sum(calls), 0)::int8 FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query = $1 AND (userid = $2) <> $3`,
		sql, e.w.rawOID, own).Scan(&plans, &calls)
	return plans, calls, err
}

func runSchemaLookup(ctx context.Context, e *env) ([]Result, error) {
	ts := e.w.schema[:min(e.sz.schemaLookups, e.w.schemaRows)]
	tids := ids(ts)
	cfg := landlord.Config{MaxConns: e.sz.conns}
	l, err := e.openLandlord(ctx, cfg, "landlord-bench-schema", nil)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	raw, err := e.rawPool(ctx, int32(e.sz.conns), "landlord-bench-raw", nil, "")
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	// The unqualified lookup is prepared on each connection in its session
	// path, which must name a schema holding items.
	naive, err := e.rawPool(ctx, int32(e.sz.conns), "landlord-bench-naive", nil, ident(ts[0].Schema)+", pg_temp")
	if err != nil {
		return nil, err
	}
	defer naive.Close()
	sigs := make([]string, len(ts))
	for i, t := range ts {
		sigs[i] = e.signature(t.ID)
	}

	// Cold start, first, while the handle is new: its connections have
	// prepared nothing yet, as after a process starts or a deploy. The
	// window's ratio to raw pgx (measured just before it, for the
	// machine's drift) is compared with the steady ratio of the uniform
	// rounds below.
	coldRaw, err := e.runLoad(ctx, rawLookup("raw", raw, tids, uniformPicker, e.sz.rows, e.sz.goroutines), coldWindow)
	if err != nil {
		return nil, fmt.Errorf("cold start: %w", err)
	}
	cold, err := e.runLoad(ctx, ourLookup("ours", l.Handle(), tids, uniformPicker, e.sz.rows, e.sz.goroutines), coldWindow)
	if err != nil {
		return nil, fmt.Errorf("cold start: %w", err)
	}
	e.progressf("schema-lookup/cold-start: raw %.0f/s, ours %.0f/s in the first %s", coldRaw.rate(), cold.rate(), coldWindow)

	var out []Result
	for _, dist := range []struct {
		name string
		pick picker
	}{{"uniform", uniformPicker}, {"zipf", zipfPicker}} {
		label := "schema-lookup/" + dist.name
		type counts struct{ ours, naive, raw [2]int64 }
		var before, after counts
		snap := func(c *counts) error {
			if !e.pgss {
				return nil
			}
			var err error
			if c.ours[0], c.ours[1], err = e.plans(ctx, lookupSQL, true); err != nil {
				return err
			}
			if c.naive[0], c.naive[1], err = e.plans(ctx, lookupSQL, false); err != nil {
				return err
			}
			c.raw[0], c.raw[1], err = e.plans(ctx, rawLookupSQL, false)
			return err
		}
		rs, err := e.alternate(ctx, label, []load{
			rawLookup("raw", raw, tids, dist.pick, e.sz.rows, e.sz.goroutines),
			ourLookup("ours", l.Handle(), tids, dist.pick, e.sz.rows, e.sz.goroutines),
			naiveLookup("set-search-path", naive, ts, sigs, dist.pick, e.sz.rows, e.sz.goroutines),
		}, e.sz.rounds, e.sz.roundTime, func() error { return snap(&before) })
		if err != nil {
			return nil, err
		}
		if err := snap(&after); err != nil {
			return nil, err
		}
		res := ratioResult(label, rs[1], rs[0], schemaLookupGoal)
		naiveRatios := spreadOf(ratios(rs[2], rs[0]))
		res.Detail["set_search_path_per_call"] = map[string]any{
			"calls_per_s":       round3(spreadOf(rates(rs[2])).Median),
			"ratio_vs_baseline": round3(naiveRatios.Median),
			"ratio_min":         round3(naiveRatios.Min),
			"ratio_max":         round3(naiveRatios.Max),
			"ours_vs_it":        round3(spreadOf(ratios(rs[1], rs[2])).Median),
			"is":                "raw pgx batch: set_config('search_path', schema, true) and the tenant setting, then the unqualified lookup",
		}
		if e.pgss {
			per := func(p [2]int64, q [2]int64) float64 {
				if q[1] == p[1] {
					return 0
				}
				return round3(float64(q[0]-p[0]) / float64(q[1]-p[1]) * 1000)
			}
			res.Detail["replans_per_1000_calls"] = map[string]any{
				"ours":            per(before.ours, after.ours),
				"set_search_path": per(before.naive, after.naive),
				"baseline":        per(before.raw, after.raw),
				"method":          "pg_stat_statements.plans / calls of the lookup over the measured rounds (track_planning on); ours by the tenant roles, the others by the baseline's role",
			}
		} else {
			res.Detail["replans_per_1000_calls"] = "unavailable: " + e.pgssReason
		}
		if dist.name == "uniform" {
			// Statements are prepared per schema and connection; the
			// count's warm-up pass prepares every tenant's.
			ours, _, err := e.lookupCounts(ctx, cfg, tids, nil)
			if err != nil {
				return nil, err
			}
			res.Detail["per_call"] = map[string]any{"ours": ours}
		}
		res.Detail["tenants"] = len(tids)
		res.Detail["rows_per_tenant"] = e.sz.rows
		res.Detail["connections"] = e.sz.conns
		res.Detail["goroutines"] = e.sz.goroutines
		res.Detail["tenant_choice"] = dist.name
		if dist.name == "zipf" {
			res.Detail["tenant_choice"] = fmt.Sprintf("Zipf(s=%.1f)", zipfS)
		}
		res.Detail["baseline_is"] = "raw pgx, WHERE tenant_id = $1 AND id = $2 on the shared bench_raw.items, the same tenants"
		out = append(out, res)
		if dist.name == "uniform" {
			out = append(out, coldStartResult(coldRaw, cold, *res.Ratio, len(tids)))
		}
	}
	return out, nil
}

// coldWindow is how long after the handle opens the cold start is
// measured, and coldStartGoal the share of the steady ratio it must reach
// in that window.
const (
	coldWindow    = 2 * time.Second
	coldStartGoal = 0.8
)

// coldStartResult is schema-lookup/cold-start: the ratio to raw pgx in the
// first coldWindow of a new handle (Ours) against the steady ratio of the
// uniform rounds (Baseline).
func coldStartResult(raw, ours round, steady float64, tenants int) Result {
	coldRatio := 0.0
	if raw.rate() > 0 {
		coldRatio = ours.rate() / raw.rate()
	}
	ratio := 0.0
	if steady > 0 {
		ratio = coldRatio / steady
	}
	return Result{
		Case:     "schema-lookup/cold-start",
		Ours:     round3(coldRatio),
		Baseline: ptr(round3(steady)),
		Ratio:    ptr(round3(ratio)),
		Unit:     "ratio to raw",
		Goal:     "first " + coldWindow.String() + " >= " + trimFloat(coldStartGoal) + " of steady state",
		Met:      ratio >= coldStartGoal,
		Detail: map[string]any{
			"ours_calls_per_s": round3(ours.rate()),
			"raw_calls_per_s":  round3(raw.rate()),
			"window":           coldWindow.String(),
			"tenants":          tenants,
			"tenant_choice":    "uniform",
			"is":               "a new handle's first window (nothing prepared on its connections), as after a start or deploy; raw pgx measured in the window just before it; steady is schema-lookup/uniform's median ratio",
		},
	}
}
