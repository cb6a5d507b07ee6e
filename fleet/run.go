package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/migration"
)

// RunStatus is where a run stands.
type RunStatus string

// The states of a run.
const (
	RunRunning     RunStatus = "running"     // under way, its owner alive
	RunDone        RunStatus = "done"        // every selected target at the head
	RunFailed      RunStatus = "failed"      // some target failed or was left pending
	RunInterrupted RunStatus = "interrupted" // cancelled, or its process stopped
)

// Run is one fleet run as the directory records it.
type Run struct {
	ID       int       `json:"id"` // 0 for an Up that found nothing to do and recorded nothing
	Status   RunStatus `json:"status"`
	Head     int       `json:"head"`
	SetHash  string    `json:"set_hash"`
	Targets  int       `json:"targets"` // targets the run set out to migrate
	Done     int       `json:"done"`
	Failed   int       `json:"failed"`
	Error    string    `json:"error,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

const runColumns = `id, status, head, set_hash, targets, done, failed, error, started_at, finished_at`

func scanRun(row pgx.Row) (*Run, error) {
	var r Run
	var finished *time.Time
	if err := row.Scan(&r.ID, &r.Status, &r.Head, &r.SetHash, &r.Targets, &r.Done, &r.Failed, &r.Error, &r.Started, &finished); err != nil {
		return nil, err
	}
	if finished != nil {
		r.Finished = *finished
	}
	return &r, nil
}

// TargetResult is what Up did to one target.
type TargetResult struct {
	Target
	Status  State `json:"status"`
	From    int   `json:"from"` // version before; -1 if unknown
	To      int   `json:"to"`   // version reached
	Applied []int `json:"applied"`
	// GlobalApplied lists the versions of the global set applied to the
	// global schema of the target's database before its own migrations.
	GlobalApplied []int         `json:"global_applied,omitempty"`
	Attempts      int           `json:"attempts"` // tries towards this head, this one included
	Duration      time.Duration `json:"duration_ns"`
	Error         string        `json:"error,omitempty"`
	Canary        bool          `json:"canary,omitempty"`
	// By is the other run that finished the target while this one waited
	// for it; 0 when this run did the work.
	By int `json:"by,omitempty"`
}

// Report is the outcome of Up.
type Report struct {
	Run Run `json:"run"`
	// Targets lists every target the run set out to migrate, in run order.
	Targets []TargetResult `json:"targets"`
	// AtHead counts the selected targets that were already at the head and
	// were not touched.
	AtHead int `json:"at_head"`
}

// Failed returns the targets that failed.
func (r *Report) Failed() []TargetResult {
	var out []TargetResult
	for _, t := range r.Targets {
		if t.Status == StateFailed {
			out = append(out, t)
		}
	}
	return out
}

// Up migrates every selected target that is not at the head, and every
// target the latest run left failed, pending or interrupted; it also corrects
// the directory's schema_version of tenants whose ledger says otherwise (a
// migrator stopped between a step and its directory update, a row tenant
// created while the shared schema was behind). It first takes
// over the runs whose process is gone, then checks every selected target's
// ledger against the set (a disagreement is an error wrapping ErrSetMismatch,
// and nothing is recorded or applied), records the run and its targets as
// pending, and migrates them: the canaries first, then the rest,
// Config.Parallel at a time per server. Targets that another running run
// holds are waited for, and taken over should that run stop.
//
// When nothing is to be done Up records nothing and returns a Report with
// Run.ID 0. When some target failed the error wraps ErrTargetsFailed or
// ErrCanaryFailed and the Report says which and why; a cancelled ctx stops
// the run where it is (the run is recorded interrupted, its in-flight steps
// roll back) and returns ctx's error. Up may be run again at any point.
func (f *Fleet) Up(ctx context.Context) (*Report, error) {
	if err := f.sweep(ctx); err != nil {
		return nil, err
	}
	s, err := f.survey(ctx)
	if err != nil {
		return nil, err
	}
	if err := mismatchError(s.items); err != nil {
		return nil, err
	}
	rep := &Report{Run: Run{Status: RunDone, Head: f.set.Head(), SetHash: f.set.Hash()}}
	var work, held []*item
	for _, it := range s.items {
		switch {
		case len(it.pending) == 0 && len(it.globalPending) == 0 && it.problem == nil && (it.last == nil || it.last.Status == StateDone) && it.inSync():
			rep.AtHead++
		case it.held != 0:
			held = append(held, it)
		default:
			work = append(work, it)
		}
	}
	if len(work) == 0 && len(held) == 0 {
		return rep, nil
	}
	if err := f.rehearse(ctx); err != nil {
		return nil, err
	}
	r, err := f.startRun(ctx, len(work)+len(held))
	if err != nil {
		return nil, err
	}
	defer r.close(ctx)
	rep.Run.ID, rep.Run.Targets, rep.Run.Started = r.id, len(work)+len(held), r.started
	runErr := r.execute(ctx, work, held)
	for _, it := range s.items {
		if res := r.results[it.Key]; res != nil {
			rep.Targets = append(rep.Targets, *res)
			switch res.Status {
			case StateDone:
				rep.Run.Done++
			case StateFailed:
				rep.Run.Failed++
			}
		}
	}
	rep.Run.Status, rep.Run.Error = RunDone, ""
	switch {
	case ctx.Err() != nil:
		rep.Run.Status, rep.Run.Error = RunInterrupted, "cancelled: "+ctx.Err().Error()
		runErr = ctx.Err()
	case runErr != nil:
		rep.Run.Status, rep.Run.Error = RunFailed, runErr.Error()
	}
	if err := r.finish(ctx, &rep.Run); err != nil && runErr == nil {
		runErr = err
	}
	return rep, runErr
}

// sweepSQL marks the runs whose owner is gone interrupted, and their targets
// that were being migrated failed, so that this run may take them over.
const sweepSQL = `WITH dead AS (
	UPDATE landlord.migration_runs r SET status = 'interrupted', finished_at = now(), error = $2
	WHERE r.status = 'running' AND NOT EXISTS (
		SELECT FROM pg_locks l
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.classid = $1::oid AND l.objid = r.id::oid)
	RETURNING r.id)
UPDATE landlord.migration_targets t
SET status = 'failed', finished_at = now(),
	error = format('interrupted: run %s stopped while migrating this target', t.run_id)
FROM dead WHERE t.run_id = dead.id AND t.status = 'running'`

func (f *Fleet) sweep(ctx context.Context) error {
	if _, err := f.admin.Exec(ctx, sweepSQL, uint32(runLockNamespace), interruptedRun); err != nil {
		return fmt.Errorf("take over stopped fleet runs: %w", err)
	}
	return nil
}

// run is one Up under way.
type run struct {
	f       *Fleet
	id      int
	started time.Time
	lock    *pgx.Conn     // holds the run's advisory lock while the run lives
	work    *pgxpool.Pool // control database connections for migrating; nil until needed
	workMu  sync.Mutex
	con     *connector

	// results holds every target of the run, filled in before the first
	// worker starts; each worker writes only its own target's entry.
	results map[string]*TargetResult
	failed  atomic.Bool // a target failed in this run
}

// startRun records a new run, holding its lock before the row is visible,
// so that no other run can take it for a stopped one.
func (f *Fleet) startRun(ctx context.Context, targets int) (*run, error) {
	conn, err := pgx.ConnectConfig(ctx, f.admin.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("connect for the run lock: %w", err)
	}
	opts, err := json.Marshal(map[string]any{
		"parallel": f.cfg.Parallel, "canary": f.cfg.Canary, "models": f.cfg.Models, "tenants": f.cfg.Tenants,
		"continue_on_error": f.cfg.ContinueOnError, "lock_timeout_ms": f.cfg.LockTimeout.Milliseconds(), "lock_retries": f.cfg.LockRetries,
	})
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	r := &run{f: f, lock: conn, con: newConnector(f), results: map[string]*TargetResult{}}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO landlord.migration_runs (status, set_hash, head, options, targets)
			VALUES ('running', $1, $2, $3, $4) RETURNING id, started_at`,
			f.set.Hash(), f.set.Head(), opts, targets).Scan(&r.id, &r.started); err != nil {
			return err
		}
		// A session lock taken inside a transaction outlives its commit.
		_, err := tx.Exec(ctx, `SELECT pg_advisory_lock($1::int4, $2::int4)`, int32(runLockNamespace), int32(r.id))
		return err
	})
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("record fleet run: %w", err)
	}
	f.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "fleet run started", slog.Int("run", r.id), slog.Int("targets", targets), slog.Int("head", f.set.Head()))
	return r, nil
}

