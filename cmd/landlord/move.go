package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/archive"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/move"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

const helpMove = `
A move runs in phases, each recorded in the directory before it acts: the new
placement is made (target); the rows are copied from one snapshot (copied)
and, online, every change since is applied from a logical replication slot
while the tenant keeps serving; then the old placement is fenced (the
tenant's new calls wait at the handle, and the database refuses its new
transactions there), the last changes are applied, every table's count and
sum are compared, and the directory routes the tenant to its new placement
(flipped); the slot, the publication and the old placement are removed
(done). A move that stopped before its fence is undone by --resume or
--abort: the tenant stays where it was. One past its fence is finished by
--resume.

Online needs wal_level = logical on the tenant's server and an administrator
that is a superuser there, or has REPLICATION and BYPASSRLS and may SET
session_replication_role (a managed server's); otherwise (or with --offline)
the tenant is fenced for the whole copy: its calls wait up to the handle's
MoveWait, then fail with tenant.ErrMoving.`

// moveView is a move in JSON output.
type moveView struct {
	ID         int64      `json:"id"`
	Tenant     tenant.ID  `json:"tenant"`
	Mode       string     `json:"mode"`
	From       placeView  `json:"from"`
	To         placeView  `json:"to"`
	Phase      string     `json:"phase"`
	Rows       int64      `json:"rows_copied"`
	Changes    int64      `json:"changes_applied"`
	PauseMS    float64    `json:"pause_ms"`
	Error      string     `json:"error,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

type placeView struct {
	Model    string `json:"model"`
	Server   string `json:"server"`
	Schema   string `json:"schema"`
	Database string `json:"database"`
}

func viewOfMove(m directory.Move) moveView {
	mode := "offline"
	if m.Online {
		mode = "online"
	}
	pl := func(t tenant.Tenant) placeView {
		return placeView{Model: string(t.Model), Server: t.Server, Schema: t.Schema, Database: t.Database}
	}
	return moveView{ID: m.ID, Tenant: m.Tenant, Mode: mode, From: pl(m.From), To: pl(m.To), Phase: string(m.Phase),
		Rows: m.RowsCopied, Changes: m.Changes, PauseMS: float64(m.Pause) / float64(time.Millisecond), Error: m.Error,
		StartedAt: m.StartedAt, FinishedAt: timeOrNil(m.FinishedAt)}
}

// moveResult is the JSON output of tenants move.
type moveResult struct {
	Move    moveView    `json:"move"`
	Tenant  *tenantView `json:"tenant,omitempty"`
	Aborted bool        `json:"aborted"`
	CopyMS  float64     `json:"copy_ms"`
	// Compared is what the cutover compared: "all" rows, or "changed"
	// (the counts and CompareKeys rows by key); empty when this command
	// did not reach the cutover.
	Compared    string `json:"compared,omitempty"`
	CompareKeys int    `json:"compared_keys,omitempty"`
}

// verifyUsage is the help of --verify.
const verifyUsage = `what the cutover compares, with the tenant's writes stopped: "changed" (every table's
row count and the rows changed since the copy) or "all" (every row; about a second
per million rows of pause)`

func newTenantsMove(g *globals, migrationsDir *string) *cobra.Command {
	var model, server, reason, verify string
	var offline, online, resume, abort bool
	cmd := &cobra.Command{
		Use:   "move " + tenantArg + " --model MODEL [--server ID] --reason TEXT",
		Short: "Move a tenant to another model or server while it keeps serving",
		Long: `move changes where a tenant lives: row, schema or database model, on this server
or another ("landlord servers add"), while its traffic goes on. Its calls pause
only at the cutover, usually well under a second.
` + helpMove + `

