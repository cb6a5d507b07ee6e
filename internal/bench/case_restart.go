package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/landlordhq/landlord"
)

// database-restart: the first seconds after a restart, for database
// tenants looked up with Zipf choice under a budget of connections, as in
// database-zipf. A first process serves the traffic long enough to reach
// its steady rate and to record which tenants are busiest (tenant
// statistics), and closes. Then, in alternating rounds, a new process
// opens without and with Config.Prewarm (the budget's worth of the busiest
// tenant databases connected before Open returns) and serves the same
// traffic at once; what counts is its throughput over the first window
// after Open returned, against the first process's steady rate. Between
// processes every tenant database's backends are gone, as after a deploy.

func databaseRestartCase() benchCase {
	return benchCase{
		name:  "database-restart",
		what:  "the first seconds after a restart for Zipf traffic over tenant databases, with and without Prewarm (goal: prewarmed >= 0.8 of steady)",
		needs: func(sz sizes) needs { return needs{dbTenants: sz.dbTenants, dbRows: sz.dbTenants} },
		run:   runDatabaseRestart,
	}
}

const restartGoal = 0.8

func runDatabaseRestart(ctx context.Context, e *env) ([]Result, error) {
	ts := e.w.database[:min(e.sz.dbTenants, len(e.w.database))]
	tids := ids(ts)
	dbs := make([]string, len(ts))
	for i, t := range ts {
		dbs[i] = t.Database
	}
	window := 2 * time.Second
	rounds := 2
	if !e.sz.quick {
		window, rounds = 10*time.Second, 3
	}
	const app = "landlord-bench-restart"
	traffic := func(name string, l *landlord.Landlord) load {
		return ourLookup(name, l.Handle(), tids, zipfPicker, e.sz.rows, e.sz.zipfWorkers)
	}
	// open starts a process; it returns with Open.
	open := func(prewarm int) (*landlord.Landlord, time.Duration, error) {
		if err := e.waitIdle(ctx, dbs); err != nil {
			return nil, 0, err
		}
		cfg := budgetConfig(e.sz.budget)
		cfg.Prewarm = prewarm
		start := time.Now()
		l, err := e.openLandlord(ctx, cfg, app, nil)
		return l, time.Since(start), err
	}

	// The first process: warm-up, then its steady rate.
	first, _, err := open(0)
	if err != nil {
		return nil, err
	}
	if _, err := e.runLoad(ctx, traffic("warm-up", first), window); err != nil {
		first.Close()
		return nil, err
	}
	steady, err := e.runLoad(ctx, traffic("steady", first), window)
	if err != nil {
		first.Close()
		return nil, err
	}
	if err := first.FlushTenantStats(ctx); err != nil {
		first.Close()
		return nil, err
	}
	first.Close()
	e.progressf("database-restart: steady %.0f calls/s", steady.rate())

	var cold, warm []float64
	var coldOpen, warmOpen []float64
	for i := range rounds {
		for _, prewarm := range []int{0, e.sz.budget} {
			l, took, err := open(prewarm)
			if err != nil {
				return nil, err
			}
			r, err := e.runLoad(ctx, traffic("after restart", l), window)
			l.Close()
			if err != nil {
				return nil, err
			}
			if prewarm == 0 {
				cold, coldOpen = append(cold, r.rate()), append(coldOpen, ms(took))
			} else {
				warm, warmOpen = append(warm, r.rate()), append(warmOpen, ms(took))
			}
		}
		e.progressf("database-restart: round %d/%d: without prewarm %.0f/s, with %.0f/s", i+1, rounds, cold[i], warm[i])
	}
	base := steady.rate()
	if base <= 0 {
		return nil, fmt.Errorf("the first process made no calls")
	}
	w, c := spreadOf(warm), spreadOf(cold)
	res := Result{
		Case:     "database-restart",
		Ours:     round3(w.Median),
		Baseline: ptr(round3(base)),
		Ratio:    ptr(round3(w.Median / base)),
		Unit:     "calls/s",
		Goal:     "prewarmed first " + window.String() + " >= " + trimFloat(restartGoal) + " of steady",
		Met:      w.Median/base >= restartGoal,
		Detail: map[string]any{
			"window_s":              window.Seconds(),
			"rounds":                rounds,
			"steady_calls_s":        round3(base),
			"prewarmed_calls_s":     roundAll(warm),
			"cold_calls_s":          roundAll(cold),
			"cold_ratio":            round3(c.Median / base),
			"open_ms_prewarmed":     roundAll(warmOpen),
			"open_ms_cold":          roundAll(coldOpen),
			"prewarm":               e.sz.budget,
			"budget":                e.sz.budget,
			"tenants":               len(ts),
			"goroutines":            e.sz.zipfWorkers,
			"tenant_choice":         "zipf(1.1)",
			"baseline_is":           "the first process's rate over a window after its own warm-up window",
			"measured_from":         "Open's return: the prewarmed process's Open includes its connects",
			"backends_between_runs": "none: every tenant database's backends ended before the next Open",
		},
	}
	return []Result{res}, nil
}
