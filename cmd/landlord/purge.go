package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

const helpPurge = `
A purge removes everything the tenant had, on every server of the directory:
replication slots and publications named after it, its rows in every table
with a tenant_id column in every schema, its schema, database and role, its
River jobs, and every directory record of it but the provisioning ledger (the
installation's audit trail) and the purge record (what was purged and what
the verifier found). Each step is logged before it acts; a purge that was
interrupted is finished by running it again or by "landlord tenants
reconcile". The verifier then looks for all of it again, on every server, and
prints each check.`

// checkView is one check of the verifier in JSON output.
type checkView struct {
	What     string `json:"what"`
	Server   string `json:"server"`
	Database string `json:"database"`
	Object   string `json:"object"`
	Found    int64  `json:"found"`
	Detail   string `json:"detail"`
	Kept     bool   `json:"kept"`
	Error    string `json:"error"`
}

// purgeView is the JSON output of purge and verify-purge: the purge record
// and the verifier's checks.
type purgeView struct {
	ID         tenant.ID   `json:"id"`
	Slug       string      `json:"slug"`
	Model      string      `json:"model"`
	Server     string      `json:"server"`
	Schema     string      `json:"schema"`
	Database   string      `json:"database"`
	State      string      `json:"state"` // of the purge: scheduled, purging, purged; "" without a record
	DeletedAt  *time.Time  `json:"deleted_at"`
	PurgeAfter *time.Time  `json:"purge_after"`
	PurgedAt   *time.Time  `json:"purged_at"`
	Clean      bool        `json:"clean"`
	Left       int         `json:"left"`      // checks that found something of the tenant
	Unchecked  int         `json:"unchecked"` // checks that could not run
	Checks     []checkView `json:"checks"`
	Error      string      `json:"error,omitempty"` // the purge's own error, in purge --due
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func viewOfPurge(id tenant.ID, rep provision.PurgeReport) purgeView {
	v := purgeView{ID: id, Clean: rep.Clean(), Checks: []checkView{}}
	if r := rep.Record; r != nil {
		v.Slug, v.Model, v.Server, v.Schema, v.Database, v.State = r.Slug, string(r.Model), r.Server, r.Schema, r.Database, string(r.State)
		v.DeletedAt, v.PurgeAfter, v.PurgedAt = timeOrNil(r.DeletedAt), timeOrNil(r.PurgeAfter), timeOrNil(r.PurgedAt)
	}
	for _, c := range rep.Checks {
		v.Checks = append(v.Checks, checkView{What: c.What, Server: c.Server, Database: c.Database, Object: c.Object,
			Found: c.Found, Detail: c.Detail, Kept: c.Kept, Error: c.Err})
		switch {
		case c.Err != "":
			v.Unchecked++
		case c.Leftover():
			v.Left++
		}
	}
	return v
}

// printChecks prints the verifier's checks as a table, and what they add
// printReport prints a verifier's report: one JSON object, or its checks.
func printReport(o *output, v purgeView) error {
	if o.json {
		return o.emit(v)
	}
	return printChecks(o, v)
}

// up to.
func printChecks(o *output, v purgeView) error {
	rows := make([][]string, len(v.Checks))
	for i, c := range v.Checks {
		where := c.Server
		if c.Database != "" {
			where += "/" + c.Database
		}
		result := "nothing left"
		switch {
		case c.Error != "":
			result = "NOT CHECKED: " + c.Error
		case c.Kept:
			result = fmt.Sprintf("kept on purpose (%d): %s", c.Found, c.Detail)
		case c.Found > 0:
			result = fmt.Sprintf("LEFT: %d (%s)", c.Found, c.Detail)
		case c.Detail != "":
			result = "nothing left (" + c.Detail + ")"
		}
		rows[i] = []string{c.What, where, c.Object, result}
	}
	if err := o.table([]string{"CHECK", "WHERE", "LOOKED FOR", "RESULT"}, rows, nil); err != nil {
		return err
	}
	switch {
	case v.Clean:
		o.printf("\nNothing of tenant %s is left (%s).\n", v.ID, plural(len(v.Checks), "check"))
	default:
		o.printf("\n%s found something of tenant %s left, %s could not be run.\n",
			plural(v.Left, "check"), v.ID, plural(v.Unchecked, "check"))
	}
	return nil
}

// resolvePurged finds the tenant ref names: in the directory, or, once it
// is purged, by its purge record.
func resolvePurged(ctx context.Context, in *installation, ref tenantRef) (tenant.ID, error) {
	t, err := ref.lookup(ctx, in.dir)
	if err == nil {
		return t.ID, nil
	}
	if !errors.Is(err, tenant.ErrNotFound) {
		return tenant.ID{}, err
	}
	if !ref.id.IsZero() {
		if _, perr := in.dir.GetPurge(ctx, ref.id); perr == nil {
			return ref.id, nil
		}
	}
	if ref.slug != "" {
		if r, perr := in.dir.GetPurgeBySlug(ctx, ref.slug); perr == nil {
			return r.Tenant, nil
		}
	}
	return tenant.ID{}, err
}

// purgeRefused reports whether err is a purge refused for the tenant's
// state (nothing was changed): bad input, exit 2.
func purgeRefused(err error) bool {
	return errors.Is(err, provision.ErrNotDeleted) || errors.Is(err, provision.ErrPurgeNotDue) || errors.Is(err, provision.ErrPurgeStarted)
}

func newTenantsPurge(g *globals, migrationsDir *string) *cobra.Command {
	var now, due bool
	var reason string
	cmd := &cobra.Command{
		Use:   "purge " + tenantArg + " | --due",
		Short: "Remove everything of a deleted tenant, and verify that nothing is left",
		Long: `purge removes a deleted tenant for good once its grace period is over (see
"delete --grace"), and then runs the verifier and prints each of its checks.
With --now it purges a tenant still in its grace period, or one that is not
deleted at all, which it first moves to state deleting. Purging a tenant that
is purged already runs every step again: what a verifier found left is then
removed. With --due it purges every tenant whose purge is due, with a progress
bar, and prints one result per tenant.
` + helpPurge + `

A purge that leaves something, or whose verifier could not run a check, exits
with 1, after printing the checks.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord tenants purge acme
  landlord tenants purge 0190f3c4-8a2b-7c4d-9e5f-0a1b2c3d4e5f --now --json

  # from a daily job
  landlord tenants purge --due --reason "nightly purge"`,
		Args: args(cobra.MaximumNArgs(1)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().BoolVar(&now, "now", false, "purge without waiting for the grace period; delete the tenant first if it is not deleted")
	cmd.Flags().BoolVar(&due, "due", false, "purge every tenant whose purge is due")
	cmd.Flags().StringVar(&reason, "reason", "purge from the landlord command", "why, for the log")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if err := requireReason(reason); err != nil {
			return err
		}
		switch {
		case due && len(a) > 0:
			return usageError{errors.New("--due purges every due tenant: name no tenant with it")}
		case due && now:
			return usageError{errors.New("--now names one tenant: it cannot go with --due")}
		case !due && len(a) == 0:
			return usageError{errors.New("name the tenant to purge, or pass --due")}
		}
		var ref tenantRef
		if !due {
			var err error
			if ref, err = parseTenantRef(a[0]); err != nil {
				return err
			}
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallExisting, func(in *installation) error {
			admin, err := in.ll.Admin(ctx, reason)
			if err != nil {
				return usageError{err}
			}
			if due {
				return purgeDue(ctx, cmd, o, admin)
			}
			id, err := resolvePurged(ctx, in, ref)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "landlord: purging tenant %s, then verifying on every server\n", id)
			rep, err := admin.PurgeTenant(ctx, id, now)
			switch {
			case purgeRefused(err):
				return usageError{fmt.Errorf("purge tenant %q: %w", ref.arg, err)}
			case err != nil && !errors.Is(err, provision.ErrNotPurged):
				return err
			}
			v := viewOfPurge(id, rep)
			if err := printReport(o, v); err != nil {
				return err
			}
			if !v.Clean {
				return fmt.Errorf("purge tenant %q: %d checks found something left and %d could not run (listed above); run purge again once the cause is fixed", ref.arg, v.Left, v.Unchecked)
			}
			return nil
		})
	}
	return cmd
}

// purgeDue purges every due tenant with a progress display and prints one
// result per tenant.
func purgeDue(ctx context.Context, cmd *cobra.Command, o *output, admin *landlord.Admin) error {
	var (
		mu   sync.Mutex
		prog *progress
		seen int
	)
	res, err := admin.PurgeDue(ctx, func(done, total int) {
		mu.Lock()
		defer mu.Unlock()
		if prog == nil {
			prog = newProgress(cmd.ErrOrStderr(), "purge", total)
		}
		for ; seen < done; seen++ {
			prog.step(false)
		}
	})
	if prog != nil {
		prog.finish()
	}
	if err != nil {
		return err
	}
	if len(res) == 0 {
		o.printf("No tenant is due for purging.\n")
		return nil
	}
	failed := 0
	rows := make([][]string, len(res))
	vs := make([]any, len(res))
	for i, r := range res {
		v := viewOfPurge(r.Tenant, r.Report)
		if v.Slug == "" {
			v.Slug = r.Slug
		}
		result := fmt.Sprintf("purged; nothing left (%s)", plural(len(v.Checks), "check"))
		switch {
		case r.Skipped:
			result = "skipped: another session is working on it"
			v.Error = "skipped: another session is working on it"
		case r.Err != nil:
			failed++
			v.Error = oneLine(r.Err.Error())
			result = "FAILED: " + v.Error
		}
		rows[i] = []string{r.Tenant.String(), v.Slug, result}
		vs[i] = v
	}
	if err := o.lines([]string{"ID", "SLUG", "RESULT"}, rows, vs); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("purge: %d of %d tenants were not purged clean (listed above); run it again once the cause is fixed", failed, len(res))
	}
	return nil
}

