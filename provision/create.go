package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/ident"
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
	// Server places the tenant; "" = the directory's own server,
	// LeastLoaded = the server with the least load (Loads) now.
	Server string
	// Fill, when set, fills the new tenant before it serves: it runs once
	// the tenant's tables exist, while the tenant is still provisioning
	// (no traffic reaches it), under the tenant's provisioning lock. If it
	// fails, the tenant is deleted again before Create returns; if the
	// process dies during it, Reconcile deletes the tenant, since what it
	// was to hold is gone with the process. A filled tenant never comes
	// from the reserve. Importing an archive is a Fill.
	Fill func(ctx context.Context, t tenant.Tenant) error
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
// refused before anything is written. A request without an ID gets a
// pre-provisioned tenant when the reserve (FillReserve) holds one of its
// model on its server; otherwise a schema tenant is cloned from the template
// schema and a database tenant copied from the template database
// (PrepareTemplates), or migrated when a template cannot be had. A crash
// part way leaves the tenant in state provisioning; Resume, Reconcile or a
// Create with the same Request.ID finishes it.
func (p *Provisioner) Create(ctx context.Context, req Request) (tenant.Tenant, error) {
	return p.create(ctx, req, methodAuto)
}

// method is how create provisions; MeasureCreate compares them.
type method int

const (
	methodAuto     method = iota // a reserved tenant if there is one, else the templates
	methodTemplate               // the templates, never the reserve
	methodMigrate                // every migration on the new tenant, as before templates
)

// LeastLoaded, as Request.Server, places a tenant on the server whose
// load (Loads: its tenants weighted by ServerWeights) is least.
const LeastLoaded = "*"

func (p *Provisioner) create(ctx context.Context, req Request, how method) (tenant.Tenant, error) {
	if err := req.normalize(); err != nil {
		return tenant.Tenant{}, err
	}
	if req.Server == LeastLoaded {
		loads, err := p.Loads(ctx)
		if err != nil {
			return tenant.Tenant{}, err
		}
		req.Server = loads[0].Server
	}
	if p.newer != nil {
		return tenant.Tenant{}, fmt.Errorf("create tenant %q: %w", req.Slug, p.newer)
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
		// A sign-up with no id of its own may get a pre-provisioned
		// tenant: renaming one is faster than creating one.
		if how == methodAuto && req.Fill == nil {
			if t, ok, err := p.claim(ctx, req); err != nil || ok {
				return t, err
			}
		}
		req.ID = tenant.NewID()
	}
	if req.Model == tenant.ModelRow && req.Fill == nil {
		return p.createRow(ctx, req)
	}
	schema, database, err := p.placement(ctx, req.ID, req.Model, req.Server)
	if err != nil {
		return tenant.Tenant{}, err
	}
	t := tenant.Tenant{
		ID: req.ID, Slug: req.Slug, DisplayName: req.DisplayName, Model: req.Model,
		Server: req.Server, Schema: schema, Database: database, State: tenant.StateProvisioning,
	}
	start := time.Now()
	insert := p.dir.Insert
	if req.Fill != nil {
		insert = p.dir.InsertToFill
	}
	if err := insert(ctx, t); err != nil {
		if errors.Is(err, tenant.ErrSlugTaken) || isCode(err, pgerrcode.UniqueViolation) {
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
	if req.Fill != nil {
		return p.createFilled(ctx, t, req.Fill, start)
	}
	if t.Model == tenant.ModelSchema && how != methodMigrate && t.Server == directory.DefaultServer {
		if out, done, err := p.createSchemaFast(ctx, t); done {
			if err == nil {
				p.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "tenant created", slog.String("tenant", t.ID.String()),
					slog.String("slug", t.Slug), slog.String("model", string(t.Model)), slog.Duration("took", time.Since(start)))
			}
			return out, err
		}
	}
	t, err = p.resumeWith(ctx, t.ID, how == methodMigrate)
	if err == nil {
		p.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "tenant created", slog.String("tenant", t.ID.String()),
			slog.String("slug", t.Slug), slog.String("model", string(t.Model)), slog.Duration("took", time.Since(start)))
	}
	return t, err
}