It runs in an admin scope: --reason says why, and is logged.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord tenants move acme --model database --reason "enterprise plan"
  landlord tenants move acme --model schema --server eu-2 --reason "closer to its users"
  landlord tenants move acme --server least-loaded --reason rebalance --json
  landlord tenants move acme --resume --reason "the mover's host died"
  landlord tenants move acme --abort --reason "wrong target"`,
		Args: args(cobra.ExactArgs(1)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().StringVar(&model, "model", "", "the model to move to: row, schema or database (default: the tenant's own)")
	cmd.Flags().StringVar(&server, "server", "", `the server to move to ("`+provision.LeastLoadedName+`" for the least loaded; default: the tenant's own)`)
	cmd.Flags().BoolVar(&offline, "offline", false, "copy with the tenant fenced, without logical decoding")
	cmd.Flags().BoolVar(&online, "online", false, "refuse to move unless online")
	cmd.Flags().StringVar(&verify, "verify", "changed", verifyUsage)
	cmd.Flags().BoolVar(&resume, "resume", false, "finish the tenant's unfinished move (undone if it stopped before its fence)")
	cmd.Flags().BoolVar(&abort, "abort", false, "undo the tenant's unfinished move that has not reached its fence")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the log (required)")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		ref, err := parseTenantRef(a[0])
		if err != nil {
			return err
		}
		if strings.TrimSpace(reason) == "" {
			return usageError{errors.New("--reason is required: say why the tenant moves; it is logged")}
		}
		if offline && online {
			return usageError{errors.New("--offline and --online exclude each other")}
		}
		if (resume || abort) && (model != "" || server != "" || (resume && abort)) {
			return usageError{errors.New("--resume and --abort take no --model or --server, and exclude each other")}
		}
		if !resume && !abort && model == "" && server == "" {
			return usageError{errors.New("say where to: --model, --server or both")}
		}
		var m tenant.Model
		if model != "" {
			if m, err = tenant.ParseModel(model); err != nil {
				return usageError{err}
			}
		}
		if server == provision.LeastLoadedName {
			server = provision.LeastLoaded
		}
		cfg := move.Config{Mode: move.Auto}
		if cfg.Verify, err = move.ParseVerify(verify); err != nil {
			return usageError{err}
		}
		switch {
		case offline:
			cfg.Mode = move.Offline
		case online:
			cfg.Mode = move.Online
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withTenantAdmin(ctx, g, cmd, *migrationsDir, ref, reason, func(in *installation, t tenant.Tenant, admin *landlord.Admin) error {
			var err error
			bar := newMoveProgress(cmd.ErrOrStderr(), "move "+t.Slug)
			cfg.Progress = bar.update
			var res move.Result
			var aborted bool
			switch {
			case abort:
				res.Move, err = admin.AbortMove(ctx, t.ID)
				aborted = err == nil
			case resume:
				res, aborted, err = admin.ResumeMove(ctx, t.ID, cfg)
			default:
				if m == "" {
					m = t.Model
				}
				res, err = admin.MoveTenant(ctx, t.ID, m, server, cfg)
			}
			bar.finish()
			if moveRefused(err) {
				return usageError{fmt.Errorf("move tenant %q: %w", ref.arg, err)}
			}
			if err != nil {
				return err
			}
			out := moveResult{Move: viewOfMove(res.Move), Aborted: aborted, CopyMS: float64(res.Copy) / float64(time.Millisecond),
				Compared: res.Cutover.Compared, CompareKeys: res.Cutover.Keys}
			if !aborted {
				if t, err = in.dir.Get(ctx, t.ID); err != nil {
					return err
				}
				v := viewOf(t)
				out.Tenant = &v
			}
			if o.json {
				return o.emit(out)
			}
			if aborted {
				o.printf("The move of tenant %s (%s) is undone: it stays %s on %s.\n", t.Slug, t.ID, res.Move.From.Model, res.Move.From.Server)
				return nil
			}
			mode := "offline"
			if res.Move.Online {
				mode = "online"
			}
			o.printf("Moved tenant %s (%s) %s from %s on %s to %s on %s: %s copied, %s applied after the copy, calls paused %s.\n",
				t.Slug, t.ID, mode, res.Move.From.Model, res.Move.From.Server, t.Model, t.Server,
				plural(int(res.Rows), "row"), plural(int(res.Changes), "change"), res.Pause.Round(time.Millisecond))
			return nil
		})
	}
	return cmd
}