func newTenantsVerifyPurge(g *globals, migrationsDir *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify-purge " + tenantArg,
		Short: "Prove that nothing of a purged tenant is left on any server",
		Long: `verify-purge looks on every server of the directory for anything of a tenant:
its database and role, its schema in each server's database and in the
template database, replication slots and publications named after it, its
rows in every table with a tenant_id column in every schema, its River jobs,
and the directory's records of it. It prints every check: what it looked for,
where, and what it found. The records kept on purpose (the provisioning
ledger, the purge record) are listed as kept. The answer is recorded with the
tenant's purge. It exits with 1 when something is left or a check could not
run (a server that does not answer).
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord tenants verify-purge acme
  landlord tenants verify-purge 0190f3c4-8a2b-7c4d-9e5f-0a1b2c3d4e5f --json`,
		Args: args(cobra.ExactArgs(1)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		ref, err := parseTenantRef(a[0])
		if err != nil {
			return err
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallExisting, func(in *installation) error {
			id, err := resolvePurged(ctx, in, ref)
			if err != nil {
				return err
			}
			admin, err := in.ll.Admin(ctx, "verify purge from the landlord command")
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "landlord: verifying the purge of tenant %s on every server\n", id)
			rep, err := admin.VerifyPurge(ctx, id)
			if err != nil {
				return err
			}
			v := viewOfPurge(id, rep)
			if err := printReport(o, v); err != nil {
				return err
			}
			if !v.Clean {
				return fmt.Errorf("verify-purge %q: %d checks found something left and %d could not run (listed above)", ref.arg, v.Left, v.Unchecked)
			}
			return nil
		})
	}
	return cmd
}