// createRow records a row tenant. It is only a directory entry: one
// statement makes it whole, with its server looked up and its ledger entry
// written, so it is born active.
func (p *Provisioner) createRow(ctx context.Context, req Request) (tenant.Tenant, error) {
	start := time.Now()
	t, ok, err := p.dir.InsertActive(ctx, tenant.Tenant{ID: req.ID, Slug: req.Slug, DisplayName: req.DisplayName, Model: req.Model,
		Server: req.Server, Schema: SharedSchema, SchemaVersion: p.mig.Set().Head()})
	if err != nil {
		if errors.Is(err, tenant.ErrSlugTaken) || isCode(err, pgerrcode.UniqueViolation) {
			// Two requests with the same id raced; the other one inserted.
			if got, gerr := p.dir.Get(ctx, req.ID); gerr == nil {
				if got.Slug != req.Slug || got.Model != req.Model {
					return tenant.Tenant{}, fmt.Errorf("tenant %s exists as %s (%s): %w", got.ID, got.Slug, got.Model, tenant.ErrSlugTaken)
				}
				return got, nil
			}
		}
		return tenant.Tenant{}, err
	}
	if !ok {
		return tenant.Tenant{}, fmt.Errorf("server %q: %w", req.Server, ErrUnknownServer)
	}
	p.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "tenant created", slog.String("tenant", t.ID.String()),
		slog.String("slug", t.Slug), slog.String("model", string(t.Model)), slog.Duration("took", time.Since(start)))
	return t, nil
}

// Resume finishes the provisioning of tenant id. It is what Create runs after
// writing the intent, and it is safe to run any number of times, also
// concurrently: a per-tenant lock makes the second caller wait.
func (p *Provisioner) Resume(ctx context.Context, id tenant.ID) (tenant.Tenant, error) {
	return p.resumeWith(ctx, id, false)
}

// resumeWith is Resume; migrate makes the objects without templates.
func (p *Provisioner) resumeWith(ctx context.Context, id tenant.ID, migrate bool) (tenant.Tenant, error) {
	var out tenant.Tenant
	err := p.withTenantLock(ctx, id, func(conn *pgx.Conn) (err error) {
		pu := p.forTenant(id)
		pu.migrate = migrate
		out, err = p.resumeFor(ctx, conn, id, pu)
		return err
	})
	if err != nil {
		return out, fmt.Errorf("provision tenant %s: %w", id, err)
	}
	return out, nil
}

// resume is Resume for a caller that holds the tenant's lock on conn.
func (p *Provisioner) resume(ctx context.Context, conn *pgx.Conn, id tenant.ID) (tenant.Tenant, error) {
	return p.resumeFor(ctx, conn, id, p.forTenant(id))
}

func (p *Provisioner) resumeFor(ctx context.Context, conn *pgx.Conn, id tenant.ID, pu purpose) (tenant.Tenant, error) {
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
	if pu.fill == nil {
		// A tenant created to be filled cannot be finished without its
		// filler: it would serve empty under its slug.
		toFill, err := p.dir.ToFill(ctx, id)
		if err != nil {
			return t, err
		}
		if toFill {
			return t, fmt.Errorf("tenant %s: %w", id, ErrUnfilled)
		}
	}
	var version int
	switch t.Model {
	case tenant.ModelRow:
		version = p.mig.Set().Head()
	case tenant.ModelSchema:
		version, err = p.createSchemaTenant(ctx, conn, t, pu)
	case tenant.ModelDatabase:
		version, err = p.createDatabaseTenant(ctx, t, pu)
	}
	if err != nil {
		_ = p.dir.Log(ctx, id, "create", "failed", err.Error())
		return t, err
	}
	if err := p.dir.SetSchemaVersion(ctx, id, version); err != nil {
		return t, err
	}
	if pu.fill != nil {
		if err := p.dir.Log(ctx, id, "create", "fill", ""); err != nil {
			return t, err
		}
		t.SchemaVersion = version
		if err := pu.fill(ctx, t); err != nil {
			_ = p.dir.Log(ctx, id, "create", "failed", err.Error())
			return t, err
		}
	}
	if t, err = p.dir.SetState(ctx, id, tenant.StateActive, tenant.StateProvisioning); err != nil {
		return t, err
	}
	return t, p.dir.Log(ctx, id, "create", "active", "")
}

