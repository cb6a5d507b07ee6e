package pool

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	ok := func(context.Context, Target) (*pgx.ConnConfig, error) { return nil, nil }
	cases := []struct {
		name    string
		resolve Resolver
		cfg     Config
		want    string
	}{
		{"no resolver", nil, Config{}, "resolver"},
		{"negative MaxConns", ok, Config{MaxConns: -1}, "MaxConns"},
		{"per target over budget", ok, Config{MaxConns: 4, MaxConnsPerTarget: 5}, "MaxConnsPerTarget"},
		{"per tenant over budget", ok, Config{MaxConns: 4, MaxConnsPerTenant: 5}, "MaxConnsPerTenant"},
		{"negative per target", ok, Config{MaxConnsPerTarget: -2}, "MaxConnsPerTarget"},
		{"negative burst", ok, Config{DialBurst: -1}, "DialBurst"},
		{"negative dial timeout", ok, Config{DialTimeout: -time.Second}, "DialTimeout"},
		{"backoff upside down", ok, Config{BackoffMin: time.Second, BackoffMax: time.Millisecond}, "BackoffMax"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(tc.resolve, tc.cfg)
			if err == nil {
				m.Close()
				t.Fatalf("New accepted %+v", tc.cfg)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line naming %s", err, tc.want)
			}
		})
	}
}

func TestAcquireRejectsBadTarget(t *testing.T) {
	t.Parallel()
	e := setup(t)
	m := e.manager(Config{})
	for _, tg := range []Target{
		{Server: mainServer, Database: e.db},
		{Server: mainServer, Role: "r"},
		{Database: e.db, Role: "r"},
	} {
		if _, err := m.Acquire(t.Context(), key(tg, tenant.NewID())); !errors.Is(err, ErrBadTarget) {
			t.Errorf("Acquire(%+v) = %v, want ErrBadTarget", tg, err)
		}
		if err := m.CloseTarget(t.Context(), tg); !errors.Is(err, ErrBadTarget) {
			t.Errorf("CloseTarget(%+v) = %v, want ErrBadTarget", tg, err)
		}
	}
	if n := len(m.Stats().Servers); n != 0 {
		t.Errorf("bad targets left %d servers behind", n)
	}
}

// A tenant's acquire gets the idle connection that last served it, whatever
// the order connections came back in.
func TestAffinity(t *testing.T) {
	t.Parallel()
	e := setup(t)
	m := e.manager(Config{MaxConns: 4, MaxConnsPerTenant: 4})
	tg := e.target(e.db)
	ids := []tenant.ID{tenant.NewID(), tenant.NewID(), tenant.NewID(), tenant.NewID()}
	held := make([]*Conn, len(ids))
	pids := map[tenant.ID]uint32{}
	for i, id := range ids {
		held[i] = acquire(t, m, key(tg, id))
		pids[id] = pid(held[i])
	}
	for _, c := range held {
		c.Release()
	}
	for _, order := range [][]int{{3, 1, 0, 2}, {0, 2, 3, 1}} {
		for _, i := range order {
			held[i] = acquire(t, m, key(tg, ids[i]))
			if got := pid(held[i]); got != pids[ids[i]] {
				t.Errorf("tenant %d got backend %d, want %d, the one that served it last", i, got, pids[ids[i]])
			}
		}
		// Give them back in yet another order.
		for _, i := range []int{1, 3, 0, 2} {
			held[i].Release()
		}
	}
	st := serverStats(t, m)
	if st.Dials != 4 || st.AffinityHits != 8 {
		t.Errorf("dials %d, affinity hits %d: want 4 and 8", st.Dials, st.AffinityHits)
	}

	// A tenant with no connection of its own takes an idle one rather than
	// opening another.
	c := acquire(t, m, key(tg, tenant.NewID()))
	ping(t, c)
	c.Release()
	if st := serverStats(t, m); st.Dials != 4 || st.AffinityMisses != 5 {
		t.Errorf("new tenant: dials %d, misses %d: want 4 and 5", st.Dials, st.AffinityMisses)
	}
}

// A connection its tenant keeps coming back to is not handed to a one-off
// tenant while the pool can grow instead, and one-off tenants share the
// connections nobody comes back to.
func TestAffinityReservesHotTenants(t *testing.T) {
	t.Parallel()
	e := setup(t)
	m := e.manager(Config{MaxConns: 4, MaxConnsPerTenant: 4})
	tg := e.target(e.db)
	hot := tenant.NewID()
	c := acquire(t, m, key(tg, hot))
	hotPID := pid(c)
	c.Release()
	acquire(t, m, key(tg, hot)).Release() // an affinity hit: the connection is the hot tenant's now

	stranger := acquire(t, m, key(tg, tenant.NewID()))
	if pid(stranger) == hotPID {
		t.Fatalf("a one-off tenant took the hot tenant's connection while the pool could grow")
	}
	c = acquire(t, m, key(tg, hot))
	if pid(c) != hotPID {
		t.Errorf("hot tenant got backend %d, want its own %d", pid(c), hotPID)
	}
	c.Release()
	strangerPID := pid(stranger)
	stranger.Release()
	for range 3 {
		c := acquire(t, m, key(tg, tenant.NewID()))
		if pid(c) != strangerPID {
			t.Errorf("one-off tenant got backend %d, want the free %d", pid(c), strangerPID)
		}
		c.Release()
	}
	if st := serverStats(t, m); st.Dials != 2 {
		t.Errorf("%d dials, want 2", st.Dials)
	}
}

