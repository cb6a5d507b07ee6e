package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord/fleet"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// migrateOptions are the flags of landlord migrate and its subcommands.
type migrateOptions struct {
	migrations      string
	models          []string
	tenants         []string
	parallel        int
	perDatabase     int
	json            bool
	all             bool
	canary          int
	continueOnError bool
	lockTimeout     time.Duration
	lockRetries     int
}

const migrateLong = `migrate applies the application's tenant-table migrations to every target of the
installation: the shared schema (row tenants), each tenant schema, the schema
inside each tenant database, and the provisioning templates when they exist.

Each target records its own version in the ledger of its database, and every
migration step commits its DDL with its ledger row, so a target is always at
one version, never between two. A run records its plan and each target's state
in the directory before it acts: run "migrate up" again after a failure, a
Ctrl-C or a crash, and it migrates only what is not done yet, taking over the
targets of a run whose process is gone. Two runs at once never migrate the same
target at the same time.

--migrations DIR names the directory of the application's NNN_name.up.sql
files. Without it the demo's migrations (one products table) are used, which
suits only an installation made by "landlord demo".

Exit codes: 0 every selected target is at the head; 1 some target failed or is
behind ("migrate status" shows which and why), or a --tenant is not in the
directory; 2 bad command line or bad input (a malformed slug, id, model or
database URL, a malformed migration file, a migration file that changed after
it was applied, a set older than the installation's), in which case nothing
was recorded or applied; 130 interrupted by Ctrl-C: run "migrate up" again.
With --json each command prints exactly one JSON object; arrays are [] and a
version that could not be read is null.`

// newMigrate returns the migrate command with its subcommands up, status and
// plan.
func newMigrate(g *globals) *cobra.Command {
	o := &migrateOptions{}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Migrate the whole fleet: every tenant, the shared schema and the templates",
		Long:  migrateLong,
		Example: `  # what would run, then run it, then check
  landlord migrate plan --migrations ./migrations
  landlord migrate up --migrations ./migrations
  landlord migrate status --migrations ./migrations`,
		Args: args(cobra.NoArgs),
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.migrations, "migrations", "", "directory of the application's NNN_name.up.sql migrations (default: the demo's)")
	pf.StringSliceVar(&o.models, "model", nil, "only targets of this model: row (the shared schemas), schema or database (repeatable)")
	pf.StringArrayVar(&o.tenants, "tenant", nil, "only this tenant, by id or slug (repeatable); a row tenant selects its shared schema")
	pf.IntVar(&o.parallel, "parallel", fleet.DefaultParallel, "targets migrated (or tenant databases read) at once per server")
	pf.BoolVar(&o.json, "json", false, "print JSON instead of tables")
	cmd.AddCommand(newMigrateUp(g, o), newMigrateStatus(g, o), newMigratePlan(g, o))
	return cmd
}

func newMigrateUp(g *globals, o *migrateOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Bring every selected target to the newest migration",
		Long: `up migrates every selected target that is behind, and every target the last run
left failed or unfinished, --parallel at a time per server and --per-database at a
time per database. With --canary N it migrates the first N targets (tenants in
slug order come first) and stops if any of them fails. By default no new target starts after the first failure;
--continue-on-error migrates all it can. A statement that waits longer than
--lock-timeout for a lock (held by live traffic) is rolled back and retried up to
--lock-retries times, so traffic never queues behind the migration for long.

On a terminal a progress bar shows on stderr; otherwise a line every few
seconds. A failed target's error is in the summary and in "migrate status".`,
		Example: `  # the whole fleet, four at a time
  landlord migrate up --migrations ./migrations --parallel 4

  # ten canaries first, then everyone, not stopping at failures
  landlord migrate up --migrations ./migrations --canary 10 --continue-on-error

  # two tenants only, by slug and by id, waiting at most 500ms per lock
  landlord migrate up --migrations ./migrations --tenant acme --tenant 0190a5e4-8f1c-7d3e-9a4b-5c6d7e8f9a0b --lock-timeout 500ms

  # database tenants only, JSON report
  landlord migrate up --migrations ./migrations --model database --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var prog *progress
			hooks := func(cfg *fleet.Config) {
				cfg.OnRun = func(r fleet.Run) {
					prog = newProgress(cmd.ErrOrStderr(), fmt.Sprintf("migrate run %d", r.ID), r.Targets)
				}
				cfg.OnTarget = func(r fleet.TargetResult) { prog.step(r.Status == fleet.StateFailed) }
			}
			return o.run(cmd, g, provision.InstallExisting, hooks, func(ctx context.Context, f *fleet.Fleet, out *output) error {
				rep, err := f.Up(ctx)
				if prog != nil {
					prog.finish()
				}
				return reportMigrateUp(out, rep, err)
			})
		},
	}
	cmd.Flags().IntVar(&o.perDatabase, "per-database", 0, "targets of one database (the control database's schema tenants) migrated at once (default: --parallel)")
	cmd.Flags().IntVar(&o.canary, "canary", 0, "migrate this many targets first and stop if any of them fails")
	cmd.Flags().BoolVar(&o.continueOnError, "continue-on-error", false, "keep migrating the other targets after one failed")
	cmd.Flags().DurationVar(&o.lockTimeout, "lock-timeout", 3*time.Second, "longest wait of one migration statement for a lock before it is retried")
	cmd.Flags().IntVar(&o.lockRetries, "lock-retries", 5, "retries of a step that hit --lock-timeout before its target fails")
	return cmd
}

func newMigrateStatus(g *globals, o *migrateOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each target's version against the newest migration, and the last run's outcome",
		Long: `status reads every selected target's ledger and prints a summary (targets at the
head, behind, unreadable, failed in their last run, being migrated now), the
installation's last run, and the targets that are not at the head or failed,
with their pending versions and last error (--all lists every target). It
changes nothing. It exits 1 when some target is not at the head, after printing
the status (with --json, still exactly one object).`,
		Example: `  # what is behind, and why
  landlord migrate status --migrations ./migrations

  # every target of the schema model, as JSON
  landlord migrate status --migrations ./migrations --model schema --all --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, g, provision.InstallNever, nil, func(ctx context.Context, f *fleet.Fleet, out *output) error {
				st, err := f.Status(ctx)
				if err != nil {
					return err
				}
				return printMigrateStatus(out, st, o.all)
			})
		},
	}
	cmd.Flags().BoolVar(&o.all, "all", false, "list every target, not only those behind or failed")
	return cmd
}