// createFilled finishes a tenant whose intent to be filled Create has just
// written: its objects, the fill, then activation, under the tenant's lock.
// A failed fill deletes the tenant again, so that nothing is left of it.
func (p *Provisioner) createFilled(ctx context.Context, t tenant.Tenant, fill func(context.Context, tenant.Tenant) error, start time.Time) (tenant.Tenant, error) {
	var out tenant.Tenant
	err := p.withTenantLock(ctx, t.ID, func(conn *pgx.Conn) (err error) {
		pu := p.forTenant(t.ID)
		pu.fill = fill
		out, err = p.resumeFor(ctx, conn, t.ID, pu)
		if err == nil {
			return nil
		}
		// Also when ctx ended: the undo must not stop half way.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
		defer cancel()
		// No grace: nobody ever had this tenant.
		if _, derr := p.delete(uctx, conn, t.ID, 0); derr != nil {
			return errors.Join(err, fmt.Errorf("remove the unfilled tenant (Reconcile finishes it): %w", derr))
		}
		return err
	})
	if err != nil {
		return out, fmt.Errorf("provision tenant %s: %w", t.ID, err)
	}
	p.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "tenant created", slog.String("tenant", t.ID.String()),
		slog.String("slug", t.Slug), slog.String("model", string(t.Model)), slog.Bool("filled", true), slog.Duration("took", time.Since(start)))
	return out, nil
}

// undoTimeout bounds the removal of a tenant whose creation failed.
const undoTimeout = 2 * time.Minute

// withTenantLock runs fn holding the tenant's provisioning lock: a session
// advisory lock on a connection held for the whole operation. That connection
// is not one of the pool's: fn uses the pool, and callers waiting for the lock
// must not hold the pool connections the holder needs, or a small pool would
// leave them all waiting for ever (SECURITY.md, F08).
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
// (SECURITY.md, I26: namespaced keys).
const lockNamespace = 0x4c4c5052 // "LLPR"

// TenantLockKeys are the two keys of tenant id's provisioning lock, a
// session advisory lock in the control database. Work on the tenant's tables
// outside this package (a fleet run's migration step) holds it too, so that
// no create, purge or move of the tenant runs meanwhile.
func TenantLockKeys(id tenant.ID) (int32, int32) { return lockKeys(id) }

func lockKeys(id tenant.ID) (int32, int32) {
	return lockNamespace, int32(uint32(id[12])<<24 | uint32(id[13])<<16 | uint32(id[14])<<8 | uint32(id[15]))
}

// createSchemaTenant creates the tenant's role, schema and tables in one
// transaction: a replay of the template's clone script. When the migration
// set cannot be cloned, or the schema exists from an earlier attempt, the
// transaction creates what is missing of the role and schema, and the
// migrations then run one by one. Each part skips what a previous attempt
// finished. pu says whom the objects are for.
func (p *Provisioner) createSchemaTenant(ctx context.Context, conn *pgx.Conn, t tenant.Tenant, pu purpose) (int, error) {
	if err := p.dir.Log(ctx, t.ID, pu.op, "schema", t.Schema); err != nil {
		return 0, err
	}
	if t.Server != directory.DefaultServer {
		// Another server's database: its role and schema are made there,
		// and its tables migrated (the template is the control
		// database's).
		other, err := p.Connect(ctx, t.Server, t.Database)
		if err != nil {
			return 0, err
		}
		defer other.Close(context.WithoutCancel(ctx))
		conn, pu.migrate = other, true
	}
	var script *cloneScript
	if !pu.migrate {
		script = p.cloneScriptOrNil(ctx)
	}
	var cloned bool
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) (err error) {
		cloned, err = p.schemaTenantTx(ctx, tx, t, script, pu.mark)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("create role and schema: %w", err)
	}
	if cloned {
		return script.Version, nil
	}
	res, err := p.mig.Apply(ctx, conn, migration.Target{Schema: t.Schema, Grantee: t.ID.RoleName()})
	if err != nil {
		return 0, err
	}
	return res.To, nil
}

