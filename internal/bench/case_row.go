package bench

import (
	"context"

	"github.com/landlordhq/landlord"
)

// row-lookup: a primary key lookup as a random row tenant, through the
// handle (row-level security on the shared table, the tenant set in the
// same round trip), next to raw pgx doing the same lookup by hand with
// WHERE tenant_id = $1 AND id = $2 on a copy of the rows without row-level
// security, with the same connections and goroutines.

func rowLookupCase() benchCase {
	return rowLookupCaseFor("row-lookup", landlord.ContextSigned,
		"primary key lookups as row tenants vs raw pgx with WHERE tenant_id = $1 (goal: ratio >= 0.9, 1 round trip)")
}

// row-lookup-unsigned: row-lookup with the installation's context check
// set to unsigned for the case (landlord.ContextUnsigned), and back to
// signed after it: what the signature costs, measured in the same run as
// row-lookup.
func rowLookupUnsignedCase() benchCase {
	return rowLookupCaseFor("row-lookup-unsigned", landlord.ContextUnsigned,
		"row-lookup with the unsigned context check: what signing costs, next to row-lookup (goal: ratio >= 0.9)")
}

func rowLookupCaseFor(name string, check landlord.ContextCheck, what string) benchCase {
	return benchCase{
		name:  name,
		what:  what,
		needs: func(sz sizes) needs { return needs{rowTenants: sz.rowTenants} },
		run: func(ctx context.Context, e *env) ([]Result, error) {
			return runRowLookup(ctx, e, name, check)
		},
	}
}

const rowLookupGoal = 0.9

func runRowLookup(ctx context.Context, e *env, name string, check landlord.ContextCheck) ([]Result, error) {
	cfg := landlord.Config{MaxConns: e.sz.conns}
	l, err := e.openLandlord(ctx, cfg, "landlord-bench-row", nil)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	if check != landlord.ContextSigned {
		restore, err := e.setContextCheck(ctx, l, check)
		if err != nil {
			return nil, err
		}
		defer restore()
	}
	raw, err := e.rawPool(ctx, int32(e.sz.conns), "landlord-bench-raw", nil, "")
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	tids := ids(e.w.row)
	rs, err := e.alternate(ctx, name, []load{
		rawLookup("raw", raw, tids, uniformPicker, e.sz.rows, e.sz.goroutines),
		ourLookup("ours", l.Handle(), tids, uniformPicker, e.sz.rows, e.sz.goroutines),
	}, e.sz.rounds, e.sz.roundTime, nil)
	if err != nil {
		return nil, err
	}
	res := ratioResult(name, rs[1], rs[0], rowLookupGoal)
	ours, base, err := e.lookupCounts(ctx, cfg, tids, tids)
	if err != nil {
		return nil, err
	}
	res.Detail["per_call"] = map[string]any{"ours": ours, "baseline": base}
	res.Detail["round_trips_goal"] = 1
	res.Met = res.Met && ours.RoundTrips <= 1
	res.Detail["tenants"] = len(tids)
	res.Detail["rows_per_tenant"] = e.sz.rows
	res.Detail["connections"] = e.sz.conns
	res.Detail["goroutines"] = e.sz.goroutines
	res.Detail["tenant_choice"] = "uniform"
	res.Detail["context_check"] = string(check)
	res.Detail["baseline_is"] = "raw pgx, QueryRow with WHERE tenant_id = $1 AND id = $2 on bench_raw.items (no row-level security), an ordinary role"
	return []Result{res}, nil
}
