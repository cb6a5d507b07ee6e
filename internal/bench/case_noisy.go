package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/tenant"
)

// noisy-neighbour: every row tenant but one does point lookups through the
// handle, as in row-lookup, while the one left runs a heavy report flat
// out on the same installation and connections. Three sides alternate:
// quiet (the lookups alone), bounded (the report under the tenant's own
// settings: one connection, a statement timeout) and unbounded (the same
// report without settings). What is compared is the lookups' throughput
// and p99 latency with the report running against the quiet side.

func noisyNeighbourCase() benchCase {
	return benchCase{
		name:  "noisy-neighbour",
		what:  "lookups of the other tenants while one runs heavy reports flat out, under its own settings (goal: ratio >= 0.8, p99 <= 2x)",
		needs: func(sz sizes) needs { return needs{rowTenants: sz.rowTenants} },
		run:   runNoisyNeighbour,
	}
}

const (
	noisyGoal    = 0.8
	noisyP99Goal = 2.0
	// noisyWorkers run the heavy tenant's report, each in a loop.
	noisyWorkers = 4
	// noisyReportSQL sorts rows × $1 digests of the tenant's items: some
	// tens of milliseconds of one core per call with 100 rows, more with
	// less work_mem.
	noisyReportSQL = `SELECT count(*) FROM (SELECT md5(i.secret || g::text) AS h FROM items i, generate_series(1, $1) g ORDER BY h) s`
	noisyReportN   = 300
)

// noisySettings are the heavy tenant's settings on the bounded side: one
// connection, and a statement timeout as the backstop for a report that
// runs away (this one takes a fraction of it).
var noisySettings = tenant.Settings{MaxConns: 1, StatementTimeout: time.Second}

func runNoisyNeighbour(ctx context.Context, e *env) ([]Result, error) {
	cfg := landlord.Config{MaxConns: e.sz.conns}
	l, err := e.openLandlord(ctx, cfg, "landlord-bench-noisy", nil)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	admin, err := l.Admin(ctx, "benchmark of a noisy neighbour")
	if err != nil {
		return nil, err
	}
	all := ids(e.w.row)
	if len(all) < 2 {
		return nil, errors.New("needs two row tenants or more")
	}
	heavy, others := all[0], all[1:]
	defer func() {
		if _, err := admin.SetSettings(context.WithoutCancel(ctx), heavy, tenant.Settings{}); err != nil {
			e.progressf("noisy-neighbour: unset the heavy tenant's settings: %v", err)
		}
	}()
	h := l.Handle()
	report := &noisyReport{h: h, id: heavy}
	side := func(name string, settings *tenant.Settings) load {
		ld := ourLookup(name, h, others, uniformPicker, e.sz.rows, e.sz.goroutines)
		ld.latency = true
		if settings == nil {
			return ld
		}
		ld.before = func(ctx context.Context) error {
			if _, err := admin.SetSettings(ctx, heavy, *settings); err != nil {
				return err
			}
			report.start(ctx)
			return nil
		}
		ld.after = func(ctx context.Context, r *round) error {
			done, timedOut, err := report.stop()
			r.extra["report_calls"], r.extra["report_timeouts"] = float64(done), float64(timedOut)
			if err != nil {
				return err
			}
			// A cancelled report's backend may sort on until it reads
			// the cancel: the next round starts once none is left.
			return e.waitQueriesEnd(ctx, noisyReportSQL)
		}
		return ld
	}
	rs, err := e.alternate(ctx, "noisy-neighbour", []load{
		side("quiet", nil),
		side("bounded", &noisySettings),
		side("unbounded", &tenant.Settings{}),
	}, e.sz.rounds, e.sz.roundTime, nil)
	if err != nil {
		return nil, err
	}
	quiet, bounded, unbounded := rs[0], rs[1], rs[2]
	res := ratioResult("noisy-neighbour", bounded, quiet, noisyGoal)
	p99 := func(rs []round) time.Duration {
		var lat []time.Duration
		for _, r := range rs {
			lat = append(lat, r.lat...)
		}
		slices.Sort(lat)
		return percentile(lat, 0.99)
	}
	qp, bp, up := p99(quiet), p99(bounded), p99(unbounded)
	p99Ratio := float64(bp) / float64(max(qp, time.Microsecond))
	unboundedRatio := spreadOf(ratios(unbounded, quiet))
	res.Goal += ", p99 <= " + trimFloat(noisyP99Goal) + "x"
	res.Met = res.Met && p99Ratio <= noisyP99Goal
	sum := func(rs []round, k string) float64 {
		var n float64
		for _, r := range rs {
			n += r.extra[k]
		}
		return n
	}
	var secs float64
	for _, r := range bounded {
		secs += r.elapsed.Seconds()
	}
	res.Detail["p99_ms"] = map[string]any{"quiet": ms(qp), "bounded": ms(bp), "unbounded": ms(up)}
	res.Detail["p99_ratio"] = round3(p99Ratio)
	res.Detail["unbounded"] = map[string]any{
		"ratio":     round3(unboundedRatio.Median),
		"ratio_min": round3(unboundedRatio.Min),
		"ratio_max": round3(unboundedRatio.Max),
		"p99_ratio": round3(float64(up) / float64(max(qp, time.Microsecond))),
		"calls_s":   round3(spreadOf(rates(unbounded)).Median),
	}
	res.Detail["report"] = map[string]any{
		"sql":                 noisyReportSQL,
		"rows_times":          noisyReportN,
		"workers":             noisyWorkers,
		"bounded_settings":    noisySettings.String(),
		"bounded_calls":       sum(bounded, "report_calls"),
		"bounded_timeouts":    sum(bounded, "report_timeouts"),
		"unbounded_calls":     sum(unbounded, "report_calls"),
		"unbounded_timeouts":  sum(unbounded, "report_timeouts"),
		"bounded_seconds":     round3(secs),
		"heavy_tenant":        heavy.String(),
		"lookup_tenants":      len(others),
		"connections":         e.sz.conns,
		"lookup_goroutines":   e.sz.goroutines,
		"per_tenant_conn_cap": "the handle's default, MaxConns/2, unless the tenant's max_conns is lower",
	}
	res.Detail["baseline_is"] = "the same lookups through the handle, in alternating rounds, with the heavy tenant idle"
	res.Detail["note"] = "on a virtual machine the quiet side can be the slower one: with a core idle, every wake-up of a lookup's client or backend costs more than with the report keeping both cores busy"
	return []Result{res}, nil
}

