// Package landlord is a toolkit for multi-tenant applications on PostgreSQL.
// A tenant lives in shared tables guarded by row-level security (row), in its
// own schema (schema) or in its own database (database); the same SQL runs
// against each, and PostgreSQL itself refuses every cross-tenant access.
//
// Open an installation with a control database URL and the application's
// tenant-table migrations, create tenants, and run tenant traffic through a
// Handle with the tenant in the context:
//
//	ll, err := landlord.Open(ctx, url, migrations, landlord.Config{})
//	t, err := ll.CreateTenant(ctx, provision.Request{Slug: "acme", Model: tenant.ModelSchema})
//	ctx = landlord.WithTenant(ctx, t.ID)
//	row := ll.Handle().QueryRow(ctx, "SELECT count(*) FROM products")
package landlord

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/audit"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/fleet"
	"github.com/landlordhq/landlord/internal/traffic"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pool"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
	"github.com/landlordhq/landlord/tenantstats"
)

// Config holds the optional settings of Open. The zero value is usable.
type Config struct {
	// Logger receives Landlord's own log lines (tenant lifecycle, admin
	// scopes, listener trouble). Default: discard.
	Logger *slog.Logger
	// OwnerRole owns every object Landlord creates. Default "landlord_owner".
	OwnerRole string
	// AppRole runs the row and schema models' tenant traffic. Default
	// "landlord_app". Two installations on one PostgreSQL cluster need
	// different role names.
	AppRole string
	// MaxConns is the budget of tenant-traffic connections per server,
	// across all three models: the connection manager never has more open,
	// however many tenant databases are busy. Default max(8, 4×GOMAXPROCS).
	MaxConns int
	// MaxConnsPerTenant caps the connections one tenant holds at once on a
	// server, so that a tenant flooding it leaves the rest of the budget to
	// the others. Default max(1, MaxConns/2).
	MaxConnsPerTenant int
	// IdleTimeout closes tenant connections nobody used for this long.
	// Default 5 minutes; negative: never.
	IdleTimeout time.Duration
	// MaxDialsPerSecond paces new tenant connections across all servers,
	// so that a reconnect storm cannot starve the queries already running
	// (a new backend costs the server about 3 ms of CPU, 9 ms with SCRAM).
	// Default 100; negative: no pacing.
	MaxDialsPerSecond float64
	// DirectoryMaxAge bounds how long a cached directory entry is used
	// without a fresh read, should a change notification be lost. Default 30s.
	DirectoryMaxAge time.Duration
	// MoveWait bounds how long a tenant call waits while the tenant's move
	// switches it to its new placement (the cutover, usually well under a
	// second) before it fails with tenant.ErrMoving. Default 10s.
	MoveWait time.Duration
	// MinSchemaVersion and MaxSchemaVersion state the migration versions of
	// the tenant tables this code works with; 0 leaves a bound open. A
	// tenant outside the range gets a *tenant.VersionError from the handle
	// instead of running SQL against tables of another shape, and
	// Admin.Incompatible lists the tenants that would block a deploy.
	MinSchemaVersion int
	MaxSchemaVersion int
	// Tracer, when set, observes every tenant call and every connection
	// replaced for leftover session state. Package metrics implements it
	// for Prometheus; without a tracer no metrics code runs.
	Tracer Tracer
	// StartupAudit says what Open does with the findings of the isolation
	// audit (package audit) of the control database: AuditWarn (the
	// default) logs each one; AuditRefuse also fails Open when any finding
	// is an error; AuditOff skips the audit.
	StartupAudit AuditMode
	// TagSessions sets application_name to "landlord tenant <id>" in every
	// tenant transaction, so pg_stat_activity and server logs (%a in
	// log_line_prefix) show whose work a backend is doing. It costs a
	// setting change per call. (pg_stat_statements separates schema and
	// database tenants by role and database already; row tenants share one
	// role, and it has no per-application key.)
	TagSessions bool
	// Pooler sends tenant traffic through a connection pooler in transaction
	// pooling mode (PgBouncer's pool_mode = transaction) at this address,
	// while Landlord's own administration connects to the server directly.
	// See Pooler for what changes.
	Pooler *Pooler
	// BeforeConnect, when set, is called with the settings of every new
	// tenant-traffic connection just before it is dialed, from the
	// goroutine that dials it, and may change them: add an OnNotice
	// handler or a tracer, count round trips. It must not change the
	// user, the database or the runtime parameters: they are what put the
	// connection in its tenant's place. It is not called for Landlord's
	// own administration connections.
	BeforeConnect func(*pgx.ConnConfig)
	// Install says what Open may change in the database: by default it
	// installs Landlord where it is missing and upgrades and repairs it
	// where it is there; provision.InstallExisting refuses a database
	// without an installation; provision.InstallNever changes nothing at
	// all, for tools that only look. Both refusals wrap
	// provision.ErrNotInstalled.
	Install provision.Install
	// Global holds the platform's own tables, which belong to no tenant
	// and which every tenant reads (currencies, countries, tax rates,
	// plans), as NNN_name.up.sql files like the tenant migrations, for
	// schema "global" (see package migration: no tenant_id, no row-level
	// security, a primary key on every table, foreign keys only between
	// global tables). Open applies them to the control database, where row
	// and schema tenants read them; every tenant database holds a copy
	// that SyncGlobal keeps equal. Tenant tables may reference them by
	// foreign key, and every tenant may read them, in each model with the
	// same SQL (SELECT ... FROM global.currencies); only GlobalAdmin (or
	// the administrator) writes them. nil: no global tables.
	Global fs.FS
	// RoleRepairInterval is how often Landlord undoes what tenant SQL can
	// do to the roles it relies on: a role may change its own password and
	// settings (SECURITY.md, I33). Open repairs them at bootstrap; this
	// repeats it while the installation is open (see
	// provision.Provisioner.RepairRoles) and logs each repair as a warning.
	// Default 1 minute; negative: only at Open. Never with InstallNever.
	RoleRepairInterval time.Duration
	// TenantStatsInterval is how often this process writes what its
	// handles measured of each tenant's calls (calls, errors, durations;
	// package tenantstats) to the control database, where `landlord
	// tenants top` and TenantStats read every process's. Each write is
	// one statement of at most a few hundred rows, and rows older than an
	// hour are deleted. Default 5 seconds; negative: nothing is recorded.
	// Never with provision.InstallNever, which writes nothing.
	TenantStatsInterval time.Duration
	// Prewarm is how many tenant databases Open connects before it
	// returns: those of the database-model tenants that made the most
	// calls over the last PrewarmWindow, as every process recorded them
	// (TenantStatsInterval), busiest first, one connection each and never
	// more than MaxConns. The first calls after a restart or a deploy then
	// find their connections open instead of each paying a connect. Open
	// waits for them at most PrewarmTimeout and logs what it warmed.
	// Default 0: none.
	Prewarm int
	// PrewarmWindow is how far back Prewarm looks. Default 10 minutes.
	PrewarmWindow time.Duration
	// PrewarmTimeout bounds Open's wait for Prewarm. Default 5 seconds.
	PrewarmTimeout time.Duration
	// PurgeGrace is how long DeleteTenant keeps a deleted tenant before
	// its purge is due: it is deleting at once (no traffic, its data
	// untouched), Admin.RestoreTenant takes it back until then, and
	// Admin.PurgeDue or Admin.Reconcile purges it afterwards. Default 0:
	// DeleteTenant purges at once. Negative is an error.
	PurgeGrace time.Duration
	// PurgeKeep names the application's tables ("schema.table") whose rows
	// of a purged tenant stay, each with why (provision.Config.PurgeKeep).
	PurgeKeep map[string]string
}

