package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/migration"
)

// State is where a target stands in the latest run that selected it.
type State string

// The states of a target in a run.
const (
	StatePending State = "pending" // selected, not started
	StateRunning State = "running" // being migrated by a running run
	StateDone    State = "done"    // at the run's head
	StateFailed  State = "failed"  // a step failed, or the run stopped while it ran
)

// LastRun is what the latest run that selected a target recorded about it.
type LastRun struct {
	Run      int           `json:"run"`
	Status   State         `json:"status"`
	From     int           `json:"from"`    // version when the run planned it
	To       int           `json:"to"`      // the run's head
	Version  int           `json:"version"` // version reached
	Attempts int           `json:"attempts"`
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
	Finished time.Time     `json:"finished,omitzero"`
	SetHash  string        `json:"set_hash"` // the run's migration set
}

// TargetStatus is one target in Status and Plan.
type TargetStatus struct {
	Target
	// Version is the highest version in the target's ledger, -1 when the
	// ledger could not be read (Problem says why).
	Version int `json:"version"`
	// Pending lists the versions of the set the target lacks: what Up would
	// apply.
	Pending []int `json:"pending"`
	// GlobalPending lists the versions of the global set (see
	// landlord.Config.Global) that the global schema in the target's
	// database lacks, for a target outside the control database: Up
	// applies them before Pending.
	GlobalPending []int `json:"global_pending,omitempty"`
	// Problem says why the ledger could not be read, or how it disagrees
	// with the migration set.
	Problem string `json:"problem,omitempty"`
	// Last is what the latest fleet run recorded; nil if none selected it.
	Last *LastRun `json:"last,omitempty"`
	// HeldBy is the running run that is migrating the target, if any.
	HeldBy int `json:"held_by,omitempty"`
}

// Summary counts the targets of a Status.
type Summary struct {
	Targets int `json:"targets"`
	AtHead  int `json:"at_head"`
	Behind  int `json:"behind"`  // readable ledger below the head (or the global schema of its database below the global head)
	Unknown int `json:"unknown"` // ledger unreadable or disagreeing with the set
	Failed  int `json:"failed"`  // the latest run failed on them
	Running int `json:"running"` // held by a running run now
}

// Status is the state of the selected targets.
type Status struct {
	Head    int            `json:"head"`
	SetHash string         `json:"set_hash"`
	Targets []TargetStatus `json:"targets"`
	Summary Summary        `json:"summary"`
	// LastRun is the installation's most recent fleet run, whatever it
	// selected; nil if there was none.
	LastRun *Run `json:"last_run,omitempty"`
}

// Behind returns the targets that are not at the head, or whose database's
// global schema is not at the global set's head.
func (s *Status) Behind() []TargetStatus {
	var out []TargetStatus
	for _, t := range s.Targets {
		if t.Version < s.Head || len(t.GlobalPending) > 0 {
			out = append(out, t)
		}
	}
	return out
}

// survey is the selected targets with their ledgers read and judged.
type survey struct {
	*selection
	live    map[int]bool // runs marked running whose owner still holds its lock
	lastRun *Run
}

// Status reports, for every selected target, its version against the head,
// what the latest run recorded about it, and a summary. It reads the ledgers
// of all targets in the control database in one query and opens one
// connection per other database (tenant databases, the template database),
// Config.Parallel at a time. It changes nothing.
func (f *Fleet) Status(ctx context.Context) (*Status, error) {
	s, err := f.survey(ctx)
	if err != nil {
		return nil, err
	}
	return f.status(s), nil
}

// Plan is Status for a run that has not started: it lists, per target, the
// versions Up would apply, and fails as Up would, with an error wrapping
// ErrSetMismatch, when some target's ledger disagrees with the set. It
// changes nothing.
func (f *Fleet) Plan(ctx context.Context) (*Status, error) {
	s, err := f.survey(ctx)
	if err != nil {
		return nil, err
	}
	st := f.status(s)
	if err := mismatchError(s.items); err != nil {
		return st, err
	}
	if st.Summary.Behind > 0 || st.Summary.Failed > 0 {
		return st, f.rehearse(ctx)
	}
	return st, nil
}

