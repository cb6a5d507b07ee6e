package bench

import (
	"context"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/move"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// move: one row tenant of many rows moved to a database of its own while
// writers insert into it through the handle at a steady rate. The pause is
// the longest write of the tenant during the move (goal <= 1 s), next to
// the longest in an equal stretch before it; the copy's rate is the
// snapshot's rows over the copy's time (goal >= 200k rows/s), next to a
// hand-written COPY of the same rows out of the shared table. Every
// acknowledged write must be at the new placement afterwards (lost: 0).

const (
	movePauseGoalMS = 1000
	moveRateGoal    = 200000
)

func moveCase() benchCase {
	return benchCase{
		name: "move",
		what: "a 1M-row row tenant moved to its own database under 2,000 writes/s: pause (goal <= 1 s), copy rate (goal >= 200k rows/s), lost writes (0)",
		// Its own installation, built by the case.
		needs: func(sizes) needs { return needs{} },
		run:   runMove,
	}
}

// moveSizes are the tenant's rows and the writers' rate.
func moveSizes(sz sizes) (rows, perSecond int) {
	if sz.quick {
		return 30000, 1000
	}
	return 1000000, 2000
}

// writers insert into tenants through the handle, one tenant after the
// other, each of n goroutines at its own steady pace, and record every
// call: the move's writers have one tenant, the drain's many.
type writers struct {
	mu    sync.Mutex
	acked map[tenant.ID][]int64
	calls []moveCall
	errs  []string // the first few
	nErrs int
	stop  chan struct{}
	wg    sync.WaitGroup
}

type moveCall struct {
	at   time.Time
	took time.Duration
}

func startWriters(ctx context.Context, h *landlord.Handle, ts []tenant.Tenant, perSecond int) *writers {
	const n = 8
	w := &writers{acked: map[tenant.ID][]int64{}, stop: make(chan struct{})}
	every := time.Duration(n) * time.Second / time.Duration(perSecond)
	for g := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for i := g; ; i += n {
				select {
				case <-w.stop:
					return
				case <-tick.C:
				}
				t := ts[i%len(ts)]
				id := int64(100_000_000 + i)
				start := time.Now()
				_, err := h.Exec(landlord.WithTenant(ctx, t.ID), `INSERT INTO items (id, sku, secret) VALUES ($1, $2, 'written')`, id, fmt.Sprint("w-", id))
				took := time.Since(start)
				w.mu.Lock()
				w.calls = append(w.calls, moveCall{start, took})
				if err != nil {
					w.nErrs++
					if len(w.errs) < 5 {
						w.errs = append(w.errs, fmt.Sprintf("%s: %v", t.Slug, err))
					}
				} else {
					w.acked[t.ID] = append(w.acked[t.ID], id)
				}
				w.mu.Unlock()
			}
		}()
	}
	return w
}

func (w *writers) finish() {
	close(w.stop)
	w.wg.Wait()
}

// longest returns the longest call that started in [from, to), and how
// many did.
func (w *writers) longest(from, to time.Time) (time.Duration, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return longestCall(w.calls, from, to)
}

// lost counts the acknowledged writes that are not there.
func (w *writers) lost(ctx context.Context, h *landlord.Handle) (lost, acked int, err error) {
	for id, ids := range w.acked {
		var present int
		if err := h.QueryRow(landlord.WithTenant(ctx, id), `SELECT count(*) FROM items WHERE id = ANY($1)`, ids).Scan(&present); err != nil {
			return 0, 0, err
		}
		acked += len(ids)
		lost += len(ids) - present
	}
	return lost, acked, nil
}

// longestCall returns the longest of calls that started in [from, to), and
// how many did.
func longestCall(calls []moveCall, from, to time.Time) (time.Duration, int) {
	var worst time.Duration
	n := 0
	for _, c := range calls {
		if !c.at.Before(from) && c.at.Before(to) {
			worst = max(worst, c.took)
			n++
		}
	}
	return worst, n
}