// AuditMode is what Open does with the startup audit's findings.
type AuditMode int

// Audit modes; see Config.StartupAudit.
const (
	AuditWarn AuditMode = iota
	AuditRefuse
	AuditOff
)

// Pooler is the address of a transaction-pooling connection pooler in front
// of the control server. Behind such a pooler a server connection serves a
// different client at every transaction, so Landlord then keeps nothing on a
// connection between transactions: statements are not prepared (pgx's exec
// mode: one round trip, parsed every time, inside the tenant's context),
// every transaction sets the tenant, role and search path itself, and a
// statement that could leave session state on the server connection (see
// Handle) is refused with ErrSessionState before it is sent.
// Database tenants reach their databases through the pooler too, so it must
// accept every tenant database and role (PgBouncer: a "*" fallback database
// and auth_query or an auth_file with the tenant roles).
type Pooler struct {
	Host string
	Port uint16
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxConns == 0 {
		c.MaxConns = max(8, 4*runtime.GOMAXPROCS(0))
	}
}

func (c *Config) validate() error {
	switch {
	case c.MaxConns < 0:
		return errors.New("landlord config: MaxConns must not be negative")
	case c.MaxConnsPerTenant < 0:
		return errors.New("landlord config: MaxConnsPerTenant must not be negative")
	case c.DirectoryMaxAge < 0:
		return errors.New("landlord config: DirectoryMaxAge must not be negative")
	case c.MoveWait < 0:
		return errors.New("landlord config: MoveWait must not be negative")
	case c.Prewarm < 0 || c.PrewarmWindow < 0 || c.PrewarmTimeout < 0:
		return errors.New("landlord config: Prewarm, PrewarmWindow and PrewarmTimeout must not be negative")
	case c.MinSchemaVersion < 0 || c.MaxSchemaVersion < 0:
		return errors.New("landlord config: MinSchemaVersion and MaxSchemaVersion must not be negative")
	case c.MaxSchemaVersion != 0 && c.MaxSchemaVersion < c.MinSchemaVersion:
		return errors.New("landlord config: MaxSchemaVersion is below MinSchemaVersion")
	case c.StartupAudit < AuditWarn || c.StartupAudit > AuditOff:
		return errors.New("landlord config: StartupAudit must be AuditWarn, AuditRefuse or AuditOff")
	case c.PurgeGrace < 0:
		return errors.New("landlord config: PurgeGrace must not be negative")
	case c.Pooler != nil && (c.Pooler.Host == "" || c.Pooler.Port == 0):
		return errors.New("landlord config: Pooler needs a Host and a Port")
	}
	return nil
}

