package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/tenant"
)

// picker makes one worker's tenant chooser over n tenants.
type picker func(r *rand.Rand, n int) func() int

// lookupCall runs the point lookup of row as tenant i of its side's list.
type lookupCall func(ctx context.Context, i, row int) error

// ourCall is the lookup through the handle, as tenant ids[i].
func ourCall(h *landlord.Handle, ids []tenant.ID) lookupCall {
	return func(ctx context.Context, i, row int) error {
		var id int64
		var sku, secret string
		return h.QueryRow(landlord.WithTenant(ctx, ids[i]), lookupSQL, row).Scan(&id, &sku, &secret)
	}
}

// rawCall is the baseline: the same lookup by hand on the shared table, with
// the tenant in the WHERE clause.
func rawCall(pool *pgxpool.Pool, ids []tenant.ID) lookupCall {
	return func(ctx context.Context, i, row int) error {
		var id int64
		var sku, secret string
		return pool.QueryRow(ctx, rawLookupSQL, ids[i], row).Scan(&id, &sku, &secret)
	}
}

// lookupLoad runs call from workers goroutines over n tenants chosen by
// pick, rows chosen uniformly.
func lookupLoad(name string, call lookupCall, n int, pick picker, rows, workers int) load {
	return load{name: name, workers: workers, worker: func(r *rand.Rand) func(context.Context) error {
		next := pick(r, n)
		return func(ctx context.Context) error { return call(ctx, next(), 1+r.IntN(rows)) }
	}}
}

// ourLookup is a point lookup through the handle, as tenant ids[pick()].
func ourLookup(name string, h *landlord.Handle, ids []tenant.ID, pick picker, rows, workers int) load {
	return lookupLoad(name, ourCall(h, ids), len(ids), pick, rows, workers)
}

// rawLookup is the baseline's load (see rawCall).
func rawLookup(name string, pool *pgxpool.Pool, ids []tenant.ID, pick picker, rows, workers int) load {
	return lookupLoad(name, rawCall(pool, ids), len(ids), pick, rows, workers)
}

// trips is what a counting pass found per call.
type trips struct {
	RoundTrips   float64 `json:"round_trips"`
	ClientWrites float64 `json:"client_writes"`
	Calls        int64   `json:"calls_counted"`
	// Pings are the pools' liveness checks of connections that sat idle
	// for over a second during the pass, left out of RoundTrips: whether
	// one happens depends on the machine's load, not on the call.
	Pings int64 `json:"liveness_pings"`
	// Dials are the connections opened during the pass; their setup
	// (login, role check, statements prepared) is in RoundTrips. One call
	// at a time never makes a pool grow, so only a connection replaced
	// for its age or its memory can cause one.
	Dials int64 `json:"connections_opened"`
}

// countTrips counts the round trips of n calls on connections through a
// counting proxy: mk gets the connection parameters that point at the
// proxy and returns the call and a function that closes what it opened.
//
// The count is exact, whatever the load: calls run one at a time, in two
// passes over tenants 0..n-1. The first warms up: every tenant's route is
// read from the directory and cached, every statement gets prepared. The
// second is counted: all its calls find their route cached and an idle
// connection with their statements prepared, so it counts what a call
// costs in a steady state and nothing else. Concurrency would change
// nothing per call but would make it depend on timing whether a pool dials
// more connections during the count.
func (e *env) countTrips(ctx context.Context, n int, mk func(params map[string]string) (lookupCall, func(), error)) (trips, error) {
	if n == 0 {
		return trips{}, nil
	}
	p, err := startProxy(&e.base.Config)
	if err != nil {
		return trips{}, err
	}
	defer p.close()
	call, closeFn, err := mk(p.params())
	if err != nil {
		return trips{}, err
	}
	defer closeFn()
	pass := func() error {
		for i := range n {
			if err := call(ctx, i, 1+i%e.sz.rows); err != nil {
				return err
			}
		}
		return nil
	}
	if err := pass(); err != nil {
		return trips{}, fmt.Errorf("warm-up: %w", err)
	}
	// Every message of the pass was counted before the server saw it,
	// so before the pass's last call returned.
	c0, t0, w0, p0 := p.count.conns.Load(), p.count.roundTrips(), p.count.writes.Load(), p.count.pings.Load()
	if err := pass(); err != nil {
		return trips{}, err
	}
	pings := p.count.pings.Load() - p0 // a ping is one write of its own
	return trips{
		RoundTrips:   round3(float64(p.count.roundTrips()-t0) / float64(n)),
		ClientWrites: round3(float64(p.count.writes.Load()-w0-pings) / float64(n)),
		Calls:        int64(n),
		Pings:        pings,
		Dials:        p.count.conns.Load() - c0,
	}, nil
}

// lookupCounts counts round trips of our lookup and of the baseline's for
// tenants ids (ours) and rawIDs (the baseline; nil: not counted), cfg
// being our Landlord's configuration.
func (e *env) lookupCounts(ctx context.Context, cfg landlord.Config, ids, rawIDs []tenant.ID) (ours, raw trips, err error) {
	// Routes stay cached for the whole count: their expiry is a matter of
	// time, not of calls.
	cfg.DirectoryMaxAge = time.Hour
	ours, err = e.countTrips(ctx, len(ids), func(params map[string]string) (lookupCall, func(), error) {
		l, err := e.openLandlord(ctx, cfg, "landlord-bench-count", params)
		if err != nil {
			return nil, nil, err
		}
		return ourCall(l.Handle(), ids), l.Close, nil
	})
	if err != nil || rawIDs == nil {
		return ours, raw, err
	}
	raw, err = e.countTrips(ctx, len(rawIDs), func(params map[string]string) (lookupCall, func(), error) {
		pool, err := e.rawPool(ctx, int32(e.sz.conns), "landlord-bench-count", params, "")
		if err != nil {
			return nil, nil, err
		}
		return rawCall(pool, rawIDs), pool.Close, nil
	})
	return ours, raw, err
}

func ids(ts []tenant.Tenant) []tenant.ID {
	out := make([]tenant.ID, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

// ratioResult fills the common fields of a throughput comparison.
func ratioResult(name string, ours, base []round, goal float64) Result {
	rs := spreadOf(ratios(ours, base))
	r := Result{
		Case:     name,
		Ours:     round3(spreadOf(rates(ours)).Median),
		Baseline: ptr(round3(spreadOf(rates(base)).Median)),
		Ratio:    ptr(round3(rs.Median)),
		Unit:     "calls/s",
		Goal:     "ratio >= " + trimFloat(goal),
		Met:      rs.Median >= goal,
		Detail: map[string]any{
			"ratio_min":    round3(rs.Min),
			"ratio_max":    round3(rs.Max),
			"round_ratios": roundAll(ratios(ours, base)),
		},
	}
	oc, os := cpuPerCall(ours)
	bc, bs := cpuPerCall(base)
	r.Detail["client_cpu_us_per_call"] = map[string]any{"ours": round3(oc), "baseline": round3(bc)}
	if os >= 0 && bs >= 0 {
		r.Detail["server_cpu_us_per_call"] = map[string]any{"ours": round3(os), "baseline": round3(bs)}
	} else {
		r.Detail["server_cpu_us_per_call"] = "unavailable: the server does not run on this machine"
	}
	return r
}

func roundAll(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = round3(x)
	}
	return out
}

func trimFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