// Schema tenants (OwnTables) keep to their homes: with the pool's
// connections all idle each tenant gets the same one every time, so a
// connection serves a share of the tenants, not all of them; when both of
// a tenant's homes are in use it waits briefly for one, then takes
// another idle connection rather than waiting on.
func TestSchemaTenantsKeepToTheirHomes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	m := e.manager(Config{MaxConns: 4, MaxConnsPerTenant: 4})
	tg := e.target(e.db)
	own := func(id tenant.ID) Key { return Key{Target: tg, Tenant: id, OwnTables: true} }
	// Four connections, all idle.
	var held []*Conn
	for range 4 {
		held = append(held, acquire(t, m, own(tenant.NewID())))
	}
	for _, c := range held {
		c.Release()
	}
	ids := make([]tenant.ID, 40)
	served := map[uint32]map[tenant.ID]bool{}
	for i := range ids {
		ids[i] = tenant.NewID()
	}
	for round := range 3 {
		// Other tenants in between, so that the last connection a tenant
		// used is rarely the one it finds idle first.
		for _, id := range ids {
			c := acquire(t, m, own(id))
			p := pid(c)
			c.Release()
			if served[p] == nil {
				served[p] = map[tenant.ID]bool{}
			}
			served[p][id] = true
			if round == 0 {
				continue
			}
			for q, ts := range served {
				if q != p && ts[id] {
					t.Fatalf("tenant %s on backends %d and %d with every connection idle", id, q, p)
				}
			}
		}
	}
	if st := serverStats(t, m); st.Dials != 4 {
		t.Errorf("%d dials, want 4", st.Dials)
	}
	for p, ts := range served {
		if len(ts) == len(ids) {
			t.Errorf("backend %d served every tenant", p)
		}
	}

	// Hold every connection but one, and both homes of a tenant among
	// them: it waits for a home, then takes the idle one.
	held = held[:0]
	for range 4 {
		held = append(held, acquire(t, m, own(tenant.NewID())))
	}
	last := held[3]
	idle, idleSeed := pid(last), last.c.seed
	last.Release()
	held = held[:3]
	var tn tenant.ID
	for {
		tn = tenant.NewID()
		// Its homes are the two of the four seeds that score highest.
		above := 0
		for _, c := range held {
			if homeScore(tn, c.c.seed) > homeScore(tn, idleSeed) {
				above++
			}
		}
		if above >= homes {
			break
		}
	}
	start := time.Now()
	c := acquire(t, m, own(tn))
	if waited := time.Since(start); pid(c) != idle || waited < homeWait {
		t.Errorf("with its homes busy, tenant got backend %d after %s, want the idle %d after at least %s", pid(c), waited, idle, homeWait)
	}
	c.Release()
	for _, c := range held {
		c.Release()
	}
	if st := serverStats(t, m); st.Dials != 4 {
		t.Errorf("%d dials after the wait, want 4: it took the idle connection, it did not open one", st.Dials)
	}
}

// Schema tenants (OwnTables) wear a connection out after MaxTenantsPerConn
// distinct tenants; row tenants never do.
func TestRecycleByTenants(t *testing.T) {
	t.Parallel()
	e := setup(t)
	m := e.manager(Config{MaxConns: 1, MaxTenantsPerConn: 3})
	tg := e.target(e.db)
	use := func(id tenant.ID, own bool) uint32 {
		t.Helper()
		c := acquire(t, m, Key{Target: tg, Tenant: id, OwnTables: own})
		defer c.Release()
		ping(t, c)
		return pid(c)
	}
	first := use(tenant.NewID(), false)
	for range 10 {
		if got := use(tenant.NewID(), false); got != first {
			t.Fatalf("row tenants recycled the connection: backend %d, then %d", first, got)
		}
	}
	a, b, c := tenant.NewID(), tenant.NewID(), tenant.NewID()
	for _, id := range []tenant.ID{a, b, a, a, b} {
		if got := use(id, true); got != first {
			t.Fatalf("two schema tenants recycled the connection (limit 3): backend %d, then %d", first, got)
		}
	}
	use(c, true) // the third distinct schema tenant: closed on release
	if got := use(a, true); got == first {
		t.Fatalf("backend %d still in use after serving 3 schema tenants", got)
	}
	st := serverStats(t, m)
	if st.RecycledTenants != 1 {
		t.Errorf("RecycledTenants = %d, want 1", st.RecycledTenants)
	}
	if n := e.backends(""); n != 1 {
		t.Errorf("%d backends, want 1: the recycled one must be gone", n)
	}
}

