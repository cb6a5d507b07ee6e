// Package pool manages the server connections of all tenants within a fixed
// budget per server, for the three isolation models at once.
//
// A pool per tenant database exhausts max_connections after a few dozen
// tenants; a cold connection costs about 3 ms (9 ms with SCRAM over TCP); and
// in the schema model a backend re-plans after every search_path change and
// keeps the catalog entries of every table it touched until it disconnects.
// The Manager answers all three:
//
//   - One budget per server (Config.MaxConns) that counts every connection
//     open, being opened or being closed. A closed slot is reused only after
//     the server has ended the backend, so the count the server sees never
//     exceeds the budget either.
//   - Connections are grouped by Target (server, database, role): the row and
//     schema models share one target per server, each tenant database is a
//     target of its own. Groups are created on first use; when the budget is
//     full and a target needs a connection, the least recently used idle
//     connection of another target is closed for it, and groups left empty
//     disappear.
//   - Dials are paced by a global token bucket, de-duplicated (a target with
//     no connection opens one at a time; more only while acquires keep
//     waiting), and back off with jitter after failures, per target and, for
//     network failures, per server.
//   - Waiting acquires are served fairly: first come first served within a
//     tenant, round robin across tenants, and no tenant holds more than
//     Config.MaxConnsPerTenant connections of a server.
//   - Acquires name their tenant, and an idle connection that last served it
//     is preferred, so its prepared statements and catalog entries are
//     reused. A schema tenant (Key.OwnTables) keeps to two home connections
//     of its target, waiting briefly for one that is in use, so that each
//     connection loads and plans a share of the schema tenants, not all of
//     them. Connections are replaced by age and by their backend's memory
//     (Config.ConnMemory, MaxConnMemory) or, where that cannot be measured,
//     after serving Config.MaxTenantsPerConn schema tenants, which bounds
//     catalog memory per backend.
//
// Acquire honours its context and returns typed errors (ErrAcquireTimeout,
// ErrClosed, *DialError); Stats returns counters and gauges per server and
// target for metrics.
package pool

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/tenant"
)

// Target is one place connections go to: a database on a server, logged in
// as a role. Connections of one target are interchangeable.
type Target struct {
	// Server names the server; the budget is per server. The Resolver
	// turns it into a host and port.
	Server string
	// Database is the database name.
	Database string
	// Role is the login role.
	Role string
}

// String returns role@server/database, for errors and logs.
func (t Target) String() string { return t.Role + "@" + t.Server + "/" + t.Database }

func (t Target) validate() error {
	if t.Server == "" || t.Database == "" || t.Role == "" {
		return fmt.Errorf("target %s: server, database and role must all be set: %w", t, ErrBadTarget)
	}
	return nil
}

// Key says what an acquire is for.
type Key struct {
	// Target is where the connection goes.
	Target Target
	// Tenant is the tenant the connection will serve. It decides fairness
	// (MaxConnsPerTenant, round robin among waiting tenants) and affinity
	// (an idle connection that last served it is preferred). The zero ID
	// (work for no tenant) is treated as one tenant of its own.
	Tenant tenant.ID
	// OwnTables says the tenant has tables of its own on Target (the schema
	// model): serving it grows the backend's catalog cache by the size of
	// those tables, so it counts toward Config.MaxTenantsPerConn, and it
	// keeps to its home connections (see homes in server.go). Row-model
	// tenants share their tables, and a tenant database is one tenant, so
	// neither sets it.
	OwnTables bool
	// MaxConns, when positive, lowers Config.MaxConnsPerTenant for this
	// tenant (its tenant.Settings.MaxConns). The latest acquire's value
	// holds for the tenant's connections on the server.
	MaxConns int
}