// rehearse applies the whole set to a scratch schema in a transaction that
// is rolled back (migration.Migrator.Rehearse), so that a migration that
// fails or breaks the table shape is caught before any target runs it.
func (f *Fleet) rehearse(ctx context.Context) error {
	conn, err := f.admin.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return f.mig.Rehearse(ctx, conn)
}

func (f *Fleet) status(s *survey) *Status {
	st := &Status{Head: f.set.Head(), SetHash: f.set.Hash(), LastRun: s.lastRun, Targets: make([]TargetStatus, 0, len(s.items))}
	for _, it := range s.items {
		ts := TargetStatus{Target: it.Target, Version: it.version, Pending: it.pending, Last: it.last, HeldBy: it.held,
			GlobalPending: it.globalPending}
		if ts.Pending == nil {
			ts.Pending = []int{}
		}
		if it.problem != nil {
			ts.Problem = it.problem.Error()
		}
		st.Targets = append(st.Targets, ts)
		sm := &st.Summary
		sm.Targets++
		switch {
		case it.problem != nil:
			sm.Unknown++
		case it.version >= st.Head && len(it.globalPending) == 0:
			sm.AtHead++
		default:
			sm.Behind++
		}
		if it.last != nil && it.last.Status == StateFailed {
			sm.Failed++
		}
		if it.held != 0 {
			sm.Running++
		}
	}
	return st
}

