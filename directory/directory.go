// Package directory is the tenant directory: Landlord's control schema in the
// control database, the queries on it, and an in-process cache that follows
// routing-epoch changes. It is the one source of routing (ARCHITECTURE.md,
// idea 5).
package directory

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

// Schema is the control schema's name.
const Schema = "landlord"

// DefaultServer is the id of the server that holds the directory itself.
const DefaultServer = "main"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the control schema's migrations.
func Migrations() *migration.Set {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	set, err := migration.Load(sub)
	if err != nil {
		panic(err) // covered by tests; a broken file set cannot ship
	}
	return set
}

// Directory reads and writes the control schema. Its methods are safe for
// concurrent use.
type Directory struct {
	db *pgxpool.Pool
}

// New returns a Directory on db, a pool connected to the control database as
// a role that may use the control schema.
func New(db *pgxpool.Pool) *Directory { return &Directory{db: db} }

// Migrate brings the control schema up to date. owner owns what it creates.
func (d *Directory) Migrate(ctx context.Context, owner string) error {
	m, err := migration.New(Migrations(), migration.Config{Owner: owner})
	if err != nil {
		return err
	}
	conn, err := d.db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate control schema: %w", err)
	}
	defer conn.Release()
	if _, err := m.Apply(ctx, conn, migration.Target{Schema: Schema, Plain: true}); err != nil {
		return fmt.Errorf("migrate control schema: %w", err)
	}
	return nil
}

// Installation identifies one Landlord installation.
type Installation struct {
	ID     tenant.ID // marks the objects this installation creates
	Secret []byte    // derives role passwords
	// ContextCheck is how the policies check the tenant context in every
	// database of the installation: "signed" or "unsigned".
	ContextCheck string
}

// Installation returns the installation row, creating it on first use. A
// database cloned from another (a test template, a restored copy) has a
// different oid: it then gets a new id, so that cleaning up orphans in one
// copy never touches objects that belong to another. The secret is kept, so
// existing roles keep their passwords.
func (d *Directory) Installation(ctx context.Context) (Installation, error) {
	var in Installation
	err := pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE landlord.installation IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		var oid uint32
		var cur uint32
		if err := tx.QueryRow(ctx, `SELECT oid FROM pg_database WHERE datname = current_database()`).Scan(&cur); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `SELECT id, database_oid, secret, context_check FROM landlord.installation`).Scan(&in.ID, &oid, &in.Secret, &in.ContextCheck)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			in.ID, in.ContextCheck = tenant.NewID(), "signed"
			in.Secret = make([]byte, 32)
			rand.Read(in.Secret)
			_, err = tx.Exec(ctx, `INSERT INTO landlord.installation (id, database_oid, secret) VALUES ($1, $2, $3)`, in.ID, cur, in.Secret)
			return err
		case err != nil:
			return err
		case oid != cur:
			in.ID = tenant.NewID()
			_, err = tx.Exec(ctx, `UPDATE landlord.installation SET id = $1, database_oid = $2`, in.ID, cur)
			return err
		}
		return nil
	})
	if err != nil {
		return Installation{}, fmt.Errorf("read installation: %w", err)
	}
	return in, nil
}

// ContextCheck returns the installation's context check, as
// Installation.ContextCheck, read now: another process may have changed it.
func (d *Directory) ContextCheck(ctx context.Context) (string, error) {
	var c string
	if err := d.db.QueryRow(ctx, `SELECT context_check FROM landlord.installation`).Scan(&c); err != nil {
		return "", fmt.Errorf("read the context check: %w", err)
	}
	return c, nil
}