// finish records the run's outcome.
func (r *run) finish(ctx context.Context, out *Run) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := r.lock.QueryRow(wctx, `UPDATE landlord.migration_runs SET status = $2, done = $3, failed = $4, error = $5, finished_at = now()
		WHERE id = $1 RETURNING finished_at`, r.id, out.Status, out.Done, out.Failed, out.Error).Scan(&out.Finished)
	if err != nil {
		return fmt.Errorf("record end of fleet run %d: %w", r.id, err)
	}
	r.f.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "fleet run finished", slog.Int("run", r.id), slog.String("status", string(out.Status)),
		slog.Int("done", out.Done), slog.Int("failed", out.Failed), slog.Duration("took", out.Finished.Sub(r.started)))
	return nil
}

// close releases the run's lock and connections.
func (r *run) close(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	// Closing the connection releases the lock too; unlocking first lets a
	// waiting run see at once that this one is over.
	_, _ = r.lock.Exec(cctx, `SELECT pg_advisory_unlock($1::int4, $2::int4)`, int32(runLockNamespace), int32(r.id))
	_ = r.lock.Close(cctx)
	if r.work != nil {
		r.work.Close()
	}
}

// intentSQL records items as pending in run $1 towards head $2. A target
// held by another live run is left alone: RETURNING lists what this run
// now owns. Rows are written in key order, so two runs recording the same
// targets at once never deadlock.
//
// A target stays with its run while the run is recorded running (a run
// whose owner is gone is marked otherwise by sweep first, which also
// fails its targets under way) or holds its lock ($10, the namespace). The
// lock is read from pg_locks, which shows the present, not the
// statement's snapshot: a run whose record committed after this statement
// began, and whose intent this one then waited for, is invisible to the
// snapshot but holds its lock, and its targets stay its own.
const intentSQL = `INSERT INTO landlord.migration_targets AS t
	(target, kind, tenant_id, server_id, database_name, schema_name, run_id, status, from_version, to_version, version)
SELECT k, kind, NULLIF(tid, '')::uuid, srv, db, sch, $1, 'pending', v, $2, v
FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[]) AS u(k, kind, tid, srv, db, sch, v)
ORDER BY k
ON CONFLICT (target) DO UPDATE SET
	kind = EXCLUDED.kind, tenant_id = EXCLUDED.tenant_id, server_id = EXCLUDED.server_id,
	database_name = EXCLUDED.database_name, schema_name = EXCLUDED.schema_name,
	run_id = EXCLUDED.run_id, status = 'pending', from_version = EXCLUDED.from_version,
	to_version = EXCLUDED.to_version, version = EXCLUDED.version,
	attempts = CASE WHEN t.status <> 'done' AND t.to_version = EXCLUDED.to_version THEN t.attempts ELSE 0 END,
	duration_ms = 0, error = '', started_at = NULL, finished_at = NULL
WHERE t.status IN ('done', 'failed') OR t.run_id = EXCLUDED.run_id OR NOT EXISTS (
	SELECT FROM landlord.migration_runs r WHERE r.id = t.run_id AND r.status = 'running'
) AND NOT EXISTS (
	SELECT FROM pg_locks l
	WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
	  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	  AND l.classid = $10::oid AND l.objid = t.run_id::oid)
RETURNING target`