// With Config.ConnMemory the backend's measured memory decides, every
// MemoryCheckTenants new schema tenants, instead of the tenant count; a
// failed measurement falls back to the count.
func TestRecycleByMemory(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var memory atomic.Int64 // what the measurement reports; -1: fail
	var checks atomic.Int64
	m := e.manager(Config{MaxConns: 1, MaxTenantsPerConn: MemoryCheckTenants + 8, MaxConnMemory: 1000,
		ConnMemory: func(ctx context.Context, conn *pgx.Conn) (int64, error) {
			checks.Add(1)
			if err := conn.Ping(ctx); err != nil {
				return 0, err
			}
			if n := memory.Load(); n >= 0 {
				return n, nil
			}
			return 0, errors.New("no measurement")
		}})
	tg := e.target(e.db)
	use := func() uint32 {
		t.Helper()
		c := acquire(t, m, Key{Target: tg, Tenant: tenant.NewID(), OwnTables: true})
		defer c.Release()
		ping(t, c)
		return pid(c)
	}
	// Under the limit: the connection outlives the tenant count.
	memory.Store(10)
	first := use()
	for i := 1; i < 2*MemoryCheckTenants+16; i++ {
		if got := use(); got != first {
			t.Fatalf("tenant %d: backend %d replaced by %d although its memory was under the limit", i+1, first, got)
		}
	}
	if n := checks.Load(); n != 2 {
		t.Errorf("%d measurements after %d tenants, want 2 (one per %d)", n, 2*MemoryCheckTenants+16, MemoryCheckTenants)
	}
	// Over the limit at the next measurement: replaced.
	memory.Store(1000)
	second := first
	for i := 0; i < MemoryCheckTenants && second == first; i++ {
		second = use()
	}
	if second == first {
		t.Fatalf("backend %d kept for %d tenants although its memory reached the limit", first, MemoryCheckTenants)
	}
	if st := serverStats(t, m); st.RecycledTenants != 1 {
		t.Errorf("RecycledTenants = %d, want 1", st.RecycledTenants)
	}
	// A failed measurement: the count applies again (MemoryCheckTenants+8).
	memory.Store(-1)
	for i := 1; i < MemoryCheckTenants+8; i++ {
		if got := use(); got != second {
			t.Fatalf("tenant %d: backend replaced before the tenant count", i+1)
		}
	}
	if got := use(); got == second {
		t.Fatalf("backend %d kept past the tenant count after a failed measurement", got)
	}
}

func TestRecycleByLifetime(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const lifetime = 500 * time.Millisecond // at least 400 ms with jitter
	m := e.manager(Config{MaxConns: 2, MaxConnLifetime: lifetime, IdleTimeout: -1})
	tg := e.target(e.db)
	id := tenant.NewID()

	held := acquire(t, m, key(tg, tenant.NewID()))
	heldPID := pid(held)
	// Past the lifetime, the connection in use is closed when released.
	time.Sleep(lifetime + 50*time.Millisecond)
	held.Release()
	c := acquire(t, m, key(tg, id))
	defer c.Release()
	ping(t, c)
	if pid(c) == heldPID {
		t.Errorf("backend %d reused after its lifetime", heldPID)
	}
	if st := serverStats(t, m); st.RecycledAge != 1 {
		t.Errorf("RecycledAge = %d, want 1", st.RecycledAge)
	}
	// And an idle one past its lifetime is closed by the reaper.
	c.Release()
	eventually(t, "the idle connection past its lifetime is closed", func() bool {
		return serverStats(t, m).Open == 0 && e.backends("") == 0
	})
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	e := setup(t)
	m := e.manager(Config{MaxConns: 4, MaxConnsPerTenant: 4, IdleTimeout: 150 * time.Millisecond})
	tg := e.target(e.db)
	id := tenant.NewID()
	var held []*Conn
	for range 3 {
		held = append(held, acquire(t, m, key(tg, id)))
	}
	held[0].Release()
	held[1].Release()
	eventually(t, "the two idle connections are closed", func() bool {
		st := serverStats(t, m)
		return st.Open == 1 && st.InUse == 1 && e.backends("") == 1
	})
	ping(t, held[2]) // the one in use is untouched
	if st := serverStats(t, m); st.IdleClosed != 2 {
		t.Errorf("IdleClosed = %d, want 2", st.IdleClosed)
	}
	held[2].Release()
	eventually(t, "the last connection is closed", func() bool { return e.backends("") == 0 })
}

