package main

import (
	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/provision"
)

// initView is what init prints with --json.
type initView struct {
	Database     string `json:"database"`
	Installation string `json:"installation"`
	AppRole      string `json:"app_role"`
	OwnerRole    string `json:"owner_role"`
}

func newInit(g *globals) *cobra.Command {
	var migrationsDir string
	var asJSON *bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Install Landlord in the control database, or upgrade it",
		Long: `init installs Landlord in the control database: the control schema, the owner
and app roles, the shared schema with the application's tenant tables, and the
default server. On an existing installation it upgrades the control schema and
repairs roles and grants; running it again changes nothing more.

Installing is an explicit step: the commands that only look (tenants list and
show, servers list, migrate status and plan) and those that change tenants
(delete, suspend, resume, read-only, migrate up) refuse a database without an
installation and change nothing there. Creating the first tenant installs too.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord init --migrations ./migrations
  landlord init --database-url postgres://admin@db.example.com/app --migrations ./migrations --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := newOutput(cmd, *asJSON)
			return withInstallation(cmd.Context(), g, cmd.ErrOrStderr(), migrationsDir, provision.InstallAlways, func(in *installation) error {
				roles := in.ll.Provisioner().Roles()
				// The control database is the directory's own server's
				// (in.base names no database: others derive from it).
				main, err := in.server(cmd.Context(), directory.DefaultServer)
				if err != nil {
					return err
				}
				v := initView{
					Database:     main.Database,
					Installation: in.ll.Provisioner().Installation().ID.String(),
					AppRole:      roles.App,
					OwnerRole:    roles.Owner,
				}
				if out.json {
					return out.emit(v)
				}
				out.printf("Landlord is installed in database %s (installation %s); tenant traffic runs as %s, tables belong to %s\n",
					v.Database, v.Installation, v.AppRole, v.OwnerRole)
				return nil
			})
		},
	}
	addMigrationsFlag(cmd, &migrationsDir)
	asJSON = addJSONFlag(cmd)
	return cmd
}
