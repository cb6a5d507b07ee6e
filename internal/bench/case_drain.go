package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/move"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// drain: an installation over three servers (this run's and two more it
// starts), tenants of every model spread over them, one server drained
// while writers insert into every tenant through the handle. Every tenant
// must answer throughout: no call fails, none is lost, and the longest
// call (a tenant waiting at its own cutover) stays bounded (goal <= 2 s),
// next to the longest call in an equal stretch before the drain.

const drainLongestGoalMS = 2000

func drainCase() benchCase {
	return benchCase{
		name: "drain",
		what: "300 tenants (row, schema, database) over three servers, one drained under writes to every tenant: 0 failed, 0 lost, longest call <= 2 s",
		// Its own installation and servers, built by the case.
		needs: func(sizes) needs { return needs{} },
		run:   runDrain,
	}
}

// drainSizes are the tenants of each model and the writers' rate.
func drainSizes(sz sizes) (row, schema, database, perSecond int) {
	if sz.quick {
		return 9, 6, 3, 150
	}
	return 180, 90, 30, 500
}

func runDrain(ctx context.Context, e *env) ([]Result, error) {
	nRow, nSchema, nDatabase, perSecond := drainSizes(e.sz)
	w := &world{suffix: "_dr", migrations: appMigrations(), times: map[string]float64{}}
	if err := e.ensure(ctx, w, needs{}); err != nil {
		return nil, err
	}
	defer w.pool.Close()
	cfg := landlord.Config{OwnerRole: w.owner, AppRole: w.app, StartupAudit: landlord.AuditOff, Logger: e.cfg.Logger}
	l, err := landlord.Open(ctx, e.url(w.db, map[string]string{"application_name": "landlord bench drain"}), appMigrations(), cfg)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	admin, err := l.Admin(ctx, "benchmark: drain")
	if err != nil {
		return nil, err
	}
	servers := []string{"main"}
	for _, name := range []string{"second", "third"} {
		srv, stop, err := StartServer(ctx, e.cfg.Logger)
		if err != nil {
			return nil, fmt.Errorf("drain: %w", err)
		}
		defer stop(context.WithoutCancel(ctx))
		pc, err := pgx.ParseConfig(srv.URL(""))
		if err != nil {
			return nil, err
		}
		if _, err := admin.AddServer(ctx, provision.ServerSpec{ID: name, Host: pc.Host, Port: int(pc.Port), Database: "landlord_bench"}); err != nil {
			return nil, fmt.Errorf("drain: add server %s: %w", name, err)
		}
		servers = append(servers, name)
	}
	const drained = "second"

	e.progressf("drain: creating %d row, %d schema and %d database tenants over %d servers", nRow, nSchema, nDatabase, len(servers))
	var ts []tenant.Tenant
	models := map[tenant.Model]int{tenant.ModelRow: nRow, tenant.ModelSchema: nSchema, tenant.ModelDatabase: nDatabase}
	for _, m := range []tenant.Model{tenant.ModelRow, tenant.ModelSchema, tenant.ModelDatabase} {
		for i := range models[m] {
			t, err := l.CreateTenant(ctx, provision.Request{Slug: fmt.Sprintf("drain-%s-%d", m, i), Model: m, Server: servers[i%len(servers)]})
			if err != nil {
				return nil, fmt.Errorf("drain: create a tenant: %w", err)
			}
			ts = append(ts, t)
		}
	}
	// Spread the models over the writers' order.
	slices.SortFunc(ts, func(a, b tenant.Tenant) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	on := 0
	for _, t := range ts {
		if t.Server == drained {
			on++
		}
	}

	wr := startWriters(ctx, l.Handle(), ts, perSecond)
	lead := 2 * time.Second
	if !e.sz.quick {
		lead = 10 * time.Second
	}
	time.Sleep(lead)
	e.progressf("drain: draining server %s (%d tenants)", drained, on)
	drainStart := time.Now()
	res, derr := admin.DrainServer(ctx, drained, move.DrainConfig{Parallel: 4, Move: move.Config{Settle: time.Millisecond},
		Progress: func(p move.DrainProgress) {
			if (p.Done+p.Failed)%10 == 0 || p.Done+p.Failed == p.Total {
				e.progressf("drain: %d of %d moved, %d failed, after %.1f s", p.Done, p.Total, p.Failed, time.Since(drainStart).Seconds())
			}
		}})
	drainEnd := time.Now()
	time.Sleep(500 * time.Millisecond)
	wr.finish()
	if derr != nil {
		return nil, derr
	}

	before, nBefore := wr.longest(drainStart.Add(-lead), drainStart)
	during, nDuring := wr.longest(drainStart, drainEnd)
	lost, acked, err := wr.lost(ctx, l.Handle())
	if err != nil {
		return nil, err
	}
	var pauses []time.Duration
	for _, m := range res.Moved {
		pauses = append(pauses, m.Pause)
	}
	slices.Sort(pauses)
	var maxPause, midPause time.Duration
	if len(pauses) > 0 {
		maxPause, midPause = pauses[len(pauses)-1], pauses[len(pauses)/2]
	}
	left := 0
	if loads, err := admin.ServerLoads(ctx); err == nil {
		for _, ld := range loads {
			if ld.Server == drained {
				for _, n := range ld.Tenants {
					left += n
				}
			}
		}
	}
	e.progressf("drain: %d tenants moved in %.1f s (%d failed, %d left), longest call %.0f ms (before: %.0f ms), longest pause %.0f ms, %d calls failed, %d lost",
		len(res.Moved), drainEnd.Sub(drainStart).Seconds(), len(res.Failed), left, ms(during), ms(before), ms(maxPause), wr.nErrs, lost)
	failedMoves := make([]string, 0, len(res.Failed))
	for id, err := range res.Failed {
		failedMoves = append(failedMoves, fmt.Sprintf("%s: %v", id, err))
	}
	detail := e.withSetup(map[string]any{
		"tenants": len(ts), "row": nRow, "schema": nSchema, "database": nDatabase, "servers": len(servers),
		"on_drained_server": on, "moved": len(res.Moved), "failed_moves": failedMoves, "left_on_server": left,
		"parallel": 4, "drain_s": round3(drainEnd.Sub(drainStart).Seconds()),
		"writes_per_second": perSecond, "writers": 8, "writes_during": nDuring, "writes_before": nBefore,
		"acknowledged": acked, "failed_calls": wr.nErrs, "failed_call_errors": wr.errs, "lost": lost,
		"pause_max_ms": ms(maxPause), "pause_p50_ms": ms(midPause),
	})
	return []Result{{
		Case: "drain", Ours: ms(during), Baseline: ptr(ms(before)), Ratio: ptr(round3(ms(during) / max(ms(before), 0.001))),
		Unit: "ms", Goal: fmt.Sprintf("every tenant answers: 0 failed calls, 0 lost, longest call <= %d ms", drainLongestGoalMS),
		Met:    ms(during) <= drainLongestGoalMS && wr.nErrs == 0 && lost == 0 && len(res.Failed) == 0 && left == 0,
		Detail: detail,
	}}, nil
}