// intent records items as this run's pending targets and returns those it
// now owns; the others are held by another running run.
func (r *run) intent(ctx context.Context, items []*item) (owned, held []*item, err error) {
	if len(items) == 0 {
		return nil, nil, nil
	}
	n := len(items)
	keys, kinds, tids, srvs, dbs, schs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	vs := make([]int, n)
	for i, it := range items {
		keys[i], kinds[i], srvs[i], dbs[i], schs[i], vs[i] = it.Key, string(it.Kind), it.Server, it.Database, it.Schema, it.version
		if !it.Tenant.IsZero() {
			tids[i] = it.Tenant.String()
		}
	}
	rows, err := r.f.admin.Query(ctx, intentSQL, r.id, r.f.set.Head(), keys, kinds, tids, srvs, dbs, schs, vs, uint32(runLockNamespace))
	if err != nil {
		return nil, nil, fmt.Errorf("record fleet run %d targets: %w", r.id, err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, nil, fmt.Errorf("record fleet run %d targets: %w", r.id, err)
	}
	mine := make(map[string]bool, len(got))
	for _, k := range got {
		mine[k] = true
	}
	for _, it := range items {
		if mine[it.Key] {
			owned = append(owned, it)
		} else {
			held = append(held, it)
		}
	}
	return owned, held, nil
}

// execute migrates work (canaries first) and then waits for held.
func (r *run) execute(ctx context.Context, work, held []*item) error {
	owned, more, err := r.intent(ctx, work)
	if err != nil {
		return err
	}
	held = append(held, more...)
	for _, it := range append(slices.Clone(owned), held...) {
		r.results[it.Key] = &TargetResult{Target: it.Target, Status: StatePending, From: it.version, To: max(it.version, 0), Applied: []int{}}
	}
	if r.f.cfg.OnRun != nil {
		r.f.cfg.OnRun(Run{ID: r.id, Status: RunRunning, Head: r.f.set.Head(), SetHash: r.f.set.Hash(), Targets: len(owned) + len(held), Started: r.started})
	}
	canary := owned[:min(r.f.cfg.Canary, len(owned))]
	rest := owned[len(canary):]
	if len(canary) > 0 {
		for _, it := range canary {
			r.results[it.Key].Canary = true
		}
		if n := r.wave(ctx, canary, true); n > 0 {
			return fmt.Errorf("%w: %d of %d; the other %d targets not started", ErrCanaryFailed, n, len(canary), len(rest)+len(held))
		}
	}
	r.wave(ctx, rest, !r.f.cfg.ContinueOnError)
	if !r.failed.Load() || r.f.cfg.ContinueOnError {
		if err := r.waitHeld(ctx, held); err != nil {
			return err
		}
	}
	failed, pending := 0, 0
	for _, res := range r.results {
		switch res.Status {
		case StateFailed:
			failed++
		case StatePending:
			pending++
		}
	}
	switch {
	case failed > 0 && pending > 0:
		return fmt.Errorf("%w: %d of %d; stopped before the other %d", ErrTargetsFailed, failed, len(r.results), pending)
	case failed > 0:
		return fmt.Errorf("%w: %d of %d", ErrTargetsFailed, failed, len(r.results))
	case pending > 0:
		return fmt.Errorf("%w: %d of %d left pending", ErrTargetsFailed, pending, len(r.results))
	}
	return nil
}

// wave migrates items, Config.Parallel at a time per server and
// Config.PerDatabase at a time per database, each worker taking the first
// item in order whose database has room. With stopOnFail no item starts
// after one failed. It returns how many failed.
func (r *run) wave(ctx context.Context, items []*item, stopOnFail bool) int {
	queues := map[string]*queue{}
	var servers []string
	for _, it := range items {
		q := queues[it.Server]
		if q == nil {
			q = &queue{busy: map[location]int{}}
			q.cond = sync.NewCond(&q.mu)
			queues[it.Server] = q
			servers = append(servers, it.Server)
		}
		q.items = append(q.items, it)
	}
	var stop atomic.Bool
	var failed atomic.Int32
	var wg sync.WaitGroup
	for _, s := range servers {
		q := queues[s]
		q.taken = make([]bool, len(q.items))
		for range min(r.f.cfg.Parallel, len(q.items)) {
			wg.Go(func() {
				for {
					it := q.next(func() bool { return stop.Load() || ctx.Err() != nil }, r.f.cfg.PerDatabase)
					if it == nil {
						return
					}
					ok := r.migrate(ctx, it)
					if !ok {
						failed.Add(1)
						if stopOnFail {
							stop.Store(true)
						}
					}
					q.done(it)
				}
			})
		}
	}
	wg.Wait()
	return int(failed.Load())
}

// queue is one server's items in a wave.
type queue struct {
	mu    sync.Mutex
	cond  *sync.Cond
	items []*item
	taken []bool
	first int              // items before it are all taken
	busy  map[location]int // items being migrated per database
}

// next returns the first item not taken whose database has fewer than
// perDB items under way, waiting while every remaining one's database is
// full. It returns nil when none remain or stopped says so.
func (q *queue) next(stopped func() bool, perDB int) *item {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if stopped() {
			return nil
		}
		for q.first < len(q.items) && q.taken[q.first] {
			q.first++
		}
		if q.first == len(q.items) {
			return nil
		}
		for i := q.first; i < len(q.items); i++ {
			if it := q.items[i]; !q.taken[i] && q.busy[it.loc] < perDB {
				q.taken[i] = true
				q.busy[it.loc]++
				return it
			}
		}
		// Every remaining item waits for its database: a worker holding
		// one of those slots wakes us when it is done.
		q.cond.Wait()
	}
}

