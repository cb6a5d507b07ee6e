package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

// Request describes a tenant to create.
type Request struct {
	Slug        string       // required; normalized (tenant.NormalizeSlug)
	Model       tenant.Model // required
	DisplayName string       // optional; at most 200 characters
	// ID makes Create idempotent: a second Create with the same ID finishes
	// the first one's work instead of failing on the taken slug. Leave it
	// zero to get a new id.
	ID tenant.ID
	// Server places the tenant; "" = the directory's own server.
	Server string
}

func (r *Request) normalize() error {
	slug, err := tenant.NormalizeSlug(r.Slug)
	if err != nil {
		return err
	}
	r.Slug = slug
	if _, err := tenant.ParseModel(string(r.Model)); err != nil {
		return err
	}
	if len([]rune(r.DisplayName)) > 200 {
		return fmt.Errorf("display name: %w: longer than 200 characters", tenant.ErrBadDisplayName)
	}
	if !utf8.ValidString(r.DisplayName) || strings.ContainsRune(r.DisplayName, 0) {
		return fmt.Errorf("display name: %w: not valid UTF-8 text", tenant.ErrBadDisplayName)
	}
	if r.Server == "" {
		r.Server = directory.DefaultServer
	}
	return nil
}

// placement returns the schema and database names of a new tenant.
func (p *Provisioner) placement(ctx context.Context, id tenant.ID, m tenant.Model, server string) (schema, database string, err error) {
	s, err := p.server(ctx, server)
	if err != nil {
		return "", "", err
	}
	switch m {
	case tenant.ModelRow:
		return SharedSchema, s.Database, nil
	case tenant.ModelSchema:
		return id.SchemaName(), s.Database, nil
	default:
		return id.SchemaName(), id.DatabaseName(), nil
	}
}

func (p *Provisioner) server(ctx context.Context, id string) (directory.Server, error) {
	servers, err := p.dir.Servers(ctx)
	if err != nil {
		return directory.Server{}, err
	}
	for _, s := range servers {
		if s.ID == id {
			return s, nil
		}
	}
	return directory.Server{}, fmt.Errorf("server %q: %w", id, ErrUnknownServer)
}

// Create provisions a tenant and returns it ready for traffic. Bad input is
// refused before anything is written. A crash part way leaves the tenant in
// state provisioning; Resume, Reconcile or a Create with the same Request.ID
// finishes it.
func (p *Provisioner) Create(ctx context.Context, req Request) (tenant.Tenant, error) {
	if err := req.normalize(); err != nil {
		return tenant.Tenant{}, err
	}
	if !req.ID.IsZero() {
		if t, err := p.dir.Get(ctx, req.ID); err == nil {
			if t.Slug != req.Slug || t.Model != req.Model {
				return t, fmt.Errorf("tenant %s exists as %s (%s): %w", t.ID, t.Slug, t.Model, tenant.ErrSlugTaken)
			}
			if t.State != tenant.StateProvisioning {
				return t, nil
			}
			return p.Resume(ctx, t.ID)
		} else if !errors.Is(err, tenant.ErrNotFound) {
			return tenant.Tenant{}, err
		}
	} else {
		req.ID = tenant.NewID()
	}
	schema, database, err := p.placement(ctx, req.ID, req.Model, req.Server)
	if err != nil {
		return tenant.Tenant{}, err
	}
	t := tenant.Tenant{
		ID: req.ID, Slug: req.Slug, DisplayName: req.DisplayName, Model: req.Model,
		Server: req.Server, Schema: schema, Database: database, State: tenant.StateProvisioning,
	}
	if t.Model == tenant.ModelRow {
		// A row tenant is only a directory entry: one transaction makes it
		// whole, so it is born active.
		t.State = tenant.StateActive
		t.SchemaVersion = p.mig.Set().Head()
	}
	start := time.Now()
	if err := p.dir.Insert(ctx, t); err != nil {
		if errors.Is(err, tenant.ErrSlugTaken) || isCode(err, "23505") {
			// Two requests with the same id raced; the other one inserted.
			// Its row may conflict on the id before the slug is checked.
			if got, gerr := p.dir.Get(ctx, req.ID); gerr == nil {
				if got.Slug != req.Slug || got.Model != req.Model {
					return tenant.Tenant{}, fmt.Errorf("tenant %s exists as %s (%s): %w", got.ID, got.Slug, got.Model, tenant.ErrSlugTaken)
				}
				return p.Resume(ctx, req.ID)
			}
		}
		return tenant.Tenant{}, err
	}
	if t.Model == tenant.ModelRow {
		p.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "tenant created", slog.String("tenant", t.ID.String()),
			slog.String("slug", t.Slug), slog.String("model", string(t.Model)), slog.Duration("took", time.Since(start)))
		return p.dir.Get(ctx, t.ID)
	}
	t, err = p.Resume(ctx, t.ID)
	if err == nil {
		p.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "tenant created", slog.String("tenant", t.ID.String()),
			slog.String("slug", t.Slug), slog.String("model", string(t.Model)), slog.Duration("took", time.Since(start)))
	}
	return t, err
}

