// Package move moves a tenant to another placement (model, server) while
// it keeps serving.
//
// A move runs in phases, each recorded in the directory (landlord.moves)
// before it acts, under the tenant's provisioning lock:
//
//  1. planned, then target: the new placement's objects are made.
//  2. copied: the rows are copied from one snapshot. Online, the snapshot
//     is a logical replication slot's, and every change committed since is
//     then applied from the slot, in rounds, while the tenant serves.
//  3. fenced: the directory marks the tenant moving (every router's calls
//     for it wait at the handle), and the old placement refuses the
//     tenant's new transactions in the database itself
//     (migration.Fence), for a router whose cache has not caught up. The
//     transactions begun before the fence end; the last changes are
//     applied (online) or every row is copied (offline); the sequences go
//     past the copied values; the placements are compared (Verify).
//  4. flipped: the directory routes the tenant to its new placement, and
//     the waiting calls go there.
//  5. done: the slot and publication and the old placement are removed.
//     The old placement's fence stays until every router has certainly
//     seen the flip (Config.Settle), then Sweep removes it.
//
// A move that stops before fenced (a crash, an error) is undone by Resume
// or Abort: the tenant is where it was. From fenced on, Resume finishes it.
package move

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/archive"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/changefeed"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// Mode is how a move copies.
type Mode string

const (
	// Auto moves online when the source's server allows it (logical
	// decoding, and an administrator that may replicate and write past
	// row-level security), offline otherwise.
	Auto Mode = ""
	// Online copies from a logical replication slot's snapshot and applies
	// the changes since while the tenant serves: its calls pause only at
	// the cutover.
	Online Mode = "online"
	// Offline fences the tenant first and copies then: its calls wait
	// (up to the handle's MoveWait, then fail with tenant.ErrMoving) for
	// the whole copy.
	Offline Mode = "offline"
)

// Config holds a move's settings.
type Config struct {
	Mode Mode
	// FenceTimeout bounds the wait, at the cutover, for the tenant's
	// transactions begun before the fence. A move that waits longer is
	// undone (ErrFenceTimeout). Default 5s.
	FenceTimeout time.Duration
	// Settle is how long the old placement's fence stays after the flip,
	// for routers that have not seen it yet; it must exceed every
	// process's directory cache age (landlord.Config.DirectoryMaxAge,
	// default 30s). Default 45s. Negative: leave it for a later Sweep.
	Settle time.Duration
	// CatchUpRounds bounds the rounds of changes applied before the fence
	// (online); the fence comes earlier once a round is short. Default 20.
	CatchUpRounds int
	// Verify says what the cutover compares. Default VerifyChanged.
	Verify Verify
	// Progress, when set, is called as the move goes.
	Progress func(Progress)
	// Logger receives a line per phase. Default: discard.
	Logger *slog.Logger
}

// Verify is what a move's cutover compares between the placements, with
// the tenant's writes stopped, before it flips.
type Verify string

const (
	// VerifyChanged, the default: every table's row count, and the rows
	// the catch-up wrote, by key. The other rows came with the snapshot's
	// copy, counted as they went in, and nothing else writes to the new
	// placement before the flip. A move that could not follow every
	// change from the copy on (offline, resumed after a crash, or more
	// than 200,000 keys changed) compares every row.
	VerifyChanged Verify = ""
	// VerifyAll: a sum of every row of every table, on both sides. It
	// reads all of the tenant's rows during the pause (about a second per
	// million rows on two cores).
	VerifyAll Verify = "all"
)

// ParseVerify reads a Verify: "changed" or "all".
func ParseVerify(s string) (Verify, error) {
	switch s {
	case "", "changed":
		return VerifyChanged, nil
	case "all":
		return VerifyAll, nil
	}
	return "", fmt.Errorf("verify %q: want changed or all", s)
}

// Progress is how far a move has come.
type Progress struct {
	Phase   directory.MovePhase
	Rows    int64 // rows copied so far
	Changes int64 // changes applied so far (online)
}

// Result is what a finished move did.
type Result struct {
	Move   directory.Move
	Tenant tenant.Tenant // at its new placement
	// Pause is how long the tenant's new calls waited: fence to flip.
	Pause time.Duration
	// Copy is how long the snapshot copy took, Rows how many it copied.
	Copy time.Duration
	Rows int64
	// Changes is how many changes were applied after the copy (online).
	Changes int64
	// Cutover is where the pause went.
	Cutover Cutover
}