func (q *queue) done(it *item) {
	q.mu.Lock()
	q.busy[it.loc]--
	q.mu.Unlock()
	q.cond.Broadcast()
}

const (
	claimSQL = `UPDATE landlord.migration_targets SET status = 'running', attempts = attempts + 1, started_at = now()
		WHERE target = $1 AND run_id = $2 AND status = 'pending' RETURNING attempts`
	finishSQL = `UPDATE landlord.migration_targets SET status = $3, version = $4, duration_ms = $5, error = $6, finished_at = now()
		WHERE target = $1 AND run_id = $2`
	// finishSharedSQL and finishTenantSQL are finishSQL that also set the
	// directory's schema_version: of the row tenants of server $7, or of
	// tenant $7.
	finishSharedSQL = `WITH f AS (` + finishSQL + `)
		UPDATE landlord.tenants SET schema_version = $4 WHERE model = 'row' AND server_id = $7 AND schema_version <> $4`
	finishTenantSQL = `WITH f AS (` + finishSQL + `)
		UPDATE landlord.tenants SET schema_version = $4 WHERE id = $7 AND schema_version <> $4`
)

// migrate brings one target to the head and records the outcome. It
// reports false when the target failed.
func (r *run) migrate(ctx context.Context, it *item) bool {
	f := r.f
	res := r.results[it.Key]
	var lock *pgxpool.Conn // holds the tenant's lock, for a tenant's target
	var claimErr, lockErr error
	if it.Tenant.IsZero() {
		claimErr = f.admin.QueryRow(ctx, claimSQL, it.Key, r.id).Scan(&res.Attempts)
	} else {
		res.Attempts, lock, claimErr, lockErr = r.claimTenant(ctx, it)
	}
	if err := claimErr; err != nil {
		if ctx.Err() != nil {
			return true // left pending: the run is being cancelled
		}
		if errors.Is(err, pgx.ErrNoRows) {
			err = errors.New("the target's record was taken by another run")
		}
		res.Status, res.Error = StateFailed, "claim: "+err.Error()
		r.failed.Store(true)
		r.report(res)
		return false
	}
	start := time.Now()
	var out migration.Result
	applyErr := lockErr
	if applyErr == nil {
		// Held until the outcome and the directory's version are written.
		defer r.unlockTenant(ctx, lock, it)
		out, applyErr = r.apply(ctx, it, lock)
	}
	res.Duration = time.Since(start)
	res.Applied = append(res.Applied, out.Applied...)
	switch {
	case applyErr != nil && len(out.Applied) == 0 && out.To == 0:
		res.To = max(it.version, 0) // failed before reading the ledger
	default:
		res.To = out.To
	}
	if it.version < 0 && (applyErr == nil || len(out.Applied) > 0) {
		res.From = out.From // the ledger could not be read before
	}
	res.Status = StateDone
	if applyErr != nil {
		res.Status, res.Error = StateFailed, applyErr.Error()
	}
	// Record the outcome even when ctx is cancelled: what the ledger says
	// must not be left looking as if it were still under way.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// One statement, so one round trip and one commit: the outcome and,
	// when a version was reached, the directory's schema_version.
	sql, args := finishSQL, []any{it.Key, r.id, res.Status, res.To, res.Duration.Milliseconds(), res.Error}
	if applyErr == nil || len(out.Applied) > 0 {
		// Without a version reached the directory has the one before.
		switch it.Kind {
		case KindShared:
			sql, args = finishSharedSQL, append(args, it.Server)
		case KindSchema, KindDatabase:
			sql, args = finishTenantSQL, append(args, it.Tenant)
		}
	}
	_, werr := f.admin.Exec(wctx, sql, args...)
	if werr != nil {
		res.Status = StateFailed
		res.Error = fmtJoin(res.Error, "record outcome: "+werr.Error())
	}
	if res.Status == StateFailed {
		r.failed.Store(true)
		f.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "target failed", slog.Int("run", r.id), slog.String("target", it.Key),
			slog.String("slug", it.Slug), slog.Int("version", res.To), slog.String("error", res.Error))
	} else {
		f.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "target migrated", slog.Int("run", r.id), slog.String("target", it.Key),
			slog.String("slug", it.Slug), slog.Int("from", res.From), slog.Int("to", res.To), slog.Duration("took", res.Duration))
	}
	r.report(res)
	return res.Status == StateDone
}