// SetContextCheck records the installation's context check; the database
// refuses any value but "signed" and "unsigned".
func (d *Directory) SetContextCheck(ctx context.Context, check string) error {
	tag, err := d.db.Exec(ctx, `UPDATE landlord.installation SET context_check = $1`, check)
	if err != nil {
		return fmt.Errorf("record the context check: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return errors.New("record the context check: no installation row")
	}
	return nil
}

// Server is one row of landlord.servers.
type Server struct {
	ID       string
	Host     string // "" = the directory's own server
	Port     int
	Database string
}

// ConnConfig returns the settings that reach database on s: those of base
// (the control database's), with s's own host and port when it has them.
func (s Server) ConnConfig(base *pgx.ConnConfig, database string) *pgx.ConnConfig {
	cfg := base.Copy()
	if s.Host != "" {
		cfg.Host, cfg.Port = s.Host, uint16(s.Port)
		cfg.Fallbacks = nil
	}
	cfg.Database = database
	return cfg
}

// EnsureServer records s if no server with its id exists yet. For the
// directory's own server (no host) it also corrects the database name, which
// changes when the control database is copied under another name.
func (d *Directory) EnsureServer(ctx context.Context, s Server) error {
	var host, port any
	if s.Host != "" {
		host, port = s.Host, s.Port
	}
	_, err := d.db.Exec(ctx, `INSERT INTO landlord.servers (id, host, port, database) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET database = EXCLUDED.database
		WHERE servers.host IS NULL AND EXCLUDED.host IS NULL AND servers.database <> EXCLUDED.database`,
		s.ID, host, port, s.Database)
	if err != nil {
		return fmt.Errorf("record server %q: %w", s.ID, err)
	}
	return nil
}

// AddServer records s, a server other than the directory's own, with its
// address. A server with s's id at the same address is left as it is;
// at another address it is an error.
func (d *Directory) AddServer(ctx context.Context, s Server) error {
	if s.Host == "" {
		return fmt.Errorf("record server %q: no host", s.ID)
	}
	tag, err := d.db.Exec(ctx, `INSERT INTO landlord.servers (id, host, port, database) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id
		WHERE servers.host IS NOT DISTINCT FROM EXCLUDED.host AND servers.port IS NOT DISTINCT FROM EXCLUDED.port
		  AND servers.database = EXCLUDED.database`, s.ID, s.Host, s.Port, s.Database)
	if err != nil {
		return fmt.Errorf("record server %q: %w", s.ID, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("record server %q: the directory has it at another address", s.ID)
	}
	return nil
}

// CountByServer counts the tenants of each model on each server.
func (d *Directory) CountByServer(ctx context.Context) (map[string]map[tenant.Model]int, error) {
	rows, err := d.db.Query(ctx, `SELECT server_id, model, count(*) FROM landlord.tenants GROUP BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("count tenants by server: %w", err)
	}
	out := map[string]map[tenant.Model]int{}
	var server, model string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&server, &model, &n}, func() error {
		if out[server] == nil {
			out[server] = map[tenant.Model]int{}
		}
		out[server][tenant.Model(model)] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count tenants by server: %w", err)
	}
	return out, nil
}

// Servers lists every server.
func (d *Directory) Servers(ctx context.Context) ([]Server, error) {
	rows, err := d.db.Query(ctx, `SELECT id, coalesce(host, ''), coalesce(port, 0), database FROM landlord.servers ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Server, error) {
		var s Server
		err := r.Scan(&s.ID, &s.Host, &s.Port, &s.Database)
		return s, err
	})
}

const tenantColumns = `id, slug, display_name, model, server_id, schema_name, database_name, state, schema_version, routing_epoch, created_at, updated_at, settings`

func scanTenant(r pgx.Row) (tenant.Tenant, error) {
	var t tenant.Tenant
	var model, state string
	var settings map[string]string
	err := r.Scan(&t.ID, &t.Slug, &t.DisplayName, &model, &t.Server, &t.Schema, &t.Database, &state, &t.SchemaVersion, &t.Epoch, &t.CreatedAt, &t.UpdatedAt, &settings)
	t.Model, t.State = tenant.Model(model), tenant.State(state)
	if err == nil {
		if t.Settings, err = tenant.SettingsFromMap(settings); err != nil {
			err = fmt.Errorf("tenant %s: its settings in the directory: %w", t.ID, err)
		}
	}
	return t, err
}

// Get returns the tenant with id, or an error wrapping tenant.ErrNotFound.
func (d *Directory) Get(ctx context.Context, id tenant.ID) (tenant.Tenant, error) {
	t, err := scanTenant(d.db.QueryRow(ctx, `SELECT `+tenantColumns+` FROM landlord.tenants WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("tenant %s: %w", id, tenant.ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("look up tenant %s: %w", id, err)
	}
	return t, nil
}

// GetBySlug returns the tenant with the slug (normalized first), or an error
// wrapping tenant.ErrNotFound or tenant.ErrBadSlug.
func (d *Directory) GetBySlug(ctx context.Context, slug string) (tenant.Tenant, error) {
	s, err := tenant.NormalizeSlug(slug)
	if err != nil {
		return tenant.Tenant{}, err
	}
	t, err := scanTenant(d.db.QueryRow(ctx, `SELECT `+tenantColumns+` FROM landlord.tenants WHERE slug = $1`, s))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("tenant %q: %w", s, tenant.ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("look up tenant %q: %w", s, err)
	}
	return t, nil
}

// Filter narrows List. Zero fields match everything.
type Filter struct {
	Model  tenant.Model
	State  tenant.State
	Server string
}

// List returns the tenants that match f, ordered by slug.
func (d *Directory) List(ctx context.Context, f Filter) ([]tenant.Tenant, error) {
	var where []string
	var args []any
	add := func(col string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf("%s = $%d", ident.Quote(col), len(args)))
	}
	if f.Model != "" {
		add("model", string(f.Model))
	}
	if f.State != "" {
		add("state", string(f.State))
	}
	if f.Server != "" {
		add("server_id", f.Server)
	}
	q := `SELECT ` + tenantColumns + ` FROM landlord.tenants`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := d.db.Query(ctx, q+" ORDER BY slug", args...)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (tenant.Tenant, error) { return scanTenant(r) })
}

// Insert records a new tenant in state provisioning together with the first
// ledger entry: the intent is written before anything is created. A taken slug
// returns an error wrapping tenant.ErrSlugTaken.
func (d *Directory) Insert(ctx context.Context, t tenant.Tenant) error {
	return d.insert(ctx, t, false)
}

// StepToFill is the ledger step, written with the intent, of a tenant that
// is created to be filled (provision.Request.Fill): provisioning it to the
// end without its filler would leave it empty, so Reconcile deletes it
// instead.
const StepToFill = "to-fill"

// InsertToFill is Insert for a tenant created to be filled: the intent and
// the StepToFill entry commit with the row.
func (d *Directory) InsertToFill(ctx context.Context, t tenant.Tenant) error {
	return d.insert(ctx, t, true)
}

func (d *Directory) insert(ctx context.Context, t tenant.Tenant, toFill bool) error {
	err := pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO landlord.tenants (id, slug, display_name, model, server_id, schema_name, database_name, state, schema_version)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			t.ID, t.Slug, t.DisplayName, string(t.Model), t.Server, t.Schema, t.Database, string(t.State), t.SchemaVersion)
		if err != nil {
			return err
		}
		if err := logStep(ctx, tx, t.ID, "create", "intent", string(t.Model)+" "+t.Slug); err != nil || !toFill {
			return err
		}
		return logStep(ctx, tx, t.ID, "create", StepToFill, "")
	})
	if slugTaken(err) {
		return fmt.Errorf("slug %q: %w", t.Slug, tenant.ErrSlugTaken)
	}
	if err != nil {
		return fmt.Errorf("record tenant %q: %w", t.Slug, err)
	}
	return nil
}

// InsertActive records t, a tenant that is whole once it is recorded (a row
// tenant), in state active, together with its first ledger entry, in one
// statement. Its database is the one of its server; ok is false, and
// nothing is written, when no server has t.Server as id. A taken slug
// returns an error wrapping tenant.ErrSlugTaken.
func (d *Directory) InsertActive(ctx context.Context, t tenant.Tenant) (out tenant.Tenant, ok bool, err error) {
	out, err = scanTenant(d.db.QueryRow(ctx, `WITH s AS (
			SELECT id, database FROM landlord.servers WHERE id = $5
		), t AS (
			INSERT INTO landlord.tenants (id, slug, display_name, model, server_id, schema_name, database_name, state, schema_version)
			SELECT $1, $2, $3, $4, s.id, $6, s.database, 'active', $7 FROM s
			RETURNING `+tenantColumns+`
		), l AS (
			INSERT INTO landlord.provisioning_ledger (tenant_id, operation, step, detail)
			SELECT id, 'create', 'intent', model || ' ' || slug FROM t
		)
		SELECT `+tenantColumns+` FROM t`,
		t.ID, t.Slug, t.DisplayName, string(t.Model), t.Server, t.Schema, t.SchemaVersion))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return tenant.Tenant{}, false, nil
	case slugTaken(err):
		return tenant.Tenant{}, false, fmt.Errorf("slug %q: %w", t.Slug, tenant.ErrSlugTaken)
	case err != nil:
		return tenant.Tenant{}, false, fmt.Errorf("record tenant %q: %w", t.Slug, err)
	}
	return out, true, nil
}

// Activate moves tenant id from provisioning to active at schema version
// version on q and logs the step, so that both commit with the caller's
// transaction. A tenant in another state gets a *tenant.StateError.
func Activate(ctx context.Context, q DBTX, id tenant.ID, version int) (tenant.Tenant, error) {
	t, err := scanTenant(q.QueryRow(ctx, `WITH t AS (
			UPDATE landlord.tenants SET state = 'active', schema_version = $2
			WHERE id = $1 AND state = 'provisioning' RETURNING `+tenantColumns+`
		), l AS (
			INSERT INTO landlord.provisioning_ledger (tenant_id, operation, step, detail) SELECT id, 'create', 'active', '' FROM t
		)
		SELECT `+tenantColumns+` FROM t`, id, version))
	if errors.Is(err, pgx.ErrNoRows) {
		var state string
		if err := q.QueryRow(ctx, `SELECT state FROM landlord.tenants WHERE id = $1`, id).Scan(&state); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return tenant.Tenant{}, fmt.Errorf("tenant %s: %w", id, tenant.ErrNotFound)
			}
			return tenant.Tenant{}, fmt.Errorf("look up tenant %s: %w", id, err)
		}
		return tenant.Tenant{}, &tenant.StateError{ID: id, State: tenant.State(state)}
	}
	if err != nil {
		return t, fmt.Errorf("activate tenant %s: %w", id, err)
	}
	return t, nil
}

// SetState moves tenant id to state to if it is in one of the states from
// (any state when from is empty), and returns the updated row. A tenant in
// another state gets a *tenant.StateError.
func (d *Directory) SetState(ctx context.Context, id tenant.ID, to tenant.State, from ...tenant.State) (tenant.Tenant, error) {
	fs := make([]string, len(from))
	for i, s := range from {
		fs[i] = string(s)
	}
	t, err := scanTenant(d.db.QueryRow(ctx, `UPDATE landlord.tenants SET state = $2
		WHERE id = $1 AND (cardinality($3::text[]) = 0 OR state = ANY($3)) RETURNING `+tenantColumns, id, string(to), fs))
	if errors.Is(err, pgx.ErrNoRows) {
		cur, gerr := d.Get(ctx, id)
		if gerr != nil {
			return cur, gerr
		}
		return cur, &tenant.StateError{ID: id, State: cur.State}
	}
	if err != nil {
		return t, fmt.Errorf("set tenant %s %s: %w", id, to, err)
	}
	return t, nil
}

// SettingsOperation is the ledger operation of a change of a tenant's
// settings: its step is the settings as they became (tenant.Settings'
// String), its detail the reason and the database role that changed them.
const SettingsOperation = "settings"

// SetSettings replaces the settings of tenant id and returns the updated
// row. The change is recorded in the tenant's ledger with reason, in the
// same transaction.
func (d *Directory) SetSettings(ctx context.Context, id tenant.ID, s tenant.Settings, reason string) (tenant.Tenant, error) {
	var t tenant.Tenant
	err := pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		var err error
		t, err = scanTenant(tx.QueryRow(ctx, `UPDATE landlord.tenants SET settings = $2 WHERE id = $1 RETURNING `+tenantColumns, id, s.Map()))
		if err != nil {
			return err
		}
		return logBy(ctx, tx, id, SettingsOperation, s.String(), reason)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("tenant %s: %w", id, tenant.ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("set the settings of tenant %s: %w", id, err)
	}
	return t, nil
}

// SetSchemaVersion records the migration version of the tenant's tables.
func (d *Directory) SetSchemaVersion(ctx context.Context, id tenant.ID, version int) error {
	if _, err := d.db.Exec(ctx, `UPDATE landlord.tenants SET schema_version = $2 WHERE id = $1`, id, version); err != nil {
		return fmt.Errorf("set schema version of %s: %w", id, err)
	}
	return nil
}

// Remove deletes the directory entry of id and logs it.
func (d *Directory) Remove(ctx context.Context, id tenant.ID) error {
	return pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM landlord.tenants WHERE id = $1`, id); err != nil {
			return fmt.Errorf("remove tenant %s: %w", id, err)
		}
		return logStep(ctx, tx, id, "delete", "removed", "")
	})
}