// Cutover is how long each step of a move's cutover took.
type Cutover struct {
	Fence     time.Duration // the database's fence, and the wait for older transactions
	Level     time.Duration // the last changes applied (online) or every row copied (offline)
	Sequences time.Duration // the sequences moved past the copied values
	Compare   time.Duration // the placements compared
	// Compared says what the comparison read: "all" rows, or "changed":
	// the counts and Keys rows by key.
	Compared string
	Keys     int
}

// Errors of moves.
var (
	// ErrSamePlacement: the tenant is at the placement already.
	ErrSamePlacement = errors.New("the tenant is there already")
	// ErrFenceTimeout: transactions begun before the fence did not end
	// in time; the move was undone.
	ErrFenceTimeout = errors.New("transactions at the old placement did not end in time")
	// ErrMismatch: the new placement's rows differ from the old one's.
	ErrMismatch = errors.New("the copy differs from the source")
	// ErrRollsForward: a move past its fence cannot be undone, only
	// finished (Resume).
	ErrRollsForward = errors.New("the move is past its fence: it can only be finished")
	// ErrNoMove: the tenant has no unfinished move.
	ErrNoMove = errors.New("no move under way")
	// ErrNotPermitted: the administrator cannot move this way.
	ErrNotPermitted = errors.New("not permitted")
)