// Landlord is an open installation: the one place that assembles it. It
// owns the administrator's connection pool to the control database, the
// directory, the provisioner (roles, templates, the reserve of
// pre-provisioned tenants, the migrator) and the traffic that serves
// tenants, and it runs what needs several of them: fleet migrations, the
// isolation audit, tenant deletion. It is safe for concurrent use.
type Landlord struct {
	cfg       Config
	admin     *pgxpool.Pool
	prov      *provision.Provisioner
	dir       *directory.Directory
	traffic   *traffic.Traffic
	controlDB string                // the control database's name
	stats     *tenantstats.Recorder // nil when Config.TenantStatsInterval is negative

	stop      context.CancelFunc
	done      sync.WaitGroup
	closeOnce sync.Once
}

// Open connects to the control database at databaseURL as an administrator
// (a superuser, or a role with CREATEDB and CREATEROLE that owns the control
// database), bootstraps or checks the installation, and returns it ready for
// traffic. An empty URL is ErrNoDatabaseURL: for the private server the
// landlord command uses, start embedded.StartDefault and open
// srv.URL(embedded.ControlDatabase). migrations holds the application's tenant tables as
// NNN_name.up.sql files (see package migration).
//
// Open refuses to run tenant traffic as a role that row-level security would
// not bind, with an error wrapping ErrUnsafeRole.
func Open(ctx context.Context, databaseURL string, migrations fs.FS, cfg Config) (*Landlord, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if strings.TrimSpace(databaseURL) == "" {
		// libpq would read the PG* variables and try a local socket as
		// the OS user: never what was meant.
		return nil, ErrNoDatabaseURL
	}
	cfg.setDefaults()
	set, err := migration.Load(migrations)
	if err != nil {
		return nil, err
	}
	var global *migration.Set
	if cfg.Global != nil {
		if global, err = migration.Load(cfg.Global); err != nil {
			return nil, fmt.Errorf("global tables: %w", err)
		}
	}
	pcfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's parse errors never contain the password.
		return nil, fmt.Errorf("database URL: %w", err)
	}
	pcfg.MaxConns = 4
	admin, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to control database: %w", err)
	}
	l := &Landlord{cfg: cfg, admin: admin}
	if err := l.open(ctx, set, global); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Landlord) open(ctx context.Context, set, global *migration.Set) error {
	if err := l.admin.Ping(ctx); err != nil {
		return fmt.Errorf("connect to control database: %w", err)
	}
	var err error
	l.prov, err = provision.New(ctx, l.admin, set, provision.Config{
		OwnerRole: l.cfg.OwnerRole, AppRole: l.cfg.AppRole, Logger: l.cfg.Logger, Install: l.cfg.Install, Global: global,
		PurgeGrace: l.cfg.PurgeGrace, PurgeKeep: l.cfg.PurgeKeep,
		// Set before Open returns, so before any deletion can run.
		BeforeDrop: func(ctx context.Context, t tenant.Tenant) error { return l.traffic.CloseTenant(ctx, t) },
	})
	if err != nil {
		return err
	}
	l.dir = l.prov.Directory()
	roles := l.prov.Roles()
	l.cfg.OwnerRole, l.cfg.AppRole = roles.Owner, roles.App

	if err := l.admin.QueryRow(ctx, `SELECT current_database()`).Scan(&l.controlDB); err != nil {
		return err
	}
	tcfg := traffic.Config{
		Logger:     l.cfg.Logger,
		AppRole:    l.cfg.AppRole,
		ControlDB:  l.controlDB,
		ConnConfig: l.prov.ConnConfig,
		ContextKey: l.prov.Roles().ContextKey(),
		Pool: pool.Config{
			MaxConns:          l.cfg.MaxConns,
			MaxConnsPerTenant: l.cfg.MaxConnsPerTenant,
			IdleTimeout:       l.cfg.IdleTimeout,
			MaxDialsPerSecond: l.cfg.MaxDialsPerSecond,
		},
		MinSchemaVersion: l.cfg.MinSchemaVersion,
		MaxSchemaVersion: l.cfg.MaxSchemaVersion,
		TagSessions:      l.cfg.TagSessions,
		BeforeConnect:    l.cfg.BeforeConnect,
		DirectoryMaxAge:  l.cfg.DirectoryMaxAge,
		MoveWait:         l.cfg.MoveWait,
	}
	if l.cfg.Tracer != nil {
		tcfg.Tracer = l.cfg.Tracer
	}
	if l.cfg.TenantStatsInterval >= 0 && l.cfg.Install != provision.InstallNever {
		l.stats = tenantstats.NewRecorder(processName(), 0, 0)
		tcfg.Tracer = teeTracer(l.cfg.Tracer, l.stats)
	}
	if p := l.cfg.Pooler; p != nil {
		tcfg.Pooler = &traffic.Pooler{Host: p.Host, Port: p.Port}
	}
	if l.traffic, err = traffic.New(l.dir, tcfg); err != nil {
		return err
	}
	if err := l.traffic.CheckAppRole(ctx); err != nil {
		return err
	}
	if err := l.startupAudit(ctx); err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	l.stop = stop
	ready := make(chan struct{})
	l.done.Go(func() {
		l.traffic.Run(runCtx, func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, l.admin.Config().ConnConfig)
		}, ready)
	})
	l.done.Go(func() { l.repairRoles(runCtx) })
	if l.stats != nil {
		l.done.Go(func() {
			l.stats.Run(runCtx, l.admin, cmp.Or(l.cfg.TenantStatsInterval, 5*time.Second), func(err error) {
				l.cfg.Logger.LogAttrs(runCtx, slog.LevelWarn, "tenant statistics not recorded", slog.Any("error", err))
			})
		})
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return fmt.Errorf("listen for directory changes: %w", ctx.Err())
	}
	l.prewarm(ctx)
	return nil
}