// moveRefused reports whether err refuses a move for what was asked (exit
// code 2) rather than failing one.
func moveRefused(err error) bool {
	for _, e := range []error{move.ErrSamePlacement, move.ErrNoMove, move.ErrRollsForward, move.ErrNotPermitted,
		directory.ErrMoveUnderway, provision.ErrUnknownServer, archive.ErrIncompatible, tenant.ErrBadModel} {
		if errors.Is(err, e) {
			return true
		}
	}
	var se *tenant.StateError
	return errors.As(err, &se)
}

func newTenantsMoves(g *globals, migrationsDir *string) *cobra.Command {
	var unfinished bool
	var limit int
	cmd := &cobra.Command{
		Use:   "moves [" + tenantArg + "]",
		Short: "List tenant moves, newest first, with their phases",
		Long: `moves lists the moves of one tenant, or of every tenant: where from and to, the
phase each reached, the rows copied, the changes applied after the copy and how
long the tenant's calls paused at the cutover.
` + helpMove + "\n" + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord tenants moves
  landlord tenants moves acme --json
  landlord tenants moves --unfinished`,
		Args: args(cobra.MaximumNArgs(1)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().BoolVar(&unfinished, "unfinished", false, "only moves neither done nor aborted")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if limit <= 0 {
			return usageError{errors.New("--limit must be positive")}
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallNever, func(in *installation) error {
			var id tenant.ID
			if len(a) == 1 {
				ref, err := parseTenantRef(a[0])
				if err != nil {
					return err
				}
				t, err := ref.lookup(ctx, in.dir)
				if err != nil {
					return err
				}
				id = t.ID
			}
			ms, err := in.dir.Moves(ctx, id, unfinished, limit)
			if err != nil {
				return err
			}
			if len(ms) == 0 && !o.json {
				o.printf("No moves.\n")
				return nil
			}
			rows := make([][]string, len(ms))
			vs := make([]any, len(ms))
			for i, m := range ms {
				v := viewOfMove(m)
				pause := "-"
				if m.Pause > 0 {
					pause = m.Pause.Round(time.Millisecond).String()
				}
				rows[i] = []string{fmt.Sprint(m.ID), m.Tenant.String(), v.Mode, v.From.Model + "/" + v.From.Server,
					v.To.Model + "/" + v.To.Server, v.Phase, fmt.Sprint(m.RowsCopied), fmt.Sprint(m.Changes), pause,
					m.StartedAt.UTC().Format(time.RFC3339)}
				vs[i] = v
			}
			return o.lines([]string{"ID", "TENANT", "MODE", "FROM", "TO", "PHASE", "ROWS", "CHANGES", "PAUSE", "STARTED"}, rows, vs)
		})
	}
	return cmd
}

// drainResult is the JSON output of servers drain.
type drainResult struct {
	Server string            `json:"server"`
	Moved  []moveView        `json:"moved"`
	Failed map[string]string `json:"failed"`
}

func newServersDrain(g *globals, migrationsDir *string) *cobra.Command {
	var to, reason, verify string
	var parallel int
	var offline bool
	cmd := &cobra.Command{
		Use:   "drain ID --reason TEXT [--to ID] [--parallel N]",
		Short: "Move every tenant off a server, while they keep serving",
		Long: `drain moves every tenant of a server to another server, in the same model: to
--to, or each to the least loaded other server. At most --parallel tenants
move at once; each pauses only at its own cutover. A tenant whose move fails
stays where it was and the others go on; the command then exits 1 and lists
them. The server stays in the directory, empty.
` + helpMove + `

It runs in an admin scope: --reason says why, and is logged.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord servers drain eu-1 --reason "hardware retired"
  landlord servers drain eu-1 --to eu-2 --parallel 4 --reason upgrade --json`,
		Args: args(cobra.ExactArgs(1)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().StringVar(&to, "to", "", "the server to move every tenant to (default: each to the least loaded other)")
	cmd.Flags().IntVar(&parallel, "parallel", 2, "tenants moving at once")
	cmd.Flags().BoolVar(&offline, "offline", false, "copy each tenant with it fenced, without logical decoding")
	cmd.Flags().StringVar(&verify, "verify", "changed", verifyUsage)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the log (required)")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if strings.TrimSpace(reason) == "" {
			return usageError{errors.New("--reason is required: say why the server is drained; it is logged")}
		}
		if parallel <= 0 || parallel > 64 {
			return usageError{errors.New("--parallel must be from 1 to 64")}
		}
		cfg := move.DrainConfig{To: to, Parallel: parallel}
		var err error
		if cfg.Move.Verify, err = move.ParseVerify(verify); err != nil {
			return usageError{err}
		}
		if offline {
			cfg.Move.Mode = move.Offline
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallExisting, func(in *installation) error {
			admin, err := in.ll.Admin(ctx, reason)
			if err != nil {
				return usageError{err}
			}
			bar := newDrainProgress(cmd.ErrOrStderr(), "drain "+a[0])
			cfg.Progress = bar.update
			res, err := admin.DrainServer(ctx, a[0], cfg)
			bar.finish()
			if errors.Is(err, provision.ErrUnknownServer) || (err != nil && len(res.Moved) == 0 && len(res.Failed) == 0) {
				return usageError{err}
			}
			out := drainResult{Server: a[0], Moved: []moveView{}, Failed: map[string]string{}}
			for _, r := range res.Moved {
				out.Moved = append(out.Moved, viewOfMove(r.Move))
			}
			for id, ferr := range res.Failed {
				out.Failed[id.String()] = ferr.Error()
			}
			if o.json {
				if eerr := o.emit(out); eerr != nil {
					return eerr
				}
				if err != nil {
					return quietError{err, exitError}
				}
				return nil
			}
			var worst time.Duration
			for _, r := range res.Moved {
				worst = max(worst, r.Pause)
			}
			o.printf("Drained server %s: %s moved (longest pause %s), %s failed.\n", a[0],
				plural(len(res.Moved), "tenant"), worst.Round(time.Millisecond), plural(len(res.Failed), "tenant"))
			for id, ferr := range res.Failed {
				o.printf("  %s: %v\n", id, ferr)
			}
			if err != nil {
				return quietError{err, exitError}
			}
			return nil
		})
	}
	return cmd
}

// moveProgress shows a move's phase, rows and changes (liveCount); each
// new phase gets a line of its own when not on a terminal.
type moveProgress struct{ *liveCount }

func newMoveProgress(w io.Writer, label string) moveProgress {
	return moveProgress{newLiveCount(w, label)}
}

func (m moveProgress) update(p move.Progress) {
	m.set(string(p.Phase), fmt.Sprintf("%s, %d rows, %d changes", p.Phase, p.Rows, p.Changes), p.Rows+p.Changes, 0)
}

// drainProgress shows a drain's tenants finished of all, with the
// installation's progress display, made once the drain knows its total.
type drainProgress struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	p     *progress
}

func newDrainProgress(w io.Writer, label string) *drainProgress {
	return &drainProgress{w: w, label: label}
}

func (d *drainProgress) update(p move.DrainProgress) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.p == nil {
		d.p = newProgress(d.w, d.label, p.Total)
	}
	d.p.step(p.Err != nil)
}

func (d *drainProgress) finish() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.p != nil {
		d.p.finish()
	}
}
