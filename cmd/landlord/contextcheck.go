package main

import (
	"errors"
	"fmt"
	"sync"

	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
)

const helpContextCheck = `
The context check decides how the row-level security policies trust the
tenant of a transaction:
  signed    (the default) the tenant is seen only through a context signed
            with the installation's key for the role in force: SQL that runs
            inside one tenant's transaction (an injection, a DO block) cannot
            take on another tenant's id or role.
  unsigned  the policies take landlord.tenant_id as it is set: a key read and
            two digests fewer per statement, but SQL inside a tenant's
            transaction that sets another tenant's id, or switches to another
            schema tenant's role, acts as that tenant. Database tenants stay
            apart either way: each has its own login.
The README's benchmark section gives the cost of each.`

func newContextCmd(g *globals) *cobra.Command {
	var migrationsDir string
	cmd := &cobra.Command{
		Use:   "context",
		Short: "Show or set how the policies check the tenant context (signed or unsigned)",
		Long: `context shows the installation's context check; "context set" changes it.
` + helpContextCheck + "\n" + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord context
  landlord context set unsigned --reason "benchmark on a staging copy"
  landlord context set signed --reason "back to the default" --json`,
		Args: args(noSubcommand),

		SuggestionsMinimumDistance: 2,
	}
	asJSON := addJSONFlag(cmd)
	addMigrationsFlag(cmd, &migrationsDir)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), migrationsDir, provision.InstallNever, func(in *installation) error {
			check, err := in.ll.ContextCheck(ctx)
			if err != nil {
				return err
			}
			if o.json {
				return o.emit(map[string]string{"check": string(check)})
			}
			o.printf("Context check: %s\n", check)
			return nil
		})
	}
	cmd.AddCommand(newContextSet(g, &migrationsDir))
	return cmd
}

// contextTargetView is one database in the JSON output of context set.
type contextTargetView struct {
	Kind     string `json:"kind"`
	Server   string `json:"server"`
	Database string `json:"database"`
	Tenant   string `json:"tenant,omitempty"`
	Status   string `json:"status"`
	Error    string `json:"error,omitempty"`
}

// contextSetView is the JSON output of context set.
type contextSetView struct {
	Check     string              `json:"check"`
	Changed   int                 `json:"changed"`
	Current   int                 `json:"current"`
	NoContext int                 `json:"no_context"`
	Failed    int                 `json:"failed"`
	Databases []contextTargetView `json:"databases"`
}

func newContextSet(g *globals, migrationsDir *string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "set signed|unsigned",
		Short: "Set the context check of the whole installation",
		Long: `set records the new check and brings every database with tenant tables to it:
the control database, the template database, other servers' databases and
every tenant database, reserved ones included, a few at a time, with a
progress bar. Traffic goes on: each database switches in one transaction, and
sessions follow at their next statement. A run cut short (a database that did
not answer, Ctrl-C) leaves the new check recorded; "landlord audit" reports
the databases still unsigned, and running set again finishes it.
` + helpContextCheck + "\n" + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord context set unsigned --reason "ticket 4411: measured, accepted"
  landlord context set signed --reason "back to the default" --json`,
		Args: args(cobra.ExactArgs(1)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the log (required)")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		check, err := migration.ParseContextCheck(a[0])
		if err != nil {
			return usageError{err}
		}
		if err := requireReason(reason); err != nil {
			return err
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallExisting, func(in *installation) error {
			admin, err := in.ll.Admin(ctx, reason)
			if err != nil {
				return usageError{err}
			}
			var (
				mu   sync.Mutex
				prog *progress
				seen int
			)
			rep, err := admin.SetContextCheck(ctx, check, func(done, total int) {
				mu.Lock()
				defer mu.Unlock()
				if prog == nil {
					prog = newProgress(cmd.ErrOrStderr(), "context check "+string(check), total)
				}
				for ; seen < done; seen++ {
					prog.step(false)
				}
			})
			if prog != nil {
				prog.finish()
			}
			if err != nil && !errors.Is(err, landlord.ErrContextCheckIncomplete) {
				return err
			}
			v := contextSetView{Check: string(check), Databases: []contextTargetView{},
				Changed: rep.Count(provision.ContextCheckChanged), Current: rep.Count(provision.ContextCheckCurrent),
				NoContext: rep.Count(provision.ContextCheckNoContext), Failed: rep.Count(provision.ContextCheckFailed)}
			for _, t := range rep.Targets {
				tv := contextTargetView{Kind: t.Kind, Server: t.Server, Database: t.Database, Status: string(t.Status)}
				if !t.Tenant.IsZero() {
					tv.Tenant = t.Tenant.String()
				}
				if t.Err != nil {
					tv.Error = oneLine(t.Err.Error())
				}
				v.Databases = append(v.Databases, tv)
			}
			if o.json {
				if err := o.emit(v); err != nil {
					return err
				}
			} else {
				_ = fields(o.w, [][2]string{
					{"Context check:", v.Check},
					{"Databases:", fmt.Sprintf("%d changed, %d already %s, %d without a context yet, %d failed",
						v.Changed, v.Current, v.Check, v.NoContext, v.Failed)},
				})
				for _, d := range v.Databases {
					if d.Error != "" {
						o.printf("  failed: %s %s on server %s: %s\n", d.Kind, d.Database, d.Server, d.Error)
					}
				}
			}
			if v.Failed > 0 {
				return fmt.Errorf("context set: %d of %d databases do not check %s yet (listed above); run it again once the cause is fixed", v.Failed, len(v.Databases), check)
			}
			return nil
		})
	}
	return cmd
}