// When the budget is full, a new target takes the place of the least
// recently used idle connection, and the target left without connections
// is forgotten.
func TestEvictIdleGroup(t *testing.T) {
	t.Parallel()
	e := setup(t)
	db1, db2, db3 := e.db, e.newDB(), e.newDB()
	t1, t2, t3 := e.target(db1), e.target(db2), e.target(db3)
	m := e.manager(Config{MaxConns: 2, MaxConnsPerTenant: 2})
	id := tenant.NewID()
	acquire(t, m, key(t1, id)).Release()
	acquire(t, m, key(t2, id)).Release()

	c3 := acquire(t, m, key(t3, id))
	ping(t, c3)
	st := serverStats(t, m)
	if st.Evictions != 1 {
		t.Errorf("Evictions = %d, want 1", st.Evictions)
	}
	if _, ok := targetStats(st, t1); ok {
		t.Errorf("target %s still has a group after its only connection was evicted", t1)
	}
	if ts, ok := targetStats(st, t2); !ok || ts.Idle != 1 {
		t.Errorf("target %s: %+v, want its idle connection kept (it was used more recently)", t2, ts)
	}
	if n := e.backends(db1); n != 0 {
		t.Errorf("%d backends left on %s", n, db1)
	}
	if st.Open > 2 {
		t.Errorf("Open = %d, over the budget of 2", st.Open)
	}

	// With every connection held there is nothing to evict: a third target
	// waits and times out with the typed error.
	c2 := acquire(t, m, key(t2, tenant.NewID()))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := m.Acquire(ctx, key(t1, tenant.NewID()))
	if !errors.Is(err, ErrAcquireTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("acquire with the budget held = %v, want ErrAcquireTimeout and DeadlineExceeded", err)
	}
	c2.Release()
	c3.Release()
}

// When the budget is full, a target without connections takes a spare
// connection of a target that keeps another, even a more recently used
// one, before it takes another target's only connection.
func TestEvictSpareBeforeOnly(t *testing.T) {
	t.Parallel()
	e := setup(t)
	db1, db2, db3 := e.db, e.newDB(), e.newDB()
	t1, t2, t3 := e.target(db1), e.target(db2), e.target(db3)
	m := e.manager(Config{MaxConns: 3, MaxConnsPerTenant: 3})
	acquire(t, m, key(t2, tenant.NewID())).Release() // t2's only connection, least recently used
	a, b := acquire(t, m, key(t1, tenant.NewID())), acquire(t, m, key(t1, tenant.NewID()))
	a.Release()
	b.Release()

	c3 := acquire(t, m, key(t3, tenant.NewID()))
	ping(t, c3)
	st := serverStats(t, m)
	if st.Evictions != 1 {
		t.Errorf("Evictions = %d, want 1", st.Evictions)
	}
	if ts, ok := targetStats(st, t2); !ok || ts.Idle != 1 {
		t.Errorf("target %s: %+v, want its only connection kept", t2, ts)
	}
	if ts, ok := targetStats(st, t1); !ok || ts.Idle != 1 {
		t.Errorf("target %s: %+v, want one of its two connections evicted", t1, ts)
	}
	c3.Release()
}

// Among only connections, the one of the target with the least recent
// demand goes, not the least recently used: a hot tenant keeps its
// connection through a burst of one-off tenants.
func TestEvictLeastDemand(t *testing.T) {
	t.Parallel()
	e := setup(t)
	db1, db2, db3 := e.db, e.newDB(), e.newDB()
	t1, t2, t3 := e.target(db1), e.target(db2), e.target(db3)
	m := e.manager(Config{MaxConns: 2, MaxConnsPerTenant: 2})
	for range 10 {
		acquire(t, m, key(t1, tenant.NewID())).Release() // hot, least recently used
	}
	acquire(t, m, key(t2, tenant.NewID())).Release() // one call, more recent

	c3 := acquire(t, m, key(t3, tenant.NewID()))
	ping(t, c3)
	st := serverStats(t, m)
	if ts, ok := targetStats(st, t1); !ok || ts.Idle != 1 {
		t.Errorf("hot target %s: %+v, want its connection kept", t1, ts)
	}
	if _, ok := targetStats(st, t2); ok {
		t.Errorf("target %s with one call kept its connection; want it evicted", t2)
	}
	c3.Release()
}