// StateOperation is the ledger operation of a state set by hand: its step is
// the new state, its detail the reason and the database role that set it.
const StateOperation = "state"

// LogState records in the ledger that id was set to state, why, and by
// which database role (session_user).
func (d *Directory) LogState(ctx context.Context, id tenant.ID, state tenant.State, reason string) error {
	if err := logBy(ctx, d.db, id, StateOperation, string(state), reason); err != nil {
		return fmt.Errorf("log state %s of %s: %w", state, id, err)
	}
	return nil
}

// logBy appends a step done by hand to the ledger: its detail is reason
// and the database role (session_user) that did it.
func logBy(ctx context.Context, db execer, id tenant.ID, operation, step, reason string) error {
	_, err := db.Exec(ctx, `INSERT INTO landlord.provisioning_ledger (tenant_id, operation, step, detail)
		VALUES ($1, $2, $3, $4 || ' (by ' || session_user || ')')`, id, operation, step, reason)
	return err
}

// Log appends one step to the provisioning ledger.
func (d *Directory) Log(ctx context.Context, id tenant.ID, operation, step, detail string) error {
	return logStep(ctx, d.db, id, operation, step, detail)
}

// LogStep appends one step to the provisioning ledger on q.
func LogStep(ctx context.Context, q DBTX, id tenant.ID, operation, step, detail string) error {
	return logStep(ctx, q, id, operation, step, detail)
}