// Manager hands out connections within the budget. It is safe for
// concurrent use.
type Manager struct {
	cfg     Config
	resolve Resolver
	epoch   time.Time // monotonic origin of the manager's clock
	limiter limiter

	servers atomic.Pointer[map[string]*server] // copy on write, under mu
	mu      sync.Mutex
	closed  bool

	waiters sync.Pool // of *waiter

	memoryWarned atomic.Bool // a failed Config.ConnMemory was logged

	ctx    context.Context // cancelled by Close: ends dials in flight
	cancel context.CancelFunc
	done   chan struct{} // closed by Close: wakes sleeping dials and the reaper
	wg     sync.WaitGroup
}

// MaxConns is the budget of server connections per server in force
// (Config.MaxConns, or its default).
func (m *Manager) MaxConns() int { return m.cfg.MaxConns }

// New returns a manager that opens connections with the settings resolve
// returns. It opens nothing until the first Acquire.
func New(resolve Resolver, cfg Config) (*Manager, error) {
	if resolve == nil {
		return nil, fmt.Errorf("pool: resolver must not be nil")
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, resolve: resolve, epoch: time.Now(), done: make(chan struct{})}
	m.limiter.init(cfg.MaxDialsPerSecond, cfg.DialBurst)
	m.waiters.New = func() any { return &waiter{ready: make(chan struct{}, 1)} }
	m.ctx, m.cancel = context.WithCancel(context.Background())
	empty := map[string]*server{}
	m.servers.Store(&empty)
	m.wg.Add(1)
	go m.reaper()
	return m, nil
}

// now is the manager's monotonic clock in nanoseconds.
func (m *Manager) now() int64 { return int64(time.Since(m.epoch)) }

// server returns the state of server name, creating it on first use.
func (m *Manager) server(name string) (*server, error) {
	if s := (*m.servers.Load())[name]; s != nil {
		return s, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	old := *m.servers.Load()
	if s := old[name]; s != nil {
		return s, nil
	}
	s := newServer(m, name)
	next := make(map[string]*server, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[name] = s
	m.servers.Store(&next)
	return s, nil
}

// Acquire returns a connection for key.Target, waiting while none can be
// had within the budget. It fails with an error wrapping ErrAcquireTimeout
// and ctx.Err() when ctx ends first, with a *DialError when the target
// cannot be reached, and with ErrClosed after Close. The connection must be
// given back with Release or Discard.
func (m *Manager) Acquire(ctx context.Context, key Key) (*Conn, error) {
	if err := key.Target.validate(); err != nil {
		return nil, err
	}
	s, err := m.server(key.Target.Server)
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, s.timeoutErr(ctx, key.Target)
	}
	for {
		c, err := s.acquire(ctx, key)
		if err != nil {
			return nil, err
		}
		if m.cfg.PingAfterIdle >= 0 && c.idleFor > m.cfg.PingAfterIdle {
			if err := c.pgx.Ping(ctx); err != nil {
				s.release(c, false)
				if ctx.Err() != nil {
					return nil, s.timeoutErr(ctx, key.Target)
				}
				continue // the server dropped it; take another
			}
		}
		return &Conn{c: c}, nil
	}
}

// CloseTarget closes every connection of t: idle ones at once, those in use
// when they are released. Acquires waiting for t fail with ErrTargetClosed.
// It returns once the server has ended every backend of t (so that, for
// example, the target's database can be dropped), or with ctx's error when
// ctx ends first. Acquires of t made after CloseTarget started open new
// connections; the caller stops routing to t first.
func (m *Manager) CloseTarget(ctx context.Context, t Target) error {
	if err := t.validate(); err != nil {
		return err
	}
	s := (*m.servers.Load())[t.Server]
	if s == nil {
		return nil
	}
	for _, gone := range s.closeTarget(t) {
		select {
		case <-gone:
		case <-ctx.Done():
			return fmt.Errorf("close target %s: %w", t, ctx.Err())
		}
	}
	return nil
}

// Close closes the manager: acquires waiting fail with ErrClosed, idle
// connections are closed, connections being opened are abandoned, and
// connections still in use are closed when released. Close waits for the
// connections it closes and for dials in flight; it does not wait for
// connections in use. Calling it again does nothing.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	servers := *m.servers.Load()
	m.mu.Unlock()
	close(m.done)
	m.cancel()
	for _, s := range servers {
		s.close()
	}
	m.wg.Wait()
}