// createSchemaFast finishes a schema tenant whose intent Create has just
// written, in one transaction on a pool connection: objects, ledger and
// activation commit together, so a crash leaves the tenant in state
// provisioning with nothing created. It takes the tenant's lock for the
// transaction without waiting; when another session holds it (Reconcile
// resuming the new tenant) or the set cannot be cloned, done is false and
// the caller resumes as usual.
func (p *Provisioner) createSchemaFast(ctx context.Context, t tenant.Tenant) (out tenant.Tenant, done bool, err error) {
	script := p.cloneScriptOrNil(ctx)
	if script == nil {
		return out, false, nil
	}
	conn, err := p.admin.Acquire(ctx)
	if err != nil {
		return out, false, nil
	}
	defer conn.Release()
	errSkip := errors.New("resume instead")
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		k1, k2 := lockKeys(t.ID)
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, $2)`, k1, k2).Scan(&locked); err != nil {
			return err
		}
		if !locked {
			return errSkip
		}
		if err := directory.LogStep(ctx, tx, t.ID, "create", "schema", t.Schema); err != nil {
			return err
		}
		cloned, err := p.schemaTenantTx(ctx, tx, t, script, p.marker(t.ID))
		if err != nil {
			return err
		}
		if !cloned {
			return errSkip // objects of an earlier attempt: Resume migrates them
		}
		out, err = directory.Activate(ctx, tx, t.ID, script.Version)
		return err
	})
	if errors.Is(err, errSkip) {
		return out, false, nil
	}
	if err != nil {
		_ = p.dir.Log(ctx, t.ID, "create", "failed", err.Error())
		return out, true, fmt.Errorf("provision tenant %s: %w", t.ID, err)
	}
	return out, true, nil
}

// cloneScriptOrNil returns the clone script of the migration set, or nil
// when schema tenants must be migrated instead. A template that cannot be
// built is logged and makes this tenant a migrated one: templates are
// only ever a shortcut.
func (p *Provisioner) cloneScriptOrNil(ctx context.Context) *cloneScript {
	s, ok, err := p.schemaScript(ctx)
	if err != nil {
		p.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "template schema unavailable; migrating the tenant instead", slog.String("error", err.Error()))
	}
	if !ok || err != nil {
		return nil
	}
	return &s
}

// schemaTenantTx creates, in tx, what is missing of a schema tenant's role
// and schema and, when the schema is new and script is not nil, its tables
// and ledger. cloned reports the latter.
func (p *Provisioner) schemaTenantTx(ctx context.Context, tx pgx.Tx, t tenant.Tenant, script *cloneScript, mark string) (cloned bool, err error) {
	role, schema := t.ID.RoleName(), t.Schema
	var haveRole, haveSchema bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1), EXISTS (SELECT FROM pg_namespace WHERE nspname = $2)`,
		role, schema).Scan(&haveRole, &haveSchema); err != nil {
		return false, err
	}
	var b strings.Builder
	if !haveRole {
		fmt.Fprintf(&b, "CREATE ROLE %s NOLOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;", ident.Quote(role))
	}
	// Also on a role an earlier attempt left: Reconcile removes only
	// what carries the marker.
	fmt.Fprintf(&b, "COMMENT ON ROLE %s IS %s;", ident.Quote(role), ident.Literal(mark))
	// The app role may switch to the tenant role for one transaction;
	// being NOINHERIT, it has none of its privileges otherwise.
	fmt.Fprintf(&b, "GRANT %s TO %s;", ident.Quote(role), ident.Quote(p.cfg.AppRole))
	if !haveSchema {
		fmt.Fprintf(&b, "SET LOCAL ROLE %s; CREATE SCHEMA %s; COMMENT ON SCHEMA %s IS %s;\n",
			ident.Quote(p.cfg.OwnerRole), ident.Quote(schema), ident.Quote(schema), ident.Literal(mark))
		if script != nil {
			// The search_path a migration runs with (migration.Migrator),
			// so unqualified names resolve as they did in the template.
			fmt.Fprintf(&b, "SET LOCAL search_path = %s, pg_catalog, pg_temp; SET LOCAL check_function_bodies = off;\n", ident.Quote(schema))
			b.WriteString(script.ddl(schema))
			b.WriteString(script.grants(schema, role))
			b.WriteString(script.ledger(schema))
			b.WriteString("SET LOCAL check_function_bodies TO DEFAULT; SET LOCAL search_path TO DEFAULT; SET LOCAL ROLE NONE;")
			cloned = true
		}
	}
	if _, err := tx.Exec(ctx, b.String()); err != nil {
		return false, err
	}
	return cloned, nil
}