// prewarm connects the databases of the busiest database-model tenants of
// the last Config.PrewarmWindow (Config.Prewarm), four at a time, for up
// to Config.PrewarmTimeout. What fails is logged: warming is a shortcut,
// never a condition of Open.
func (l *Landlord) prewarm(ctx context.Context) {
	n := min(l.cfg.Prewarm, l.traffic.MaxConns())
	if n <= 0 {
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(l.cfg.PrewarmTimeout, 5*time.Second))
	defer cancel()
	// The busiest tenants of every model: enough of them that n are
	// tenant databases in most installations.
	stats, err := tenantstats.Top(ctx, l.admin, cmp.Or(l.cfg.PrewarmWindow, 10*time.Minute), min(4*n, 10_000))
	if err != nil {
		l.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "prewarm: read the busiest tenants", slog.Any("error", err))
		return
	}
	// The first n of them in the database model that get traffic (never
	// the zero id, the tenants past a flush's limit summed), then up to
	// four connects at a time.
	var ids []tenant.ID
	for _, st := range stats {
		if len(ids) == n {
			break
		}
		if st.Tenant.IsZero() {
			continue
		}
		t, err := l.CachedTenant(ctx, st.Tenant)
		if err == nil && t.Model == tenant.ModelDatabase && (t.State == tenant.StateActive || t.State == tenant.StateReadOnly) {
			ids = append(ids, t.ID)
		}
	}
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, 4)
		mu       sync.Mutex
		warmed   int
		firstErr error
	)
	for _, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ok, err := l.traffic.Warm(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				warmed++
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	attrs := []slog.Attr{slog.Int("warmed", warmed), slog.Int("asked", n), slog.Duration("took", time.Since(start))}
	if firstErr != nil {
		attrs = append(attrs, slog.Any("first_error", firstErr))
	}
	l.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "prewarm: connected the busiest tenant databases", attrs...)
}

