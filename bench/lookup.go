package bench

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/tenant"
)

// picker makes one worker's tenant chooser over n tenants.
type picker func(r *rand.Rand, n int) func() int

// ourLookup is a point lookup through the handle, as tenant ids[pick()].
func ourLookup(name string, h *landlord.Handle, ids []tenant.ID, pick picker, rows, workers int) load {
	return load{name: name, workers: workers, worker: func(r *rand.Rand) func(context.Context) error {
		next := pick(r, len(ids))
		return func(ctx context.Context) error {
			var id int64
			var sku, secret string
			return h.QueryRow(landlord.WithTenant(ctx, ids[next()]), lookupSQL, 1+r.IntN(rows)).Scan(&id, &sku, &secret)
		}
	}}
}

// rawLookup is the baseline: the same lookup by hand on the shared table,
// with the tenant in the WHERE clause.
func rawLookup(name string, pool *pgxpool.Pool, ids []tenant.ID, pick picker, rows, workers int) load {
	return load{name: name, workers: workers, worker: func(r *rand.Rand) func(context.Context) error {
		next := pick(r, len(ids))
		return func(ctx context.Context) error {
			var id int64
			var sku, secret string
			return pool.QueryRow(ctx, rawLookupSQL, ids[next()], 1+r.IntN(rows)).Scan(&id, &sku, &secret)
		}
	}}
}

// trips is what a counting phase found per call.
type trips struct {
	RoundTrips   float64 `json:"round_trips"`
	ClientWrites float64 `json:"client_writes"`
	Calls        int64   `json:"calls_counted"`
}

// countTrips runs the load mk builds on connections through a counting
// proxy, once to warm up (statements get prepared on every connection) and
// once counted, and returns round trips and client writes per call. mk gets
// the connection parameters that point at the proxy and returns the load
// and a function that closes what it opened.
func (e *env) countTrips(ctx context.Context, warm time.Duration, mk func(params map[string]string) (load, func(), error)) (trips, error) {
	p, err := startProxy(&e.base.Config)
	if err != nil {
		return trips{}, err
	}
	defer p.close()
	l, closeFn, err := mk(p.params())
	if err != nil {
		return trips{}, err
	}
	defer closeFn()
	d := min(e.sz.roundTime, 500*time.Millisecond)
	if _, err := e.runLoad(ctx, l, max(d, warm)); err != nil {
		return trips{}, err
	}
	// Count a phase in which no connection was opened: a new connection's
	// setup (login, role check, statements prepared) is not per call, and
	// on a loaded machine the warm-up may end before the pool has grown to
	// its size.
	var t0, w0 int64
	var r round
	for try := 0; ; try++ {
		c0 := p.count.conns.Load()
		t0, w0 = p.count.roundTrips(), p.count.writes.Load()
		r, err = e.runLoad(ctx, l, d)
		if err != nil {
			return trips{}, err
		}
		if p.count.conns.Load() == c0 || try == 4 {
			break
		}
	}
	if r.calls == 0 {
		return trips{}, nil
	}
	return trips{
		RoundTrips:   round3(float64(p.count.roundTrips()-t0) / float64(r.calls)),
		ClientWrites: round3(float64(p.count.writes.Load()-w0) / float64(r.calls)),
		Calls:        r.calls,
	}, nil
}

// lookupCounts counts round trips of our lookup and of the baseline's for
// tenants ids (ours) and rawIDs (the baseline; nil: not counted), cfg
// being our Landlord's configuration, after warming up for warm.
func (e *env) lookupCounts(ctx context.Context, cfg landlord.Config, ids, rawIDs []tenant.ID, pick picker, warm time.Duration) (ours, raw trips, err error) {
	ours, err = e.countTrips(ctx, warm, func(params map[string]string) (load, func(), error) {
		l, err := e.openLandlord(ctx, cfg, "landlord-bench-count", params)
		if err != nil {
			return load{}, nil, err
		}
		return ourLookup("ours", l.Handle(), ids, pick, e.sz.rows, e.sz.goroutines), l.Close, nil
	})
	if err != nil || rawIDs == nil {
		return ours, raw, err
	}
	raw, err = e.countTrips(ctx, warm, func(params map[string]string) (load, func(), error) {
		pool, err := e.rawPool(ctx, int32(e.sz.conns), "landlord-bench-count", params, "")
		if err != nil {
			return load{}, nil, err
		}
		return rawLookup("raw", pool, rawIDs, pick, e.sz.rows, e.sz.goroutines), pool.Close, nil
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
