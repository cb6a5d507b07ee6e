package provision

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/embedded"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

// ServerSpec describes a PostgreSQL server to add to an installation.
type ServerSpec struct {
	// ID names the server in the directory: 1 to 40 characters, a letter
	// first, then letters a-z, digits, "_" or "-". Required; "main" is the
	// control database's own.
	ID string
	// Host and Port reach it: a host name, an address or a Unix socket
	// directory, and a port (default 5432). Host is required.
	Host string
	Port int
	// Database is the database on it that holds the shared tables of its
	// row tenants and the schemas of its schema tenants: created when it
	// does not exist. Default "landlord".
	Database string
}

// ServerReport says what AddServer found and did.
type ServerReport struct {
	Server  directory.Server
	Version string // server_version
	// WalLevel is the server's wal_level; moves that stay online read the
	// tenant's changes by logical decoding, which takes "logical".
	WalLevel string
	// Superuser says whether the administrator is a superuser there: only
	// a superuser can take from PUBLIC what SECURITY.md's gaps 10 to 15
	// list, and import into its row tenants.
	Superuser bool
	// CreatedDatabase says the database was made by AddServer.
	CreatedDatabase bool
	// Repaired says the server was in the directory already, at this
	// address: AddServer checked and repaired what Landlord installs there.
	Repaired bool
}

// LeastLoadedName is what the command line's --server takes for
// LeastLoaded; no server may have it as id.
const LeastLoadedName = "least-loaded"