// recycle returns a finished waiter's outcome and puts it back for reuse.
// Its ready channel must be empty.
func (m *Manager) recycle(w *waiter) (*conn, error) {
	c, err := w.conn, w.err
	*w = waiter{ready: w.ready}
	m.waiters.Put(w)
	return c, err
}

// sleep waits for d, or until the manager closes; it reports whether the
// full d passed.
func (m *Manager) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.done:
		return false
	}
}

// reaper closes idle connections past IdleTimeout or MaxConnLifetime and
// forgets groups whose backoff has ended, a few times per IdleTimeout.
func (m *Manager) reaper() {
	defer m.wg.Done()
	tick := time.Second
	for _, d := range []time.Duration{m.cfg.IdleTimeout, m.cfg.MaxConnLifetime} {
		if d > 0 {
			tick = min(tick, d/4)
		}
	}
	tick = max(tick, 5*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			for _, s := range *m.servers.Load() {
				s.reap()
			}
		}
	}
}

// Conn is a connection acquired from a Manager. It is for one goroutine at a
// time, like the *pgx.Conn it holds.
type Conn struct {
	c *conn
}

// Conn returns the pgx connection, or nil once the Conn was released or
// discarded. It must not be kept past Release, nor closed: use Discard.
// (The manager cannot tell when the server ends a backend whose connection
// its user closed, so its slot is reused at once.)
func (c *Conn) Conn() *pgx.Conn {
	if c.c == nil {
		return nil
	}
	return c.c.pgx
}

// Target returns the target the connection belongs to.
func (c *Conn) Target() Target {
	if c.c == nil {
		return Target{}
	}
	return c.c.g.target
}

// Release gives the connection back for reuse. A connection that is closed,
// busy (a result not read to the end) or inside a transaction is closed
// instead, as is one BeforeRelease refuses or that has reached its lifetime
// or its tenant limit. Calls after the first do nothing.
func (c *Conn) Release() {
	ic := c.c
	if ic == nil {
		return
	}
	c.c = nil
	pc := ic.pgx.PgConn()
	reuse := !pc.IsClosed() && !pc.IsBusy() && pc.TxStatus() == 'I'
	if reuse && ic.s.m.cfg.BeforeRelease != nil {
		reuse = ic.s.m.cfg.BeforeRelease(ic.pgx)
	}
	if reuse && ic.s.m.cfg.ConnMemory != nil && len(ic.served) >= max(ic.checkAt, MemoryCheckTenants) {
		ic.checkMemory()
	}
	ic.s.release(ic, reuse)
}

// memoryCheckTimeout bounds one Config.ConnMemory call.
const memoryCheckTimeout = time.Second

// checkMemory measures the backend behind c (Config.ConnMemory), which its
// holder is releasing, and records the outcome for release.
func (c *conn) checkMemory() {
	cfg := &c.s.m.cfg
	ctx, cancel := context.WithTimeout(c.s.m.ctx, memoryCheckTimeout)
	defer cancel()
	n, err := cfg.ConnMemory(ctx, c.pgx)
	c.checkAt = len(c.served) + MemoryCheckTenants
	c.measured = err == nil
	c.overMemory = err == nil && n >= cfg.MaxConnMemory
	if err != nil && c.s.m.memoryWarned.CompareAndSwap(false, true) {
		cfg.Logger.Warn("measuring a connection's memory failed; replacing connections by tenant count",
			"target", c.g.target.String(), "err", err)
	}
}

// Discard closes the connection instead of reusing it: use it when the
// connection may carry session state. Calls after the first, or after
// Release, do nothing.
func (c *Conn) Discard() {
	ic := c.c
	if ic == nil {
		return
	}
	c.c = nil
	ic.s.release(ic, false)
}
