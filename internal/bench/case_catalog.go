package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/landlordhq/landlord"
)

// schema-catalog-memory: many schema tenants of ten tables each, uniform
// traffic (a primary key lookup in a random table of a random tenant)
// through a pool of 20 connections. A backend keeps the catalog entries of
// every table it touched until it disconnects, so a pool whose connections
// serve every tenant grows without bound. The case reports the largest
// CacheMemoryContext of any backend of the pool (see memory.go for how it is
// read) and the throughput of the first and the last window of the run.
//
// The backends' private memory is watched every second, and the traffic
// stops early when the pool's backends together hold more than a safe share
// of the machine's memory: the figure is then already far over the goal, and
// the machine is shared.

func catalogMemoryCase() benchCase {
	return benchCase{
		name:  "schema-catalog-memory",
		what:  "10,000 schema tenants × 10 tables, uniform traffic, pool of 20: largest CacheMemoryContext of a backend (goal <= 64 MB), first vs last minute",
		needs: func(sz sizes) needs { return needs{schemaTenants: sz.catalogTenants} },
		run:   runCatalogMemory,
	}
}

const catalogGoalMB = 64

// catalogTables are the ten tables of sql/app. Read only.
var catalogTables = []string{"parents", "items", "customers", "addresses", "orders", "order_lines", "payments", "stock", "staff", "audit"}

// memSample is the pool's memory at one moment.
type memSample struct {
	At        float64 `json:"t_s"`
	MaxCache  float64 `json:"max_cache_mb,omitempty"`
	MeanCache float64 `json:"mean_cache_mb,omitempty"`
	MaxRSS    float64 `json:"max_rss_anon_mb,omitempty"`
	Backends  int     `json:"backends"`
}

