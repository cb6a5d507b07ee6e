// Package audit checks a Landlord installation's catalog for the mistakes
// that break tenant isolation: a tenant table without forced row-level
// security or without the restrictive tenant policy, an always-true policy, a
// key that does not lead with tenant_id, a tenant-traffic role that bypasses
// row-level security, a SECURITY DEFINER function or an owner-rights view
// over tenant tables, a tenant database anyone may connect to, a PostgreSQL
// minor with a known row-level security bug, and more (see SECURITY.md).
//
// Run audits one database in one round trip and only reads the catalog, so
// it is cheap enough to run at startup; Fleet walks the directory and audits
// the control database and every tenant database. Every Finding names the
// object, the threat it opens (SECURITY.md id) and the statement or change
// that fixes it.
package audit

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// Severity says whether a finding breaks isolation (SeverityError) or only
// weakens it (SeverityWarning).
type Severity string

// Severities of findings.
const (
	// SeverityError marks a finding that lets one tenant reach, change or
	// learn about another tenant's data. An installation with one should not
	// serve tenant traffic.
	SeverityError Severity = "error"
	// SeverityWarning marks a finding that leaks little or makes a later
	// mistake easier, such as ids drawn from a sequence shared by tenants.
	SeverityWarning Severity = "warning"
)

// Finding is one problem the audit found.
type Finding struct {
	// Check names the check that found it, e.g. "rls_not_forced".
	Check string `json:"check"`
	// Severity is error or warning.
	Severity Severity `json:"severity"`
	// Object is what is wrong: a table ("shared.products"), a policy or
	// constraint ("landlord_tenant on shared.products"), an index, a role, a
	// function ("public.f(integer)"), a schema, a database or "server".
	Object string `json:"object"`
	// Database is the database the object lives in (for a role: the database
	// where it was checked).
	Database string `json:"database"`
	// Threat is the SECURITY.md id of what the mistake opens, e.g. "I01".
	Threat string `json:"threat"`
	// Message says what is wrong and why it matters.
	Message string `json:"message"`
	// Fix is the statement, or the change, that repairs it.
	Fix string `json:"fix"`
}

// Conn is what Run needs from a connection: *pgx.Conn, *pgxpool.Pool,
// *pgxpool.Conn and pgx.Tx all satisfy it. Any role may run the audit: it
// reads only catalog tables and functions every role can read.
type Conn interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Config holds the optional settings of Run.
type Config struct {
	// AppRole runs the row and schema models' tenant traffic. Default
	// "landlord_app". It must exist, except in a tenant database, where
	// only the tenant's own role is checked.
	AppRole string
	// OwnerRole owns the tenant tables; fixes that move ownership name it.
	// Default "landlord_owner".
	OwnerRole string
	// SharedSchema holds the row model's tables. Default "shared".
	SharedSchema string
	// Schemas limits the table checks to these schemas, and the tenant-role
	// checks to their roles. Default: the shared schema and every tenant
	// schema (t_ and 32 hex digits) of the database.
	Schemas []string
	// TenantDatabase says the database is a database tenant's own (named
	// t_ and 32 hex digits): its access is checked too (no CONNECT or
	// TEMPORARY for PUBLIC, CONNECT granted to the tenant's role only; the
	// owner role keeps its implicit rights), and the tenant's role is
	// checked instead of the app role.
	TenantDatabase bool
	// Passwords, when set, returns the password Landlord derives for a
	// login role (provision.Roles.Password): the app role's, or in a
	// tenant database the tenant role's, stored verifier is checked
	// against it (SECURITY.md, I33). Reading verifiers takes a superuser;
	// without one the audit says it could not check. Fleet sets it from
	// the installation's secret.
	Passwords func(role string) string
	// ContextCheck is the installation's recorded context check
	// (migration.ContextCheck): the verifier in each database must make
	// it. Default "signed". Fleet reads it from the directory.
	ContextCheck string

	// noVersion skips the server version check, which Fleet runs once per
	// server rather than once per database.
	noVersion bool
}

func (c *Config) setDefaults() {
	if c.AppRole == "" {
		c.AppRole = "landlord_app"
	}
	if c.OwnerRole == "" {
		c.OwnerRole = "landlord_owner"
	}
	if c.SharedSchema == "" {
		c.SharedSchema = provision.SharedSchema
	}
	if c.ContextCheck == "" {
		c.ContextCheck = string(migration.ContextSigned)
	}
}

