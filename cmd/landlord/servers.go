package main

import (
	"context"
	"errors"
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
	cmd.AddCommand(newServersList(g, &migrationsDir), newServersAdd(g, &migrationsDir), newServersDrain(g, &migrationsDir))
	return cmd
}

// addedView is what servers add prints with --json.
type addedView struct {
	ID              string `json:"id"`
	Host            string `json:"host"`
	Port            int    `json:"port"`
	Database        string `json:"database"`
	Version         string `json:"version"`
	WalLevel        string `json:"wal_level"`
	Superuser       bool   `json:"superuser"`
	CreatedDatabase bool   `json:"created_database"`
	Repaired        bool   `json:"repaired"`
}

func newServersAdd(g *globals, migrationsDir *string) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "add URL --name ID",
		Short: "Make another PostgreSQL server hold tenants",
		Long: `add checks another PostgreSQL server and installs what Landlord needs there, as
init does on the control database: the owner and app roles, the database named
in URL (default "landlord"; created when missing) closed to every other role,
the context verifier, the global tables and the shared tables at the head
version. The server enters the directory last. Tenants go there with
"landlord tenants create --server ID" (or "--server least-loaded"), and
routing, fleet migrations, the audit and purges cover it from then on.

Landlord reaches every server as the control database's administrator: URL
gives the host, port and database only (a user in it must be that
administrator's; its password comes from the same place, such as .pgpass).
The server must run PostgreSQL 15 or newer, and the administrator must be a
superuser there or may create databases and roles. Online moves will need
wal_level=logical there; the command says when it is not. Adding a server
again at the same address checks and repairs it.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord servers add postgres://db2.internal:5432/landlord --name eu-2
  landlord servers add "postgres:///landlord?host=/var/run/postgresql&port=5433" --name local-2 --json`,
		Args: args(cobra.ExactArgs(1)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().StringVar(&name, "name", "", "the server's id in the directory: a-z, 0-9, _ and -, a letter first (required)")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if name == "" {
			return usageError{errors.New("--name is required: the server's id in the directory")}
		}
		url, err := pgx.ParseConfig(a[0])
		if err != nil {
			return usageError{fmt.Errorf("URL: %w", err)}
		}
		// Not url.Database: pgx fills in the user's name when the URL
		// names no database, where Landlord's default is "landlord".
		spec := provision.ServerSpec{ID: name, Host: url.Host, Port: int(url.Port), Database: databaseOf(a[0])}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallExisting, func(in *installation) error {
			if explicitUser(a[0]) && url.User != in.base.User {
				return usageError{fmt.Errorf("URL names user %q; Landlord reaches every server as the control database's administrator, %q", url.User, in.base.User)}
			}
			admin, err := in.ll.Admin(ctx, "command line: servers add "+name)
			if err != nil {
				return err
			}
			rep, err := admin.AddServer(ctx, spec)
			if err != nil {
				if errors.Is(err, provision.ErrBadServer) || badInput(err) {
					return usageError{err}
				}
				return err
			}
			v := addedView{ID: rep.Server.ID, Host: rep.Server.Host, Port: rep.Server.Port, Database: rep.Server.Database,
				Version: rep.Version, WalLevel: rep.WalLevel, Superuser: rep.Superuser, CreatedDatabase: rep.CreatedDatabase, Repaired: rep.Repaired}
			if o.json {
				return o.emit(v)
			}
			verb := "Added"
			if rep.Repaired {
				verb = "Checked and repaired"
			}
			o.printf("%s server %s at %s, database %s (PostgreSQL %s).\n", verb, v.ID, net.JoinHostPort(v.Host, strconv.Itoa(v.Port)), v.Database, v.Version)
			if v.WalLevel != "logical" {
				o.printf("Its wal_level is %s: moves onto or off it stay offline (read-only during the copy) until it is logical.\n", v.WalLevel)
			}
			if !v.Superuser {
				o.printf("The administrator is no superuser there: see SECURITY.md, gaps 10 to 15, for what to revoke by hand.\n")
			}
			return nil
		})
	}
	return cmd
}

// databaseOf returns the database a connection URL or keyword string names
// itself, "" when it names none.
func databaseOf(conn string) string {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		rest := conn[strings.Index(conn, "://")+3:]
		if i := strings.IndexAny(rest, "/"); i >= 0 {
			db := rest[i+1:]
			if j := strings.IndexAny(db, "?#"); j >= 0 {
				db = db[:j]
			}
			return db
		}
		return ""
	}
	for _, f := range strings.Fields(conn) {
		if v, ok := strings.CutPrefix(f, "dbname="); ok {
			return v
		}
	}
	return ""
}

