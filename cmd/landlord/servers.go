package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

func newServers(g *globals) *cobra.Command {
	var migrationsDir string
	cmd := &cobra.Command{
		Use:   "servers",
		Short: "Inspect the PostgreSQL servers that hold tenants",
		Long: `servers shows the PostgreSQL servers recorded in the directory. The server
that holds the directory itself is "main"; tenants can be placed on others.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord servers list
  landlord servers list --json`,
		Args: args(noSubcommand),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },

		SuggestionsMinimumDistance: 2,
	}
	addMigrationsFlag(cmd, &migrationsDir)
	cmd.AddCommand(newServersList(g, &migrationsDir))
	return cmd
}

// serverView is a server as the JSON output shows it. The field names are
// part of the command's interface: scripts rely on them.
type serverView struct {
	ID        string         `json:"id"`
	Host      string         `json:"host"` // as reached: that of the control database URL for a server without its own
	Port      int            `json:"port"`
	Database  string         `json:"database"`
	Reachable bool           `json:"reachable"`
	Version   *string        `json:"version"`         // PostgreSQL's server_version; null when unreachable
	Error     string         `json:"error,omitempty"` // why it is unreachable
	Tenants   map[string]int `json:"tenants"`         // per model, every model present
}

// probeTimeout bounds how long list waits for one server.
const probeTimeout = 5 * time.Second

func newServersList(g *globals, migrationsDir *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the servers, their PostgreSQL version, tenants and reachability",
		Long: `list prints every server of the directory with its address (for "main", that
of the control database URL), the database that holds its shared schema, its
PostgreSQL version, how many tenants of each model it holds, and whether it
answers now: each server is tried for at most ` + probeTimeout.String() + `, as the administrator
of the control database URL. An unreachable server is reported, not an error:
the command still exits with 0. With --json it prints one JSON object per line
(JSON lines) with the same host and port as the table, and a null version for a
server that does not answer.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord servers list

  # servers that do not answer
  landlord servers list --json | jq -r 'select(.reachable | not) | .id'`,
		Args: args(cobra.NoArgs),
	}
	asJSON := addJSONFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallNever, func(in *installation) error {
			vs, err := in.servers(ctx)
			if err != nil {
				return err
			}
			rows := make([][]string, len(vs))
			objs := make([]any, len(vs))
			for i, v := range vs {
				addr := net.JoinHostPort(v.Host, strconv.Itoa(v.Port))
				version, reachable := "-", "no: "+v.Error
				if v.Reachable {
					version, reachable = *v.Version, "yes"
				}
				rows[i] = []string{v.ID, addr, v.Database, version,
					strconv.Itoa(v.Tenants[string(tenant.ModelRow)]),
					strconv.Itoa(v.Tenants[string(tenant.ModelSchema)]),
					strconv.Itoa(v.Tenants[string(tenant.ModelDatabase)]),
					reachable}
				objs[i] = v
			}
			return o.lines([]string{"SERVER", "ADDRESS", "DBNAME", "POSTGRESQL", "ROW", "SCHEMA", "DATABASE", "REACHABLE"}, rows, objs)
		})
	}
	return cmd
}

// servers describes every server of the directory, probing them all at once.
func (in *installation) servers(ctx context.Context) ([]serverView, error) {
	servers, err := in.dir.Servers(ctx)
	if err != nil {
		return nil, err
	}
	ts, err := in.dir.List(ctx, directory.Filter{})
	if err != nil {
		return nil, err
	}
	vs := make([]serverView, len(servers))
	index := make(map[string]int, len(servers))
	for i, s := range servers {
		host, port := in.address(s)
		vs[i] = serverView{ID: s.ID, Host: host, Port: port, Database: s.Database, Tenants: map[string]int{}}
		for _, m := range tenant.Models {
			vs[i].Tenants[string(m)] = 0
		}
		index[s.ID] = i
	}
	for _, t := range ts {
		if i, ok := index[t.Server]; ok {
			vs[i].Tenants[string(t.Model)]++
		}
	}
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			version, err := in.probe(ctx, s)
			if err != nil {
				vs[i].Error = oneLine(err.Error())
				return
			}
			vs[i].Reachable, vs[i].Version = true, &version
		})
	}
	wg.Wait()
	return vs, nil
}

// address is where s is reached: its own host and port, or those of the
// control database URL. Table and JSON show the same address.
func (in *installation) address(s directory.Server) (string, int) {
	if s.Host != "" {
		return s.Host, s.Port
	}
	return in.base.Host, int(in.base.Port)
}

// probe connects to s and returns its PostgreSQL version.
func (in *installation) probe(ctx context.Context, s directory.Server) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, in.serverConnConfig(s, s.Database))
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v string
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version')`).Scan(&v); err != nil {
		return "", fmt.Errorf("read version: %w", err)
	}
	// "15.18 (Debian 15.18-1.pgdg120+1)": the build note is not the version.
	if f := strings.Fields(v); len(f) > 0 {
		v = f[0]
	}
	return v, nil
}