// createDatabaseTenant creates the tenant's login role and database, locks
// the database down and finishes the tenant schema inside it. On the
// directory's own server the database is a copy of the template database,
// whose schema is renamed to the tenant's; elsewhere, or when the template
// cannot be had, it comes from template0 and the schema is migrated.
func (p *Provisioner) createDatabaseTenant(ctx context.Context, t tenant.Tenant, pu purpose) (int, error) {
	role, db := t.ID.RoleName(), t.Database
	if err := p.dir.Log(ctx, t.ID, pu.op, "role", role); err != nil {
		return 0, err
	}
	// Roles and databases are the cluster's: made on the tenant's server.
	adm, err := p.adminOn(ctx, t.Server)
	if err != nil {
		return 0, err
	}
	if err := ensureRole(ctx, adm, p.roles, role, "LOGIN NOINHERIT", p.roles.Password(role)); err != nil {
		return 0, err
	}
	if _, err := adm.Exec(ctx, fmt.Sprintf("COMMENT ON ROLE %s IS %s", ident.Quote(role), ident.Literal(pu.mark))); err != nil {
		return 0, err
	}
	var exists bool
	if err := adm.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, db).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		if err := p.dir.Log(ctx, t.ID, pu.op, "database", db); err != nil {
			return 0, err
		}
		if err := p.createDatabase(ctx, t, !pu.migrate); err != nil {
			return 0, err
		}
	}
	if _, err := adm.Exec(ctx, fmt.Sprintf(`COMMENT ON DATABASE %s IS %s;
		REVOKE ALL ON DATABASE %s FROM PUBLIC;
		GRANT CONNECT ON DATABASE %s TO %s`, ident.Quote(db), ident.Literal(pu.mark), ident.Quote(db), ident.Quote(db), ident.Quote(role))); err != nil {
		return 0, fmt.Errorf("lock down database: %w", err)
	}
	conn, err := p.Connect(ctx, t.Server, db)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	target := migration.Target{Schema: t.Schema, Grantee: role}
	// The clone script names the relations of the set's template, which
	// the template database holds too when it is at the set's head.
	var script *cloneScript
	if !pu.migrate {
		script = p.cloneScriptOrNil(ctx)
	}
	// No public schema: nothing on a tenant's search path but its own
	// tables. A copy of the template holds the template's schema, migrated
	// and with its ledger: it becomes the tenant's, in one transaction.
	var fromTemplate bool
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var haveSchema bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1), EXISTS (SELECT FROM pg_namespace WHERE nspname = $2)`,
			TemplateSchema, t.Schema).Scan(&fromTemplate, &haveSchema); err != nil {
			return err
		}
		adopt := fromTemplate && !haveSchema
		sql := fmt.Sprintf(`SET LOCAL ROLE %s; DROP SCHEMA IF EXISTS public;`, ident.Quote(p.cfg.OwnerRole))
		switch {
		case adopt:
			sql += fmt.Sprintf(`ALTER SCHEMA %s RENAME TO %s;`, ident.Quote(TemplateSchema), ident.Quote(t.Schema))
		case !haveSchema:
			sql += fmt.Sprintf(`CREATE SCHEMA %s;`, ident.Quote(t.Schema))
		}
		if _, err := tx.Exec(ctx, sql); err != nil || !adopt {
			return err
		}
		var version int
		if err := tx.QueryRow(ctx, `WITH u AS (UPDATE landlord.target_migrations SET target = $1 WHERE target = $2 RETURNING version)
			SELECT coalesce(max(version), 0) FROM u`, t.Schema, TemplateSchema).Scan(&version); err != nil {
			return err
		}
		if script == nil || version != script.Version {
			if err := migration.Secure(ctx, tx, target); err != nil {
				return err
			}
		} else if _, err := tx.Exec(ctx, script.grants(t.Schema, role)); err != nil {
			// The grants each migration step would have given the role,
			// by name.
			return err
		}
		return repinFunctions(ctx, tx, TemplateSchema, t.Schema)
	})
	if err != nil {
		return 0, fmt.Errorf("create tenant schema: %w", err)
	}
	if !fromTemplate {
		// A database from template0 (another server's, or when the
		// template could not be had) is locked down as the template was.
		if err := p.lockDown(ctx, conn, db); err != nil {
			return 0, err
		}
	}
	// The global tables before the tenant's (which may reference them):
	// a copy of the template holds them, maybe at older rows; a database
	// from template0 gets them here.
	if err := p.syncNew(ctx, conn, directory.CopyKey{Server: t.Server, Database: db}); err != nil {
		return 0, err
	}
	res, err := p.mig.Apply(ctx, conn, target)
	if err != nil {
		return 0, err
	}
	// After the copy (or the install from template0): a copy of a
	// template made before the installation's check changed, and read
	// here after the change's pass listed the databases, still gets it.
	if err := p.ensureContextCheck(ctx, conn); err != nil {
		return 0, err
	}
	return res.To, nil
}

// createDatabase creates the database of tenant t: a copy of the template
// database when t is on the directory's own server and the template is
// ready and useTemplate is set, else a database from template0.
func (p *Provisioner) createDatabase(ctx context.Context, t tenant.Tenant, useTemplate bool) error {
	db, owner := ident.Quote(t.Database), ident.Quote(p.cfg.OwnerRole)
	adm, err := p.adminOn(ctx, t.Server)
	if err != nil {
		return err
	}
	if useTemplate && t.Server == directory.DefaultServer {
		ok, err := p.templateDatabase(ctx)
		if err != nil {
			p.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "template database unavailable; creating the tenant database from template0",
				slog.String("error", err.Error()))
		}
		for attempt := 0; ok && err == nil; attempt++ {
			// WAL_LOG: FILE_COPY forces two checkpoints per database.
			err := p.exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s TEMPLATE %s STRATEGY WAL_LOG", db, owner, ident.Quote(p.TemplateDatabase())))
			switch {
			case err == nil || isCode(err, pgerrcode.DuplicateDatabase): // a concurrent attempt
				return nil
			case isCode(err, pgerrcode.ObjectInUse) && attempt < 3:
				// "source database is being accessed by other users": a
				// fleet run is migrating the template. PostgreSQL waited
				// five seconds already; wait a little more.
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
				}
			case isCode(err, pgerrcode.ObjectInUse, pgerrcode.InvalidCatalogName): // still busy, or dropped meanwhile
				p.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "template database busy; creating the tenant database from template0",
					slog.String("error", err.Error()))
				ok = false
			default:
				return fmt.Errorf("create database from template: %w", err)
			}
		}
	}
	// template0 holds nothing an installation added to template1
	// (SECURITY.md, I21).
	_, err = adm.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING 'UTF8' STRATEGY WAL_LOG", db, owner))
	if err != nil && !isCode(err, pgerrcode.DuplicateDatabase) {
		return fmt.Errorf("create database: %w", err)
	}
	return nil
}

// purpose says whom the objects of a schema or database tenant are made
// for: a tenant, or the reserve.
type purpose struct {
	mark string // the comment on every object
	op   string // the ledger operation of the steps
	// migrate makes the objects without templates, as every tenant was
	// made before there were any: MeasureCreate's baseline.
	migrate bool
	// fill, when set, runs before activation (Request.Fill).
	fill func(context.Context, tenant.Tenant) error
}

// forTenant is the purpose of a tenant's own objects.
func (p *Provisioner) forTenant(id tenant.ID) purpose {
	return purpose{mark: p.marker(id), op: "create"}
}

// repinFunctions rewrites the pinned search paths of the functions in schema
// to (renamed from schema from) so that a function created with
// SET search_path FROM CURRENT in the template keeps finding its tables
// after the rename (SECURITY.md, I09, I24). The new path is set through
// set_config, a bind parameter, and copied with FROM CURRENT; nothing is
// spliced into SQL but the function's own signature as PostgreSQL prints it.
func repinFunctions(ctx context.Context, tx pgx.Tx, from, to string) error {
	rows, err := tx.Query(ctx, `SELECT p.oid::regprocedure::text, substr(c, length('search_path=') + 1)
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, unnest(p.proconfig) c
		WHERE n.nspname = $1 AND c LIKE 'search\_path=%'`, to)
	if err != nil {
		return err
	}
	type pin struct{ fn, path string }
	pins, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pin, error) {
		var x pin
		err := r.Scan(&x.fn, &x.path)
		return x, err
	})
	if err != nil {
		return fmt.Errorf("read pinned search paths: %w", err)
	}
	for _, pn := range pins {
		path := strings.ReplaceAll(pn.path, ident.Quote(from), ident.Quote(to))
		path = replaceWord(path, from, ident.Quote(to))
		if path == pn.path {
			continue
		}
		if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, path); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "ALTER FUNCTION "+pn.fn+" SET search_path FROM CURRENT"); err != nil {
			return fmt.Errorf("repin %s: %w", pn.fn, err)
		}
	}
	return nil
}

// replaceWord replaces each element of the comma-separated list path that is
// exactly the unquoted identifier word.
func replaceWord(path, word, with string) string {
	parts := strings.Split(path, ",")
	for i, p := range parts {
		if strings.TrimSpace(p) == word {
			parts[i] = strings.Replace(p, word, with, 1)
		}
	}
	return strings.Join(parts, ",")
}

// ConnConfig returns the connection settings for database on server as the
// administrator, or, with a non-empty role, as that Landlord-managed role
// with its derived password.
func (p *Provisioner) ConnConfig(ctx context.Context, server, database, role string) (*pgx.ConnConfig, error) {
	s, err := p.server(ctx, server)
	if err != nil {
		return nil, err
	}
	cfg := s.ConnConfig(p.admin.Config().ConnConfig, database)
	if role != "" {
		cfg.User, cfg.Password = role, p.roles.Password(role)
	}
	return cfg, nil
}

// Connect opens a connection to database on server as the administrator.
func (p *Provisioner) Connect(ctx context.Context, server, database string) (*pgx.Conn, error) {
	cfg, err := p.ConnConfig(ctx, server, database, "")
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database %s on server %s: %w", database, server, err)
	}
	return conn, nil
}