func newMigratePlan(g *globals, o *migrateOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "plan",
		Short: "List, per target, the migrations up would apply, without running anything",
		Long: `plan reads every selected target's ledger and lists the versions "migrate up"
would apply to each. It runs and records nothing. A migration file that changed
after it was applied, or a missing one, is an error here as it is for up.`,
		Example: `  # what the next up does
  landlord migrate plan --migrations ./migrations

  # for one tenant, as JSON
  landlord migrate plan --migrations ./migrations --tenant acme --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, g, provision.InstallNever, nil, func(ctx context.Context, f *fleet.Fleet, out *output) error {
				st, err := f.Plan(ctx)
				if err != nil {
					return err
				}
				return printMigratePlan(out, st)
			})
		},
	}
}

// run checks the flags and the migrations, opens the installation, builds
// the Fleet (with hooks, when given, setting its callbacks) and calls fn.
// Bad input becomes a usage error.
func (o *migrateOptions) run(cmd *cobra.Command, g *globals, install provision.Install, hooks func(*fleet.Config), fn func(ctx context.Context, f *fleet.Fleet, out *output) error) error {
	ctx := cmd.Context()
	cfg, err := o.config()
	if err != nil {
		return usageError{err}
	}
	if hooks != nil {
		hooks(&cfg)
	}
	migrations, err := loadMigrations(o.migrations)
	if err != nil {
		return err
	}
	out := newOutput(cmd, o.json)
	cfg.Logger = g.logger(cmd.ErrOrStderr())
	err = g.withDatabase(ctx, cmd.ErrOrStderr(), func(url string) error {
		in, err := openInstallation(ctx, url, migrations, cfg.Logger, install)
		if err != nil {
			return err
		}
		defer g.close(in)
		f, err := in.ll.Fleet(cfg)
		if err != nil {
			return err
		}
		return fn(ctx, f, out)
	})
	if migrateBadInput(err) {
		return usageError{err}
	}
	return err
}

// migrateBadInput reports whether err is about what the user asked for: nothing
// was recorded or applied. A tenant that is not in the directory is not bad
// input but a failed operation, as for every other command.
func migrateBadInput(err error) bool {
	for _, target := range []error{
		fleet.ErrBadConfig, fleet.ErrNotMigratable, fleet.ErrSetMismatch,
		tenant.ErrBadSlug, tenant.ErrBadID, tenant.ErrBadModel,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return badMigrationSet(err)
}

// config turns the flags into a fleet.Config, checking what can be checked
// without a database.
func (o *migrateOptions) config() (fleet.Config, error) {
	cfg := fleet.Config{
		Parallel: o.parallel, PerDatabase: o.perDatabase, Canary: o.canary, Tenants: o.tenants, ContinueOnError: o.continueOnError,
		LockTimeout: o.lockTimeout, LockRetries: o.lockRetries,
	}
	if o.parallel < 1 {
		return cfg, fmt.Errorf("--parallel %d: must be at least 1", o.parallel)
	}
	if o.perDatabase < 0 {
		return cfg, fmt.Errorf("--per-database %d: must not be negative", o.perDatabase)
	}
	if o.canary < 0 {
		return cfg, fmt.Errorf("--canary %d: must not be negative", o.canary)
	}
	if o.lockTimeout < 0 || (o.lockTimeout > 0 && o.lockTimeout < time.Millisecond) {
		return cfg, fmt.Errorf("--lock-timeout %s: must be at least 1ms", o.lockTimeout)
	}
	if o.lockRetries < 0 {
		return cfg, fmt.Errorf("--lock-retries %d: must not be negative", o.lockRetries)
	}
	for _, m := range o.models {
		model, err := tenant.ParseModel(strings.TrimSpace(m))
		if err != nil {
			return cfg, fmt.Errorf("--model: %w", err)
		}
		cfg.Models = append(cfg.Models, model)
	}
	for _, t := range o.tenants {
		if strings.TrimSpace(t) == "" {
			return cfg, errors.New("--tenant: empty; give a tenant id or slug")
		}
	}
	return cfg, nil
}

// reportMigrateUp prints what Up did and turns failed targets into exit code 1.
func reportMigrateUp(out *output, rep *fleet.Report, err error) error {
	if rep == nil {
		return err
	}
	if perr := printMigrateReport(out, rep); perr != nil && err == nil {
		err = perr
	}
	if errors.Is(err, fleet.ErrTargetsFailed) || errors.Is(err, fleet.ErrCanaryFailed) {
		return fmt.Errorf("run %d: %w (landlord migrate status shows each target)", rep.Run.ID, err)
	}
	return err
}

// reportView is the JSON output of migrate up: fleet.Report in the shapes
// every command's JSON keeps: arrays are [], never null, and a version that
// is not known is null.
type reportView struct {
	Run     fleet.Run          `json:"run"`
	Targets []targetResultView `json:"targets"`
	AtHead  int                `json:"at_head"`
}

type targetResultView struct {
	fleet.TargetResult
	From    *int  `json:"from"` // null when the version before was not known
	Applied []int `json:"applied"`
}

func reportViewOf(rep *fleet.Report) reportView {
	v := reportView{Run: rep.Run, Targets: make([]targetResultView, len(rep.Targets)), AtHead: rep.AtHead}
	for i, t := range rep.Targets {
		v.Targets[i] = targetResultView{TargetResult: t, From: knownVersion(t.From), Applied: orNoInts(t.Applied)}
	}
	return v
}

// statusView is the JSON output of migrate status and plan: fleet.Status
// in the same shapes, with the summary's counts named as the table names
// them.
type statusView struct {
	Head    int                `json:"head"`
	SetHash string             `json:"set_hash"`
	Summary summaryView        `json:"summary"`
	LastRun *fleet.Run         `json:"last_run"` // null when no run was recorded
	Targets []targetStatusView `json:"targets"`
}

type summaryView struct {
	Targets    int `json:"targets"`
	AtHead     int `json:"at_head"`
	Behind     int `json:"behind"`
	Unreadable int `json:"unreadable"` // ledger unreadable or disagreeing with the set
	Failed     int `json:"failed"`
	Running    int `json:"running"`
}

type targetStatusView struct {
	fleet.TargetStatus
	Version *int           `json:"version"` // null when the ledger could not be read
	Pending []int          `json:"pending"`
	Last    *fleet.LastRun `json:"last"` // null when no run selected the target
}

func statusViewOf(st *fleet.Status) statusView {
	s := st.Summary
	v := statusView{
		Head: st.Head, SetHash: st.SetHash, LastRun: st.LastRun, Targets: make([]targetStatusView, len(st.Targets)),
		Summary: summaryView{Targets: s.Targets, AtHead: s.AtHead, Behind: s.Behind, Unreadable: s.Unknown, Failed: s.Failed, Running: s.Running},
	}
	for i, t := range st.Targets {
		v.Targets[i] = targetStatusView{TargetStatus: t, Version: knownVersion(t.Version), Pending: orNoInts(t.Pending), Last: t.Last}
	}
	return v
}

// knownVersion is v for JSON: null when it is fleet's "not known" (-1),
// which the tables show as "?".
func knownVersion(v int) *int {
	if v < 0 {
		return nil
	}
	return &v
}

func orNoInts(vs []int) []int {
	if vs == nil {
		return []int{}
	}
	return vs
}

func printMigrateReport(out *output, rep *fleet.Report) error {
	if out.json {
		return out.emit(reportViewOf(rep))
	}
	r := rep.Run
	if r.ID == 0 {
		out.printf("nothing to do: %s at version %d\n", map[bool]string{true: "the selected target is", false: fmt.Sprintf("all %d selected targets are", rep.AtHead)}[rep.AtHead == 1], r.Head)
		return nil
	}
	out.printf("run %d %s: %d done, %d failed, %d not started, %d already at version %d; took %s\n",
		r.ID, r.Status, r.Done, r.Failed, r.Targets-r.Done-r.Failed, rep.AtHead, r.Head, r.Finished.Sub(r.Started).Round(time.Millisecond))
	var rows [][]string
	for _, t := range rep.Targets {
		if t.Status == fleet.StateDone {
			continue
		}
		rows = append(rows, []string{migrateTargetLabel(t.Target), string(t.Kind), string(t.Status), strconv.Itoa(t.To), migrateClip(t.Error)})
	}
	if len(rows) == 0 {
		return nil
	}
	out.printf("\n")
	return out.table([]string{"TARGET", "KIND", "STATUS", "VERSION", "ERROR"}, rows, nil)
}

func printMigrateStatus(out *output, st *fleet.Status, all bool) error {
	behind := st.Summary.Behind + st.Summary.Unknown
	var err error
	if behind > 0 {
		err = fmt.Errorf("%d of %s not at version %d", behind, plural(st.Summary.Targets, "target")+map[bool]string{true: " is", false: " are"}[behind == 1], st.Head)
	}
	if out.json {
		if perr := out.emit(statusViewOf(st)); perr != nil {
			return perr
		}
		return err
	}
	s := st.Summary
	out.printf("version %d (migration set %.12s): %s, %d at the head, %d behind, %d unreadable; %d failed in their last run, %d being migrated now\n",
		st.Head, st.SetHash, plural(s.Targets, "target"), s.AtHead, s.Behind, s.Unknown, s.Failed, s.Running)
	if lr := st.LastRun; lr != nil {
		line := fmt.Sprintf("last run %d: %s, %d of %s done, %d failed, started %s", lr.ID, lr.Status, lr.Done, plural(lr.Targets, "target"), lr.Failed, lr.Started.Format(time.RFC3339))
		if lr.Error != "" {
			line += ": " + migrateClip(lr.Error)
		}
		out.printf("%s\n", line)
	}
	var rows [][]string
	for _, t := range st.Targets {
		failed := t.Last != nil && t.Last.Status == fleet.StateFailed
		if !all && t.Version >= st.Head && t.Problem == "" && !failed && t.HeldBy == 0 {
			continue
		}
		last, msg := "-", t.Problem
		if t.Last != nil {
			last = fmt.Sprintf("%s (run %d)", t.Last.Status, t.Last.Run)
			if msg == "" {
				msg = t.Last.Error
			}
		}
		if t.HeldBy != 0 {
			last = fmt.Sprintf("running (run %d)", t.HeldBy)
		}
		version := strconv.Itoa(t.Version)
		if t.Version < 0 {
			version = "?"
		}
		rows = append(rows, []string{migrateTargetLabel(t.Target), string(t.Kind), version, migrateVersions(t.Pending), last, migrateClip(msg)})
	}
	if len(rows) > 0 {
		out.printf("\n")
		if perr := out.table([]string{"TARGET", "KIND", "VERSION", "PENDING", "LAST RUN", "ERROR"}, rows, nil); perr != nil {
			return perr
		}
	}
	return err
}

func printMigratePlan(out *output, st *fleet.Status) error {
	if out.json {
		return out.emit(statusViewOf(st))
	}
	var rows [][]string
	for _, t := range st.Targets {
		if len(t.Pending) == 0 && t.Problem == "" {
			continue
		}
		version := strconv.Itoa(t.Version)
		if t.Version < 0 {
			version = "?"
		}
		rows = append(rows, []string{migrateTargetLabel(t.Target), string(t.Kind), version, migrateVersions(t.Pending), migrateClip(t.Problem)})
	}
	out.printf("version %d: %d of %d selected targets to migrate; nothing was run\n", st.Head, len(rows), len(st.Targets))
	if len(rows) == 0 {
		return nil
	}
	out.printf("\n")
	return out.table([]string{"TARGET", "KIND", "VERSION", "PENDING", "PROBLEM"}, rows, nil)
}

// migrateTargetLabel names a target for people: the tenant's slug, or what the
// target is.
func migrateTargetLabel(t fleet.Target) string {
	switch t.Kind {
	case fleet.KindShared:
		return "shared schema (server " + t.Server + ")"
	case fleet.KindTemplate:
		return "template " + t.Database + "/" + t.Schema
	}
	return t.Slug
}

// migrateVersions prints a list of versions compactly: "2-5", "3, 7".
func migrateVersions(vs []int) string {
	if len(vs) == 0 {
		return "-"
	}
	contiguous := true
	for i := 1; i < len(vs); i++ {
		if vs[i] != vs[i-1]+1 {
			contiguous = false
		}
	}
	if contiguous && len(vs) > 2 {
		return fmt.Sprintf("%d-%d", vs[0], vs[len(vs)-1])
	}
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ", ")
}

// migrateClip keeps an error on one line and short enough for a table.
func migrateClip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const max = 160
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