var serverID = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,39}$`)

// serverTimeout bounds the wait for a server that AddServer tries.
const serverTimeout = 10 * time.Second

func (s *ServerSpec) normalize() error {
	switch {
	case !serverID.MatchString(s.ID):
		return fmt.Errorf("server id %q: %w: 1 to 40 characters, a letter first, then a-z, 0-9, _ or -", s.ID, ErrBadServer)
	case s.ID == directory.DefaultServer:
		return fmt.Errorf("server id %q: %w: it names the control database's own server", s.ID, ErrBadServer)
	case s.ID == LeastLoadedName:
		return fmt.Errorf("server id %q: %w: the command line places tenants on the least loaded server by that name", s.ID, ErrBadServer)
	case s.Host == "":
		return fmt.Errorf("server %s: %w: no host", s.ID, ErrBadServer)
	}
	if s.Port == 0 {
		s.Port = 5432
	}
	if s.Port < 1 || s.Port > 65535 {
		return fmt.Errorf("server %s: %w: port %d", s.ID, ErrBadServer, s.Port)
	}
	if s.Database == "" {
		s.Database = "landlord"
	}
	if err := tenant.CheckIdent(s.Database); err != nil {
		return fmt.Errorf("server %s: database: %w", s.ID, err)
	}
	return nil
}

// AddServer makes another PostgreSQL server hold tenants. It connects as
// the control database's administrator (the same user and password, or
// .pgpass) and checks the server: PostgreSQL embedded.MinMajorVersion or
// newer, and an administrator that is a superuser or may create databases
// and roles. It then installs what Landlord needs there, as bootstrap does
// on the control database: the owner and app roles (the app role with the
// installation's derived password), the database (created when missing)
// closed to every role but Landlord's, the context verifier with the
// installation's key and check, the global tables' copy, and the shared
// schema at the head version. The server enters the directory last, so
// nothing is placed on it before it is whole. Adding a server that is
// there at the same address again checks and repairs it; another address
// under a taken id is ErrBadServer, as is bad input, with nothing changed.
func (p *Provisioner) AddServer(ctx context.Context, spec ServerSpec) (ServerReport, error) {
	var rep ServerReport
	if err := spec.normalize(); err != nil {
		return rep, err
	}
	if p.newer != nil {
		return rep, fmt.Errorf("add server %s: %w", spec.ID, p.newer)
	}
	s := directory.Server{ID: spec.ID, Host: spec.Host, Port: spec.Port, Database: spec.Database}
	rep.Server = s
	servers, err := p.dir.Servers(ctx)
	if err != nil {
		return rep, err
	}
	for _, o := range servers {
		switch {
		case o.ID == s.ID && o != s:
			return rep, fmt.Errorf("server %s: %w: the directory has it at %s:%d, database %s", s.ID, ErrBadServer, o.Host, o.Port, o.Database)
		case o.ID == s.ID:
			rep.Repaired = true
		case o.Host == s.Host && o.Port == s.Port && o.Database == s.Database:
			return rep, fmt.Errorf("server %s: %w: server %s is that address already", s.ID, ErrBadServer, o.ID)
		}
	}
	err = p.withLock(ctx, serversLockNamespace, 1, func(*pgx.Conn) error {
		return p.installServer(ctx, s, &rep)
	})
	if err != nil {
		return rep, fmt.Errorf("add server %s: %w", s.ID, err)
	}
	p.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "server added", slog.String("server", s.ID),
		slog.String("version", rep.Version), slog.String("wal_level", rep.WalLevel), slog.Bool("repaired", rep.Repaired))
	return rep, nil
}

// serversLockNamespace orders the additions of servers, across processes
// ("LLSV").
const serversLockNamespace = 0x4c4c5356

func (p *Provisioner) installServer(ctx context.Context, s directory.Server, rep *ServerReport) error {
	base := p.admin.Config().ConnConfig
	cctx, cancel := context.WithTimeout(ctx, serverTimeout)
	defer cancel()
	maint, err := pgx.ConnectConfig(cctx, s.ConnConfig(base, "postgres"))
	if err != nil {
		return fmt.Errorf("connect to its postgres database: %w", err)
	}
	defer maint.Close(context.WithoutCancel(ctx))
	var num int
	var createDB, createRole bool
	if err := maint.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('server_version_num')::int,
		current_setting('wal_level'), r.rolsuper, r.rolcreatedb, r.rolcreaterole
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&rep.Version, &num, &rep.WalLevel, &rep.Superuser, &createDB, &createRole); err != nil {
		return err
	}
	if num/10000 < embedded.MinMajorVersion {
		return fmt.Errorf("%w: PostgreSQL %s; Landlord needs %d or newer", ErrBadServer, rep.Version, embedded.MinMajorVersion)
	}
	if !rep.Superuser && (!createDB || !createRole) {
		return fmt.Errorf("%w: the administrator %s may not create databases and roles there", ErrBadServer, base.User)
	}
	owner, app := p.cfg.OwnerRole, p.cfg.AppRole
	// Roles first: they are the cluster's, and the database is the owner's.
	if err := p.ensureRoleOn(ctx, maint, owner, "NOLOGIN INHERIT", ""); err != nil {
		return err
	}
	if _, err := maint.Exec(ctx, fmt.Sprintf("GRANT %s TO CURRENT_USER", ident.Quote(owner))); err != nil && !isCode(err, pgerrcode.UniqueViolation) {
		return fmt.Errorf("make the administrator a member of %s: %w", owner, err)
	}
	if err := p.ensureRoleOn(ctx, maint, app, "LOGIN NOINHERIT", p.roles.Password(app)); err != nil {
		return err
	}
	var exists bool
	if err := maint.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, s.Database).Scan(&exists); err != nil {
		return err
	}
	db := ident.Quote(s.Database)
	if !exists {
		// template0: nothing of what an operator added to template1
		// (SECURITY.md, I21).
		_, err := maint.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING 'UTF8'", db, ident.Quote(owner)))
		if err != nil && !isCode(err, pgerrcode.DuplicateDatabase) {
			return fmt.Errorf("create database %s: %w", s.Database, err)
		}
		rep.CreatedDatabase = err == nil
	}
	// Only Landlord's roles reach it, and no one gets temporary objects
	// that could shadow tables (SECURITY.md, I18), as on the control
	// database.
	if _, err := maint.Exec(ctx, fmt.Sprintf(`GRANT CREATE, CONNECT ON DATABASE %s TO %s;
		REVOKE CONNECT, TEMPORARY ON DATABASE %s FROM PUBLIC;
		GRANT CONNECT ON DATABASE %s TO %s;
		COMMENT ON DATABASE %s IS %s`, db, ident.Quote(owner), db, db, ident.Quote(app), db,
		ident.Literal("landlord server "+s.ID+" installation "+p.inst.ID.String()))); err != nil {
		return fmt.Errorf("restrict database %s: %w", s.Database, err)
	}
	conn, err := pgx.ConnectConfig(cctx, s.ConnConfig(base, s.Database))
	if err != nil {
		return fmt.Errorf("connect to database %s: %w", s.Database, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := p.lockDown(ctx, conn, s.Database); err != nil {
		return err
	}
	check, err := p.ContextCheck(ctx)
	if err != nil {
		return err
	}
	// Before any tenant table: their policies call its verifier.
	if err := migration.SetContextCheck(ctx, conn, owner, p.roles.ContextKey(), check); err != nil {
		return err
	}
	// Before the shared schema: tenant tables may reference global ones.
	var global *GlobalData
	if p.gmig != nil {
		if global, err = p.GlobalData(ctx); err != nil {
			return err
		}
		if _, err := p.syncCopy(ctx, conn, global); err != nil {
			return fmt.Errorf("global tables: %w", err)
		}
	}
	if err := p.ensureSharedOn(ctx, conn); err != nil {
		return err
	}
	if err := p.dir.AddServer(ctx, s); err != nil {
		return err
	}
	if global != nil {
		return p.dir.SetGlobalCopy(ctx, directory.CopyKey{Server: s.ID, Database: s.Database}, global.Version)
	}
	return nil
}

// ensureSharedOn creates the shared schema in the database conn is
// connected to and brings it to the head version, with the app role's
// grants; one that is there is secured again.
func (p *Provisioner) ensureSharedOn(ctx context.Context, conn *pgx.Conn) error {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, SharedSchema).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := conn.Exec(ctx, fmt.Sprintf("BEGIN; SET LOCAL ROLE %s; CREATE SCHEMA %s; COMMIT",
			ident.Quote(p.cfg.OwnerRole), ident.Quote(SharedSchema))); err != nil && !isCode(err, pgerrcode.DuplicateSchema) {
			_, _ = conn.Exec(ctx, "ROLLBACK")
			return fmt.Errorf("create the shared schema: %w", err)
		}
	}
	target := migration.Target{Schema: SharedSchema, Grantee: p.cfg.AppRole}
	if _, err := p.mig.Apply(ctx, conn, target); err != nil {
		return fmt.Errorf("migrate the shared schema: %w", err)
	}
	return p.resecure(ctx, conn, target)
}

// clusters holds the administrator's pools on the servers other than the
// control database's, opened as tenants on them need cluster-wide
// statements (roles, databases).
type clusters struct {
	mu    sync.Mutex
	pools map[string]*pgxpool.Pool
}

// adminOn returns the administrator's pool on server: the control
// database's own for the directory's server, else a small pool to that
// server's database, opened on first use and closed by Close.
func (p *Provisioner) adminOn(ctx context.Context, server string) (*pgxpool.Pool, error) {
	if server == directory.DefaultServer || server == "" {
		return p.admin, nil
	}
	p.clusters.mu.Lock()
	defer p.clusters.mu.Unlock()
	if pool, ok := p.clusters.pools[server]; ok {
		return pool, nil
	}
	s, err := p.server(ctx, server)
	if err != nil {
		return nil, err
	}
	cfg := p.admin.Config().Copy()
	cfg.ConnConfig = s.ConnConfig(cfg.ConnConfig, s.Database)
	cfg.MaxConns, cfg.MinConns = 4, 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", server, err)
	}
	if p.clusters.pools == nil {
		p.clusters.pools = map[string]*pgxpool.Pool{}
	}
	p.clusters.pools[server] = pool
	return pool, nil
}

// Close closes the pools the Provisioner opened to servers other than the
// control database's; the administrator's pool given to New stays open.
func (p *Provisioner) Close() {
	p.clusters.mu.Lock()
	defer p.clusters.mu.Unlock()
	for id, pool := range p.clusters.pools {
		pool.Close()
		delete(p.clusters.pools, id)
	}
}

// ServerLoad is what PlaceLeastLoaded compares: a server's tenants,
// weighted by what each model costs its server (ServerWeights).
type ServerLoad struct {
	Server  string
	Tenants map[tenant.Model]int
	Load    int
}

// ServerWeights are the weights of PlaceLeastLoaded: a database tenant
// costs a server its own database, catalog and connections, a schema
// tenant a catalog of its own in a shared database, a row tenant rows.
var ServerWeights = map[tenant.Model]int{tenant.ModelRow: 1, tenant.ModelSchema: 5, tenant.ModelDatabase: 25}

// Loads returns every server's load, least loaded first (by id on a tie).
func (p *Provisioner) Loads(ctx context.Context) ([]ServerLoad, error) {
	servers, err := p.dir.Servers(ctx)
	if err != nil {
		return nil, err
	}
	counts, err := p.dir.CountByServer(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ServerLoad, len(servers))
	for i, s := range servers {
		out[i] = ServerLoad{Server: s.ID, Tenants: map[tenant.Model]int{}}
		for _, m := range tenant.Models {
			n := counts[s.ID][m]
			out[i].Tenants[m] = n
			out[i].Load += n * ServerWeights[m]
		}
	}
	slices.SortStableFunc(out, func(a, b ServerLoad) int {
		if a.Load != b.Load {
			return a.Load - b.Load
		}
		if a.Server < b.Server {
			return -1
		}
		return 1
	})
	return out, nil
}

// ensureRoleOn is ensureRole on the server conn is connected to.
func (p *Provisioner) ensureRoleOn(ctx context.Context, conn lockConn, role, attrs, password string) error {
	return ensureRole(ctx, conn, p.roles, role, attrs, password)
}
