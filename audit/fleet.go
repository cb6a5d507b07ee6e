package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// FleetConfig holds the optional settings of Fleet.
type FleetConfig struct {
	// AppRole, OwnerRole and SharedSchema are as in Config.
	AppRole      string
	OwnerRole    string
	SharedSchema string
	// Tenant limits the audit to one tenant: its tables in the shared schema
	// (row), its schema (schema) or its database (database), with the
	// database-wide checks of the database that holds them. Zero: the whole
	// fleet.
	Tenant tenant.ID
	// ConnConfig returns the settings to connect to database on server as
	// the administrator. Default: the admin pool's settings, with the host
	// and port the directory records for the server, as
	// provision.Provisioner.ConnConfig(ctx, server, database, "") gives them.
	ConnConfig func(ctx context.Context, server, database string) (*pgx.ConnConfig, error)
	// Concurrency is how many databases are audited at once. Default 4.
	Concurrency int
}

// target is one database Fleet audits.
type target struct {
	server, database string
	control          bool // reached through the admin pool itself
	cfg              Config
}

// Fleet audits an installation: the database of every server in the
// directory (the control database among them) and the database of every
// database tenant that is not being provisioned or deleted. admin is
// connected to the control database as the administrator; Fleet only reads.
// Tenant databases are reached with one short-lived connection each.
//
// Fleet goes on past a database it cannot audit and returns the findings of
// the others with an error that names each database it missed.
func Fleet(ctx context.Context, admin *pgxpool.Pool, cfg FleetConfig) ([]Finding, error) {
	if cfg.Concurrency < 0 {
		return nil, errors.New("audit fleet config: Concurrency must not be negative")
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 4
	}
	base := Config{AppRole: cfg.AppRole, OwnerRole: cfg.OwnerRole, SharedSchema: cfg.SharedSchema}
	base.setDefaults()
	if err := base.validate(); err != nil {
		return nil, err
	}
	var installed bool
	err := admin.QueryRow(ctx, `SELECT to_regclass('landlord.tenants') IS NOT NULL`).Scan(&installed)
	if err != nil {
		return nil, fmt.Errorf("audit: read control database: %w", err)
	}
	if !installed {
		return nil, fmt.Errorf("audit: control database: %w (no landlord.tenants table)", ErrNoInstallation)
	}
	if base.Passwords, err = installationPasswords(ctx, admin); err != nil {
		return nil, err
	}
	dir := directory.New(admin)
	if base.ContextCheck, err = dir.ContextCheck(ctx); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	servers, err := dir.Servers(ctx)
	if err != nil {
		return nil, err
	}
	if cfg.ConnConfig == nil {
		cfg.ConnConfig = adminConnConfig(admin, servers)
	}
	targets, err := fleetTargets(ctx, dir, servers, base, cfg.Tenant)
	if err != nil {
		return nil, err
	}

	results := make([][]Finding, len(targets))
	errs := make([]error, len(targets))
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	for i, tg := range targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i], errs[i] = auditTarget(ctx, admin, cfg.ConnConfig, tg)
		})
	}
	wg.Wait()
	var all []Finding
	for _, r := range results {
		all = append(all, r...)
	}
	sortFindings(all)
	return all, errors.Join(errs...)
}

// fleetTargets lists the databases to audit: every server's database and
// every database tenant's, or only what holds tenant id.
func fleetTargets(ctx context.Context, dir *directory.Directory, servers []directory.Server, base Config, id tenant.ID) ([]target, error) {
	if !id.IsZero() {
		t, err := dir.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		c := base
		if t.Model == tenant.ModelDatabase {
			c.TenantDatabase = true
		} else {
			c.Schemas = []string{t.Schema}
		}
		return []target{{server: t.Server, database: t.Database, control: t.Server == directory.DefaultServer && t.Model != tenant.ModelDatabase, cfg: c}}, nil
	}
	var targets []target
	for _, s := range servers {
		targets = append(targets, target{server: s.ID, database: s.Database, control: s.ID == directory.DefaultServer, cfg: base})
	}
	ts, err := dir.List(ctx, directory.Filter{Model: tenant.ModelDatabase})
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if t.State == tenant.StateProvisioning || t.State == tenant.StateDeleting {
			// Half built or half gone, and serving nobody: provisioning
			// secures the database before the tenant goes active.
			continue
		}
		c := base
		c.TenantDatabase = true
		// The server's own database reports the server version once.
		c.noVersion = true
		targets = append(targets, target{server: t.Server, database: t.Database, cfg: c})
	}
	return targets, nil
}

// auditTarget runs the audit on one database.
func auditTarget(ctx context.Context, admin *pgxpool.Pool, connConfig func(context.Context, string, string) (*pgx.ConnConfig, error), tg target) ([]Finding, error) {
	if tg.control {
		return Run(ctx, admin, tg.cfg)
	}
	cc, err := connConfig(ctx, tg.server, tg.database)
	if err != nil {
		return nil, fmt.Errorf("audit database %q on server %q: %w", tg.database, tg.server, err)
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("audit database %q on server %q: connect: %w", tg.database, tg.server, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return Run(ctx, conn, tg.cfg)
}

// adminConnConfig is the default FleetConfig.ConnConfig.
func adminConnConfig(admin *pgxpool.Pool, servers []directory.Server) func(context.Context, string, string) (*pgx.ConnConfig, error) {
	return func(_ context.Context, server, database string) (*pgx.ConnConfig, error) {
		for _, s := range servers {
			if s.ID != server {
				continue
			}
			return s.ConnConfig(admin.Config().ConnConfig, database), nil
		}
		return nil, fmt.Errorf("server %q: %w", server, provision.ErrUnknownServer)
	}
}

// installationPasswords returns the passwords the installation derives for
// its login roles, from the secret the control database holds, so that
// the audit can check the stored ones (Config.Passwords); nil when the
// administrator cannot read them (not a superuser). Fleet then checks no
// password and says nothing of it: the startup audit of every Open does
// say so, and a warning no one can act on at each audit would teach
// operators to skip warnings.
func installationPasswords(ctx context.Context, admin *pgxpool.Pool) (func(string) string, error) {
	var secret []byte
	var authid bool
	err := admin.QueryRow(ctx, `SELECT secret, has_table_privilege('pg_catalog.pg_authid', 'SELECT') FROM landlord.installation`).Scan(&secret, &authid)
	if err != nil {
		return nil, fmt.Errorf("audit: read the installation: %w", err)
	}
	if !authid {
		return nil, nil
	}
	return provision.NewRoles("", "", secret).Password, nil
}