// Resume finishes the provisioning of tenant id. It is what Create runs after
// writing the intent, and it is safe to run any number of times, also
// concurrently: a per-tenant lock makes the second caller wait.
func (p *Provisioner) Resume(ctx context.Context, id tenant.ID) (tenant.Tenant, error) {
	var out tenant.Tenant
	err := p.withTenantLock(ctx, id, func(conn *pgx.Conn) (err error) {
		out, err = p.resume(ctx, conn, id)
		return err
	})
	if err != nil {
		return out, fmt.Errorf("provision tenant %s: %w", id, err)
	}
	return out, nil
}

// resume is Resume for a caller that holds the tenant's lock on conn.
func (p *Provisioner) resume(ctx context.Context, conn *pgx.Conn, id tenant.ID) (tenant.Tenant, error) {
	t, err := p.dir.Get(ctx, id)
	if err != nil {
		return t, err
	}
	switch t.State {
	case tenant.StateProvisioning:
	case tenant.StateDeleting:
		return t, &tenant.StateError{ID: id, State: t.State}
	default:
		return t, nil // finished by an earlier attempt
	}
	var version int
	switch t.Model {
	case tenant.ModelRow:
		version = p.mig.Set().Head()
	case tenant.ModelSchema:
		version, err = p.createSchemaTenant(ctx, conn, t)
	case tenant.ModelDatabase:
		version, err = p.createDatabaseTenant(ctx, t)
	}
	if err != nil {
		_ = p.dir.Log(ctx, id, "create", "failed", err.Error())
		return t, err
	}
	if err := p.dir.SetSchemaVersion(ctx, id, version); err != nil {
		return t, err
	}
	if t, err = p.dir.SetState(ctx, id, tenant.StateActive, tenant.StateProvisioning); err != nil {
		return t, err
	}
	return t, p.dir.Log(ctx, id, "create", "active", "")
}

// withTenantLock runs fn holding the tenant's provisioning lock: a session
// advisory lock on a connection held for the whole operation. That connection
// is not one of the pool's: fn uses the pool, and callers waiting for the lock
// must not hold the pool connections the holder needs, or a small pool would
// leave them all waiting for ever (THREATS F08).
func (p *Provisioner) withTenantLock(ctx context.Context, id tenant.ID, fn func(conn *pgx.Conn) error) error {
	conn, err := p.lockConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx)) // also releases the lock
	k1, k2 := lockKeys(id)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, k1, k2); err != nil {
		return err
	}
	defer unlock(ctx, conn, id)
	return fn(conn)
}

// tryTenantLock is withTenantLock that skips (ok=false) when another session
// holds the lock, for Reconcile, which must not wait behind live work.
func (p *Provisioner) tryTenantLock(ctx context.Context, id tenant.ID, fn func(conn *pgx.Conn) error) (ok bool, err error) {
	conn, err := p.lockConn(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	k1, k2 := lockKeys(id)
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, k1, k2).Scan(&ok); err != nil || !ok {
		return false, err
	}
	defer unlock(ctx, conn, id)
	return true, fn(conn)
}

func (p *Provisioner) lockConn(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, p.admin.Config().ConnConfig)
	if err != nil {
		return nil, fmt.Errorf("connect for the tenant lock: %w", err)
	}
	return conn, nil
}

// unlock releases the tenant's lock before its connection closes, which
// would release it too, so that the next waiter gets it at once.
func unlock(ctx context.Context, conn *pgx.Conn, id tenant.ID) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	k1, k2 := lockKeys(id)
	_, _ = conn.Exec(uctx, `SELECT pg_advisory_unlock($1, $2)`, k1, k2)
}

// lockNamespace is the first key of the per-tenant provisioning locks
// (THREATS I26: namespaced keys).
const lockNamespace = 0x4c4c5052 // "LLPR"

func lockKeys(id tenant.ID) (int32, int32) {
	return lockNamespace, int32(uint32(id[12])<<24 | uint32(id[13])<<16 | uint32(id[14])<<8 | uint32(id[15]))
}