func fmtJoin(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func (r *run) report(res *TargetResult) {
	if r.f.cfg.OnTarget != nil {
		r.f.cfg.OnTarget(*res)
	}
}

// deadlockRetries is how often a target whose step was rolled back by a
// deadlock or serialization failure is tried again. Steps of different
// targets in one database run at once (Config.PerDatabase); a migration
// whose DDL touches something they share (a table another schema's foreign
// key points at, a shared type) can deadlock with another. A rolled-back
// step is safe to retry.
const deadlockRetries = 10

// apply runs the migrator on the target, retrying a step that lost a
// deadlock. lock is the connection that holds the target's tenant lock,
// if any (claimTenant).
func (r *run) apply(ctx context.Context, it *item, lock *pgxpool.Conn) (migration.Result, error) {
	var total migration.Result
	read := false // a try got as far as reading the ledger
	for attempt := 0; ; attempt++ {
		res, err := r.applyOnce(ctx, it, lock)
		// Apply returns a zero Result when it failed before reading the
		// ledger; otherwise From and To are what the ledger said.
		if err == nil || len(res.Applied) > 0 || res.From > 0 || res.To > 0 {
			if !read {
				total.From = res.From
			}
			read = true
			total.To = res.To
		}
		total.Applied = append(total.Applied, res.Applied...)
		if err == nil || attempt >= deadlockRetries || !isTransient(err) || ctx.Err() != nil {
			return total, err
		}
		r.f.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "target step rolled back by a deadlock; retrying",
			slog.Int("run", r.id), slog.String("target", it.Key), slog.Int("attempt", attempt+1))
		select {
		case <-ctx.Done():
			return total, err
		case <-time.After(time.Duration(attempt+1)*50*time.Millisecond + rand.N(100*time.Millisecond)):
		}
	}
}