// waitQueriesEnd waits until no backend of the server runs sql, for up to
// ten seconds.
func (e *env) waitQueriesEnd(ctx context.Context, sql string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := e.admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'active'`, sql).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d backends still run the heavy report after 10s", n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// noisyReport runs the heavy tenant's report from noisyWorkers goroutines
// between start and stop.
type noisyReport struct {
	h  *landlord.Handle
	id tenant.ID

	cancel          context.CancelFunc
	wg              sync.WaitGroup
	done, timedOut  atomic.Int64
	mu              sync.Mutex
	firstUnexpected error
}

func (n *noisyReport) start(ctx context.Context) {
	ctx, n.cancel = context.WithCancel(landlord.WithTenant(ctx, n.id))
	n.done.Store(0)
	n.timedOut.Store(0)
	n.firstUnexpected = nil
	for range noisyWorkers {
		n.wg.Go(func() {
			r := rand.New(rand.NewPCG(rand.Uint64(), 0))
			var pgErr *pgconn.PgError
			for ctx.Err() == nil {
				var c int64
				err := n.h.QueryRow(ctx, noisyReportSQL, noisyReportN+r.IntN(100)).Scan(&c)
				switch {
				case err == nil:
					n.done.Add(1)
				case ctx.Err() != nil:
				case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.QueryCanceled: // its statement_timeout
					n.timedOut.Add(1)
				default:
					n.mu.Lock()
					if n.firstUnexpected == nil {
						n.firstUnexpected = err
					}
					n.mu.Unlock()
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
}

// stop ends the report's goroutines and returns what they did: calls that
// finished, calls their statement timeout cancelled, and the first other
// error.
func (n *noisyReport) stop() (done, timedOut int64, err error) {
	n.cancel()
	n.wg.Wait()
	if n.firstUnexpected != nil {
		err = fmt.Errorf("the heavy tenant's report: %w", n.firstUnexpected)
	}
	return n.done.Load(), n.timedOut.Load(), err
}