// repairRoles runs the role repair every Config.RoleRepairInterval until
// ctx ends (Close), so that a role sabotaged by tenant SQL serves again
// without a restart (SECURITY.md, I33).
func (l *Landlord) repairRoles(ctx context.Context) {
	every := cmp.Or(l.cfg.RoleRepairInterval, time.Minute)
	if every < 0 || l.cfg.Install == provision.InstallNever {
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		repaired, err := l.prov.RepairRoles(ctx)
		for _, r := range repaired {
			l.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "role repaired", slog.String("threat", "I33"), slog.String("repair", r))
		}
		if err != nil && ctx.Err() == nil {
			l.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "role repair failed", slog.String("threat", "I33"), slog.Any("error", err))
		}
	}
}

// startupAudit runs the isolation audit of the control database as
// Config.StartupAudit says.
func (l *Landlord) startupAudit(ctx context.Context) error {
	if l.cfg.StartupAudit == AuditOff {
		return nil
	}
	// The control database only: tenant databases are audited by Audit and
	// by landlord audit, not at every start.
	check, err := l.prov.ContextCheck(ctx)
	if err != nil {
		return err
	}
	findings, err := audit.Run(ctx, l.admin, audit.Config{AppRole: l.cfg.AppRole, OwnerRole: l.cfg.OwnerRole,
		Passwords: l.prov.Roles().Password, ContextCheck: string(check)})
	if err != nil {
		return fmt.Errorf("startup audit: %w", err)
	}
	for _, f := range findings {
		l.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "isolation audit finding",
			slog.String("check", f.Check), slog.String("severity", string(f.Severity)), slog.String("object", f.Object),
			slog.String("threat", f.Threat), slog.String("message", f.Message), slog.String("fix", f.Fix))
	}
	if l.cfg.StartupAudit == AuditRefuse {
		return audit.AsError(findings)
	}
	return nil
}

// Close stops the directory listener and closes every pool. Calls made
// after Close fail; a second Close does nothing.
func (l *Landlord) Close() {
	l.closeOnce.Do(func() {
		if l.stop != nil {
			l.stop()
		}
		l.done.Wait()
		if l.traffic != nil {
			l.traffic.Close()
		}
		if l.prov != nil {
			l.prov.Close()
		}
		l.admin.Close()
	})
}