func isTransient(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == pgerrcode.DeadlockDetected || pgErr.Code == pgerrcode.SerializationFailure)
}

// applyOnce runs the migrator on the target over a connection to its
// database: in the control database, the one that holds its tenant lock
// when there is one.
func (r *run) applyOnce(ctx context.Context, it *item, lock *pgxpool.Conn) (migration.Result, error) {
	if it.templateDB {
		// The provisioner opens the template database for the length of
		// the call, under the lock that keeps copies off it.
		var res migration.Result
		err := r.f.prov.WithTemplateDatabase(ctx, func(ctx context.Context, conn *pgx.Conn) error {
			if err := r.applyGlobal(ctx, conn, it); err != nil {
				return err
			}
			var err error
			res, err = r.f.mig.Apply(ctx, conn, it.mt)
			return err
		})
		return res, err
	}
	if it.control && lock != nil {
		return r.f.mig.Apply(ctx, lock, it.mt)
	}
	if it.control {
		pool, err := r.workPool(ctx)
		if err != nil {
			return migration.Result{}, err
		}
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return migration.Result{}, fmt.Errorf("connect to the control database: %w", err)
		}
		defer conn.Release()
		return r.f.mig.Apply(ctx, conn, it.mt)
	}
	conn, err := r.con.connect(ctx, it.loc)
	if err != nil {
		return migration.Result{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := r.applyGlobal(ctx, conn, it); err != nil {
		return migration.Result{}, err
	}
	return r.f.mig.Apply(ctx, conn, it.mt)
}

// applyGlobal brings the global schema of a database outside the control
// database to the global set's head, before its tenant tables, whose new
// migrations may reference new global tables. Its rows are SyncGlobal's;
// the migrations' own rows come with them. Several targets of one
// database each call it; the migrator applies each step once.
func (r *run) applyGlobal(ctx context.Context, conn *pgx.Conn, it *item) error {
	if r.f.global == nil {
		return nil
	}
	res, err := r.f.global.Apply(ctx, conn, migration.GlobalTarget())
	r.results[it.Key].GlobalApplied = append(r.results[it.Key].GlobalApplied, res.Applied...)
	if err != nil {
		return fmt.Errorf("global schema: %w", err)
	}
	return nil
}

// workPool returns the pool of control database connections the workers
// migrate over and hold their tenants' locks on: its own, so that a small
// administrator pool never leaves a worker waiting for a connection
// another worker holds. A worker holds one at a time, and every server has
// Config.Parallel workers.
func (r *run) workPool(ctx context.Context) (*pgxpool.Pool, error) {
	r.workMu.Lock()
	defer r.workMu.Unlock()
	if r.work != nil {
		return r.work, nil
	}
	servers := map[string]bool{}
	for _, res := range r.results {
		servers[res.Server] = true
	}
	cfg := r.f.admin.Config().Copy()
	cfg.MaxConns = int32(r.f.cfg.Parallel * max(1, len(servers)))
	cfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the control database: %w", err)
	}
	r.work = pool
	return pool, nil
}