func runMove(ctx context.Context, e *env) ([]Result, error) {
	rows, perSecond := moveSizes(e.sz)
	w := &world{suffix: "_mv", migrations: appMigrations(), times: map[string]float64{}}
	if err := e.ensure(ctx, w, needs{rowTenants: 50}); err != nil {
		return nil, err
	}
	defer w.pool.Close()
	t, err := w.prov.Create(ctx, provision.Request{Slug: "move-big", Model: tenant.ModelRow})
	if err != nil {
		return nil, err
	}
	e.progressf("move: writing %d rows", rows)
	for done := 0; done < rows; done += 100000 {
		n := min(100000, rows-done)
		if err := fillItemsFrom(ctx, w.pool, w.owner, t.Schema, t.ID, done+1, n); err != nil {
			return nil, err
		}
	}
	// The baseline: the same rows by hand, a COPY out of the shared table
	// piped into a COPY into a table of the same shape and indexes.
	hand, err := handCopy(ctx, e, w.db, t)
	if err != nil {
		return nil, err
	}

	cfg := landlord.Config{OwnerRole: w.owner, AppRole: w.app, StartupAudit: landlord.AuditOff, Logger: e.cfg.Logger}
	l, err := landlord.Open(ctx, e.url(w.db, map[string]string{"application_name": "landlord bench move"}), appMigrations(), cfg)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	admin, err := l.Admin(ctx, "benchmark: move")
	if err != nil {
		return nil, err
	}
	wr := startWriters(ctx, l.Handle(), []tenant.Tenant{t}, perSecond)
	// An unmoved stretch first, as long as the move will be roughly: the
	// baseline of the writes' longest call.
	lead := 2 * time.Second
	if !e.sz.quick {
		lead = 8 * time.Second
	}
	time.Sleep(lead)
	moveStart := time.Now()
	var phase string
	res, merr := admin.MoveTenant(ctx, t.ID, tenant.ModelDatabase, "", move.Config{Settle: time.Millisecond, Progress: func(p move.Progress) {
		if string(p.Phase) != phase {
			phase = string(p.Phase)
			e.progressf("move: %s after %.1f s: %d rows, %d changes", phase, time.Since(moveStart).Seconds(), p.Rows, p.Changes)
		}
	}})
	moveEnd := time.Now()
	time.Sleep(500 * time.Millisecond)
	wr.finish()
	if merr != nil {
		return nil, merr
	}
	before, nBefore := wr.longest(moveStart.Add(-lead), moveStart)
	during, nDuring := wr.longest(moveStart, moveEnd)
	lost, acked, err := wr.lost(ctx, l.Handle())
	if err != nil {
		return nil, err
	}
	rate := float64(res.Rows) / res.Copy.Seconds()
	handRate := float64(rows) / hand.Seconds()
	e.progressf("move: %d rows in %.1f s (%.0f rows/s), %d changes after, pause %.0f ms, longest write %.0f ms (before: %.0f ms), %d lost",
		res.Rows, res.Copy.Seconds(), rate, res.Changes, ms(res.Pause), ms(during), ms(before), lost)
	detail := func(extra map[string]any) map[string]any {
		d := map[string]any{
			"rows": rows, "writes_per_second": perSecond, "writers": 8, "online": res.Move.Online,
			"copy_s": round3(res.Copy.Seconds()), "changes_after_copy": res.Changes, "pause_ms": ms(res.Pause),
			"cutover_fence_ms": ms(res.Cutover.Fence), "cutover_level_ms": ms(res.Cutover.Level),
			"cutover_sequences_ms": ms(res.Cutover.Sequences), "cutover_compare_ms": ms(res.Cutover.Compare),
			"move_s": round3(moveEnd.Sub(moveStart).Seconds()), "writes_during": nDuring, "writes_before": nBefore,
			"acknowledged": acked, "failed_writes": wr.nErrs, "lost": lost,
			"hand_copy_s": round3(hand.Seconds()),
		}
		maps.Copy(d, extra)
		return e.withSetup(d)
	}
	return []Result{
		{
			Case: "move/pause", Ours: ms(during), Baseline: ptr(ms(before)), Ratio: ptr(round3(ms(during) / max(ms(before), 0.001))),
			Unit: "ms", Goal: fmt.Sprintf("longest write <= %d ms, 0 lost", movePauseGoalMS),
			Met: ms(during) <= movePauseGoalMS && lost == 0 && res.Move.Online, Detail: detail(nil),
		},
		{
			Case: "move/copy-rate", Ours: round3(rate), Baseline: ptr(round3(handRate)), Ratio: ptr(round3(rate / handRate)),
			Unit: "rows/s", Goal: fmt.Sprintf(">= %d rows/s", moveRateGoal), Met: rate >= moveRateGoal,
			Detail: detail(nil),
		},
	}, nil
}

// fillItemsFrom writes n items of tenant id, ids from first on, into
// schema's items as the owner in the tenant's context.
func fillItemsFrom(ctx context.Context, pool interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}, owner, schema string, id tenant.ID, first, n int) error {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL ROLE " + ident(owner))
	b.Queue(`SELECT landlord_context.enter($1)`, id)
	b.Queue(`INSERT INTO `+ident(schema)+`.items (tenant_id, id, sku, secret)
		SELECT $1, g, 'sku-' || g, md5($2::text || g::text) FROM generate_series($3::int, $4::int) g`, id, id.String(), first, first+n-1)
	b.Queue("COMMIT")
	return pool.SendBatch(ctx, b).Close()
}

// handCopy copies tenant t's items by hand into a scratch table of the same
// shape and indexes, COPY out piped into COPY in over two connections, and
// returns how long it took.
func handCopy(ctx context.Context, e *env, db string, t tenant.Tenant) (time.Duration, error) {
	cfg := e.base.Copy()
	cfg.Database = db
	var conns [2]*pgx.Conn
	for i := range conns {
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return 0, err
		}
		defer c.Close(context.WithoutCancel(ctx))
		conns[i] = c
	}
	scratch := "public.landlord_bench_move_scratch"
	if _, err := conns[1].Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s; CREATE TABLE %s (LIKE %s.items INCLUDING ALL)`, scratch, scratch, ident(t.Schema))); err != nil {
		return 0, err
	}
	defer conns[1].Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+scratch)
	pr, pw := io.Pipe()
	start := time.Now()
	out := make(chan error, 1)
	go func() {
		_, err := conns[0].PgConn().CopyTo(ctx, pw, fmt.Sprintf(`COPY (SELECT * FROM %s.items WHERE tenant_id = '%s') TO STDOUT`, ident(t.Schema), t.ID))
		pw.CloseWithError(err)
		out <- err
	}()
	_, err := conns[1].PgConn().CopyFrom(ctx, pr, "COPY "+scratch+" FROM STDIN")
	pr.CloseWithError(io.ErrClosedPipe)
	if oerr := <-out; err == nil {
		err = oerr
	}
	return time.Since(start), err
}