// A target that has a connection, busy, waits for it rather than closing
// another target's warm connection when the budget is full: growing by
// eviction would make two busy tenant databases take each other's
// connections back and forth. Once the other connection has been idle for
// evictAfter, it is cold and may go.
func TestBusyTargetWaitsInsteadOfEvictingWarm(t *testing.T) {
	t.Parallel()
	e := setup(t)
	db1, db2 := e.db, e.newDB()
	t1, t2 := e.target(db1), e.target(db2)
	m := e.manager(Config{MaxConns: 2, MaxConnsPerTenant: 2})
	a, b := tenant.NewID(), tenant.NewID()
	warm := time.Now()                  // t2's connection is idle since after this
	acquire(t, m, key(t2, b)).Release() // t2's connection: idle and warm
	c1 := acquire(t, m, key(t1, a))     // t1's only connection: busy

	got := make(chan *Conn)
	go func() {
		c, err := m.Acquire(context.Background(), key(t1, a))
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	eventually(t, "the second acquire of t1 waits", func() bool { return serverStats(t, m).Waiting == 1 || serverStats(t, m).Evictions > 0 })
	// The acquire decided when it queued, which was within evictAfter of
	// warm unless the machine stalled this test for that long: then t2's
	// connection was cold and taking it was right.
	if since := time.Since(warm); since >= evictAfter {
		c1.Release()
		if c := <-got; c != nil {
			c.Release()
		}
		t.Skipf("the acquire queued %v after t2's connection was used, not within evictAfter (%v): warm and cold cannot be told apart on a machine this slow", since, evictAfter)
	}
	time.Sleep(100 * time.Millisecond)
	if st := serverStats(t, m); st.Evictions != 0 || st.Waiting != 1 {
		t.Fatalf("evictions %d, waiting %d: want t1 to wait for its own connection, not evict t2's warm one", st.Evictions, st.Waiting)
	}
	p1 := pid(c1)
	c1.Release()
	c := <-got
	if pid(c) != p1 {
		t.Errorf("waiter got backend %d, want t1's released %d", pid(c), p1)
	}

	// Both of t1's acquires again, after t2's connection has gone cold: the
	// second takes its slot.
	time.Sleep(evictAfter + 50*time.Millisecond)
	c2 := acquire(t, m, key(t1, a))
	ping(t, c2)
	st := serverStats(t, m)
	if st.Evictions != 1 {
		t.Errorf("Evictions = %d, want 1: a cold connection of another target may go", st.Evictions)
	}
	if ts, ok := targetStats(st, t1); !ok || ts.InUse != 2 {
		t.Errorf("t1: %+v, want 2 connections in use", ts)
	}
	c.Release()
	c2.Release()
}

func TestAcquireTimeout(t *testing.T) {
	t.Parallel()
	e := setup(t)
	m := e.manager(Config{MaxConns: 2, MaxConnsPerTenant: 2})
	tg := e.target(e.db)
	a := acquire(t, m, key(tg, tenant.NewID()))
	b := acquire(t, m, key(tg, tenant.NewID()))

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := m.Acquire(ctx, key(tg, tenant.NewID())); !errors.Is(err, ErrAcquireTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: %v, want ErrAcquireTimeout wrapping DeadlineExceeded", err)
	}
	ctx, cancel = context.WithCancel(t.Context())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := m.Acquire(ctx, key(tg, tenant.NewID())); !errors.Is(err, ErrAcquireTimeout) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: %v, want ErrAcquireTimeout wrapping Canceled", err)
	}
	st := serverStats(t, m)
	if st.AcquireTimeouts != 2 || st.Waiting != 0 {
		t.Errorf("timeouts %d, waiting %d: want 2 and 0", st.AcquireTimeouts, st.Waiting)
	}

	// A waiter without a deadline gets the next connection released.
	got := make(chan *Conn)
	go func() {
		c, err := m.Acquire(context.Background(), key(tg, tenant.NewID()))
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	eventually(t, "the acquire waits", func() bool { return serverStats(t, m).Waiting == 1 })
	aPID := pid(a)
	a.Release()
	c := <-got
	if pid(c) != aPID {
		t.Errorf("waiter got backend %d, want the released %d", pid(c), aPID)
	}
	c.Release()
	b.Release()
	if st := serverStats(t, m); st.Dials != 2 || st.Open > 2 {
		t.Errorf("dials %d, open %d: want 2 and at most 2", st.Dials, st.Open)
	}
}

// gatedResolver blocks every resolve until the gate is opened, counting
// calls: the dials the manager starts.
type gatedResolver struct {
	e     *env
	calls atomic.Int64
	gate  chan struct{}
}

func (g *gatedResolver) resolve(ctx context.Context, t Target) (*pgx.ConnConfig, error) {
	g.calls.Add(1)
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.e.resolver()(ctx, t)
}

// Many acquires for a target without connections cause one dial, not one
// each; and a tenant queueing behind a busy target causes one more at a
// time.
func TestDialDeduplication(t *testing.T) {
	t.Parallel()
	e := setup(t)
	gr := &gatedResolver{e: e, gate: make(chan struct{})}
	m := e.managerWith(gr.resolve, Config{MaxConns: 10, MaxConnsPerTenant: 10, MaxDialsPerSecond: -1})
	tg := e.target(e.db)

	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			c, err := m.Acquire(t.Context(), key(tg, tenant.NewID()))
			if err != nil {
				t.Error(err)
				return
			}
			ping(t, c)
			c.Release()
		})
	}
	eventually(t, "all acquires wait", func() bool { return serverStats(t, m).Waiting == n })
	if got := gr.calls.Load(); got != 1 {
		t.Errorf("%d acquires of a cold target started %d dials, want 1", n, got)
	}
	close(gr.gate)
	wg.Wait()
	if st := serverStats(t, m); st.Dials > 10 || st.Acquires != n {
		t.Errorf("dials %d (budget 10), acquires %d (want %d)", st.Dials, st.Acquires, n)
	}

	// One tenant queueing many acquires behind a held connection: one dial
	// in flight at a time.
	gr2 := &gatedResolver{e: e, gate: make(chan struct{})}
	m2 := e.managerWith(gr2.resolve, Config{MaxConns: 10, MaxConnsPerTenant: 10, MaxDialsPerSecond: -1})
	close(gr2.gate)
	id := tenant.NewID()
	held := acquire(t, m2, key(tg, id))
	gr2.gate = make(chan struct{})
	gr2.calls.Store(0)
	for range n {
		wg.Go(func() {
			c, err := m2.Acquire(t.Context(), key(tg, id))
			if err != nil {
				t.Error(err)
				return
			}
			c.Release()
		})
	}
	eventually(t, "all acquires wait", func() bool { return serverStats(t, m2).Waiting == n })
	if got := gr2.calls.Load(); got != 1 {
		t.Errorf("%d queued acquires of one tenant started %d dials, want 1", n, got)
	}
	close(gr2.gate)
	held.Release()
	wg.Wait()
}

