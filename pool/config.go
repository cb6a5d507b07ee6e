package pool

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
)

// Resolver returns the connection settings for a target: host, port,
// database, user, password, TLS and runtime parameters (a search_path, an
// application_name). It is called once for every connection the manager
// opens, from the goroutine that opens it, so a rotated password takes
// effect on the next connection. The config must come from pgx.ParseConfig
// (directly or by copying one); the manager does not modify it.
type Resolver func(ctx context.Context, t Target) (*pgx.ConnConfig, error)

// Defaults of Config, for callers that derive their own settings from them.
const (
	// DefaultIdleTimeout closes connections nobody used for five minutes:
	// an idle backend keeps its memory (a few MB plus its catalog cache) and
	// a slot of the server's max_connections.
	DefaultIdleTimeout = 5 * time.Minute

	// DefaultMaxConnLifetime matches pgxpool's: a connection is replaced
	// after an hour (less up to a fifth, at random) so that server-side
	// settings changes and memory fragmentation do not live forever.
	DefaultMaxConnLifetime = time.Hour

	// DefaultMaxTenantsPerConn bounds the distinct schema tenants one
	// connection serves before it is replaced, so that a backend stays under
	// about 64 MB.
	//
	// A backend caches the catalog entries of every table it touches
	// (relation, attributes, indexes, constraints, policies, the plans of
	// foreign key checks) until it disconnects; in the schema model every
	// tenant has tables of its own, so a connection that serves every
	// tenant in turn grows without bound. Measured on PostgreSQL 15 with
	// pg_backend_memory_contexts from the backend itself
	// (TestCatalogMemoryPerSchema, BenchmarkCatalogMemoryPerSchema), for
	// tenants of 10 tables in Landlord's shape (8 columns, tenant_id leading
	// a composite primary key, a unique key and a foreign key, row-level
	// security forced with two policies), switched to the tenant's role and
	// schema per transaction: a primary key lookup in each table adds about
	// 290 KB to the backend (275 KB of it in CacheMemoryContext), a lookup
	// and an insert in each about 385 KB (360 KB), linear over 100 tenants.
	// A fresh backend holds 2.7 MB, and the statements the root package
	// keeps prepared per connection (at most 2,048, about 25 KB each with
	// their generic plans) more. 128 tenants that read and write come to
	// about 52 MB, which leaves some room for wider tables under 64 MB; a
	// replacement costs one dial (about 3 ms) per 128 tenants served. This
	// count is the fallback: with Config.ConnMemory the backend's measured
	// memory decides. A schema tenant keeps to two connections of its
	// pool (its homes, see server.go), so a pool of n connections serves
	// about 2/n of the tenants on each before this count applies.
	//
	// Tenants of the row model share tables and do not count (see
	// Key.OwnTables).
	DefaultMaxTenantsPerConn = 128

	// DefaultMaxConnMemory is the memory of a backend past which a
	// connection is replaced, when Config.ConnMemory can measure it. It
	// leaves room under 64 MB for what the backend adds between two
	// checks: at most MemoryCheckTenants tenants of about 385 KB each.
	DefaultMaxConnMemory = 52 << 20

	// MemoryCheckTenants is how many new OwnTables tenants a connection
	// serves between two measurements of its backend's memory.
	MemoryCheckTenants = 32

	// DefaultMaxDialsPerSecond and DefaultDialBurst pace new connections
	// across all servers. A new backend costs the server about 3 ms of CPU
	// (unix socket) and 9 ms with SCRAM over TCP, so 100 a second takes at
	// most about one core even with SCRAM: a reconnect storm cannot starve
	// the queries already running.
	DefaultMaxDialsPerSecond = 100
	DefaultDialBurst         = 10

	// DefaultDialTimeout bounds one connection attempt, AfterConnect
	// included.
	DefaultDialTimeout = 10 * time.Second

	// DefaultBackoffMin and DefaultBackoffMax bound the jittered exponential
	// wait between failed connection attempts to a target or server. The
	// maximum is short enough that a restarted server is back in use about
	// two seconds after it accepts connections again.
	DefaultBackoffMin = 50 * time.Millisecond
	DefaultBackoffMax = 2 * time.Second

	// DefaultPingAfterIdle is pgxpool's rule: a connection idle for more than
	// a second is pinged before it is handed out, so one the server dropped
	// (a restart, an idle timeout on the server) is replaced instead of
	// failing the caller's first statement.
	DefaultPingAfterIdle = time.Second
)

