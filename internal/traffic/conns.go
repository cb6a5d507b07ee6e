package traffic

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/pool"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// Tenant traffic of every model goes through one connection manager
// (package pool): one budget of server connections per server, a group of
// connections per target (the app role on the server's database for the row
// and schema models, each tenant database with its own role), fairness
// between tenants, tenant-affine reuse and recycling by catalog growth.

// newConns opens the connection manager.
func (t *Traffic) newConns() (*pool.Manager, error) {
	enters := preparedEnters(t.cfg.TagSessions)
	afterConnect := func(ctx context.Context, conn *pgx.Conn) error { return prepareTenantConn(ctx, conn, enters) }
	connMemory := backendMemory
	if t.cfg.Pooler != nil {
		// Behind a pooler the backend changes with every transaction.
		afterConnect, connMemory = checkTenantRole, nil
	}
	pc := t.cfg.Pool
	pc.ConnMemory, pc.AfterConnect, pc.Logger = connMemory, afterConnect, t.cfg.Logger
	return pool.New(t.resolve, pc)
}

// backendMemory measures the backend behind a tenant connection of the
// control database, so that the manager replaces schema-model connections
// by the catalog memory they really hold rather than by a count of tenants
// that assumes each touched all its tables. Tenant databases lack the
// function; the manager measures only connections that served schema
// tenants, which all live in the control database.
func backendMemory(ctx context.Context, conn *pgx.Conn) (int64, error) {
	var n int64
	err := conn.QueryRow(ctx, "SELECT "+provision.MemoryFunc+"()", pgx.QueryExecModeExec).Scan(&n)
	return n, err
}

// resolve returns the connection settings of a target. The session's search
// path is the schema the target's tables live in: statements are parsed,
// and their parameter and result types fixed, when they are first prepared
// on a connection, which happens outside any tenant context, so the path
// points parsing at tables of the right shape (the shared ones, or the
// tenant's own in its database). Execution always runs under the tenant's
// context. Settings are cached per target; the manager calls this for every
// connection it opens.
func (tr *Traffic) resolve(ctx context.Context, t pool.Target) (*pgx.ConnConfig, error) {
	if cc, ok := tr.resolved.Load(t); ok {
		return tr.beforeConnect(cc.(*pgx.ConnConfig).Copy()), nil
	}
	cc, err := tr.cfg.ConnConfig(ctx, t.Server, t.Database, t.Role)
	if err != nil {
		return nil, err
	}
	schema := provision.SharedSchema
	if t.Role != tr.cfg.AppRole {
		schema = t.Database // a tenant database holds the schema of its name
	}
	if p := tr.cfg.Pooler; p != nil {
		// Nothing may live on a connection between transactions, and
		// poolers refuse a search_path at startup: see Pooler.
		cc.Host, cc.Port, cc.Fallbacks = p.Host, p.Port, nil
		cc.DefaultQueryExecMode = pgx.QueryExecModeExec
	} else {
		cc.RuntimeParams["search_path"] = searchPath(schema)
	}
	tr.resolved.Store(t, cc)
	return tr.beforeConnect(cc.Copy()), nil
}

func (tr *Traffic) beforeConnect(cc *pgx.ConnConfig) *pgx.ConnConfig {
	if tr.cfg.BeforeConnect != nil {
		tr.cfg.BeforeConnect(cc)
	}
	return cc
}

// appTarget is the target of the row and schema models on server.
func (tr *Traffic) appTarget(server string) pool.Target {
	return pool.Target{Server: server, Database: tr.cfg.ControlDB, Role: tr.cfg.AppRole}
}

// targetOf is where tenant t's traffic goes. A row or schema tenant on
// another server lives in that server's database, which its directory row
// names; on the control database's server, the control database, whatever
// it is called now (a copied installation keeps its tenants' rows).
func (tr *Traffic) targetOf(t tenant.Tenant) pool.Target {
	switch {
	case t.Model == tenant.ModelDatabase:
		return pool.Target{Server: t.Server, Database: t.Database, Role: t.ID.RoleName()}
	case t.Server != directory.DefaultServer && t.Server != "":
		return pool.Target{Server: t.Server, Database: t.Database, Role: tr.cfg.AppRole}
	}
	return tr.appTarget(t.Server)
}

// checkTenantRole refuses a role that row-level security would not bind
// (SECURITY.md, I02). It runs once on each new tenant connection.
func checkTenantRole(ctx context.Context, conn *pgx.Conn) error {
	var super, bypass bool
	if err := conn.QueryRow(ctx, `SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&super, &bypass); err != nil {
		return fmt.Errorf("check tenant role: %w", err)
	}
	if super || bypass {
		return fmt.Errorf("role %s is a superuser or has BYPASSRLS: %w", conn.Config().User, ErrUnsafeRole)
	}
	return nil
}

// prepareTenantConn runs once on each new tenant connection: it checks the
// role and prepares the enter statements.
func prepareTenantConn(ctx context.Context, conn *pgx.Conn, enters []enter) error {
	if err := checkTenantRole(ctx, conn); err != nil {
		return err
	}
	for _, e := range enters {
		if _, err := conn.Prepare(ctx, e.name, e.sql); err != nil {
			return fmt.Errorf("prepare %s: %w", e.name, err)
		}
	}
	return nil
}