func newTenantsRestore(g *globals, migrationsDir *string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "restore " + tenantArg + " --reason TEXT",
		Short: "Take back a tenant deleted with a grace period that has not ended",
		Long: `restore takes back a tenant that "delete --grace" deleted, before its purge
began: it returns to the state it had before, with all of its data, and its
traffic is served again. A tenant whose purge has begun cannot be restored.

It runs in an admin scope: --reason says why, and is logged with the change.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord tenants restore acme --reason "ticket 4711: deleted by mistake"`,
		Args:    args(cobra.ExactArgs(1)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the log (required)")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		ref, err := parseTenantRef(a[0])
		if err != nil {
			return err
		}
		if strings.TrimSpace(reason) == "" {
			return usageError{errors.New("--reason is required: say why the tenant is restored; it is logged")}
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withTenantAdmin(ctx, g, cmd, *migrationsDir, ref, reason, func(in *installation, t tenant.Tenant, admin *landlord.Admin) error {
			var err error
			t, err = admin.RestoreTenant(ctx, t.ID)
			if purgeRefused(err) {
				return usageError{fmt.Errorf("restore tenant %q: %w", ref.arg, err)}
			}
			if err != nil {
				return err
			}
			if o.json {
				return o.emit(viewOf(t))
			}
			o.printf("Tenant %s (%s) is restored and %s.\n", t.Slug, t.ID, t.State)
			return nil
		})
	}
	return cmd
}

// deleteTenant deletes t for the delete command: at once, or, with a
// grace period, marked deleting and purged once it is over.
func deleteTenant(ctx context.Context, in *installation, o *output, t tenant.Tenant, grace time.Duration) error {
	if grace <= 0 {
		if err := in.ll.DeleteTenant(ctx, t.ID); err != nil {
			return err
		}
		if o.json {
			return o.emit(deleted{tenantView: viewOf(t), Deleted: true})
		}
		o.printf("Deleted tenant %s (%s, %s).\n", t.Slug, t.Model, t.ID)
		return nil
	}
	admin, err := in.ll.Admin(ctx, "delete from the landlord command")
	if err != nil {
		return err
	}
	if err := admin.DeleteTenant(ctx, t.ID, grace); err != nil {
		return err
	}
	rec, err := in.dir.GetPurge(ctx, t.ID)
	if err != nil {
		return err
	}
	if o.json {
		return o.emit(deletedLater{deleted: deleted{tenantView: viewOf(t), Deleted: true}, PurgeAfter: rec.PurgeAfter})
	}
	o.printf("Deleted tenant %s (%s, %s): its traffic is stopped, and it is purged after %s unless restored (\"landlord tenants restore\").\n",
		t.Slug, t.Model, t.ID, timeText(rec.PurgeAfter))
	return nil
}

// deletedLater is the JSON output of delete with a grace period.
type deletedLater struct {
	deleted
	PurgeAfter time.Time `json:"purge_after"`
}

// checkGrace refuses a negative --grace.
func checkGrace(grace time.Duration) error {
	if grace < 0 {
		return usageError{fmt.Errorf("--grace %s: must not be negative", grace)}
	}
	return nil
}