func runCatalogMemory(ctx context.Context, e *env) ([]Result, error) {
	ts := e.w.schema[:min(e.sz.catalogTenants, len(e.w.schema))]
	tids := ids(ts)
	const app = "landlord-bench-catalog"
	l, err := e.openLandlord(ctx, landlord.Config{MaxConns: e.sz.catalogConns}, app, nil)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	queries := make([]string, len(catalogTables))
	for i, t := range catalogTables {
		queries[i] = fmt.Sprintf("SELECT tenant_id FROM %s WHERE id = $1", t)
	}
	h := l.Handle()
	var calls atomic.Int64
	ld := load{name: "ours", workers: e.sz.catalogConns, calls: &calls, worker: func(r *rand.Rand) func(context.Context) error {
		return func(ctx context.Context) error {
			rows, err := h.Query(landlord.WithTenant(ctx, tids[r.IntN(len(tids))]), queries[r.IntN(len(queries))], 1+r.IntN(e.sz.rows))
			if err != nil {
				return err
			}
			rows.Close()
			return rows.Err()
		}
	}}

	// The cap on the pool's backends together: the lesser of 6 GB and 40%
	// of the memory available now.
	capBytes := int64(6 << 30)
	if avail, ok := memAvailable(); ok {
		capBytes = min(capBytes, avail*4/10)
	}
	pids := func(ctx context.Context) ([]int, error) {
		rows, err := e.admin.Query(ctx, `SELECT pid FROM pg_stat_activity
			WHERE application_name = $1 AND usename = $2 AND backend_type = 'client backend'`, app, e.w.app)
		if err != nil {
			return nil, err
		}
		var out []int
		for rows.Next() {
			var p int32
			if err := rows.Scan(&p); err != nil {
				return nil, err
			}
			out = append(out, int(p))
		}
		return out, rows.Err()
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var (
		mu        sync.Mutex
		perSecond []float64
		samples   []memSample
		stopped   string
		maxCache  float64
		maxRSS    float64
		monErr    error
	)
	start := time.Now()
	memEvery := 20 * time.Second
	if e.sz.quick {
		memEvery = 5 * time.Second
	}
	sample := func(ctx context.Context, withLog bool) {
		ps, err := pids(ctx)
		if err != nil {
			if ctx.Err() == nil {
				monErr = err
			}
			return
		}
		s := memSample{At: round3(time.Since(start).Seconds()), Backends: len(ps)}
		var total int64
		for _, p := range ps {
			if rss, ok := rssAnon(p); ok {
				total += rss
				s.MaxRSS = max(s.MaxRSS, float64(rss)/(1<<20))
			}
		}
		maxRSS = max(maxRSS, s.MaxRSS)
		if total > capBytes && stopped == "" {
			stopped = fmt.Sprintf("stopped after %.0f s: the pool's backends held %.1f GB of private memory (cap %.1f GB)",
				time.Since(start).Seconds(), float64(total)/(1<<30), float64(capBytes)/(1<<30))
			stopRun()
		}
		if withLog && e.memory != nil {
			mem, err := e.memory.sample(ctx, ps)
			if err != nil {
				if ctx.Err() == nil {
					monErr = err
				}
				return
			}
			var sum float64
			for _, m := range mem {
				mb := float64(m.Cache) / (1 << 20)
				s.MaxCache = max(s.MaxCache, mb)
				sum += mb
			}
			if len(mem) > 0 {
				s.MeanCache = round3(sum / float64(len(mem)))
			}
			s.MaxCache = round3(s.MaxCache)
			maxCache = max(maxCache, s.MaxCache)
		}
		s.MaxRSS = round3(s.MaxRSS)
		if withLog {
			samples = append(samples, s)
			e.progressf("schema-catalog-memory: %.0f s: %d backends, largest CacheMemoryContext %.1f MB, largest private memory %.1f MB",
				s.At, s.Backends, s.MaxCache, s.MaxRSS)
		}
	}
	var wg sync.WaitGroup
	// Throughput per second, on a goroutine of its own: a memory sample
	// takes a few seconds.
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last := int64(0)
		for {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
			n := calls.Load()
			mu.Lock()
			perSecond = append(perSecond, float64(n-last))
			mu.Unlock()
			last = n
		}
	})
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		lastMem := time.Now()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
			withLog := time.Since(lastMem) >= memEvery
			if withLog {
				lastMem = time.Now()
			}
			sample(runCtx, withLog)
		}
	})
	r, err := e.runLoad(runCtx, ld, e.sz.catalogRun)
	stopRun()
	wg.Wait()
	if err != nil && stopped == "" && ctx.Err() == nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	// The last word on memory, with the traffic stopped (the backends keep
	// their caches until they disconnect).
	sample(ctx, true)
	if monErr != nil {
		return nil, monErr
	}

	window := int(e.sz.catalogWindow / time.Second)
	mu.Lock()
	secs := slices.Clone(perSecond)
	mu.Unlock()
	window = min(window, len(secs)/2)
	first, last := 0.0, 0.0
	if window > 0 {
		for _, v := range secs[:window] {
			first += v
		}
		for _, v := range secs[len(secs)-window:] {
			last += v
		}
		first /= float64(window)
		last /= float64(window)
	}

	res := Result{Case: "schema-catalog-memory", Unit: "MB", Goal: fmt.Sprintf("largest CacheMemoryContext <= %d MB", catalogGoalMB)}
	detail := map[string]any{
		"tenants":                len(tids),
		"tables_per_tenant":      len(catalogTables),
		"connections":            e.sz.catalogConns,
		"goroutines":             e.sz.catalogConns,
		"run_s":                  round3(r.elapsed.Seconds()),
		"calls":                  r.calls,
		"calls_per_s":            round3(r.rate()),
		"tenant_choice":          "uniform tenant, uniform table, primary key lookup",
		"max_rss_anon_mb":        round3(maxRSS),
		"samples":                samples,
		"memory_cap_gb":          round3(float64(capBytes) / (1 << 30)),
		"schema_tenants_setup_s": e.w.times["schema_tenants_s"],
		"schema_tenant_setup_ms": round3(e.w.times["schema_ms_per_tenant"]),
	}
	if stopped != "" {
		detail["stopped_early"] = stopped
	}
	if e.memory != nil {
		res.Ours = round3(maxCache)
		res.Met = maxCache <= catalogGoalMB && stopped == ""
		detail["method"] = "pg_log_backend_memory_contexts(pid) for each backend of the pool (pg_stat_activity by application_name), CacheMemoryContext and its children summed from the server log; private memory (RssAnon) from /proc"
	} else {
		res.Ours = round3(maxRSS)
		res.Unit = "MB (private memory)"
		res.Met = maxRSS > 0 && maxRSS <= catalogGoalMB && stopped == ""
		detail["method"] = "CacheMemoryContext unavailable (" + e.memReason + "); largest private memory (RssAnon from /proc) instead, which includes the catalog cache"
	}
	res.Detail = detail
	tp := Result{
		Case: "schema-catalog-memory/throughput", Unit: "calls/s",
		Ours: round3(last), Baseline: ptr(round3(first)),
		Goal: "no cliff: last window / first window >= 0.9",
		Detail: map[string]any{
			"window_s":        window,
			"first_window_is": "the baseline: the same run's first window",
			"per_second":      secs,
		},
	}
	if first > 0 {
		tp.Ratio = ptr(round3(last / first))
		tp.Met = last/first >= 0.9
	}
	if stopped != "" {
		tp.Detail["stopped_early"] = stopped
	}
	return []Result{res, tp}, nil
}