// A target that cannot be reached fails its acquires with a DialError, and
// is not hammered: attempts back off, per target, and per server when the
// server itself does not answer.
func TestDialFailureBacksOff(t *testing.T) {
	t.Parallel()
	e := setup(t)
	missing := e.target("pooltest_missing_" + randomHex(4))
	downServer := "down"
	resolve := func(ctx context.Context, tg Target) (*pgx.ConnConfig, error) {
		cc, err := e.resolver()(ctx, tg)
		if err == nil && tg.Server == downServer {
			cc.Host, cc.Port = "127.0.0.1", 1 // nothing listens there
		}
		return cc, err
	}
	cfg := Config{
		MaxConns: 4, MaxDialsPerSecond: -1,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
	}
	m := e.managerWith(resolve, cfg)

	began := time.Now()
	_, err := m.Acquire(t.Context(), key(missing, tenant.NewID()))
	var pgErr *pgconn.PgError
	if !IsDialError(err) || !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.InvalidCatalogName {
		t.Fatalf("acquire of a missing database = %v, want a DialError wrapping 3D000", err)
	}

	// hammer acquires targets from 8 goroutines for half a second, and on
	// until dials() has counted 3 attempts (a retry after a backoff), and
	// returns how long it took until the last acquire gave up.
	hammer := func(targets []Target, dials func() uint64) time.Duration {
		var wg sync.WaitGroup
		var stop atomic.Bool
		for i := range 8 {
			wg.Go(func() {
				for !stop.Load() {
					ctx, cancel := context.WithTimeout(t.Context(), time.Second)
					_, err := m.Acquire(ctx, key(targets[i%len(targets)], tenant.NewID()))
					cancel()
					if !IsDialError(err) && !errors.Is(err, ErrAcquireTimeout) {
						t.Errorf("acquire of an unreachable target = %v, want a DialError", err)
						return
					}
				}
			})
		}
		time.Sleep(500 * time.Millisecond)
		eventually(t, "a target is retried after its backoff", func() bool { return dials() >= 3 })
		stop.Store(true)
		wg.Wait()
		return time.Since(began)
	}
	// 8 goroutines for half a second: thousands of attempts without backoff.
	// With it, the attempts of a target or a failed server follow one
	// another, each after a backoff.
	mainDials := func() uint64 { return serverStats(t, m).Dials }
	took := hammer([]Target{missing}, mainDials)
	if n, most := mainDials(), backoffBound(cfg, took); n > most {
		t.Errorf("%d dials to a missing database in %v, want at most %d (backoff)", n, took, most)
	}
	// The other targets of the server are not held back by it.
	c := acquire(t, m, key(e.target(e.db), tenant.NewID()))
	ping(t, c)
	c.Release()

	var down []Target
	for i := range 8 {
		down = append(down, Target{Server: downServer, Database: "db" + string(rune('a'+i)), Role: "r"})
	}
	downStats := func() ServerStats {
		for _, s := range m.Stats().Servers {
			if s.Server == downServer {
				return s
			}
		}
		return ServerStats{}
	}
	began = time.Now()
	took = hammer(down, func() uint64 { return downStats().Dials })
	// Until the first failure, up to MaxConns dials may be under way at
	// once; after it the server is probed one dial at a time.
	st := downStats()
	if most := uint64(cfg.MaxConns-1) + backoffBound(cfg, took); !st.Failing || st.Dials > most {
		t.Errorf("down server: failing %t, %d dials across 8 targets in %v: want failing and at most %d",
			st.Failing, st.Dials, took, most)
	}
}

// backoffBound is the most attempts that follow one another in d under
// cfg's backoff: each starts at least half of BackoffMin after the failure
// before it. (The backoff doubles with each failure, but a target left
// without waiters and past its backoff may be forgotten and start over.)
func backoffBound(cfg Config, d time.Duration) uint64 {
	return 1 + uint64(d/(cfg.BackoffMin/2))
}

