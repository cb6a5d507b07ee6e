// Package traffic runs tenant traffic: it routes each call by the tenant
// directory, leases a connection from the connection manager (package pool),
// sets the tenant context in the same round trip as the statement, observes
// the call and gives the connection back exactly once. Package landlord's
// Handle is a thin facade over it.
//
// The path of one call: Handle.Exec → Handle.open → route (directory cache)
// → pool.Manager.Acquire → start (enter statement + statement, one round
// trip) → lease.release (back to the pool, or closed when the call may have
// left session state) → Tracer.
package traffic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pool"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// ErrUnsafeRole is returned when the role that would run tenant traffic is a
// superuser, has BYPASSRLS, or owns (or may become the owner of) tenant
// tables: row-level security would not bind it (SECURITY.md, I01, I02).
var ErrUnsafeRole = errors.New("role unsafe for tenant traffic")

// ErrBatchTx is returned by Handle.SendBatch for a batch that begins a
// transaction (pgx.Batch.BeginTx); use Handle.BeginTx and Tx.SendBatch.
var ErrBatchTx = errors.New("batch begins a transaction")

// ErrResultFormats is returned, before anything is sent, for a call whose
// arguments begin with pgx.QueryResultFormats or QueryResultFormatsByOID,
// which a statement sent in one round trip with its tenant context cannot
// take. Inside a transaction (Handle.BeginTx) they work as in pgx.
var ErrResultFormats = errors.New("result-format options are not supported outside a transaction")

// ErrSessionState is returned, before anything is sent, for a statement that
// could leave session state on its server connection when tenant traffic
// goes through a transaction-pooling connection pooler: the pooler would
// hand that state to another client's next transaction.
var ErrSessionState = errors.New("statement would leave session state on a pooled server connection")

// Tracer observes tenant traffic. It is called on the hot path: every
// method must be cheap and safe for concurrent use.
type Tracer interface {
	// TenantCalls is called once per routing entry of tenant t (when the
	// tenant is first used, and again whenever the directory changes its
	// entry). The function it returns is called when each handle call of
	// t ends, with the time the call started and its outcome; nil
	// observes nothing.
	TenantCalls(t tenant.Tenant) func(start time.Time, err error)
	// ConnReplaced is called when a connection is closed because tenant
	// SQL may have left session state on it.
	ConnReplaced()
}

// ConnWaitTracer is a Tracer that also wants, per tenant, how long each
// call waited for its connection. Optional: the handle asks the Tracer for
// it once per route.
type ConnWaitTracer interface {
	TenantConnWaits(t tenant.Tenant) func(wait time.Duration)
}

// Pooler is the address of a transaction-pooling connection pooler.
type Pooler struct {
	Host string
	Port uint16
}

// Config is what Traffic needs. Every field but the optional ones is
// required.
type Config struct {
	Logger    *slog.Logger
	AppRole   string
	ControlDB string // the control database, where row and schema tenants live
	// ConnConfig returns the administrator's settings for database on
	// server, to be used as role.
	ConnConfig func(ctx context.Context, server, database, role string) (*pgx.ConnConfig, error)
	Pool       pool.Config // budget, pacing; AfterConnect and ConnMemory are set here

	MinSchemaVersion, MaxSchemaVersion int
	TagSessions                        bool
	Pooler                             *Pooler               // optional
	Tracer                             Tracer                // optional
	BeforeConnect                      func(*pgx.ConnConfig) // optional
	DirectoryMaxAge                    time.Duration
	// MoveWait bounds how long a call waits for a moving tenant's new
	// placement before it fails with tenant.ErrMoving. Default 10s.
	MoveWait time.Duration
	// ContextKey signs every transaction's tenant context (provision.Roles
	// ContextKey; SECURITY.md, I31).
	ContextKey []byte
}

// DefaultMoveWait is Config.MoveWait's default.
const DefaultMoveWait = 10 * time.Second

// Traffic routes and runs tenant traffic. It is safe for concurrent use.
type Traffic struct {
	cfg    Config
	routes *directory.Cache[*route]
	conns  *pool.Manager // every tenant connection, within the budget
	// resolved caches connection settings per pool.Target.
	resolved sync.Map
}