// Step is one ledger entry.
type Step struct {
	Operation, Step, Detail string
	At                      time.Time
}

// ToFill reports whether tenant id was recorded by InsertToFill.
func (d *Directory) ToFill(ctx context.Context, id tenant.ID) (bool, error) {
	var ok bool
	err := d.db.QueryRow(ctx, `SELECT EXISTS (SELECT FROM landlord.provisioning_ledger
		WHERE tenant_id = $1 AND operation = 'create' AND step = $2)`, id, StepToFill).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("read ledger of %s: %w", id, err)
	}
	return ok, nil
}

// Steps returns the ledger entries of id in order.
func (d *Directory) Steps(ctx context.Context, id tenant.ID) ([]Step, error) {
	rows, err := d.db.Query(ctx, `SELECT operation, step, detail, at FROM landlord.provisioning_ledger WHERE tenant_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("read ledger of %s: %w", id, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Step, error) {
		var s Step
		err := r.Scan(&s.Operation, &s.Step, &s.Detail, &s.At)
		return s, err
	})
}

// DBTX is a connection, a pool or a transaction: what LoadTemplateScript,
// Activate and LogStep need of the caller's. They run on it, so that their
// writes commit together with the caller's own work.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	_ DBTX = (*pgxpool.Pool)(nil)
	_ DBTX = (*pgx.Conn)(nil)
	_ DBTX = (pgx.Tx)(nil)
)

// slugTaken reports whether err is the unique violation of another
// tenant's slug.
func slugTaken(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation && pgErr.ConstraintName == "tenants_slug_key"
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func logStep(ctx context.Context, db execer, id tenant.ID, operation, step, detail string) error {
	_, err := db.Exec(ctx, `INSERT INTO landlord.provisioning_ledger (tenant_id, operation, step, detail) VALUES ($1, $2, $3, $4)`,
		id, operation, step, detail)
	if err != nil {
		return fmt.Errorf("log %s %s of %s: %w", operation, step, id, err)
	}
	return nil
}