// Config holds the optional settings of New. The zero value is usable: every
// zero field takes its default. Fields documented as such take a negative
// value to switch a limit off.
type Config struct {
	// MaxConns is the budget of server connections per server: connections
	// open, being opened and being closed all count, and no load can make
	// the manager exceed it. Default max(8, 4×GOMAXPROCS): a server's
	// throughput peaks at a few active connections per core.
	MaxConns int

	// MaxConnsPerTarget caps the connections of one target. Default
	// MaxConns, so that the one target of the row and schema models can use
	// the whole budget; per-tenant fairness comes from MaxConnsPerTenant.
	MaxConnsPerTarget int

	// MaxConnsPerTenant caps the connections one tenant holds at once on a
	// server, across all its targets there (the zero tenant counts as one
	// tenant). Acquires over the cap wait, so a tenant flooding the server
	// leaves the rest of the budget to the others. Default
	// max(1, MaxConns/2).
	MaxConnsPerTenant int

	// IdleTimeout closes connections idle for longer. Negative: never.
	// Default DefaultIdleTimeout.
	IdleTimeout time.Duration

	// MaxConnLifetime closes connections older than this, less a random part
	// of up to a fifth so that connections opened together (after a storm or
	// a restart) do not all go at once. A connection in use is closed when
	// released. Negative: never. Default DefaultMaxConnLifetime.
	MaxConnLifetime time.Duration

	// MaxTenantsPerConn closes a connection, when released, once it has
	// served this many distinct tenants whose keys had OwnTables set,
	// unless ConnMemory measures the backend instead. Negative: never.
	// Default DefaultMaxTenantsPerConn.
	MaxTenantsPerConn int

	// ConnMemory, if set, returns the memory the backend behind conn uses,
	// in bytes. It runs on the releasing goroutine in Conn.Release, outside
	// any transaction, each time a connection has served another
	// MemoryCheckTenants OwnTables tenants; a connection whose backend uses
	// MaxConnMemory or more is closed instead of reused. While it
	// measures, the tenant count (MaxTenantsPerConn) does not apply: the
	// count has to assume every tenant's every table was touched, and
	// recycles far too early for a workload that touches a few tables per
	// tenant (1,000 schema tenants looked up uniformly on 8 connections
	// replaced a connection every 300 calls, and every call prepared its
	// statement afresh). An error falls back to the count.
	ConnMemory func(ctx context.Context, conn *pgx.Conn) (int64, error)

	// MaxConnMemory: see ConnMemory. Default DefaultMaxConnMemory.
	MaxConnMemory int64

	// MaxDialsPerSecond and DialBurst shape the token bucket every new
	// connection takes a token from, across all servers. A negative
	// MaxDialsPerSecond switches pacing off. Defaults
	// DefaultMaxDialsPerSecond and DefaultDialBurst.
	MaxDialsPerSecond float64
	DialBurst         int

	// DialTimeout bounds one connection attempt, AfterConnect included.
	// Default DefaultDialTimeout.
	DialTimeout time.Duration

	// BackoffMin and BackoffMax bound the wait after a failed attempt: it
	// doubles with each consecutive failure, from BackoffMin up to
	// BackoffMax, and a random part of up to half is taken off. Defaults
	// DefaultBackoffMin and DefaultBackoffMax.
	BackoffMin time.Duration
	BackoffMax time.Duration

	// PingAfterIdle: a connection idle for longer is pinged before it is
	// handed out, and replaced if the ping fails. Negative: never. Default
	// DefaultPingAfterIdle.
	PingAfterIdle time.Duration

	// AfterConnect, if set, runs exactly once on each new connection, after
	// it is established and before anyone uses it, on the goroutine that
	// opened it, with a context bounded by DialTimeout. It may run
	// statements and prepare statements, and keep data in
	// conn.PgConn().CustomData(). An error closes the connection and counts
	// as a failed dial of the target: the target backs off, and acquires
	// waiting for it fail with a *DialError wrapping the error unless an
	// open connection of the target can serve them.
	AfterConnect func(ctx context.Context, conn *pgx.Conn) error

	// BeforeRelease, if set, runs on the releasing goroutine in
	// Conn.Release, for each connection that is open, idle and outside a
	// transaction, before it goes back to the idle set. Returning false
	// closes the connection instead (use it to refuse connections carrying
	// session state). It must not keep conn. It is not called by
	// Conn.Discard or for connections closed anyway.
	BeforeRelease func(conn *pgx.Conn) bool

	// Logger receives the first failure of a streak of failed dials to a
	// target or server and the recovery after it. Never passwords. Default:
	// discard.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxConns == 0 {
		c.MaxConns = max(8, 4*runtime.GOMAXPROCS(0))
	}
	if c.MaxConnsPerTarget == 0 {
		c.MaxConnsPerTarget = c.MaxConns
	}
	if c.MaxConnsPerTenant == 0 {
		c.MaxConnsPerTenant = max(1, c.MaxConns/2)
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConnLifetime == 0 {
		c.MaxConnLifetime = DefaultMaxConnLifetime
	}
	if c.MaxTenantsPerConn == 0 {
		c.MaxTenantsPerConn = DefaultMaxTenantsPerConn
	}
	if c.MaxConnMemory == 0 {
		c.MaxConnMemory = DefaultMaxConnMemory
	}
	if c.MaxDialsPerSecond == 0 {
		c.MaxDialsPerSecond = DefaultMaxDialsPerSecond
	}
	if c.DialBurst == 0 {
		c.DialBurst = DefaultDialBurst
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = max(DefaultBackoffMax, c.BackoffMin)
	}
	if c.PingAfterIdle == 0 {
		c.PingAfterIdle = DefaultPingAfterIdle
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// validate checks c after setDefaults, so that limits that depend on each
// other are checked with their effective values.
func (c *Config) validate() error {
	bad := func(field, problem string) error { return fmt.Errorf("pool config: %s %s", field, problem) }
	switch {
	case c.MaxConns < 0:
		return bad("MaxConns", "must not be negative")
	case c.MaxConnsPerTarget < 0:
		return bad("MaxConnsPerTarget", "must not be negative")
	case c.MaxConnsPerTarget > c.MaxConns:
		return bad("MaxConnsPerTarget", fmt.Sprintf("(%d) must not exceed MaxConns (%d)", c.MaxConnsPerTarget, c.MaxConns))
	case c.MaxConnsPerTenant < 0:
		return bad("MaxConnsPerTenant", "must not be negative")
	case c.MaxConnsPerTenant > c.MaxConns:
		return bad("MaxConnsPerTenant", fmt.Sprintf("(%d) must not exceed MaxConns (%d)", c.MaxConnsPerTenant, c.MaxConns))
	case c.MaxConnMemory < 0:
		return bad("MaxConnMemory", "must not be negative")
	case c.DialBurst < 0:
		return bad("DialBurst", "must not be negative")
	case c.DialTimeout < 0:
		return bad("DialTimeout", "must not be negative")
	case c.BackoffMin < 0:
		return bad("BackoffMin", "must not be negative")
	case c.BackoffMax < c.BackoffMin:
		return bad("BackoffMax", fmt.Sprintf("(%s) must not be less than BackoffMin (%s)", c.BackoffMax, c.BackoffMin))
	}
	return nil
}
