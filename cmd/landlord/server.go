package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord/embedded"
)

// keepFile, in the data directory, holds the pid of the postmaster that
// "server start" asked to keep running. A command that started the server
// itself, and sees the mark when it is done, leaves the server running: a
// "server start" came while it worked.
const keepFile = "landlord.keep"

func markKept(srv *embedded.Server) error {
	path := filepath.Join(srv.DataDir(), keepFile)
	if err := os.WriteFile(path, []byte(strconv.Itoa(srv.PID())+"\n"), 0o600); err != nil {
		return fmt.Errorf("mark the server to keep running: %w", err)
	}
	return nil
}

func kept(srv *embedded.Server) bool {
	b, err := os.ReadFile(filepath.Join(srv.DataDir(), keepFile))
	return err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(srv.PID())
}

func unmarkKept(dataDir string) {
	_ = os.Remove(filepath.Join(dataDir, keepFile))
}

const helpServer = `
The embedded server keeps its data in LANDLORD_DATA_DIR (default
/var/lib/landlord/pgdata as root, ~/.local/share/landlord/pgdata otherwise).
These commands manage it only: with a database URL (--database-url or
LANDLORD_DATABASE_URL) they refuse to run, with exit code 2.`

func newServerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Keep the embedded PostgreSQL server running between commands",
		Long: `Without a database URL every command starts the embedded PostgreSQL server and
stops it on exit. "server start" starts it and leaves it running: every other
command then uses it and leaves it running, and it can be reached with psql
("landlord psql") or any client at the URL it prints, until "server stop".
A server started by hand on the same data directory (pg_ctl) is used the same
way and never stopped by a command other than "server stop".
` + helpServer,
		Example: `  landlord server start
  landlord server status --json
  landlord server stop`,
		Args: args(noSubcommand),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },

		SuggestionsMinimumDistance: 2,
	}
	cmd.AddCommand(newServerStart(g), newServerStatus(g), newServerStop(g))
	return cmd
}

// embeddedOnly refuses a server command when a database URL replaces the
// embedded server.
func embeddedOnly(cmd *cobra.Command, g *globals) error {
	if g.databaseURL == "" {
		return nil
	}
	from := "LANDLORD_DATABASE_URL"
	if cmd.Flags().Changed("database-url") {
		from = "--database-url"
	}
	return usageError{fmt.Errorf("%s is set: commands use that server, not the embedded one that %q manages", from, cmd.CommandPath())}
}

func newServerStart(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "start",
		Short: "Start the embedded server and leave it running",
		Long: `start starts the embedded server on its data directory (initializing the
directory the first time) and leaves it running after the command exits. It
prints the server's pid and data directory, then, on the last line, the URL
of the control database as the superuser over the unix socket. When the
server already runs it says so and exits with 0.
` + helpServer + `

Exit codes: 0 running; 1 the server could not be started; 2 bad command line.`,
		Example: `  landlord server start
  psql "$(landlord server start | tail -n 1)"`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := embeddedOnly(cmd, g); err != nil {
				return err
			}
			ctx := cmd.Context()
			cfg, err := g.embeddedConfig(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			srv, err := embedded.Start(ctx, cfg)
			if err != nil {
				return err
			}
			err = srv.EnsureDatabase(ctx, controlDatabase)
			if err == nil {
				err = markKept(srv)
			}
			if err != nil {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				defer cancel()
				// A failed start leaves nothing running that was not before.
				_ = srv.Stop(sctx)
				return err
			}
			what := "postgres started"
			if srv.Reused() {
				what = "postgres already running"
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: pid %d, data directory %s\n", what, srv.PID(), srv.DataDir())
			fmt.Fprintln(out, srv.URL(controlDatabase))
			return nil
		},
	}
}

// serverStatus is the embedded server's state as "server status --json"
// prints it. The field names are part of the command's interface.
type serverStatus struct {
	Running bool   `json:"running"`
	DataDir string `json:"data_dir"`
	PID     int    `json:"pid,omitempty"`
	URL     string `json:"url,omitempty"` // the control database, as the superuser
}

func newServerStatus(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say whether the embedded server runs, and where",
		Long: `status says whether the embedded server runs on its data directory, and when it
does its pid and the URL of the control database (as the superuser, over the
unix socket). It starts, creates and cleans up nothing. With --json it prints
one JSON object: running, data_dir, and when running pid and url.
` + helpServer + `

Exit codes: 0 the server runs; 1 it does not run (or a process holds the data
directory but does not answer); 2 bad command line.`,
		Example: `  landlord server status
  landlord server status --json | jq -r .url
  landlord server status >/dev/null || landlord server start`,
		Args: args(cobra.NoArgs),
	}
	asJSON := addJSONFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := embeddedOnly(cmd, g); err != nil {
			return err
		}
		cfg, err := g.embeddedConfig(cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		st := serverStatus{DataDir: cfg.DataDir}
		srv, err := embedded.Running(cmd.Context(), cfg)
		switch {
		case errors.Is(err, embedded.ErrNotRunning):
		case err != nil:
			return err
		default:
			st.Running, st.PID, st.URL = true, srv.PID(), srv.URL(controlDatabase)
		}
		if err := printServerStatus(newOutput(cmd, *asJSON), st); err != nil {
			return err
		}
		if !st.Running {
			return quietError{embedded.ErrNotRunning, exitError}
		}
		return nil
	}
	return cmd
}

func printServerStatus(o *output, st serverStatus) error {
	if o.json {
		return o.emit(st)
	}
	tw := tabwriter.NewWriter(o.w, 2, 4, 2, ' ', 0)
	if !st.Running {
		fmt.Fprintln(tw, "running:\tno")
		fmt.Fprintf(tw, "data directory:\t%s\n", st.DataDir)
		return tw.Flush()
	}
	fmt.Fprintln(tw, "running:\tyes")
	fmt.Fprintf(tw, "data directory:\t%s\n", st.DataDir)
	fmt.Fprintf(tw, "pid:\t%d\n", st.PID)
	fmt.Fprintf(tw, "url:\t%s\n", st.URL)
	return tw.Flush()
}

func newServerStop(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "Stop the embedded server",
		Long: `stop shuts the embedded server down (fast: open sessions are ended and a
checkpoint is written), whoever started it. When it does not run, stop says so
and exits with 0.
` + helpServer + `

Exit codes: 0 the server does not run (any more); 1 it could not be stopped;
2 bad command line.`,
		Example: `  landlord server stop`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := embeddedOnly(cmd, g); err != nil {
				return err
			}
			cfg, err := g.embeddedConfig(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return stopEmbedded(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
}

func stopEmbedded(ctx context.Context, cfg embedded.Config, out io.Writer) error {
	srv, err := embedded.Running(ctx, cfg)
	if errors.Is(err, embedded.ErrNotRunning) {
		unmarkKept(cfg.DataDir)
		fmt.Fprintf(out, "postgres is not running: data directory %s\n", cfg.DataDir)
		return nil
	}
	if err != nil {
		return err
	}
	// The shutdown outlives a Ctrl-C: a server left half-stopped helps no one.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	unmarkKept(cfg.DataDir)
	fmt.Fprintf(out, "postgres stopped: pid %d, data directory %s\n", srv.PID(), srv.DataDir())
	return nil
}
