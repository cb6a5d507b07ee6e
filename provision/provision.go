// Package provision creates and deletes tenants in all three models and
// cleans up after crashes. Every operation writes its intent to the directory
// before it acts, uses names derived from the tenant id, and can be run again:
// a retry finishes what a crash interrupted, and Reconcile removes objects no
// directory entry owns (SECURITY.md, F03, F04).
package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

// SharedSchema holds the tables of row tenants on every server.
const SharedSchema = "shared"

// TemplateSchema is the name of the schema that provisioning templates hold:
// one in the control database, cloned for new schema tenants, and one in the
// template database (TemplateDatabase), copied for new database tenants.
// Fleet migrations keep both at the head version.
const TemplateSchema = "landlord_template"

// Config holds the optional settings of a Provisioner.
type Config struct {
	// OwnerRole owns every object Landlord creates. Default "landlord_owner".
	OwnerRole string
	// AppRole runs tenant traffic for the row and schema models. Default
	// "landlord_app".
	AppRole string
	// Logger receives one line per tenant created or deleted. Default: discard.
	Logger *slog.Logger
	// BeforeDrop, when set, is called by Delete (and by Reconcile as it
	// finishes an interrupted deletion) once the tenant is marked deleting
	// and the deletion's intent is in the ledger, before any of its rows or
	// objects are dropped: the place to stop the tenant's traffic and close
	// connections to its database. An error stops the deletion; the tenant
	// stays deleting, and a later Delete or Reconcile tries again.
	BeforeDrop func(ctx context.Context, t tenant.Tenant) error
	// PurgeGrace is how long Delete keeps a deleted tenant before its
	// purge is due: the tenant is deleting at once (no traffic), and
	// Restore takes it back until Purge, PurgeDue or Reconcile removes
	// it. Default 0: Delete purges at once. Negative is an error.
	PurgeGrace time.Duration
	// PurgeKeep names the application's tables ("schema.table") whose rows
	// of a purged tenant stay, each with why: the platform's own audit
	// trail of who looked into a tenant, say. The verifier lists them as
	// kept, with their count, as it does the directory's ledger.
	PurgeKeep map[string]string
	// Install says what New may change in the database; the zero value
	// installs or repairs.
	Install Install
	// Global, when set, is the migration set of the platform-wide tables
	// in schema migration.GlobalSchema: New brings the control database's
	// global schema to it (with InstallNever it only checks the ledger),
	// every database made for tenants gets a copy (see SyncGlobal), and
	// tenant tables may reference them by foreign key.
	Global *migration.Set
}

// Install is what opening an installation may change in the database.
type Install int

const (
	// InstallAlways creates the installation where there is none, and
	// upgrades and repairs an existing one: roles, grants, the control
	// schema, the shared schema.
	InstallAlways Install = iota
	// InstallExisting refuses a database without an installation, with
	// an error wrapping ErrNotInstalled, and upgrades and repairs an
	// existing one. Tools that change tenants use it.
	InstallExisting
	// InstallNever changes nothing in the database: no role, grant, schema
	// or control-schema migration. A database without an installation, or
	// with one whose control schema is older than this code, is an error
	// wrapping ErrNotInstalled. Tools that only look use it.
	InstallNever
)

