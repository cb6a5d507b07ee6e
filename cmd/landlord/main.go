// Command landlord provisions, migrates and inspects multi-tenant PostgreSQL
// installations. With no database URL it runs against a private PostgreSQL
// server started from the machine's own binaries.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	interrupted := ctx.Err() != nil
	stop()
	switch {
	case err != nil && interrupted:
		// Whatever was under way stopped where it was; every operation can
		// be run again to finish it.
		fmt.Fprintln(os.Stderr, "landlord: interrupted:", err)
		os.Exit(exitInterrupted)
	case err != nil:
		var q quietError
		if !errors.As(err, &q) {
			fmt.Fprintln(os.Stderr, "landlord:", err)
		}
		os.Exit(exitCode(err))
	}
}

// Exit codes scripts can rely on.
const (
	exitError = 1 // the operation failed
	exitUsage = 2 // bad command line or bad input

	exitInterrupted = 130 // stopped by Ctrl-C or SIGTERM, as shells report SIGINT
)

// usageError marks errors in what the user asked for, as opposed to failures
// while doing it.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// args wraps a cobra argument check so that its errors are usage errors.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// quietError is the outcome of a command that has already said all there
// is to say on its output and only sets the exit code, as "server status"
// does for a server that is not running. main prints nothing more for it.
type quietError struct {
	error
	code int
}

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return exitUsage
	}
	var q quietError
	if errors.As(err, &q) {
		return q.code
	}
	return exitError
}

func newRoot() *cobra.Command { return newRootWith(&globals{}) }

// newRootWith is the command tree sharing g.
func newRootWith(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "landlord",
		Short: "Multi-tenant PostgreSQL: provision, migrate, route and isolate tenants",
		Long: `landlord manages the tenants of a Landlord installation: shared tables guarded by
row-level security (row), a schema per tenant (schema) or a database per tenant
(database).

Without --database-url (or LANDLORD_DATABASE_URL) it starts a private PostgreSQL
server from this machine's binaries, keeping its data in LANDLORD_DATA_DIR
(default /var/lib/landlord/pgdata as root, ~/.local/share/landlord/pgdata
otherwise), and stops it on exit, unless it was already running: "landlord
server start" keeps it running for every command until "landlord server stop".`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&g.databaseURL, "database-url", os.Getenv("LANDLORD_DATABASE_URL"),
		"control database URL (default: LANDLORD_DATABASE_URL, else a private embedded server)")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log what the server and Landlord do")
	root.AddCommand(newDemo(g), newInit(g), newTenants(g), newServers(g), newMigrate(g), newAudit(g), newBench(g),
		newReserve(g), newServerCmd(g), newPsql(g), newContextCmd(g))
	return root
}