// CreateTenant provisions a tenant (see provision.Provisioner.Create).
func (l *Landlord) CreateTenant(ctx context.Context, req provision.Request) (tenant.Tenant, error) {
	return l.prov.Create(ctx, req)
}

// DeleteTenant deletes a tenant (see provision.Provisioner.Delete): its
// traffic stops at once (its routes are dropped and the connections of its
// database closed), and its data is purged at once, or after
// Config.PurgeGrace, during which Admin.RestoreTenant takes it back. A
// purge removes everything the tenant had on every server and verifies
// that nothing is left (Admin.VerifyPurge).
func (l *Landlord) DeleteTenant(ctx context.Context, id tenant.ID) error {
	err := l.prov.Delete(ctx, id)
	l.traffic.Invalidate(id)
	return err
}

// Provisioner returns the installation's provisioner: templates, the
// reserve of pre-provisioned tenants, connection settings of each server
// and tenant database as the administrator.
func (l *Landlord) Provisioner() *provision.Provisioner { return l.prov }

// Directory returns the installation's tenant directory.
func (l *Landlord) Directory() *directory.Directory { return l.dir }

// Fleet returns the fleet migrations of the installation's targets, with the
// tenant-table migrations the installation was opened with (see package
// fleet).
func (l *Landlord) Fleet(cfg fleet.Config) (*fleet.Fleet, error) {
	if cfg.Logger == nil {
		cfg.Logger = l.cfg.Logger
	}
	return fleet.New(l.prov, cfg)
}

// Audit runs the isolation audit (package audit) of the whole installation:
// the control database and every tenant database on every server, or one
// tenant's when cfg.Tenant is set. The roles default to the installation's.
// It returns the findings, errors first; an error means some database could
// not be audited (the findings of the others are returned with it).
func (l *Landlord) Audit(ctx context.Context, cfg audit.FleetConfig) ([]audit.Finding, error) {
	if cfg.AppRole == "" {
		cfg.AppRole = l.cfg.AppRole
	}
	if cfg.OwnerRole == "" {
		cfg.OwnerRole = l.cfg.OwnerRole
	}
	return audit.Fleet(ctx, l.admin, cfg)
}

// FillReserve keeps n pre-provisioned tenants of model m ready, so that
// CreateTenant claims one instead of building it (see
// provision.Provisioner.FillReserve). It returns how many are ready.
func (l *Landlord) FillReserve(ctx context.Context, m tenant.Model, n int) (int, error) {
	return l.prov.FillReserve(ctx, m, n)
}

// Stats is a snapshot of the installation's tenant traffic.
type Stats struct {
	Pool          pool.Stats // the connection manager, per server
	CachedTenants int        // tenants in the routing cache
	// AdminConns are the connections of the administrator's pool to the
	// control database; the directory listener holds one more.
	AdminConns int
}

// Stats returns a snapshot of the tenant traffic, for metrics.
func (l *Landlord) Stats() Stats {
	s := l.traffic.Stats()
	return Stats{Pool: s.Pool, CachedTenants: s.CachedTenants, AdminConns: int(l.admin.Stat().TotalConns())}
}

// Tenant returns the directory entry of id.
func (l *Landlord) Tenant(ctx context.Context, id tenant.ID) (tenant.Tenant, error) {
	return l.dir.Get(ctx, id)
}

// CachedTenant returns the directory entry of id as tenant traffic sees it:
// from the routing cache, which the directory's notifications keep current
// (a state set through this Landlord shows at once, one set elsewhere as
// soon as its notification arrives), reading the directory only on a miss.
// It suits a per-request check of a tenant's state; Tenant always reads
// the directory.
func (l *Landlord) CachedTenant(ctx context.Context, id tenant.ID) (tenant.Tenant, error) {
	return l.traffic.Tenant(ctx, id)
}

// TenantBySlug returns the directory entry of the tenant with slug.
func (l *Landlord) TenantBySlug(ctx context.Context, slug string) (tenant.Tenant, error) {
	return l.dir.GetBySlug(ctx, slug)
}