func TestAfterConnect(t *testing.T) {
	t.Parallel()
	e := setup(t)
	good, bad := e.target(e.db), e.target(e.newDB())
	errHook := errors.New("refused by the hook")
	var calls atomic.Int64
	m := e.manager(Config{MaxConns: 4, MaxConnsPerTenant: 4, BackoffMin: time.Millisecond, BackoffMax: time.Millisecond,
		AfterConnect: func(ctx context.Context, conn *pgx.Conn) error {
			calls.Add(1)
			if conn.Config().Database == bad.Database {
				return errHook
			}
			_, err := conn.Prepare(ctx, "hooked", "SELECT 42")
			return err
		}})
	var held []*Conn
	for range 3 {
		held = append(held, acquire(t, m, key(good, tenant.NewID())))
	}
	for _, c := range held {
		var v int
		if err := c.Conn().QueryRow(t.Context(), "hooked").Scan(&v); err != nil || v != 42 {
			t.Errorf("statement prepared by AfterConnect: %d, %v", v, err)
		}
		c.Release()
	}
	for range 5 {
		acquire(t, m, key(good, tenant.NewID())).Release()
	}
	if got, dials := calls.Load(), serverStats(t, m).Dials; got != 3 || dials != 3 {
		t.Errorf("AfterConnect ran %d times for %d dials, want once per connection (3)", got, dials)
	}

	_, err := m.Acquire(t.Context(), key(bad, tenant.NewID()))
	if !errors.Is(err, errHook) || !IsDialError(err) {
		t.Fatalf("acquire with a failing AfterConnect = %v, want a DialError wrapping the hook's error", err)
	}
	// The connection was closed before the acquire failed.
	if n := e.backends(bad.Database); n != 0 {
		t.Errorf("%d backends left on %s after AfterConnect failed", n, bad.Database)
	}
}

// Connections that may carry state are closed on release, never reused.
func TestReleaseClosesUnsafeConnections(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		use  func(t *testing.T, c *Conn)
		give func(c *Conn)
	}{
		{"in a transaction", func(t *testing.T, c *Conn) {
			if _, err := c.Conn().Exec(t.Context(), "BEGIN"); err != nil {
				t.Fatal(err)
			}
		}, (*Conn).Release},
		{"in a failed transaction", func(t *testing.T, c *Conn) {
			c.Conn().Exec(t.Context(), "BEGIN")
			c.Conn().Exec(t.Context(), "SELECT 1/0")
		}, (*Conn).Release},
		{"busy with a long result left unread", func(t *testing.T, c *Conn) {
			// 200 MB of rows: the backend blocks writing them until its
			// query is cancelled.
			rows, err := c.Conn().Query(t.Context(), "SELECT repeat('x', 1000) FROM generate_series(1, 200000)")
			if err != nil {
				t.Fatal(err)
			}
			_ = rows // left unread
		}, (*Conn).Release},
		{"closed by its user", func(t *testing.T, c *Conn) {
			c.Conn().Close(t.Context())
		}, (*Conn).Release},
		{"session state refused by BeforeRelease", func(t *testing.T, c *Conn) {
			if _, err := c.Conn().Exec(t.Context(), "SET application_name = 'changed'"); err != nil {
				t.Fatal(err)
			}
		}, (*Conn).Release},
		{"discarded", func(t *testing.T, c *Conn) {}, (*Conn).Discard},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			var checked atomic.Int64
			m := e.manager(Config{MaxConns: 1, MaxConnsPerTenant: 1, BeforeRelease: func(conn *pgx.Conn) bool {
				checked.Add(1)
				return conn.PgConn().ParameterStatus("application_name") == e.app
			}})
			tg := e.target(e.db)
			c := acquire(t, m, key(tg, tenant.NewID()))
			first := pid(c)
			tc.use(t, c)
			tc.give(c)
			if c.Conn() != nil {
				t.Error("Conn() after release is not nil")
			}
			tc.give(c) // a second call does nothing
			// The budget is one connection: this acquire proceeds only once
			// the server has ended the first backend.
			c = acquire(t, m, key(tg, tenant.NewID()))
			ping(t, c)
			if pid(c) == first {
				t.Errorf("backend %d reused", first)
			}
			// The old backend is gone before its slot is reused, except
			// when its user closed the connection: then nothing tells when
			// the server is done with it.
			if n := e.backends(""); n != 1 && tc.name != "closed by its user" {
				t.Errorf("%d backends, want 1", n)
			}
			c.Release()
			if st := serverStats(t, m); st.Discards != 1 {
				t.Errorf("Discards = %d, want 1", st.Discards)
			}
			if tc.name == "session state refused by BeforeRelease" && checked.Load() != 2 {
				t.Errorf("BeforeRelease ran %d times, want 2", checked.Load())
			}
		})
	}
}

// An idle connection the server dropped is replaced before anyone sees it.
func TestPingReplacesDroppedConnection(t *testing.T) {
	t.Parallel()
	e := setup(t)
	m := e.manager(Config{MaxConns: 2, PingAfterIdle: time.Nanosecond})
	tg := e.target(e.db)
	c := acquire(t, m, key(tg, tenant.NewID()))
	dead := pid(c)
	c.Release()
	if _, err := e.admin.Exec(t.Context(), "SELECT pg_terminate_backend($1::int, 5000)", dead); err != nil {
		t.Fatal(err)
	}
	c = acquire(t, m, key(tg, tenant.NewID()))
	defer c.Release()
	ping(t, c)
	if pid(c) == dead {
		t.Fatalf("got the terminated backend %d", dead)
	}
}

