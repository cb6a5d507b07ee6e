package landlord

import (
	"container/list"
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/tenant"
)

// newPool opens a tenant-traffic pool. Every connection it makes prepares the
// enter statements and checks its role before it serves anything.
//
// schema is the session's search path. Statements are parsed, and their
// parameter and result types fixed, when they are first prepared on a
// connection, which happens outside any tenant context: the path points
// parsing at tables of the same shape (the shared ones, or the tenant's own
// in its database). Execution always runs under the tenant's path.
func (l *Landlord) newPool(ctx context.Context, cc *pgx.ConnConfig, schema string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig = cc
	cfg.MaxConns = maxConns
	enters := preparedEnters(l.cfg.TagSessions)
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error { return prepareTenantConn(ctx, conn, enters) }
	if p := l.cfg.Pooler; p != nil {
		// Nothing may live on a connection between transactions, and
		// poolers refuse a search_path at startup: see Pooler.
		cc.Host, cc.Port, cc.Fallbacks = p.Host, p.Port, nil
		cc.DefaultQueryExecMode = pgx.QueryExecModeExec
		cfg.AfterConnect = checkTenantRole
	} else {
		cc.RuntimeParams["search_path"] = searchPath(schema)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool for %s@%s: %w", cc.User, cc.Database, err)
	}
	return pool, nil
}

// checkTenantRole refuses a role that row-level security would not bind
// (THREATS I02). It runs once on each new tenant connection.
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

type poolKey struct {
	id    tenant.ID
	epoch int64
}

// tenantPools holds the pools of tenant databases, at most max of them; the
// least recently used is closed to make room.
type tenantPools struct {
	mu    sync.Mutex
	max   int
	pools map[poolKey]*list.Element // of *poolEntry
	lru   list.List                 // front = most recently used
	// opening de-duplicates concurrent first uses of one tenant.
	opening map[poolKey]*opening
}

type poolEntry struct {
	key  poolKey
	pool *pgxpool.Pool
}

type opening struct {
	done chan struct{}
	pool *pgxpool.Pool
	err  error
}

func newTenantPools(max int) *tenantPools {
	return &tenantPools{max: max, pools: map[poolKey]*list.Element{}, opening: map[poolKey]*opening{}}
}

func (p *tenantPools) get(ctx context.Context, key poolKey, open func(context.Context) (*pgxpool.Pool, error)) (*pgxpool.Pool, error) {
	p.mu.Lock()
	if e, ok := p.pools[key]; ok {
		p.lru.MoveToFront(e)
		p.mu.Unlock()
		return e.Value.(*poolEntry).pool, nil
	}
	if o, ok := p.opening[key]; ok {
		p.mu.Unlock()
		select {
		case <-o.done:
			return o.pool, o.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	o := &opening{done: make(chan struct{})}
	p.opening[key] = o
	p.mu.Unlock()

	o.pool, o.err = open(ctx)

	p.mu.Lock()
	delete(p.opening, key)
	var evicted []*pgxpool.Pool
	if o.err == nil {
		p.pools[key] = p.lru.PushFront(&poolEntry{key: key, pool: o.pool})
		for p.lru.Len() > p.max {
			e := p.lru.Back()
			p.lru.Remove(e)
			pe := e.Value.(*poolEntry)
			delete(p.pools, pe.key)
			evicted = append(evicted, pe.pool)
		}
	}
	p.mu.Unlock()
	close(o.done)
	for _, pool := range evicted {
		// Close waits for acquired connections to come back; do not make
		// this caller wait for another tenant's work.
		go pool.Close()
	}
	return o.pool, o.err
}

// drop closes the pools of tenant id at every epoch.
func (p *tenantPools) drop(id tenant.ID) {
	p.mu.Lock()
	var closing []*pgxpool.Pool
	for k, e := range p.pools {
		if k.id == id {
			p.lru.Remove(e)
			delete(p.pools, k)
			closing = append(closing, e.Value.(*poolEntry).pool)
		}
	}
	p.mu.Unlock()
	for _, pool := range closing {
		go pool.Close()
	}
}

func (p *tenantPools) closeAll() {
	p.mu.Lock()
	var all []*pgxpool.Pool
	for _, e := range p.pools {
		all = append(all, e.Value.(*poolEntry).pool)
	}
	p.pools = map[poolKey]*list.Element{}
	p.lru.Init()
	p.mu.Unlock()
	for _, pool := range all {
		pool.Close()
	}
}

// len returns the number of open pools.
func (p *tenantPools) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pools)
}