// explicitUser reports whether a connection URL or keyword string names a
// user itself.
func explicitUser(conn string) bool {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		rest := conn[strings.Index(conn, "://")+3:]
		if i := strings.IndexAny(rest, "/?"); i >= 0 {
			rest = rest[:i]
		}
		return strings.Contains(rest, "@") || strings.Contains(conn, "user=")
	}
	return strings.Contains(conn, "user=")
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
	// Load is the tenants weighted by model (provision.ServerWeights), the
	// measure by which tenants placed "least-loaded" choose a server.
	Load int `json:"load"`
	// Connections counts the server's client connections, every database
	// and role; SizeBytes the size of its Landlord database and its tenant
	// databases. Both null when unreachable or unreadable.
	Connections *int   `json:"connections"`
	SizeBytes   *int64 `json:"size_bytes"`
}

// probeTimeout bounds how long list waits for one server.
const probeTimeout = 5 * time.Second

func newServersList(g *globals, migrationsDir *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the servers, their PostgreSQL version, tenants and reachability",
		Long: `list prints every server of the directory with its address (for "main", that
of the control database URL), the database that holds its shared schema, its
PostgreSQL version, how many tenants of each model it holds, its load (those
tenants weighted row 1, schema 5, database 25: the measure "least-loaded"
placement goes by), its client connections, the size of its Landlord database
and tenant databases, and whether it answers now: each server is tried for at most ` + probeTimeout.String() + `, as the administrator
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
				conns, size := "-", "-"
				if v.Connections != nil {
					conns = strconv.Itoa(*v.Connections)
				}
				if v.SizeBytes != nil {
					size = byteSize(*v.SizeBytes)
				}
				rows[i] = []string{v.ID, addr, v.Database, version,
					strconv.Itoa(v.Tenants[string(tenant.ModelRow)]),
					strconv.Itoa(v.Tenants[string(tenant.ModelSchema)]),
					strconv.Itoa(v.Tenants[string(tenant.ModelDatabase)]),
					strconv.Itoa(v.Load), conns, size,
					reachable}
				objs[i] = v
			}
			return o.lines([]string{"SERVER", "ADDRESS", "DBNAME", "POSTGRESQL", "ROW", "SCHEMA", "DATABASE", "LOAD", "CONNECTIONS", "SIZE", "REACHABLE"}, rows, objs)
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
	dbs := make(map[string][]string, len(servers)) // tenant databases per server
	for _, t := range ts {
		if i, ok := index[t.Server]; ok {
			vs[i].Tenants[string(t.Model)]++
			vs[i].Load += provision.ServerWeights[t.Model]
			if t.Model == tenant.ModelDatabase {
				dbs[t.Server] = append(dbs[t.Server], t.Database)
			}
		}
	}
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			p, err := in.probe(ctx, s, dbs[s.ID])
			if err != nil {
				vs[i].Error = oneLine(err.Error())
				return
			}
			vs[i].Reachable, vs[i].Version = true, &p.version
			vs[i].Connections, vs[i].SizeBytes = p.connections, p.size
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

// probed is what probe reads of a server.
type probed struct {
	version     string
	connections *int
	size        *int64
}

// probe connects to s and reads its PostgreSQL version, its client
// connections and the size of its database with the tenant databases
// tenantDBs. A count or size it may not read stays nil.
func (in *installation) probe(ctx context.Context, s directory.Server, tenantDBs []string) (probed, error) {
	var p probed
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, in.serverConnConfig(s, s.Database))
	if err != nil {
		return p, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version')`).Scan(&p.version); err != nil {
		return p, fmt.Errorf("read version: %w", err)
	}
	// "15.18 (Debian 15.18-1.pgdg120+1)": the build note is not the version.
	if f := strings.Fields(p.version); len(f) > 0 {
		p.version = f[0]
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'`).Scan(&n); err == nil {
		p.connections = &n
	}
	var size int64
	if err := conn.QueryRow(ctx, `SELECT sum(pg_database_size(datname))::bigint FROM pg_database WHERE datname = $1 OR datname = ANY($2)`,
		s.Database, tenantDBs).Scan(&size); err == nil {
		p.size = &size
	}
	return p, nil
}