// The cap on one tenant's connections holds across targets, and leaves the
// rest of the budget to others.
func TestTenantCapAcrossTargets(t *testing.T) {
	t.Parallel()
	e := setup(t)
	t1, t2 := e.target(e.db), e.target(e.newDB())
	m := e.manager(Config{MaxConns: 4, MaxConnsPerTenant: 2})
	a := tenant.NewID()
	c1 := acquire(t, m, key(t1, a))
	c2 := acquire(t, m, key(t2, a))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := m.Acquire(ctx, key(t1, a)); !errors.Is(err, ErrAcquireTimeout) {
		t.Errorf("third connection for a tenant capped at 2 = %v, want ErrAcquireTimeout", err)
	}
	b := acquire(t, m, key(t1, tenant.NewID()))
	ping(t, b)
	b.Release()
	c1.Release()
	c := acquire(t, m, key(t1, a)) // under the cap again
	c.Release()
	c2.Release()
}

// TestTenantOwnCap: a key's MaxConns lowers the cap of its tenant alone,
// and a waiter over it is served once the tenant gives a connection back.
func TestTenantOwnCap(t *testing.T) {
	t.Parallel()
	e := setup(t)
	t1 := e.target(e.db)
	m := e.manager(Config{MaxConns: 4, MaxConnsPerTenant: 3})
	a, b := tenant.NewID(), tenant.NewID()
	capped := key(t1, a)
	capped.MaxConns = 1
	c1 := acquire(t, m, capped)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := m.Acquire(ctx, capped); !errors.Is(err, ErrAcquireTimeout) {
		t.Errorf("second connection for a tenant capped at 1 = %v, want ErrAcquireTimeout", err)
	}
	// Another tenant keeps the configured cap.
	var bs []*Conn
	for range 3 {
		c := acquire(t, m, key(t1, b))
		ping(t, c)
		bs = append(bs, c)
	}
	for _, c := range bs {
		c.Release()
	}
	got := make(chan *Conn)
	go func() {
		c, err := m.Acquire(t.Context(), capped)
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	c1.Release()
	if c := <-got; c != nil {
		ping(t, c)
		c.Release()
	}
}

func TestCloseTarget(t *testing.T) {
	t.Parallel()
	e := setup(t)
	db := e.newDB()
	tg := e.target(db)
	m := e.manager(Config{MaxConns: 4, MaxConnsPerTenant: 1})
	x := tenant.NewID()
	held := acquire(t, m, key(tg, x))
	acquire(t, m, key(tg, tenant.NewID())).Release() // one idle connection

	// A second acquire of tenant x waits: x is at its cap.
	waitErr := make(chan error, 1)
	go func() {
		_, err := m.Acquire(t.Context(), key(tg, x))
		waitErr <- err
	}()
	eventually(t, "the capped acquire waits", func() bool { return serverStats(t, m).Waiting == 1 })

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	if err := m.CloseTarget(ctx, tg); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CloseTarget with a connection held = %v, want the context's error", err)
	}
	cancel()
	if err := <-waitErr; !errors.Is(err, ErrTargetClosed) {
		t.Errorf("waiting acquire = %v, want ErrTargetClosed", err)
	}
	if n := e.backends(db); n != 1 {
		t.Errorf("%d backends on %s, want only the held one (the idle one closed)", n, db)
	}

	closed := make(chan error, 1)
	go func() { closed <- m.CloseTarget(t.Context(), tg) }()
	ping(t, held)
	held.Release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if n := e.backends(db); n != 0 {
		t.Errorf("CloseTarget returned with %d backends left on %s", n, db)
	}
	// Nothing is left on the database: it can be dropped without FORCE.
	if _, err := e.admin.Exec(t.Context(), "DROP DATABASE "+ident.Quote(db)); err != nil {
		t.Errorf("drop database after CloseTarget: %v", err)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	e := setup(t)
	m, err := New(e.resolver(), Config{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	tg := e.target(e.db)
	held := acquire(t, m, key(tg, tenant.NewID()))
	waitErr := make(chan error, 1)
	go func() {
		_, err := m.Acquire(t.Context(), key(tg, tenant.NewID()))
		waitErr <- err
	}()
	eventually(t, "the second acquire waits", func() bool { return serverStats(t, m).Waiting == 1 })
	m.Close()
	if err := <-waitErr; !errors.Is(err, ErrClosed) {
		t.Errorf("waiting acquire = %v, want ErrClosed", err)
	}
	if _, err := m.Acquire(t.Context(), key(tg, tenant.NewID())); !errors.Is(err, ErrClosed) {
		t.Errorf("acquire after Close = %v, want ErrClosed", err)
	}
	if _, err := m.Acquire(t.Context(), key(Target{Server: "other", Database: "d", Role: "r"}, tenant.NewID())); !errors.Is(err, ErrClosed) {
		t.Errorf("acquire of a new server after Close = %v, want ErrClosed", err)
	}
	ping(t, held) // a held connection stays usable until released
	held.Release()
	eventually(t, "the released connection is closed", func() bool { return e.backends("") == 0 })
	m.Close()
}