// mismatchError returns an error wrapping ErrSetMismatch and the first
// target's problem when some targets disagree with the set.
func mismatchError(items []*item) error {
	var first error
	n := 0
	for _, it := range items {
		if it.mismatch {
			if first == nil {
				first = it.problem
			}
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d target(s), first: %w", ErrSetMismatch, n, first)
}

func (f *Fleet) survey(ctx context.Context) (*survey, error) {
	sel, err := f.targets(ctx)
	if err != nil {
		return nil, err
	}
	s := &survey{selection: sel}
	if err := f.readLedgers(ctx, sel); err != nil {
		return nil, err
	}
	if err := f.readRecords(ctx, s); err != nil {
		return nil, err
	}
	return s, nil
}

// ledgerRec is one row of a target's ledger.
type ledgerRec struct {
	version        int
	name, checksum string
}

// readLedgers fills in version, pending and problem of every item: the
// control database's ledger in one query, every other database over its own
// connection, Config.Parallel at a time.
func (f *Fleet) readLedgers(ctx context.Context, sel *selection) error {
	byLoc := map[location][]*item{}
	var control []*item
	for _, it := range sel.items {
		switch {
		case it.closed:
			// Read from the records in readRecords.
		case it.control:
			control = append(control, it)
		default:
			byLoc[it.loc] = append(byLoc[it.loc], it)
		}
	}
	if len(control) > 0 {
		recs, err := readLedger(ctx, f.admin, keysOf(control))
		if err != nil {
			return fmt.Errorf("read the ledgers of the control database: %w", err)
		}
		for _, it := range control {
			f.judge(it, recs[it.mt.Schema])
		}
	}
	con := newConnector(f)
	sem := make(chan struct{}, f.cfg.Parallel)
	var wg sync.WaitGroup
	for loc, items := range byLoc {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			recs, err := func() (map[string][]ledgerRec, error) {
				conn, err := con.connect(ctx, loc)
				if err != nil {
					return nil, err
				}
				defer conn.Close(context.WithoutCancel(ctx))
				keys := keysOf(items)
				if f.global != nil {
					keys = append(keys, migration.GlobalSchema)
				}
				return readLedger(ctx, conn, keys)
			}()
			for _, it := range items {
				if err != nil {
					it.version, it.problem = -1, fmt.Errorf("read ledger of %s: %w", it.Key, err)
					continue
				}
				f.judge(it, recs[it.mt.Schema])
				if f.global != nil {
					f.judgeGlobal(it, recs[migration.GlobalSchema])
				}
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}

func keysOf(items []*item) []string {
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.mt.Schema
	}
	return keys
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// readLedger returns the ledger rows of the targets (by schema) of the
// connected database. A database without a ledger has applied nothing.
func readLedger(ctx context.Context, q querier, schemas []string) (map[string][]ledgerRec, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('landlord.target_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, err
	}
	out := map[string][]ledgerRec{}
	if !exists {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT target, version, name, checksum FROM landlord.target_migrations
		WHERE target = ANY($1) ORDER BY target, version`, schemas)
	if err != nil {
		return nil, err
	}
	var target string
	var r ledgerRec
	_, err = pgx.ForEachRow(rows, []any{&target, &r.version, &r.name, &r.checksum}, func() error {
		out[target] = append(out[target], r)
		return nil
	})
	return out, err
}

// judge checks a target's ledger against the set, as migration.Migrator
// does before it applies anything, and works out what is pending.
func (f *Fleet) judge(it *item, recs []ledgerRec) {
	version, pending, problem := judgeLedger(it.Key, f.set, f.byVersion, recs)
	it.version, it.pending = version, pending
	if problem != nil && it.problem == nil {
		it.problem, it.mismatch = problem, true
	}
}

// judgeGlobal does what judge does for the global schema in the database
// of a target outside the control database.
func (f *Fleet) judgeGlobal(it *item, recs []ledgerRec) {
	version, pending, problem := judgeLedger(it.Key+" (global schema)", f.global.Set(), f.globalByVersion, recs)
	it.globalVersion, it.globalPending = version, pending
	if problem != nil && it.problem == nil {
		it.problem, it.mismatch = problem, true
	}
}

// judgeLedger checks the ledger rows of one target against set.
func judgeLedger(key string, set *migration.Set, byVersion map[int]migration.Migration, recs []ledgerRec) (version int, pending []int, problem error) {
	head := set.Head()
	recorded := make(map[int]bool, len(recs))
	fail := func(err error) {
		if problem == nil {
			problem = err
		}
	}
	for _, r := range recs {
		version = max(version, r.version)
		recorded[r.version] = true
		if r.version > head {
			continue // applied by newer code; not ours to judge
		}
		m, ok := byVersion[r.version]
		switch {
		case !ok:
			fail(fmt.Errorf("target %s: version %d (%s): %w", key, r.version, r.name, migration.ErrUnknownVersion))
		case !m.Matches(r.checksum):
			fail(fmt.Errorf("target %s: %s: %w (recorded sha256 %.12s…, file sha256 %.12s…)", key, m.Name, migration.ErrChecksumMismatch, r.checksum, m.Checksum))
		}
	}
	for _, m := range set.Migrations() {
		if m.Version < version && !recorded[m.Version] {
			fail(fmt.Errorf("target %s: %s: %w (target is at version %d)", key, m.Name, migration.ErrMissingVersion, version))
		}
		if m.Version > version {
			pending = append(pending, m.Version)
		}
	}
	return version, pending, problem
}

// errClosed is the problem of a closed template database that neither the
// provisioner nor a run has recorded at a version.
var errClosed = errors.New("template database closed to connections and not recorded at a version: up reads and migrates it")

// judgeClosed takes the version of a template database that does not accept
// connections from what was recorded when it was last open: at the head when
// the provisioner marked it ready at the set (after checking its ledger:
// provisioning builds it so, and so do runs), else the latest run that
// finished it. Up opens it (through the provisioner) and checks its ledger
// when it migrates it.
func (f *Fleet) judgeClosed(ctx context.Context, it *item) error {
	ready, err := f.prov.TemplateDatabaseReady(ctx)
	switch {
	case err != nil:
		return err
	case ready:
		it.version = f.set.Head()
	case it.last != nil && it.last.Status == StateDone:
		it.version = it.last.Version
	default:
		it.version, it.problem = -1, errClosed
		return nil
	}
	for _, m := range f.set.Migrations() {
		if m.Version > it.version {
			it.pending = append(it.pending, m.Version)
		}
	}
	if f.global != nil && !ready {
		// Only the provisioner's mark vouches for the global schema of a
		// closed template: without it, Up opens the template and sees.
		it.globalPending = []int{f.global.Set().Head()}
	}
	return nil
}

// runLockNamespace is the first key of the session advisory lock a running
// run holds on its id (SECURITY.md, I26: namespaced keys).
const runLockNamespace = 0x4c4c4652 // "LLFR"

// liveRunsSQL lists the runs marked running whose owner still holds the
// run's lock. pg_locks shows a two-key advisory lock as classid = key 1,
// objid = key 2, objsubid = 2.
const liveRunsSQL = `SELECT r.id FROM landlord.migration_runs r
WHERE r.status = 'running' AND EXISTS (
	SELECT FROM pg_locks l
	WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
	  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	  AND l.classid = $1::oid AND l.objid = r.id::oid)`

func liveRuns(ctx context.Context, q querier) (map[int]bool, error) {
	rows, err := q.Query(ctx, liveRunsSQL, uint32(runLockNamespace))
	if err != nil {
		return nil, fmt.Errorf("list running fleet runs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("list running fleet runs: %w", err)
	}
	live := make(map[int]bool, len(ids))
	for _, id := range ids {
		live[id] = true
	}
	return live, nil
}

const targetRecordsSQL = `SELECT t.target, t.run_id, t.status, t.from_version, t.to_version, t.version, t.attempts, t.duration_ms, t.error, t.finished_at, r.set_hash
FROM landlord.migration_targets t JOIN landlord.migration_runs r ON r.id = t.run_id WHERE t.target = ANY($1)`

// readRecords fills in what the directory records about each item: its
// latest run's entry and whether a running run holds it, and the last run.
func (f *Fleet) readRecords(ctx context.Context, s *survey) error {
	var err error
	if s.live, err = liveRuns(ctx, f.admin); err != nil {
		return err
	}
	byKey := make(map[string]*item, len(s.items))
	keys := make([]string, len(s.items))
	for i, it := range s.items {
		byKey[it.Key], keys[i] = it, it.Key
	}
	recs, err := readTargetRecords(ctx, f.admin, keys)
	if err != nil {
		return err
	}
	for key, l := range recs {
		it := byKey[key]
		if l.Status == StatePending || l.Status == StateRunning {
			if s.live[l.Run] {
				it.held = l.Run
			} else if l.Status == StateRunning {
				l.Status, l.Error = StateFailed, interruptedError(l.Run)
			}
		}
		it.last = &l
	}
	for _, it := range s.items {
		if it.closed {
			if err := f.judgeClosed(ctx, it); err != nil {
				return err
			}
		}
	}
	run, err := lastRun(ctx, f.admin)
	if err != nil {
		return err
	}
	if run != nil && run.Status == RunRunning && !s.live[run.ID] {
		run.Status, run.Error = RunInterrupted, interruptedRun
	}
	s.lastRun = run
	return nil
}

// readTargetRecords returns the directory's records of the targets keys.
func readTargetRecords(ctx context.Context, q querier, keys []string) (map[string]LastRun, error) {
	rows, err := q.Query(ctx, targetRecordsSQL, keys)
	if err != nil {
		return nil, fmt.Errorf("read fleet target records: %w", err)
	}
	out := make(map[string]LastRun, len(keys))
	var key string
	var lr LastRun
	var ms int64
	var finished *time.Time
	_, err = pgx.ForEachRow(rows, []any{&key, &lr.Run, &lr.Status, &lr.From, &lr.To, &lr.Version, &lr.Attempts, &ms, &lr.Error, &finished, &lr.SetHash}, func() error {
		l := lr
		l.Duration = time.Duration(ms) * time.Millisecond
		if finished != nil {
			l.Finished = *finished
		}
		out[key] = l
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read fleet target records: %w", err)
	}
	return out, nil
}

// interruptedRun is the error of a run found marked running with no owner.
const interruptedRun = "the migrator stopped before the run finished"

func interruptedError(run int) string {
	return fmt.Sprintf("interrupted: run %d stopped while migrating this target", run)
}

// lastRun returns the most recent run, or nil.
func lastRun(ctx context.Context, q querier) (*Run, error) {
	r, err := scanRun(q.QueryRow(ctx, `SELECT `+runColumns+` FROM landlord.migration_runs ORDER BY id DESC LIMIT 1`))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read last fleet run: %w", err)
	}
	return r, nil
}