func (c *Config) defaults() {
	if c.FenceTimeout <= 0 {
		c.FenceTimeout = 5 * time.Second
	}
	if c.Settle == 0 {
		c.Settle = defaultSettle
	}
	if c.CatchUpRounds <= 0 {
		c.CatchUpRounds = 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Move moves tenant id to model on server (provision.LeastLoaded for the
// least loaded) and returns when it serves there and the old placement is
// gone. The tenant must be active or read-only, at the migration set's
// head. On failure before the fence the tenant is where it was.
func Move(ctx context.Context, p *provision.Provisioner, id tenant.ID, model tenant.Model, server string, cfg Config) (Result, error) {
	cfg.defaults()
	var res Result
	// Fences that earlier moves left to settle, and have.
	if err := Sweep(ctx, p, cfg.Settle, false); err != nil {
		return res, err
	}
	err := p.WithTenantLock(ctx, id, func(conn *pgx.Conn) error {
		if m, ok, err := p.Directory().UnfinishedMove(ctx, id); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("%w (move %d, %s): resume or abort it first", directory.ErrMoveUnderway, m.ID, m.Phase)
		}
		t, err := p.Directory().Get(ctx, id)
		if err != nil {
			return err
		}
		if t.State != tenant.StateActive && t.State != tenant.StateReadOnly {
			return &tenant.StateError{ID: id, State: t.State}
		}
		if head := p.Migrator().Set().Head(); t.SchemaVersion != head {
			return fmt.Errorf("%w: the tenant's tables are at migration version %d, new placements at %d: migrate it first",
				archive.ErrIncompatible, t.SchemaVersion, head)
		}
		if server == "" {
			server = t.Server
		}
		dst, err := p.Placement(ctx, t, model, server)
		if err != nil {
			return err
		}
		if dst.Model == t.Model && dst.Server == t.Server {
			return fmt.Errorf("tenant %s is %s on %s: %w", t.Slug, t.Model, t.Server, ErrSamePlacement)
		}
		release, err := holdShared(ctx, p, t, dst, true)
		if err != nil {
			return err
		}
		defer release()
		online, err := chooseMode(ctx, p, t, dst, cfg.Mode)
		if err != nil {
			return err
		}
		mv := directory.Move{Tenant: id, Online: online, From: t, To: dst}
		if online {
			mv.Feed = feedName(id)
		}
		if mv, err = p.Directory().StartMove(ctx, mv); err != nil {
			return err
		}
		r := &run{p: p, cfg: cfg, conn: conn, m: mv, state: t.State}
		res, err = r.forward(ctx)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("move tenant %s to %s on %s: %w", id, model, server, err)
	}
	return res, nil
}

// Resume finishes tenant id's unfinished move: one that stopped before
// its fence is undone (the tenant stays where it was, and Resume returns
// the aborted move with aborted set), one that reached it is finished.
func Resume(ctx context.Context, p *provision.Provisioner, id tenant.ID, cfg Config) (res Result, aborted bool, err error) {
	cfg.defaults()
	err = p.WithTenantLock(ctx, id, func(conn *pgx.Conn) error {
		res, aborted, err = resume(ctx, p, conn, id, cfg)
		return err
	})
	if err != nil {
		return res, aborted, fmt.Errorf("resume the move of tenant %s: %w", id, err)
	}
	return res, aborted, nil
}

// ResumeIdle is Resume for a move whose mover is gone: when another
// session holds the tenant's lock (the mover is alive, or another
// operation runs) it does nothing and reports busy.
func ResumeIdle(ctx context.Context, p *provision.Provisioner, id tenant.ID, cfg Config) (res Result, aborted, busy bool, err error) {
	cfg.defaults()
	ok, err := p.TryTenantLock(ctx, id, func(conn *pgx.Conn) error {
		res, aborted, err = resume(ctx, p, conn, id, cfg)
		return err
	})
	if err != nil {
		return res, aborted, false, fmt.Errorf("resume the move of tenant %s: %w", id, err)
	}
	return res, aborted, !ok, nil
}

// resume is Resume's work, on conn, which holds the tenant's lock.
func resume(ctx context.Context, p *provision.Provisioner, conn *pgx.Conn, id tenant.ID, cfg Config) (res Result, aborted bool, err error) {
	m, ok, err := p.Directory().UnfinishedMove(ctx, id)
	if err != nil {
		return res, false, err
	}
	if !ok {
		return res, false, ErrNoMove
	}
	release, err := holdShared(ctx, p, m.From, m.To, false)
	if err != nil {
		return res, false, err
	}
	defer release()
	r := &run{p: p, cfg: cfg, conn: conn, m: m}
	switch m.Phase {
	case directory.MovePlanned, directory.MoveTarget, directory.MoveCopied:
		res.Move, err = r.undo(ctx, errors.New("resumed after the mover stopped before the fence"))
		return res, true, err
	}
	t, err := p.Directory().Get(ctx, id)
	if err != nil {
		return res, false, err
	}
	r.state = tenant.StateActive
	if t.State == tenant.StateReadOnly {
		r.state = t.State
	}
	res, err = r.forward(ctx)
	return res, false, err
}

// Abort undoes tenant id's unfinished move that has not reached its fence:
// the new placement and the slot go, and the tenant stays where it was.
func Abort(ctx context.Context, p *provision.Provisioner, id tenant.ID, cfg Config) (directory.Move, error) {
	cfg.defaults()
	var out directory.Move
	err := p.WithTenantLock(ctx, id, func(conn *pgx.Conn) error {
		m, ok, err := p.Directory().UnfinishedMove(ctx, id)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNoMove
		}
		switch m.Phase {
		case directory.MoveFenced, directory.MoveFlipped:
			return fmt.Errorf("move %d is %s: %w", m.ID, m.Phase, ErrRollsForward)
		}
		release, err := holdShared(ctx, p, m.From, m.To, false)
		if err != nil {
			return err
		}
		defer release()
		r := &run{p: p, cfg: cfg, conn: conn, m: m}
		out, err = r.undo(ctx, errors.New("aborted"))
		return err
	})
	if err != nil {
		return out, fmt.Errorf("abort the move of tenant %s: %w", id, err)
	}
	return out, nil
}

// holdShared holds the shared tables of each server where src or dst is a
// row placement (provision.HoldSharedTables) for the rest of the move, so
// that no migration changes them between the copy and the cutover, and
// returns what lets go. With atHead each must be at the migration set's
// head, as the tenant itself: a fleet run that migrated them before the
// lock was taken is not half-seen.
func holdShared(ctx context.Context, p *provision.Provisioner, src, dst tenant.Tenant, atHead bool) (release func(), err error) {
	var servers []string
	for _, t := range []tenant.Tenant{src, dst} {
		if t.Model == tenant.ModelRow && !slices.Contains(servers, t.Server) {
			servers = append(servers, t.Server)
		}
	}
	slices.Sort(servers) // one order for every move: none waits on another's second
	var releases []func()
	release = func() {
		for _, f := range releases {
			f()
		}
	}
	head := p.Migrator().Set().Head()
	for _, s := range servers {
		v, rel, err := p.HoldSharedTables(ctx, s)
		if err != nil {
			release()
			return nil, err
		}
		releases = append(releases, rel)
		if atHead && v != head {
			release()
			return nil, fmt.Errorf("%w: the shared tables of server %s are at migration version %d, this move's migrations at %d: migrate them first",
				archive.ErrIncompatible, s, v, head)
		}
	}
	return release, nil
}

// feedName is the slot and publication of tenant id's online move. It
// carries the tenant's id, so that a purge finds it too.
func feedName(id tenant.ID) string { return "landlord_move_" + id.Hex() }

// chooseMode decides whether the move from src to dst goes online.
func chooseMode(ctx context.Context, p *provision.Provisioner, src, dst tenant.Tenant, mode Mode) (bool, error) {
	if mode == Offline {
		return false, nil
	}
	why, err := onlineRefused(ctx, p, src)
	if err != nil {
		return false, err
	}
	if why == "" {
		return true, nil
	}
	if mode == Online {
		return false, fmt.Errorf("%w: an online move %s; move offline instead", ErrNotPermitted, why)
	}
	return false, nil
}

// onlineRefused says why the source's server cannot serve an online move,
// or "" when it can: it needs logical decoding, and an administrator that
// may replicate (REPLICATION) and write the new placement past row-level
// security with triggers off (BYPASSRLS, and SET of
// session_replication_role): a superuser, or on a managed server without
// one, a role given those three (README, Moving a tenant).
func onlineRefused(ctx context.Context, p *provision.Provisioner, src tenant.Tenant) (string, error) {
	conn, err := p.Connect(ctx, src.Server, src.Database)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var wal string
	var super, repl, bypass bool
	if err := conn.QueryRow(ctx, `SELECT current_setting('wal_level'), rolsuper, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&wal, &super, &repl, &bypass); err != nil {
		return "", err
	}
	switch {
	case wal != "logical":
		return fmt.Sprintf("needs wal_level = logical on server %s (it is %s)", src.Server, wal), nil
	case super:
		return "", nil
	case !repl || !bypass:
		return "needs an administrator that is a superuser, or has REPLICATION and BYPASSRLS (to replicate, and to write the new placement past row-level security)", nil
	}
	// The parameter is a superuser's unless granted (GRANT SET ON
	// PARAMETER): try it.
	tx, err := conn.Begin(ctx)
	if err != nil {
		return "", err
	}
	_, err = tx.Exec(ctx, `SET LOCAL session_replication_role = replica`)
	if rerr := tx.Rollback(ctx); rerr != nil {
		return "", rerr
	}
	var pgErr *pgconn.PgError
	if err != nil && (!errors.As(err, &pgErr) || pgErr.Code != pgerrcode.InsufficientPrivilege) {
		return "", err
	}
	if err != nil {
		return "needs an administrator that may SET session_replication_role (to write the new placement with triggers off): GRANT SET ON PARAMETER session_replication_role to it", nil
	}
	return "", nil
}

// run is one move under way.
type run struct {
	p     *provision.Provisioner
	cfg   Config
	conn  *pgx.Conn // holds the tenant's lock
	m     directory.Move
	state tenant.State // the tenant's state to flip back into
	feed  *changefeed.Feed
	res   Result
	// touched holds the keys this run's catch-up wrote since the copy;
	// nil when the run did not follow the feed from the snapshot on.
	touched *touched
	// srcConn and dstConn are the administrator's connections to the
	// placements' databases, made when first needed (conns).
	srcConn, dstConn *pgx.Conn
}

// conns connects to both placements' databases, once per run.
func (r *run) conns(ctx context.Context) (src, dst *pgx.Conn, err error) {
	if r.srcConn == nil {
		if r.srcConn, err = r.p.Connect(ctx, r.m.From.Server, r.m.From.Database); err != nil {
			return nil, nil, err
		}
	}
	if r.dstConn == nil {
		if r.dstConn, err = r.p.Connect(ctx, r.m.To.Server, r.m.To.Database); err != nil {
			return nil, nil, err
		}
	}
	return r.srcConn, r.dstConn, nil
}

// closeConns closes what conns made.
func (r *run) closeConns(ctx context.Context) {
	for _, c := range []**pgx.Conn{&r.srcConn, &r.dstConn} {
		if *c != nil {
			(*c).Close(context.WithoutCancel(ctx))
			*c = nil
		}
	}
}

func (r *run) log(msg string, attrs ...slog.Attr) {
	attrs = append([]slog.Attr{slog.String("tenant", r.m.Tenant.String()), slog.Int64("move", r.m.ID)}, attrs...)
	r.cfg.Logger.LogAttrs(context.Background(), slog.LevelInfo, msg, attrs...)
}

func (r *run) progress(phase directory.MovePhase) {
	if r.cfg.Progress != nil {
		r.cfg.Progress(Progress{Phase: phase, Rows: r.m.RowsCopied, Changes: r.m.Changes})
	}
}

// phase records that the move reached ph.
func (r *run) phase(ctx context.Context, ph directory.MovePhase) error {
	m, err := r.p.Directory().SetMovePhase(ctx, r.m, ph)
	if err != nil {
		return err
	}
	r.set(m)
	r.log("move "+string(ph), slog.Int64("rows", m.RowsCopied), slog.Int64("changes", m.Changes))
	r.progress(ph)
	return nil
}

// forward takes the move from its recorded phase to done.
func (r *run) forward(ctx context.Context) (Result, error) {
	defer r.closeFeed(ctx)
	defer r.closeConns(ctx)
	if err := r.complete(ctx); err != nil {
		return r.result(), err
	}
	if r.m.Phase == directory.MovePlanned || r.m.Phase == directory.MoveTarget || r.m.Phase == directory.MoveCopied {
		if err := r.beforeFence(ctx); err != nil {
			return r.result(), r.fail(ctx, err)
		}
	}
	if r.m.Phase != directory.MoveFlipped && r.m.Phase != directory.MoveDone {
		if err := r.cutover(ctx); err != nil {
			return r.result(), err
		}
	}
	if r.m.Phase == directory.MoveFlipped {
		r.closeConns(ctx) // the old database may go
		if err := r.cleanup(ctx); err != nil {
			return r.result(), err
		}
	}
	return r.result(), nil
}

func (r *run) result() Result {
	r.res.Move = r.m
	r.res.Rows, r.res.Changes, r.res.Pause = r.m.RowsCopied, r.m.Changes, r.m.Pause
	return r.res
}

// fail undoes a move that failed before its fence, and returns err with
// what the undo met.
func (r *run) fail(ctx context.Context, err error) error {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	r.closeFeed(uctx)
	if _, uerr := r.undo(uctx, err); uerr != nil {
		return errors.Join(err, fmt.Errorf("undo the move (resume or abort it to finish): %w", uerr))
	}
	return err
}

// beforeFence makes the new placement and, online, copies the snapshot
// and applies changes while the tenant serves.
func (r *run) beforeFence(ctx context.Context) error {
	dst := r.m.To
	if _, err := r.p.MakePlacement(ctx, r.conn, dst); err != nil {
		return fmt.Errorf("make the new placement: %w", err)
	}
	// A fence of an earlier move away from here would refuse the tenant
	// once it is back.
	if err := r.unfence(ctx, dst); err != nil {
		return err
	}
	if err := r.phase(ctx, directory.MoveTarget); err != nil {
		return err
	}
	if !r.m.Online {
		return nil
	}
	tables, err := sourceTables(ctx, r.p, r.m.From)
	if err != nil {
		return err
	}
	fcfg, err := r.feedConfig(ctx, tables)
	if err != nil {
		return err
	}
	// A slot of an earlier attempt goes first: its snapshot is gone.
	if err := changefeed.Drop(ctx, fcfg.Conn, "", r.m.Feed); err != nil {
		return err
	}
	if r.feed, err = changefeed.Start(ctx, fcfg); err != nil {
		return fmt.Errorf("start reading the source's changes: %w", err)
	}
	r.touched = newTouched()
	start := time.Now()
	man, err := archive.Copy(ctx, r.p, r.m.From, dst, archive.CopyOptions{Snapshot: r.feed.Snapshot(), Replace: true, Progress: r.copyProgress})
	_ = r.feed.ReleaseSnapshot(ctx)
	if err != nil {
		return err
	}
	r.res.Copy = time.Since(start)
	r.m.RowsCopied = man.Rows()
	if err := r.phase(ctx, directory.MoveCopied); err != nil {
		return err
	}
	applier, err := r.applier(tables)
	if err != nil {
		return err
	}
	srcConn, dstConn, err := r.conns(ctx)
	if err != nil {
		return err
	}
	if err := analyze(ctx, srcConn, dstConn, dst, tables); err != nil {
		return err
	}
	for round := 0; round < r.cfg.CatchUpRounds; round++ {
		began := time.Now()
		n, err := r.catchUp(ctx, dstConn, applier)
		if err != nil {
			return err
		}
		if n < 100 || time.Since(began) < 200*time.Millisecond {
			break
		}
	}
	return nil
}

func (r *run) copyProgress(pr archive.Progress) {
	if r.cfg.Progress != nil {
		r.cfg.Progress(Progress{Phase: directory.MoveTarget, Rows: pr.Rows})
	}
}

// cutover fences the old placement, brings the new one level with it,
// checks it and flips the directory.
func (r *run) cutover(ctx context.Context) error {
	if r.m.Phase != directory.MoveFenced {
		// The directory first: routers that hear of it wait at the
		// handle and never meet the database's fence.
		m, err := r.p.Directory().SetMoving(ctx, r.m)
		if err != nil {
			return r.fail(ctx, err)
		}
		r.set(m)
		r.progress(directory.MoveFenced)
	}
	fenceStart := r.m.UpdatedAt
	// Until the flip, the new placement has served nothing: a failure in
	// this run puts the tenant back where it was. (After a crash, Resume
	// finishes the move instead.)
	if err := r.fenceAndLevel(ctx); err != nil {
		return r.unfail(ctx, err)
	}
	pause := time.Since(fenceStart)
	t, err := r.p.Directory().Flip(ctx, r.m, r.state, pause)
	if err != nil {
		return err
	}
	r.res.Tenant = t
	m, _, err := r.p.Directory().UnfinishedMove(ctx, r.m.Tenant)
	if err != nil {
		return err
	}
	r.set(m)
	r.log("move flipped", slog.Duration("pause", pause), slog.Duration("fence", r.res.Cutover.Fence),
		slog.Duration("level", r.res.Cutover.Level), slog.Duration("sequences", r.res.Cutover.Sequences),
		slog.Duration("compare", r.res.Cutover.Compare))
	r.progress(directory.MoveFlipped)
	return nil
}

// fenceAndLevel fences the old placement, waits for its older
// transactions, brings the new placement level with it and compares them.
func (r *run) fenceAndLevel(ctx context.Context) error {
	src, dst := r.m.From, r.m.To
	c := &r.res.Cutover
	step := time.Now()
	lap := func(d *time.Duration) {
		now := time.Now()
		*d, step = now.Sub(step), now
	}
	srcConn, dstConn, err := r.conns(ctx)
	if err != nil {
		return err
	}
	if err := r.p.Directory().SetSourceFenced(ctx, r.m, true); err != nil {
		return err
	}
	if err := r.fence(ctx, srcConn, src); err != nil {
		return err
	}
	lap(&c.Fence)
	r.progress(directory.MoveFenced) // again: the database's fence is in place
	if r.m.Online {
		tables, err := sourceTables(ctx, r.p, src)
		if err != nil {
			return err
		}
		if r.feed == nil {
			fcfg, err := r.feedConfig(ctx, tables)
			if err != nil {
				return err
			}
			if r.feed, err = changefeed.Resume(ctx, fcfg); err != nil {
				return fmt.Errorf("resume reading the source's changes: %w", err)
			}
		}
		applier, err := r.applier(tables)
		if err != nil {
			return err
		}
		if _, err := r.catchUp(ctx, dstConn, applier); err != nil {
			return err
		}
	} else {
		man, err := archive.Copy(ctx, r.p, src, dst, archive.CopyOptions{Replace: true, Progress: r.copyProgress})
		if err != nil {
			return err
		}
		r.res.Copy = time.Since(step)
		r.m.RowsCopied = man.Rows()
	}
	lap(&c.Level)
	if err := archive.AdvanceSequences(ctx, r.p, dstConn, dst); err != nil {
		return err
	}
	lap(&c.Sequences)
	err = r.compare(ctx, srcConn, dstConn)
	lap(&c.Compare)
	return err
}

// analyze gathers the planner's statistics of the tenant's tables at both
// placements, before the fence. The cutover reads the rows the catch-up
// wrote by key on both sides, and statistics from before the tenant grew
// (one row of it, say) let the planner probe each key through another
// index that starts with tenant_id, reading all of the tenant's rows per
// key. A new schema or database placement is vacuumed too: its pages
// become all-visible for the cutover's count, and its first queries are
// planned on its rows; shared tables there are analyzed only.
func analyze(ctx context.Context, srcConn, dstConn *pgx.Conn, dst tenant.Tenant, tables []changefeed.Table) error {
	for _, tb := range tables {
		if _, err := srcConn.Exec(ctx, "ANALYZE "+ident.Quote(tb.Schema, tb.Name)); err != nil {
			return fmt.Errorf("analyze table %s at the old placement: %w", tb.Name, err)
		}
		stmt := "VACUUM (ANALYZE) "
		if dst.Model == tenant.ModelRow {
			stmt = "ANALYZE " // shared by every row tenant: a sample, not a pass over it
		}
		if _, err := dstConn.Exec(ctx, stmt+ident.Quote(dst.Schema, tb.Name)); err != nil {
			return fmt.Errorf("analyze the copied table %s: %w", tb.Name, err)
		}
	}
	return nil
}

// unfail undoes a move whose fence could not be completed in this run
// (its older transactions did not end): nothing reached the new placement
// from the tenant's traffic, so the tenant goes back to where it was.
func (r *run) unfail(ctx context.Context, err error) error {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if uerr := r.unfence(uctx, r.m.From); uerr != nil {
		return errors.Join(err, uerr)
	}
	if uerr := r.p.Directory().SetSourceFenced(uctx, r.m, false); uerr != nil {
		return errors.Join(err, uerr)
	}
	if uerr := r.p.Directory().Unmove(uctx, r.m, r.state); uerr != nil {
		return errors.Join(err, uerr)
	}
	return r.fail(ctx, err)
}

// fence places the fence at t and waits for the transactions begun before
// it to end.
func (r *run) fence(ctx context.Context, conn *pgx.Conn, t tenant.Tenant) error {
	if _, err := migration.Fence(ctx, conn, r.p.Roles().Owner, t.ID.String(), provision.PlacementRole(t)); err != nil {
		return err
	}
	// Every transaction that began before this moment may be the
	// tenant's, and may still write at the old placement.
	var since time.Time
	if err := conn.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&since); err != nil {
		return err
	}
	deadline := time.Now().Add(r.cfg.FenceTimeout)
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
			  AND xact_start < $1`, since).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %d after %s", ErrFenceTimeout, n, r.cfg.FenceTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// unfence removes the tenant's fence at t, if t's database is there.
func (r *run) unfence(ctx context.Context, t tenant.Tenant) error {
	conn, err := r.p.Connect(ctx, t.Server, t.Database)
	if err != nil {
		if t.Model == tenant.ModelDatabase {
			return nil // its database is gone, and the fence with it
		}
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var has bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('landlord_context.key') IS NOT NULL`).Scan(&has); err != nil || !has {
		return err
	}
	return migration.Unfence(ctx, conn, r.p.Roles().Owner, t.ID.String(), provision.PlacementRole(t))
}

// compare checks that the new placement holds what the old one does:
// every table's count, and the sum of the rows the catch-up wrote or, when
// the run cannot tell which those are or Config.Verify says so, of every
// row.
func (r *run) compare(ctx context.Context, srcConn, dstConn *pgx.Conn) error {
	var keys map[string]archive.Keys
	c := &r.res.Cutover
	c.Compared, c.Keys = string(VerifyAll), 0
	if r.cfg.Verify == VerifyChanged && r.touched != nil && !r.touched.over {
		keys = r.touched.keys()
		c.Compared, c.Keys = "changed", r.touched.n
	}
	sums := func(conn *pgx.Conn, t tenant.Tenant) (map[string]archive.Sum, error) {
		var out map[string]archive.Sum
		err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			var err error
			if keys != nil {
				out, err = archive.ChangedSums(ctx, r.p, tx, t, keys)
			} else {
				out, err = archive.Sums(ctx, r.p, tx, t)
			}
			return err
		})
		return out, err
	}
	type got struct {
		s   map[string]archive.Sum
		err error
	}
	srcc := make(chan got, 1)
	go func() {
		s, err := sums(srcConn, r.m.From)
		srcc <- got{s, err}
	}()
	dst, derr := sums(dstConn, r.m.To)
	src := <-srcc
	if err := errors.Join(src.err, derr); err != nil {
		return fmt.Errorf("compare the placements: %w", err)
	}
	if !maps.Equal(src.s, dst) {
		for _, name := range slices.Sorted(maps.Keys(src.s)) {
			if a, b := src.s[name], dst[name]; a != b {
				if keys != nil {
					return fmt.Errorf("%w: table %s has %d rows, %d of %d changed keys (sum %s) at the source; %d rows, %d (sum %s) at the new placement",
						ErrMismatch, name, a.Rows, a.Keyed, len(keys[name].Values), a.Hash, b.Rows, b.Keyed, b.Hash)
				}
				return fmt.Errorf("%w: table %s has %d rows (sum %s) at the source, %d (sum %s) at the new placement",
					ErrMismatch, name, a.Rows, a.Hash, b.Rows, b.Hash)
			}
		}
		return fmt.Errorf("%w: the tables differ", ErrMismatch)
	}
	return nil
}

// cleanup removes the slot and publication and the old placement, and
// the old placement's fence once it has settled.
func (r *run) cleanup(ctx context.Context) error {
	src, dst := r.m.From, r.m.To
	if r.m.Online {
		r.closeFeed(ctx)
		cfg, err := r.p.ConnConfig(ctx, src.Server, src.Database, "")
		if err != nil {
			return err
		}
		if err := changefeed.Drop(ctx, cfg, "", r.m.Feed); err != nil {
			return err
		}
	}
	// The tenant's role is the cluster's: a schema or database placement
	// on the same server as the new one shares it.
	keepRole := src.Server == dst.Server && dst.Model != tenant.ModelRow
	if err := r.p.DropPlacement(ctx, r.conn, src, keepRole); err != nil {
		return fmt.Errorf("remove the old placement: %w", err)
	}
	if src.Model != tenant.ModelRow {
		// Its schema or database is gone: a router that has not heard of
		// the flip meets an error there, and can write nothing, so the
		// fence has no more to do.
		if err := r.unfence(ctx, src); err != nil {
			return err
		}
		if err := r.p.Directory().SetSourceFenced(ctx, r.m, false); err != nil {
			return err
		}
	}
	if err := r.phase(ctx, directory.MoveDone); err != nil {
		return err
	}
	if r.cfg.Settle < 0 || src.Model != tenant.ModelRow {
		return nil
	}
	// The shared tables stay: a router that has not heard of the flip
	// could write the tenant's rows there, and only the fence refuses it
	// until every cache has expired.
	r.progress(directory.MoveDone)
	return Sweep(ctx, r.p, r.cfg.Settle, true)
}

// Sweep removes the fences that finished moves left at their old
// placements once settle (0 or less: Config.Settle's default) has passed
// since the flip; with wait, it waits for those still settling, else
// leaves them for a later Sweep. Moves call it.
func Sweep(ctx context.Context, p *provision.Provisioner, settle time.Duration, wait bool) error {
	if settle <= 0 {
		settle = defaultSettle
	}
	moves, err := p.Directory().FencedSources(ctx)
	if err != nil {
		return err
	}
	for _, m := range moves {
		if !m.Finished() {
			continue
		}
		if m.Phase == directory.MoveDone {
			left := time.Until(m.FlippedAt.Add(settle))
			if left > 0 && !wait {
				continue
			}
			if left > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(left):
				}
			}
		}
		r := &run{p: p, m: m}
		if err := r.unfence(ctx, m.From); err != nil {
			return err
		}
		if err := p.Directory().SetSourceFenced(ctx, m, false); err != nil {
			return err
		}
	}
	return nil
}

// set makes m the move's record, keeping the tenant's fields of the
// placements (complete).
func (r *run) set(m directory.Move) {
	for _, pl := range []struct{ to, from *tenant.Tenant }{{&m.From, &r.m.From}, {&m.To, &r.m.To}} {
		pl.to.Slug, pl.to.DisplayName, pl.to.SchemaVersion, pl.to.State = pl.from.Slug, pl.from.DisplayName, pl.from.SchemaVersion, pl.from.State
	}
	r.m = m
}

// complete fills the move's placements with the tenant's own fields
// (slug, name, migration version), which the moves table does not repeat.
func (r *run) complete(ctx context.Context) error {
	t, err := r.p.Directory().Get(ctx, r.m.Tenant)
	if err != nil {
		return err
	}
	for _, pl := range []*tenant.Tenant{&r.m.From, &r.m.To} {
		pl.ID, pl.Slug, pl.DisplayName, pl.SchemaVersion, pl.State = t.ID, t.Slug, t.DisplayName, t.SchemaVersion, t.State
	}
	return nil
}

// undo removes what the move made and records it aborted, with cause.
func (r *run) undo(ctx context.Context, cause error) (directory.Move, error) {
	src, dst := r.m.From, r.m.To
	if r.m.Feed != "" {
		cfg, err := r.p.ConnConfig(ctx, src.Server, src.Database, "")
		if err != nil {
			return r.m, err
		}
		if err := changefeed.Drop(ctx, cfg, "", r.m.Feed); err != nil {
			return r.m, err
		}
	}
	keepRole := src.Server == dst.Server && src.Model != tenant.ModelRow
	if err := r.p.DropPlacement(ctx, r.conn, dst, keepRole); err != nil {
		return r.m, fmt.Errorf("remove the new placement: %w", err)
	}
	r.m.Error = cause.Error()
	m, err := r.p.Directory().SetMovePhase(ctx, r.m, directory.MoveAborted)
	if err != nil {
		return r.m, err
	}
	r.set(m)
	r.log("move aborted", slog.String("cause", cause.Error()))
	r.progress(directory.MoveAborted)
	return m, nil
}

func (r *run) closeFeed(ctx context.Context) {
	if r.feed != nil {
		_ = r.feed.Close(context.WithoutCancel(ctx))
		r.feed = nil
	}
}