func (c *Config) setDefaults() {
	if c.OwnerRole == "" {
		c.OwnerRole = "landlord_owner"
	}
	if c.AppRole == "" {
		c.AppRole = "landlord_app"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	for field, v := range map[string]string{"OwnerRole": c.OwnerRole, "AppRole": c.AppRole} {
		if err := tenant.CheckIdent(v); err != nil {
			return fmt.Errorf("provision config: %s: %w", field, err)
		}
		if strings.HasPrefix(v, "t_") || strings.HasPrefix(v, "r_") {
			return fmt.Errorf("provision config: %s %q: the t_ and r_ prefixes belong to tenants", field, v)
		}
	}
	if c.PurgeGrace < 0 {
		return errors.New("provision config: PurgeGrace must not be negative")
	}
	for table, why := range c.PurgeKeep {
		schema, name, ok := strings.Cut(table, ".")
		if !ok || tenant.CheckIdent(schema) != nil || tenant.CheckIdent(name) != nil || strings.TrimSpace(why) == "" {
			return fmt.Errorf("provision config: PurgeKeep: %q: name a table as schema.table, and say why its rows stay", table)
		}
		if schema == SharedSchema {
			return fmt.Errorf("provision config: PurgeKeep: %q: the shared tables hold the tenants' own data, which a purge removes", table)
		}
	}
	if c.OwnerRole == c.AppRole {
		return errors.New("provision config: OwnerRole and AppRole must differ: the role that runs tenant traffic must not own the tables")
	}
	return nil
}

// Provisioner creates, deletes and reconciles tenants.
type Provisioner struct {
	admin *pgxpool.Pool // control database, as the administrator
	dir   *directory.Directory
	mig   *migration.Migrator
	gmig  *migration.Migrator // nil without global tables
	cfg   Config
	inst  directory.Installation
	roles Roles
	// newer is set when the installation's shared tables were at a newer
	// version than the set at New: ErrOlderMigrations, with the versions.
	newer error
	// clusters are the administrator's pools on the other servers.
	clusters clusters
}

// New returns a Provisioner. admin connects to the control database as a role
// that is a superuser, or has CREATEDB and CREATEROLE and owns the control
// database. migrations are the application's tenant tables. New bootstraps
// the installation: the control schema, the owner and app roles, the default
// server and, on a new installation, the shared schema.
func New(ctx context.Context, admin *pgxpool.Pool, migrations *migration.Set, cfg Config) (*Provisioner, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if migrations == nil {
		return nil, errors.New("provision: no tenant table migrations given")
	}
	mig, err := migration.New(migrations, migration.Config{Owner: cfg.OwnerRole, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	p := &Provisioner{admin: admin, dir: directory.New(admin), mig: mig, cfg: cfg}
	if cfg.Global != nil {
		if p.gmig, err = migration.New(cfg.Global, migration.Config{Owner: cfg.OwnerRole, Logger: cfg.Logger}); err != nil {
			return nil, err
		}
	}
	switch cfg.Install {
	case InstallNever:
		if err := p.attach(ctx); err != nil {
			return nil, err
		}
		return p, nil
	case InstallExisting:
		if err := p.requireInstalled(ctx); err != nil {
			return nil, err
		}
	}
	if err := p.bootstrap(ctx); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return p, nil
}

// requireInstalled refuses a database without an installation.
func (p *Provisioner) requireInstalled(ctx context.Context) error {
	var installed bool
	err := p.admin.QueryRow(ctx, `SELECT to_regclass('landlord.installation') IS NOT NULL AND to_regclass('landlord.target_migrations') IS NOT NULL`).Scan(&installed)
	if err != nil {
		return fmt.Errorf("read the control database: %w", err)
	}
	if !installed {
		return fmt.Errorf("%w in database %s", ErrNotInstalled, p.dbName(ctx))
	}
	return nil
}

// attach reads an existing installation, changing nothing (InstallNever).
func (p *Provisioner) attach(ctx context.Context) error {
	if err := p.requireInstalled(ctx); err != nil {
		return err
	}
	var control int
	if err := p.admin.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM landlord.target_migrations WHERE target = $1`, directory.Schema).Scan(&control); err != nil {
		return fmt.Errorf("read the control schema's ledger: %w", err)
	}
	if head := directory.Migrations().Head(); control < head {
		return fmt.Errorf("%w: the control schema is at version %d, this code needs %d", ErrNotInstalled, control, head)
	}
	var inst directory.Installation
	if err := p.admin.QueryRow(ctx, `SELECT id, secret FROM landlord.installation`).Scan(&inst.ID, &inst.Secret); err != nil {
		return fmt.Errorf("%w: read the installation: %v", ErrNotInstalled, err)
	}
	p.inst = inst
	p.roles = NewRoles(p.cfg.OwnerRole, p.cfg.AppRole, inst.Secret)
	p.keyMigrators()
	if err := p.ensureGlobal(ctx, false); err != nil {
		return err
	}
	// Looking changes nothing, but it must not look through a set that
	// disagrees with what was applied: an edited or missing applied
	// migration is the caller's mistake, reported as Open would report it.
	if _, err := p.mig.Check(ctx, p.admin, migration.Target{Schema: SharedSchema, Grantee: p.cfg.AppRole}); err != nil {
		return err
	}
	return p.checkNewer(ctx)
}

// checkNewer reads the newest migration the shared schema's ledger records
// and sets p.newer when it is beyond the set's head (see Newer).
func (p *Provisioner) checkNewer(ctx context.Context) error {
	var v int
	var name string
	err := p.admin.QueryRow(ctx, `SELECT version, name FROM landlord.target_migrations WHERE target = $1 ORDER BY version DESC LIMIT 1`, SharedSchema).Scan(&v, &name)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: the shared schema has no migrations recorded", ErrNotInstalled)
	case err != nil:
		return fmt.Errorf("read the ledger of %s: %w", SharedSchema, err)
	}
	if head := p.mig.Set().Head(); v > head {
		p.newer = fmt.Errorf("%w: they are at version %d (%s), these migrations end at version %d", ErrOlderMigrations, v, name, head)
	}
	return nil
}

// dbName names the control database for messages; "" when it cannot be read.
func (p *Provisioner) dbName(ctx context.Context) string {
	var db string
	_ = p.admin.QueryRow(ctx, `SELECT current_database()`).Scan(&db)
	return ident.Quote(db)
}

// Admin returns the administrator's pool to the control database that the
// Provisioner was made with.
func (p *Provisioner) Admin() *pgxpool.Pool { return p.admin }

// Directory returns the directory the Provisioner writes.
func (p *Provisioner) Directory() *directory.Directory { return p.dir }

// Roles returns the installation's roles.
func (p *Provisioner) Roles() Roles { return p.roles }

// Installation returns the installation's identity.
func (p *Provisioner) Installation() directory.Installation { return p.inst }

// TemplateDatabase is the name of the installation's template database, from
// which database tenants are created. It is derived from the installation id,
// so two installations on one cluster never share one.
func (p *Provisioner) TemplateDatabase() string { return "landlord_tpl_" + p.inst.ID.Hex()[:16] }

// Newer returns an error wrapping ErrOlderMigrations when the installation's
// tenant tables were at a newer migration version than the Provisioner's set
// when it was made, and nil otherwise.
func (p *Provisioner) Newer() error { return p.newer }

// Migrator returns the migrator of the tenant tables.
func (p *Provisioner) Migrator() *migration.Migrator { return p.mig }

func (p *Provisioner) bootstrap(ctx context.Context) error {
	owner, app := p.cfg.OwnerRole, p.cfg.AppRole
	// INHERIT: in a tenant database the owner acts through its implicit
	// membership in pg_database_owner.
	if err := p.ensureRole(ctx, owner, "NOLOGIN INHERIT", ""); err != nil {
		return err
	}
	// The administrator acts as the owner (SET ROLE) when it creates
	// objects, so that nothing is owned by a superuser or by the app role.
	// A concurrent bootstrap on the same cluster may grant it at the same
	// moment: its catalog row makes ours a unique violation.
	if err := p.exec(ctx, fmt.Sprintf("GRANT %s TO CURRENT_USER", ident.Quote(owner))); err != nil && !isCode(err, pgerrcode.UniqueViolation) {
		return fmt.Errorf("make the administrator a member of %s: %w", owner, err)
	}
	db, err := p.currentDatabase(ctx)
	if err != nil {
		return err
	}
	if err := p.exec(ctx, fmt.Sprintf(`GRANT CREATE, CONNECT ON DATABASE %s TO %s`, ident.Quote(db), ident.Quote(owner))); err != nil {
		return fmt.Errorf("grant %s on the control database: %w", owner, err)
	}
	if err := p.dir.Migrate(ctx, owner); err != nil {
		return err
	}
	if p.inst, err = p.dir.Installation(ctx); err != nil {
		return err
	}
	p.roles = NewRoles(owner, app, p.inst.Secret)
	p.keyMigrators()
	if err := p.ensureRole(ctx, app, "LOGIN NOINHERIT", p.roles.Password(app)); err != nil {
		return err
	}
	if err := p.repairAtBootstrap(ctx); err != nil {
		return err
	}
	// Only Landlord's roles reach the control database, and no one gets
	// temporary objects that could shadow tables (SECURITY.md, I18).
	if err := p.exec(ctx, fmt.Sprintf(`REVOKE CONNECT, TEMPORARY ON DATABASE %s FROM PUBLIC;
		GRANT CONNECT ON DATABASE %s TO %s`, ident.Quote(db), ident.Quote(db), ident.Quote(app))); err != nil {
		return fmt.Errorf("restrict the control database: %w", err)
	}
	if err := p.lockDown(ctx, p.admin, db); err != nil {
		return err
	}
	if err := p.dir.EnsureServer(ctx, directory.Server{ID: directory.DefaultServer, Database: db}); err != nil {
		return err
	}
	if err := p.ensureMemoryFunc(ctx); err != nil {
		return err
	}
	// Before any tenant table: their policies call its verifier.
	if err := migration.SetContextCheck(ctx, p.admin, owner, p.roles.ContextKey(), migration.ContextCheck(p.inst.ContextCheck)); err != nil {
		return err
	}
	// Before the shared schema: tenant tables may reference global ones.
	if err := p.ensureGlobal(ctx, true); err != nil {
		return err
	}
	return p.ensureShared(ctx)
}

// keyMigrators gives the migrators the installation's context key, once
// the installation is known.
func (p *Provisioner) keyMigrators() {
	p.mig = p.mig.WithContextKey(p.roles.ContextKey())
}

// MemoryFunc is the function with which the app role measures the memory
// of the backend it is connected to: the connection manager replaces a
// connection whose backend has grown past its budget (pool.Config.ConnMemory).
// pg_backend_memory_contexts is readable only with pg_read_all_stats, which
// would also show the app role every session's query text; the function
// runs as the owner and shows one number about the caller's own backend.
const MemoryFunc = memorySchema + "." + memoryFuncName

// The parts of MemoryFunc's name.
const (
	memorySchema   = "landlord_backend"
	memoryFuncName = "memory_bytes"
)

// ensureMemoryFunc creates MemoryFunc, owned by the owner role, executable
// by the app role alone, and gives the owner pg_read_all_stats for it. An
// administrator that may not grant pg_read_all_stats leaves the function
// failing; the connection manager then falls back to counting tenants.
func (p *Provisioner) ensureMemoryFunc(ctx context.Context) error {
	owner, app := ident.Quote(p.cfg.OwnerRole), ident.Quote(p.cfg.AppRole)
	schema, fn := ident.Quote(memorySchema), ident.Quote(memorySchema, memoryFuncName)
	var exists bool
	if err := p.admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace
		WHERE n.nspname = 'landlord_backend' AND f.proname = 'memory_bytes')`).Scan(&exists); err != nil {
		return fmt.Errorf("look up %s: %w", MemoryFunc, err)
	}
	if !exists {
		err := p.exec(ctx, fmt.Sprintf(`BEGIN; SET LOCAL ROLE %s;
			CREATE SCHEMA IF NOT EXISTS %s;
			CREATE FUNCTION %s() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
				AS 'SELECT sum(total_bytes)::bigint FROM pg_catalog.pg_backend_memory_contexts';
			REVOKE ALL ON FUNCTION %s() FROM PUBLIC; COMMIT`, owner, schema, fn, fn))
		// A racing bootstrap created it: duplicate schema or function, or
		// its catalog rows.
		if err != nil && !isCode(err, pgerrcode.DuplicateSchema, pgerrcode.DuplicateFunction, pgerrcode.UniqueViolation,
			pgerrcode.InternalError) {
			return fmt.Errorf("create %s: %w", MemoryFunc, err)
		}
	}
	if err := p.exec(ctx, fmt.Sprintf(`BEGIN; SET LOCAL ROLE %s;
		GRANT USAGE ON SCHEMA %s TO %s;
		GRANT EXECUTE ON FUNCTION %s() TO %s; COMMIT`, owner, schema, app, fn, app)); err != nil && !isCode(err, pgerrcode.InternalError) {
		return fmt.Errorf("grant %s to %s: %w", MemoryFunc, p.cfg.AppRole, err)
	}
	if err := p.exec(ctx, "GRANT pg_read_all_stats TO "+owner); err != nil &&
		!isCode(err, pgerrcode.InsufficientPrivilege, pgerrcode.InvalidGrantOperation, pgerrcode.InternalError) {
		return fmt.Errorf("grant pg_read_all_stats to %s: %w", p.cfg.OwnerRole, err)
	}
	return nil
}

// ensureShared creates the shared schema of the control server and brings a
// new one to the head version. An existing shared schema is left alone: fleet
// migrations move it forward.
func (p *Provisioner) ensureShared(ctx context.Context) error {
	conn, err := p.admin.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, SharedSchema).Scan(&exists); err != nil {
		return err
	}
	target := migration.Target{Schema: SharedSchema, Grantee: p.cfg.AppRole}
	if exists {
		v, err := p.mig.Version(ctx, conn, target)
		if err != nil {
			return err
		}
		if v > 0 {
			if err := p.checkNewer(ctx); err != nil {
				return err
			}
			// An app role new to this installation gets its grants now.
			if err := p.grantShared(ctx, conn); err != nil {
				return err
			}
			return p.resecure(ctx, conn, target)
		}
	} else if err := p.createSchema(ctx, conn, SharedSchema, ""); err != nil {
		return err
	}
	if _, err := p.mig.Apply(ctx, conn, target); err != nil {
		return fmt.Errorf("migrate shared schema: %w", err)
	}
	return nil
}

// resecure brings the policies of target's tables to the signed context
// when they were made before it (SECURITY.md, I31), rather than leaving
// them to the next migration step: the shared tables, where every row
// tenant lives, and the templates, which every new tenant copies. Tables
// already current cost one catalog read, and nothing is granted again (a
// grant invalidates every session's plans on the table).
func (p *Provisioner) resecure(ctx context.Context, conn interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}, target migration.Target) error {
	var unsigned bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_policy po JOIN pg_class c ON c.oid = po.polrelid
		WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1) AND po.polname IN ($2, $3)
		  AND pg_get_expr(po.polqual, po.polrelid) NOT LIKE '%' || $4 || '%')`,
		target.Schema, migration.PolicyRestrictive, migration.PolicyPermissive, migration.ContextView).Scan(&unsigned); err != nil {
		return fmt.Errorf("read the policies of %s: %w", target.Schema, err)
	}
	if !unsigned {
		return nil
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(p.cfg.OwnerRole)); err != nil {
			return err
		}
		if err := migration.Secure(ctx, tx, target); err != nil {
			return fmt.Errorf("secure %s: %w", target.Schema, err)
		}
		return nil
	})
}

// grantShared gives the app role the four data privileges on the shared
// tables, as migrations do.
func (p *Provisioner) grantShared(ctx context.Context, conn *pgxpool.Conn) error {
	s, app := ident.Quote(SharedSchema), ident.Quote(p.cfg.AppRole)
	_, err := conn.Exec(ctx, fmt.Sprintf(`BEGIN; SET LOCAL ROLE %s;
		GRANT USAGE ON SCHEMA %s TO %s;
		GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %s TO %s;
		GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %s TO %s; COMMIT`,
		ident.Quote(p.cfg.OwnerRole), s, app, s, app, s, app))
	if err != nil {
		return fmt.Errorf("grant the shared tables to %s: %w", p.cfg.AppRole, err)
	}
	return nil
}

// createSchema creates schema as the owner, with a marker comment.
func (p *Provisioner) createSchema(ctx context.Context, conn *pgxpool.Conn, schema, marker string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		sql := fmt.Sprintf("SET LOCAL ROLE %s; CREATE SCHEMA IF NOT EXISTS %s;", ident.Quote(p.cfg.OwnerRole), ident.Quote(schema))
		if marker != "" {
			sql += fmt.Sprintf("COMMENT ON SCHEMA %s IS %s;", ident.Quote(schema), ident.Literal(marker))
		}
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create schema %s: %w", schema, err)
		}
		return nil
	})
}

// ensureRole creates role with attrs if it does not exist, tolerating a
// concurrent creator. A non-empty password is set as a SCRAM verifier when
// the role is created, or when the secret it derives from changed (recorded
// as a fingerprint in the role's comment).
func (p *Provisioner) ensureRole(ctx context.Context, role, attrs, password string) error {
	return ensureRole(ctx, p.admin, p.roles, role, attrs, password)
}

// ensureRole creates role with attrs on the server conn is connected to when
// it is missing, and sets its password (when not empty) unless the role
// carries the mark of roles' secret already.
func ensureRole(ctx context.Context, conn lockConn, roles Roles, role, attrs, password string) error {
	var comment *string
	err := conn.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1`, role).Scan(&comment)
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("look up role %s: %w", role, err)
	}
	if !exists {
		_, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s %s NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS", ident.Quote(role), attrs))
		if err != nil && !isCode(err, pgerrcode.DuplicateObject, pgerrcode.UniqueViolation) { // or a racing creator's unique violation
			return fmt.Errorf("create role %s: %w", role, err)
		}
	}
	if password == "" {
		return nil
	}
	mark := "landlord secret " + roles.fingerprint()
	if comment != nil && *comment == mark {
		return nil
	}
	verifier, err := scramVerifier(password)
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s %s PASSWORD %s; COMMENT ON ROLE %s IS %s",
		ident.Quote(role), attrs, ident.Literal(verifier), ident.Quote(role), ident.Literal(mark))); err != nil && !isCode(err, pgerrcode.InternalError) {
		// InternalError "tuple concurrently updated": another process set
		// the same password at the same moment.
		return fmt.Errorf("set password of role %s: %w", role, err)
	}
	return nil
}

func (p *Provisioner) currentDatabase(ctx context.Context) (string, error) {
	var db string
	if err := p.admin.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		return "", err
	}
	if err := tenant.CheckIdent(db); err != nil {
		return "", fmt.Errorf("control database name: %w", err)
	}
	return db, nil
}

func (p *Provisioner) exec(ctx context.Context, sql string) error {
	_, err := p.admin.Exec(ctx, sql)
	return err
}

// marker is the comment on every per-tenant object: Reconcile drops an object
// only when it carries this installation's id and no directory entry owns it.
func (p *Provisioner) marker(id tenant.ID) string {
	return "landlord tenant " + id.String() + " installation " + p.inst.ID.String()
}

// isCode reports whether err is a PostgreSQL error with one of the SQLSTATE
// codes (pgerrcode).
func isCode(err error, codes ...string) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	for _, c := range codes {
		if pgErr.Code == c {
			return true
		}
	}
	return false
}