// createSchemaTenant creates the tenant's role and schema in one transaction
// and migrates the schema. Each part skips what a previous attempt finished.
func (p *Provisioner) createSchemaTenant(ctx context.Context, conn *pgx.Conn, t tenant.Tenant) (int, error) {
	role, schema := t.ID.RoleName(), t.Schema
	if err := p.dir.Log(ctx, t.ID, "create", "schema", schema); err != nil {
		return 0, err
	}
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var haveRole, haveSchema bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1), EXISTS (SELECT FROM pg_namespace WHERE nspname = $2)`,
			role, schema).Scan(&haveRole, &haveSchema); err != nil {
			return err
		}
		var b strings.Builder
		if !haveRole {
			fmt.Fprintf(&b, "CREATE ROLE %s NOLOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;", ident(role))
		}
		// Also on a role an earlier attempt left: Reconcile removes only
		// what carries the marker.
		fmt.Fprintf(&b, "COMMENT ON ROLE %s IS %s;", ident(role), literal(p.marker(t.ID)))
		// The app role may switch to the tenant role for one transaction;
		// being NOINHERIT, it has none of its privileges otherwise.
		fmt.Fprintf(&b, "GRANT %s TO %s;", ident(role), ident(p.cfg.AppRole))
		if !haveSchema {
			fmt.Fprintf(&b, "SET LOCAL ROLE %s; CREATE SCHEMA %s; COMMENT ON SCHEMA %s IS %s;",
				ident(p.cfg.OwnerRole), ident(schema), ident(schema), literal(p.marker(t.ID)))
		}
		_, err := tx.Exec(ctx, b.String())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("create role and schema: %w", err)
	}
	res, err := p.mig.Apply(ctx, conn, migration.Target{Schema: schema, Grantee: role})
	if err != nil {
		return 0, err
	}
	return res.To, nil
}

// createDatabaseTenant creates the tenant's login role and database, locks
// the database down and migrates the tenant schema inside it.
func (p *Provisioner) createDatabaseTenant(ctx context.Context, t tenant.Tenant) (int, error) {
	role, db := t.ID.RoleName(), t.Database
	mark := p.marker(t.ID)
	if err := p.dir.Log(ctx, t.ID, "create", "role", role); err != nil {
		return 0, err
	}
	if err := p.ensureRole(ctx, role, "LOGIN NOINHERIT", p.roles.Password(role)); err != nil {
		return 0, err
	}
	if err := p.exec(ctx, fmt.Sprintf("COMMENT ON ROLE %s IS %s", ident(role), literal(mark))); err != nil {
		return 0, err
	}
	var exists bool
	if err := p.admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, db).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		if err := p.dir.Log(ctx, t.ID, "create", "database", db); err != nil {
			return 0, err
		}
		// template0 holds nothing an installation added to template1
		// (THREATS I21). WAL_LOG avoids the checkpoints FILE_COPY forces.
		err := p.exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING 'UTF8' STRATEGY WAL_LOG", ident(db), ident(p.cfg.OwnerRole)))
		if err != nil && !isCode(err, "42P04") { // duplicate_database: a concurrent attempt
			return 0, fmt.Errorf("create database: %w", err)
		}
	}
	if err := p.exec(ctx, fmt.Sprintf(`COMMENT ON DATABASE %s IS %s;
		REVOKE ALL ON DATABASE %s FROM PUBLIC;
		GRANT CONNECT ON DATABASE %s TO %s`, ident(db), literal(mark), ident(db), ident(db), ident(role))); err != nil {
		return 0, fmt.Errorf("lock down database: %w", err)
	}
	conn, err := p.connect(ctx, t.Server, db)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// No public schema: nothing on a tenant's search path but its own tables.
	if _, err := conn.Exec(ctx, fmt.Sprintf(`BEGIN; SET LOCAL ROLE %s; DROP SCHEMA IF EXISTS public; CREATE SCHEMA IF NOT EXISTS %s; COMMIT`,
		ident(p.cfg.OwnerRole), ident(t.Schema))); err != nil {
		return 0, fmt.Errorf("create tenant schema: %w", err)
	}
	res, err := p.mig.Apply(ctx, conn, migration.Target{Schema: t.Schema, Grantee: role})
	if err != nil {
		return 0, err
	}
	return res.To, nil
}

// ConnConfig returns the connection settings for database on server as the
// administrator, or, with a non-empty role, as that Landlord-managed role
// with its derived password.
func (p *Provisioner) ConnConfig(ctx context.Context, server, database, role string) (*pgx.ConnConfig, error) {
	s, err := p.server(ctx, server)
	if err != nil {
		return nil, err
	}
	cfg := p.admin.Config().ConnConfig.Copy()
	if s.Host != "" {
		cfg.Host, cfg.Port = s.Host, uint16(s.Port)
		cfg.Fallbacks = nil
	}
	cfg.Database = database
	if role != "" {
		cfg.User, cfg.Password = role, p.roles.Password(role)
	}
	return cfg, nil
}

func (p *Provisioner) connect(ctx context.Context, server, database string) (*pgx.Conn, error) {
	cfg, err := p.ConnConfig(ctx, server, database, "")
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database %s: %w", database, err)
	}
	return conn, nil
}
