package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// reservedModels are the models the reserve holds: row tenants are never
// reserved, since creating one costs no more than claiming one.
var reservedModels = []tenant.Model{tenant.ModelSchema, tenant.ModelDatabase}

func newReserve(g *globals) *cobra.Command {
	var migrationsDir string
	cmd := &cobra.Command{
		Use:   "reserve",
		Short: "Inspect and fill the reserve of pre-provisioned tenants",
		Long: `reserve shows and fills the reserve: schema and database tenants made ahead of
time on the directory's own server, so that "tenants create" claims one (a few
milliseconds) instead of building it. Row tenants are never reserved: creating
one costs no more than claiming one.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord reserve list
  landlord reserve fill --model schema --count 20
  landlord reserve fill --model database --count 5 --json`,
		Args: args(noSubcommand),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },

		SuggestionsMinimumDistance: 2,
	}
	addMigrationsFlag(cmd, &migrationsDir)
	cmd.AddCommand(newReserveList(g, &migrationsDir), newReserveFill(g, &migrationsDir))
	return cmd
}

// reservedView is one reserved tenant in JSON output.
type reservedView struct {
	ID            tenant.ID `json:"id"`
	Model         string    `json:"model"`
	Server        string    `json:"server"`
	Schema        string    `json:"schema"`
	Database      string    `json:"database"`
	Ready         bool      `json:"ready"`
	SchemaVersion int       `json:"schema_version"`
	CreatedAt     time.Time `json:"created_at"`
}

func newReserveList(g *globals, migrationsDir *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the reserved tenants and how many of each model are ready",
		Long: `list prints every reserved tenant: its id, model, placement, whether it is ready
to be claimed (not ready: a fill was interrupted; the next fill removes it) and
the migration version of its tables. With --json, one object per line, and
nothing when the reserve is empty.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord reserve list
  landlord reserve list --json`,
		Args: args(cobra.NoArgs),
	}
	asJSON := addJSONFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallNever, func(in *installation) error {
			var rows [][]string
			var vs []any
			ready := map[tenant.Model]int{}
			for _, m := range reservedModels {
				es, err := in.dir.ListReserved(ctx, m, directory.DefaultServer)
				if err != nil {
					return err
				}
				for _, e := range es {
					if e.Ready {
						ready[m]++
					}
					where := e.Schema
					if m == tenant.ModelDatabase {
						where = e.Database + " (database)"
					}
					rows = append(rows, []string{e.ID.String(), string(m), where, map[bool]string{true: "yes", false: "no"}[e.Ready],
						fmt.Sprint(e.SchemaVersion), timeText(e.CreatedAt)})
					vs = append(vs, reservedView{ID: e.ID, Model: string(m), Server: e.Server, Schema: e.Schema, Database: e.Database,
						Ready: e.Ready, SchemaVersion: e.SchemaVersion, CreatedAt: e.CreatedAt})
				}
			}
			if o.json {
				return o.lines(nil, nil, vs)
			}
			if len(rows) == 0 {
				o.printf("The reserve is empty (landlord reserve fill --model schema --count N fills it).\n")
				return nil
			}
			if err := o.table([]string{"ID", "MODEL", "PLACEMENT", "READY", "VERSION", "CREATED"}, rows, nil); err != nil {
				return err
			}
			o.printf("\nReady: %d schema, %d database.\n", ready[tenant.ModelSchema], ready[tenant.ModelDatabase])
			return nil
		})
	}
	return cmd
}

// fillView is the JSON output of fill.
type fillView struct {
	Model string `json:"model"`
	Ready int    `json:"ready"`
}

func newReserveFill(g *globals, migrationsDir *string) *cobra.Command {
	var model string
	var count int
	cmd := &cobra.Command{
		Use:   "fill --model schema|database --count N",
		Short: "Keep N tenants of a model ready in the reserve",
		Long: `fill makes the reserve hold exactly --count ready tenants of --model: it creates
what is missing, removes what is too many, and removes entries an interrupted
fill left half made or that an older migration set made. --count 0 empties it.
Fills of one model run one at a time, also across processes.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord reserve fill --model schema --count 20
  landlord reserve fill --model database --count 0`,
		Args: args(cobra.NoArgs),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().StringVar(&model, "model", "", "schema or database (required)")
	cmd.Flags().IntVar(&count, "count", -1, "how many ready tenants the reserve is to hold (required)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		m, err := tenant.ParseModel(model)
		if err != nil {
			return usageError{fmt.Errorf("--model: %w", err)}
		}
		if m == tenant.ModelRow {
			return usageError{fmt.Errorf("--model row: row tenants are never reserved; creating one costs no more than claiming one")}
		}
		if count < 0 {
			return usageError{fmt.Errorf("--count is required and must not be negative")}
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallExisting, func(in *installation) error {
			ready, err := in.ll.FillReserve(ctx, m, count)
			if err != nil {
				return err
			}
			if o.json {
				return o.emit(fillView{Model: string(m), Ready: ready})
			}
			o.printf("The reserve holds %d ready %s tenant%s.\n", ready, m, map[bool]string{true: "", false: "s"}[ready == 1])
			return nil
		})
	}
	return cmd
}
