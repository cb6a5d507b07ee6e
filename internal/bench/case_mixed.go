package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/tenant"
)

// mixed: row, schema and database tenants under one handle, each call a
// tenant chosen uniformly among all of them, next to the raw pgx lookup on
// the shared table over the row tenants: what the same traffic costs by
// hand in the cheapest shape. Every tenant database keeps its connection
// (the handle may keep as many tenant pools as there are database tenants),
// so the case measures routing across models, not connection misses
// (database-zipf does).

func mixedCase() benchCase {
	return benchCase{
		name: "mixed",
		what: "1,000 row + 200 schema + 50 database tenants under one handle vs raw pgx on the row tenants' shape (goal: ratio >= 0.85)",
		needs: func(sz sizes) needs {
			return needs{
				rowTenants: sz.mixedRow, schemaTenants: sz.mixedSchema, schemaRows: sz.mixedSchema,
				dbTenants: sz.mixedDB, dbRows: sz.mixedDB,
			}
		},
		run: runMixed,
	}
}

// mixedGoal is the schema model's goal: the mix is mostly row tenants,
// whose goal is higher, and a few database tenants on warm connections.
const mixedGoal = 0.85

func runMixed(ctx context.Context, e *env) ([]Result, error) {
	rowIDs := ids(e.w.row[:min(e.sz.mixedRow, len(e.w.row))])
	schemaIDs := ids(e.w.schema[:min(e.sz.mixedSchema, e.w.schemaRows)])
	dbIDs := ids(e.w.database[:min(e.sz.mixedDB, e.w.dbRows)])
	all := append(append(append([]tenant.ID{}, rowIDs...), schemaIDs...), dbIDs...)
	cfg := landlord.Config{MaxConns: e.sz.conns + len(dbIDs)}
	l, err := e.openLandlord(ctx, cfg, "landlord-bench-mixed", nil)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	raw, err := e.rawPool(ctx, int32(e.sz.conns), "landlord-bench-raw", nil, "")
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	// New server connections per round tell whether the budget holds the
	// tenants' connections or churns through them.
	dbs := []string{e.w.db}
	for _, t := range e.w.database[:len(dbIDs)] {
		dbs = append(dbs, t.Database)
	}
	ours := ourLookup("ours", l.Handle(), all, uniformPicker, e.sz.rows, e.sz.goroutines)
	var s0 int64
	ours.before = func(ctx context.Context) (err error) { s0, err = e.sessions(ctx, dbs); return err }
	ours.after = func(ctx context.Context, r *round) error {
		time.Sleep(50 * time.Millisecond)
		s1, err := e.sessions(ctx, dbs)
		r.extra["new_connections"] = float64(s1 - s0)
		return err
	}
	rs, err := e.alternate(ctx, "mixed", []load{
		rawLookup("raw", raw, rowIDs, uniformPicker, e.sz.rows, e.sz.goroutines),
		ours,
	}, e.sz.rounds, e.sz.roundTime, nil)
	if err != nil {
		return nil, err
	}
	res := ratioResult("mixed", rs[1], rs[0], mixedGoal)
	var churn []float64
	for _, r := range rs[1] {
		churn = append(churn, r.extra["new_connections"]/r.elapsed.Seconds())
	}
	res.Detail["new_server_connections_per_s"] = round3(spreadOf(churn).Median)
	res.Detail["tenants"] = map[string]int{"row": len(rowIDs), "schema": len(schemaIDs), "database": len(dbIDs)}
	res.Detail["rows_per_tenant"] = e.sz.rows
	res.Detail["connections"] = fmt.Sprintf("ours: a budget of %d (%d + one per tenant database); baseline: %d", e.sz.conns+len(dbIDs), e.sz.conns, e.sz.conns)
	res.Detail["goroutines"] = e.sz.goroutines
	res.Detail["tenant_choice"] = "uniform over all tenants"
	res.Detail["baseline_is"] = "raw pgx, WHERE tenant_id = $1 AND id = $2 on bench_raw.items, over the row tenants"
	return []Result{res}, nil
}
