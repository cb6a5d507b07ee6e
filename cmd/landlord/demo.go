package main

import (
	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord/internal/demo"
)

func newDemo(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Create one tenant per model and show that each sees only its own rows",
		Long: `demo creates three demo tenants (row, schema and database models), replacing those
of an earlier run, writes products as each, reads them back through the same SQL,
and shows PostgreSQL refusing every attempt to read across tenants.`,
		Example: `  # on the private embedded server
  landlord demo

  # on a server of your own
  landlord demo --database-url postgres://admin@db.example.com/landlord`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withDatabase(cmd.Context(), cmd.ErrOrStderr(), func(url string) error {
				return demo.Run(cmd.Context(), url, cmd.OutOrStdout())
			})
		},
	}
}