func (c *Config) validate() error {
	for field, v := range map[string]string{"AppRole": c.AppRole, "OwnerRole": c.OwnerRole, "SharedSchema": c.SharedSchema} {
		if err := tenant.CheckIdent(v); err != nil {
			return fmt.Errorf("audit config: %s: %w", field, err)
		}
	}
	if _, err := migration.ParseContextCheck(c.ContextCheck); err != nil {
		return fmt.Errorf("audit config: ContextCheck: %w", err)
	}
	for _, s := range c.Schemas {
		if err := tenant.CheckIdent(s); err != nil {
			return fmt.Errorf("audit config: Schemas: %w", err)
		}
	}
	return nil
}

// tenantDatabaseName matches the names Landlord derives for tenant schemas
// and databases (tenant.ID.SchemaName, DatabaseName).
var tenantDatabaseName = regexp.MustCompile(`^t_[0-9a-f]{32}$`)

// metaSQL reads what Run needs besides the checks.
const metaSQL = `SELECT current_database(), current_setting('server_version_num')::int,
	current_setting('server_version'), EXISTS (SELECT FROM pg_roles WHERE rolname = $1),
	has_table_privilege('pg_catalog.pg_authid', 'SELECT')`

// Run audits the database conn is connected to and returns its findings,
// errors first. It sends two read-only catalog queries in one round trip.
// An error means the audit could not run, never that it found something;
// use AsError to turn error-severity findings into an error.
func Run(ctx context.Context, conn Conn, cfg Config) ([]Finding, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	schemas := cfg.Schemas
	if schemas == nil {
		schemas = []string{}
	}
	app := cfg.AppRole
	if cfg.TenantDatabase {
		// A tenant database's traffic runs as the tenant's own login role;
		// the app role has no business there and is checked in the control
		// database, once.
		app = ""
	}
	b := &pgx.Batch{}
	b.Queue(metaSQL, app)
	b.Queue(checksSQL(), cfg.SharedSchema, schemas, app, cfg.OwnerRole,
		migration.TenantPredicate, migration.PolicyRestrictive, cfg.TenantDatabase, migration.TenantDefault, cfg.ContextCheck)
	br := conn.SendBatch(ctx, b)
	defer br.Close()

	var (
		database, version string
		versionNum        int
		appExists, authid bool
	)
	if err := br.QueryRow().Scan(&database, &versionNum, &version, &appExists, &authid); err != nil {
		return nil, fmt.Errorf("audit: read server settings: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("audit database %q: %w", database, err)
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Finding, error) {
		var f Finding
		err := r.Scan(&f.Check, &f.Object, &f.Message, &f.Fix)
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit database %q: %w", database, err)
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("audit database %q: %w", database, err)
	}
	if cfg.TenantDatabase && !tenantDatabaseName.MatchString(database) {
		return nil, fmt.Errorf("audit database %q: %w", database, ErrNotTenantDatabase)
	}
	if !cfg.TenantDatabase && !appExists {
		return nil, fmt.Errorf("audit database %q: app role %q: %w", database, cfg.AppRole, ErrUnknownRole)
	}
	byID := make(map[string]check)
	for _, c := range catalog() {
		byID[c.id] = c
	}
	for i := range found {
		c := byID[found[i].Check]
		found[i].Severity, found[i].Threat, found[i].Database = c.severity, c.threat, database
	}
	if cfg.Passwords != nil {
		pw, err := passwordFindings(ctx, conn, cfg, app, database, authid)
		if err != nil {
			return nil, err
		}
		found = append(found, pw...)
	}
	if !cfg.noVersion {
		for _, f := range versionFindings(versionNum, version) {
			f.Database = database
			found = append(found, f)
		}
	}
	sortFindings(found)
	return found, nil
}

// AsError returns nil when findings hold no error-severity finding, and
// otherwise an error wrapping ErrFindings that counts them and names the
// first few. Warnings never make an error.
func AsError(findings []Finding) error {
	var errs []string
	for _, f := range findings {
		if f.Severity == SeverityError {
			errs = append(errs, fmt.Sprintf("%s %s: %s", f.Threat, f.Object, f.Check))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	const shown = 3
	n, more := len(errs), ""
	if n > shown {
		more = fmt.Sprintf(", and %d more", n-shown)
		errs = errs[:shown]
	}
	return fmt.Errorf("%w: %d error finding(s): %s%s", ErrFindings, n, strings.Join(errs, "; "), more)
}

// sortFindings orders findings by database, errors first, then by check and
// object, so that output is stable from run to run.
func sortFindings(fs []Finding) {
	rank := func(s Severity) int {
		if s == SeverityError {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(a.Database, b.Database),
			cmp.Compare(rank(a.Severity), rank(b.Severity)),
			cmp.Compare(a.Check, b.Check),
			cmp.Compare(a.Object, b.Object),
		)
	})
}