// New returns the traffic of the tenants in dir. Call Run before the first
// call and Close at the end.
func New(dir *directory.Directory, cfg Config) (*Traffic, error) {
	if len(cfg.ContextKey) != migration.ContextKeySize {
		return nil, fmt.Errorf("traffic: a context key of %d bytes, want %d", len(cfg.ContextKey), migration.ContextKeySize)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MoveWait <= 0 {
		cfg.MoveWait = DefaultMoveWait
	}
	t := &Traffic{cfg: cfg}
	var err error
	if t.conns, err = t.newConns(); err != nil {
		return nil, err
	}
	t.routes = directory.NewCache(dir, t.buildRoute, directory.CacheConfig{
		MaxAge: cfg.DirectoryMaxAge, Logger: cfg.Logger,
	})
	return t, nil
}

// Run keeps the routing cache in step with the directory until ctx ends: it
// listens for change notifications on connections that connect makes, and
// closes ready once it listens.
func (t *Traffic) Run(ctx context.Context, connect func(context.Context) (*pgx.Conn, error), ready chan<- struct{}) {
	t.routes.Run(ctx, connect, ready)
}

// Close closes every tenant connection.
func (t *Traffic) Close() { t.conns.Close() }

// Invalidate drops the cached route of id, so that its next call reads the
// directory.
func (t *Traffic) Invalidate(id tenant.ID) { t.routes.Invalidate(id) }

// Stats is a snapshot of the traffic's state.
type Stats struct {
	Pool          pool.Stats
	CachedTenants int // tenants in the routing cache
}

// Stats returns a snapshot of the connection manager and the routing cache.
func (t *Traffic) Stats() Stats {
	return Stats{Pool: t.conns.Stats(), CachedTenants: t.routes.Len()}
}

// Compatible reports whether tables at migration version v fit the
// configured range.
func (t *Traffic) Compatible(v int) bool {
	return v >= t.cfg.MinSchemaVersion && (t.cfg.MaxSchemaVersion == 0 || v <= t.cfg.MaxSchemaVersion)
}

// CheckAppRole refuses an app role that row-level security would not bind:
// a superuser, a BYPASSRLS role, or one that is or may become the owner of a
// shared table (SECURITY.md, I01, I02).
func (t *Traffic) CheckAppRole(ctx context.Context) error {
	c, err := t.conns.Acquire(ctx, pool.Key{Target: t.appTarget(directory.DefaultServer)})
	if err != nil {
		return fmt.Errorf("check app role: %w", err)
	}
	defer c.Release()
	var owns []string
	err = c.Conn().QueryRow(ctx, `
		SELECT coalesce(array_agg(c.oid::regclass::text ORDER BY c.relname), '{}')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm')
		  AND pg_has_role(current_user, c.relowner, 'MEMBER')`, provision.SharedSchema).Scan(&owns)
	if err != nil {
		return fmt.Errorf("check app role: %w", err)
	}
	if len(owns) > 0 {
		return fmt.Errorf("role %s owns or may become the owner of %v: %w", t.cfg.AppRole, owns, ErrUnsafeRole)
	}
	return nil
}

// CloseTenant stops tenant t's traffic: its route is dropped and every
// connection of its own target (a tenant database) is closed, before it is
// dropped or moved.
func (t *Traffic) CloseTenant(ctx context.Context, tn tenant.Tenant) error {
	t.routes.Invalidate(tn.ID)
	if tn.Model != tenant.ModelDatabase {
		return nil
	}
	target := t.targetOf(tn)
	t.resolved.Delete(target)
	return t.conns.CloseTarget(ctx, target)
}

// Tenant returns the directory entry of id as routing holds it: from the
// routing cache, which the directory's notifications keep current, reading
// the directory only on a miss.
func (t *Traffic) Tenant(ctx context.Context, id tenant.ID) (tenant.Tenant, error) {
	r, err := t.routes.Get(ctx, id)
	if err != nil {
		return tenant.Tenant{}, err
	}
	return r.t, nil
}

// Handle returns a handle that runs as the tenant in each call's context.
func (t *Traffic) Handle() *Handle { return &Handle{t: t} }

// AdminHandle returns a handle fixed to tenant id whatever the context
// carries, that also reaches a suspended tenant.
func (t *Traffic) AdminHandle(id tenant.ID) *Handle { return &Handle{t: t, fixed: id, admin: true} }

// connReplaced counts a connection closed for session state.
func (t *Traffic) connReplaced() {
	if t.cfg.Tracer != nil {
		t.cfg.Tracer.ConnReplaced()
	}
}

// MaxConns is the connection budget per server in force.
func (tr *Traffic) MaxConns() int { return tr.conns.MaxConns() }

// Warm opens a connection for the traffic of tenant id, a tenant in the
// database model, and leaves it idle in the pool with its enter statements
// prepared, so that the tenant's next call finds it. It reports false,
// and does nothing, for a tenant of another model (they share the app
// role's connections) or one that must not get traffic.
func (tr *Traffic) Warm(ctx context.Context, id tenant.ID) (bool, error) {
	r, err := tr.routes.Get(ctx, id)
	if err != nil {
		return false, err
	}
	if r.err != nil || r.t.Model != tenant.ModelDatabase {
		return false, nil
	}
	c, err := tr.conns.Acquire(ctx, pool.Key{Target: r.target, Tenant: id, MaxConns: r.t.Settings.MaxConns})
	if err != nil {
		return false, err
	}
	c.Release()
	return true, nil
}

// Inspect runs fn on a connection of tenant id's traffic, outside any
// transaction and without entering the tenant, and returns the connection
// to the pool: for tests that look at what a connection carries between
// calls. With one connection per target it is the one the tenant's last
// call used.
func (tr *Traffic) Inspect(ctx context.Context, id tenant.ID, fn func(*pgx.Conn) error) error {
	r, err := tr.routes.Get(ctx, id)
	if err != nil {
		return err
	}
	c, err := tr.conns.Acquire(ctx, pool.Key{Target: r.target, Tenant: id, OwnTables: r.t.Model == tenant.ModelSchema, MaxConns: r.t.Settings.MaxConns})
	if err != nil {
		return err
	}
	defer c.Release()
	return fn(c.Conn())
}