// pollHeld is how often a run looks at the targets another run holds.
const pollHeld = 200 * time.Millisecond

// waitHeld waits for the targets other running runs hold. A target such a
// run finished counts as done; one it failed, or left when it stopped, this
// run takes over and migrates.
func (r *run) waitHeld(ctx context.Context, held []*item) error {
	f := r.f
	for len(held) > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollHeld):
		}
		if err := f.sweep(ctx); err != nil {
			return err
		}
		live, err := liveRuns(ctx, f.admin)
		if err != nil {
			return err
		}
		recs, err := readTargetRecords(ctx, f.admin, keysOfItems(held))
		if err != nil {
			return err
		}
		var take, still []*item
		for _, it := range held {
			rec := recs[it.Key]
			switch {
			case (rec.Status == StatePending || rec.Status == StateRunning) && live[rec.Run] && rec.Run != r.id:
				still = append(still, it)
			case rec.Status == StateDone && rec.Version >= f.set.Head() && rec.Run != r.id:
				res := r.results[it.Key]
				res.Status, res.To, res.By, res.Attempts, res.Duration = StateDone, rec.Version, rec.Run, rec.Attempts, rec.Duration
				r.report(res)
			default:
				take = append(take, it)
			}
		}
		owned, busy, err := r.intent(ctx, take)
		if err != nil {
			return err
		}
		r.wave(ctx, owned, !f.cfg.ContinueOnError)
		held = append(still, busy...)
		if r.failed.Load() && !f.cfg.ContinueOnError {
			return nil
		}
	}
	return nil
}

func keysOfItems(items []*item) []string {
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.Key
	}
	return keys
}
