package pool

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/tenant"
)

// server is the state of one server: its budget, its target groups, its
// tenants and its waiting acquires, all under one mutex. Servers are
// independent of each other.
type server struct {
	m    *Manager
	name string

	mu     sync.Mutex
	closed bool
	groups map[Target]*group
	// detached holds groups closed by CloseTarget until their last
	// connection is gone.
	detached map[Target][]*group
	// tenants holds the tenants that hold connections or wait; free keeps
	// a few spare entries so that a tenant coming and going allocates
	// nothing.
	tenants map[tenant.ID]*tenantState
	free    []*tenantState
	// idle holds every idle connection of the server, most recently
	// released first: eviction and the idle timeout take from the back.
	idle ilist[conn]
	// ring holds the tenants with waiting acquires, in round-robin order.
	ring  ilist[tenantState]
	round uint64 // advances with each dispatch round; see group.claims

	// The budget: open = dialing + idle.n + inUse + closing.
	dialing, inUse, closing int

	// Server-wide backoff after network-level dial failures.
	failing  bool
	failures int
	retryAt  int64
	lastErr  error
	// wake runs dispatch when the earliest backoff ends, at wakeTime.
	wake     *time.Timer
	wakeTime int64

	st   Counters
	hist histogram
}

// group is the state of one target on its server.
type group struct {
	target Target
	// open counts the group's connections: dialing, idle and in use (not
	// those being closed, which count in closing).
	open, dialing, inUse, closing int
	idle                          ilist[conn] // most recently released first
	// aff indexes idle connections by the tenant they last served: the
	// most recently released of each tenant's chain.
	aff map[tenant.ID]*conn
	// conns holds the group's established connections, idle or in use,
	// but not those being closed: the candidates for a tenant's homes.
	conns   []*conn
	waiters int
	ticks   uint64 // acquires served, the clock of affinity (see victimFor)
	// demand and demandTime: see touch. Eviction keeps the connections of
	// the targets with the most demand.
	demand     float64
	demandTime int64

	// claims counts, within dispatch round claimRound, the waiters that
	// were found covered by a dial already in flight, so that N waiters
	// cause at most the dials they need; blocked records that the group
	// can neither be served nor dial in this round (nothing frees up
	// within a round), so its other waiters are skipped cheaply.
	claimRound uint64
	claims     int
	blocked    bool

	failures int
	retryAt  int64
	lastErr  error

	closed bool          // by CloseTarget: no longer in server.groups
	gone   chan struct{} // closed when a closed group has no connection left

	st Counters
}

func (g *group) established() int { return g.open - g.dialing }

// demandHalfLife is the half-life of group.demand: long enough to tell a
// tenant that calls a few times a second from one that called once, short
// enough that a tenant that went quiet gives up its connection within a
// minute or so.
const demandHalfLife = 5 * time.Second

// touch counts an acquire of g at now in its demand. Acquires within
// demandTick of the last decay are added undecayed (an error under 0.2%),
// which keeps the exponential off the hot path of a busy target.
func (g *group) touch(now int64) {
	if d := now - g.demandTime; g.demand > 0 && d >= 0 && d < int64(demandTick) {
		g.demand++
		return
	}
	g.demand = g.demandAt(now) + 1
	g.demandTime = now
}

// demandTick: see touch.
const demandTick = 10 * time.Millisecond

// demandAt returns g's acquires, each weighed down by half for every
// demandHalfLife since it came: a rate of acquires that follows the
// tenant's recent traffic.
func (g *group) demandAt(now int64) float64 {
	if g.demand == 0 {
		return 0
	}
	return g.demand * math.Exp2(-float64(now-g.demandTime)/float64(demandHalfLife))
}

// conn is a server connection owned by the manager.
type conn struct {
	pgx *pgx.Conn
	s   *server
	g   *group

	expires   int64 // manager clock; 0: never
	idleSince int64
	idleFor   time.Duration // how long it was idle before its current use

	lastTenant tenant.ID
	lastHit    uint64 // group.ticks at its last affinity hit; 0: none
	// seed ranks the connection among its group's for each schema tenant
	// (see homes); at is its index in group.conns, -1 when not there.
	seed   uint64
	at     int
	served map[tenant.ID]struct{} // distinct OwnTables tenants served
	// memory checks (Config.ConnMemory): checkAt is the size of served at
	// which the next one runs; measured says the last one succeeded, so
	// the tenant count does not apply; overMemory that it found the
	// backend over Config.MaxConnMemory.
	checkAt              int
	measured, overMemory bool
	ts                   *tenantState // the tenant holding it, while in use

	sidle, gidle, aff links[conn]
}

// tenantState is a tenant's share of one server.
type tenantState struct {
	id     tenant.ID
	held   int
	limit  int           // the tenant's cap: Config.MaxConnsPerTenant, or its Key.MaxConns when lower
	queue  ilist[waiter] // first come, first served
	ring   links[tenantState]
	inRing bool
}

// waiter is an acquire waiting for a connection. Waiters are reused
// (Manager.waiters): once done, nothing but its own acquire refers to one.
type waiter struct {
	key   Key
	g     *group
	ts    *tenantState
	q     links[waiter]
	start int64
	ready chan struct{} // receives once, when done is set
	done  bool
	conn  *conn
	err   error
}

func newServer(m *Manager, name string) *server {
	s := &server{
		m:        m,
		name:     name,
		groups:   map[Target]*group{},
		detached: map[Target][]*group{},
		tenants:  map[tenant.ID]*tenantState{},
		hist:     newHistogram(),
	}
	s.idle.at = func(c *conn) *links[conn] { return &c.sidle }
	s.ring.at = func(t *tenantState) *links[tenantState] { return &t.ring }
	return s
}

func (s *server) open() int { return s.dialing + s.idle.n + s.inUse + s.closing }

func (s *server) group(t Target) *group {
	if g := s.groups[t]; g != nil {
		return g
	}
	g := &group{target: t, aff: map[tenant.ID]*conn{}}
	g.idle.at = func(c *conn) *links[conn] { return &c.gidle }
	s.groups[t] = g
	s.st.GroupsCreated++
	return g
}

func (s *server) tenant(id tenant.ID) *tenantState {
	if ts := s.tenants[id]; ts != nil {
		return ts
	}
	var ts *tenantState
	if n := len(s.free); n > 0 {
		ts, s.free = s.free[n-1], s.free[:n-1]
	} else {
		ts = &tenantState{}
		ts.queue.at = func(w *waiter) *links[waiter] { return &w.q }
	}
	ts.id, ts.limit = id, s.m.cfg.MaxConnsPerTenant
	s.tenants[id] = ts
	return ts
}

// maybeDropTenant forgets a tenant that holds and waits for nothing.
func (s *server) maybeDropTenant(ts *tenantState) {
	if ts.held > 0 || ts.queue.n > 0 {
		return
	}
	delete(s.tenants, ts.id)
	if len(s.free) < 64 {
		s.free = append(s.free, ts)
	}
}

// groupChanged settles a group after its counts went down: a closed group
// signals CloseTarget once its last connection is gone; an open one that
// holds, waits for and backs off from nothing is forgotten.
func (s *server) groupChanged(g *group) {
	if g.closed {
		if g.open == 0 && g.closing == 0 && g.gone != nil {
			close(g.gone)
			g.gone = nil
			s.detached[g.target] = slices.DeleteFunc(s.detached[g.target], func(d *group) bool { return d == g })
			if len(s.detached[g.target]) == 0 {
				delete(s.detached, g.target)
			}
		}
		return
	}
	if g.open == 0 && g.closing == 0 && g.waiters == 0 && (g.retryAt == 0 || g.retryAt <= s.m.now()) && s.groups[g.target] == g {
		delete(s.groups, g.target)
		s.st.GroupsDropped++
	}
}

// acquire returns a connection for key, handed out and counted.
func (s *server) acquire(ctx context.Context, key Key) (*conn, error) {
	now := s.m.now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	g := s.group(key.Target)
	g.touch(now)
	ts := s.tenant(key.Tenant)
	ts.limit = s.m.cfg.MaxConnsPerTenant
	if key.MaxConns > 0 && key.MaxConns < ts.limit {
		ts.limit = key.MaxConns
	}
	// Take an idle connection at once unless the tenant is at its cap or
	// already queued (first come, first served within a tenant). Waiters of
	// other tenants cannot want it: dispatch would have served them.
	if ts.queue.n == 0 && ts.held < ts.limit {
		if c := s.takeIdle(g, key, now, false); c != nil {
			s.handOut(c, key, ts, 0)
			s.mu.Unlock()
			return c, nil
		}
	}
	w := s.m.waiters.Get().(*waiter)
	w.key, w.g, w.ts, w.start = key, g, ts, now
	ts.queue.pushBack(w)
	if !ts.inRing {
		ts.inRing = true
		s.ring.pushBack(ts)
	}
	g.waiters++
	s.dispatch(now)
	if w.done {
		s.mu.Unlock()
		<-w.ready
		return s.m.recycle(w)
	}
	s.mu.Unlock()

	select {
	case <-w.ready:
		return s.m.recycle(w)
	case <-ctx.Done():
	}
	s.mu.Lock()
	if w.done {
		// Served or failed while the context ended.
		<-w.ready
		if w.conn == nil {
			s.mu.Unlock()
			return s.m.recycle(w)
		}
		s.releaseLocked(w.conn, true, s.m.now())
	} else {
		s.removeWaiter(w)
	}
	s.st.AcquireTimeouts++
	g.st.AcquireTimeouts++
	s.mu.Unlock()
	s.m.recycle(w)
	return nil, s.timeoutErr(ctx, key.Target)
}

// timeoutErr is the error of an acquire whose context ended. It carries the
// target's last dial error, if it is failing, to say why it waited.
func (s *server) timeoutErr(ctx context.Context, t Target) error {
	s.mu.Lock()
	var last error
	if g := s.groups[t]; g != nil && g.lastErr != nil {
		last = g.lastErr
	} else if s.failing {
		last = s.lastErr
	}
	s.mu.Unlock()
	if last != nil {
		return fmt.Errorf("acquire %s: %w: %w (last connection attempt: %w)", t, ErrAcquireTimeout, ctx.Err(), last)
	}
	return fmt.Errorf("acquire %s: %w: %w", t, ErrAcquireTimeout, ctx.Err())
}

// removeWaiter takes a waiter that gave up out of the queues.
func (s *server) removeWaiter(w *waiter) {
	ts := w.ts
	wasHead := ts.queue.head == w
	ts.queue.remove(w)
	if ts.queue.n == 0 && ts.inRing {
		ts.inRing = false
		s.ring.remove(ts)
	}
	w.g.waiters--
	s.groupChanged(w.g)
	s.maybeDropTenant(ts)
	if wasHead && ts.queue.n > 0 {
		s.dispatch(s.m.now()) // the tenant's next acquire may be servable
	}
}

// finishWaiter completes w with a connection or an error. The waiter's
// goroutine may reuse w as soon as it is signalled, so that comes last.
func (s *server) finishWaiter(w *waiter, c *conn, err error) {
	ts, g := w.ts, w.g
	ts.queue.remove(w)
	if ts.queue.n == 0 && ts.inRing {
		ts.inRing = false
		s.ring.remove(ts)
	}
	g.waiters--
	if err != nil {
		s.groupChanged(g)
		s.maybeDropTenant(ts)
	}
	w.done, w.conn, w.err = true, c, err
	w.ready <- struct{}{}
}

// takeIdle takes an idle connection of g for key out of the idle sets:
// the one that last served key's tenant, else a free one (see victimFor),
// else, when force is set, the one victimFor picks among the others.
func (s *server) takeIdle(g *group, key Key, now int64, force bool) *conn {
	for g.idle.n > 0 {
		c := g.aff[key.Tenant]
		if c == nil && key.OwnTables && len(g.conns) > homes {
			// A schema tenant takes one of its homes, or waits for one
			// (serve) before it takes another connection.
			if c = idleHome(g, key.Tenant); c == nil && !force {
				return nil
			}
		}
		if c == nil {
			var free bool
			if c, free = s.victimFor(g, now); !free && !force {
				return nil
			}
		}
		s.removeIdle(c)
		if c.expires != 0 && now >= c.expires {
			s.st.RecycledAge++
			g.st.RecycledAge++
			s.startClose(c)
			continue
		}
		c.idleFor = time.Duration(now - c.idleSince)
		return c
	}
	return nil
}

// homes is how many connections of a group a schema tenant (Key.OwnTables)
// prefers, and homeWait how long its acquire waits for one of them while
// they are all in use and another connection is idle.
//
// Every connection that serves a schema tenant parses, loads the catalog
// entries of and plans that tenant's statements once, and keeps them: in
// the schema-lookup benchmark (1,000 tenants, 8 connections) that is about
// 3 ms of server CPU per tenant and connection, and a connection that has
// served every tenant holds about 100 MB. Each tenant prefers the homes
// connections that rank first for it (rendezvous hashing over the
// connections' seeds, so that a connection opening or closing changes the
// homes of few tenants): a connection then serves about homes/n of the
// tenants, n times fewer warm-ups and n/homes times less memory. Waiting
// for a busy home costs throughput only when every connection is busy;
// homeWait bounds it, after which any idle connection serves.
const (
	homes    = 2
	homeWait = 2 * time.Millisecond
)

// homeScore ranks connection seed for tenant t: its homes are the
// connections of its group with the highest scores.
func homeScore(t tenant.ID, seed uint64) uint64 {
	x := binary.LittleEndian.Uint64(t[:8]) ^ binary.LittleEndian.Uint64(t[8:]) ^ seed
	// splitmix64's finalizer
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// homesOf returns t's homes in g: the homes connections of g with the
// highest scores for t, best first (nil past the group's size).
func homesOf(g *group, t tenant.ID) (h [homes]*conn) {
	var sc [homes]uint64
	for _, c := range g.conns {
		x := homeScore(t, c.seed)
		for i := range h {
			if h[i] == nil || x > sc[i] {
				copy(h[i+1:], h[i:])
				copy(sc[i+1:], sc[i:])
				h[i], sc[i] = c, x
				break
			}
		}
	}
	return h
}

// idleHome returns the best ranked of t's homes in g that is idle; nil
// when every home is in use. A connection of the group is idle when no
// tenant holds it (group.conns has no connection that is being closed).
func idleHome(g *group, t tenant.ID) *conn {
	for _, c := range homesOf(g, t) {
		if c != nil && c.ts == nil {
			return c
		}
	}
	return nil
}

// addConn and dropConn keep group.conns.
func (g *group) addConn(c *conn) {
	c.at = len(g.conns)
	g.conns = append(g.conns, c)
}

func (g *group) dropConn(c *conn) {
	if c.at < 0 {
		return
	}
	last := g.conns[len(g.conns)-1]
	g.conns[c.at], last.at = last, c.at
	g.conns[len(g.conns)-1] = nil
	g.conns = g.conns[:len(g.conns)-1]
	c.at = -1
}

// affinityWindow is how many acquires of a group, per connection of the
// group, a connection stays reserved to its tenant after an affinity hit
// (see victimFor).
const affinityWindow = 4

// victimFor picks the idle connection of g that an acquire with no
// connection of its own would take, whose tenant thereby loses its
// affinity, and reports whether it is free: nobody is likely to miss it.
//
// A connection whose tenant came back to it (an affinity hit) within the
// last affinityWindow × (connections of the group) acquires of the group
// is reserved: that tenant comes back often, more than about once per
// affinityWindow turns of the pool. The others are free, and the least
// recently used free one is picked: one-off tenants take each other's
// connections. Plain least-recently-used would hand a hot tenant's
// connection to the next stranger, since with many tenants most acquires
// are strangers. When none is free, serve prefers growing the pool (while
// the target and the budget have room) to taking the least recently used
// reserved one.
//
// Connections idle for more than half IdleTimeout are passed over while
// others are free, so that connections the load does not need cool down and
// close; they are free themselves when none is.
func (s *server) victimFor(g *group, now int64) (c *conn, free bool) {
	cool := int64(-1)
	if to := s.m.cfg.IdleTimeout; to > 0 {
		cool = int64(to / 2)
	}
	window := uint64(affinityWindow * max(1, g.open))
	var first, cooling *conn
	for c := g.idle.tail; c != nil; c = c.gidle.prev {
		if cool >= 0 && now-c.idleSince > cool {
			cooling = c // the last one seen is the one idle the shortest
			continue
		}
		if c.lastHit == 0 || g.ticks-c.lastHit > window {
			return c, true
		}
		if first == nil {
			first = c
		}
	}
	if cooling != nil {
		return cooling, true
	}
	return first, false
}

func (s *server) putIdle(c *conn, now int64) {
	c.idleSince = now
	g := c.g
	g.idle.pushFront(c)
	s.idle.pushFront(c)
	if !c.lastTenant.IsZero() {
		// Push c at the front of its tenant's chain.
		next := g.aff[c.lastTenant]
		c.aff.prev, c.aff.next = nil, next
		if next != nil {
			next.aff.prev = c
		}
		g.aff[c.lastTenant] = c
	}
}

func (s *server) removeIdle(c *conn) {
	g := c.g
	g.idle.remove(c)
	s.idle.remove(c)
	if !c.lastTenant.IsZero() {
		if c.aff.prev != nil {
			c.aff.prev.aff.next = c.aff.next
		} else if c.aff.next != nil {
			g.aff[c.lastTenant] = c.aff.next
		} else {
			delete(g.aff, c.lastTenant)
		}
		if c.aff.next != nil {
			c.aff.next.aff.prev = c.aff.prev
		}
		c.aff.prev, c.aff.next = nil, nil
	}
}

// handOut gives c, taken from the idle set or fresh, to key's tenant.
func (s *server) handOut(c *conn, key Key, ts *tenantState, waited int64) {
	g := c.g
	c.ts = ts
	ts.held++
	g.inUse++
	s.inUse++
	g.ticks++
	if !key.Tenant.IsZero() {
		if c.lastTenant == key.Tenant {
			s.st.AffinityHits++
			g.st.AffinityHits++
			c.lastHit = g.ticks
		} else {
			s.st.AffinityMisses++
			g.st.AffinityMisses++
			c.lastHit = 0
		}
		c.lastTenant = key.Tenant
		if key.OwnTables && s.m.cfg.MaxTenantsPerConn > 0 {
			if c.served == nil {
				c.served = map[tenant.ID]struct{}{}
			}
			c.served[key.Tenant] = struct{}{}
		}
	}
	s.st.Acquires++
	g.st.Acquires++
	if waited > 0 {
		s.st.AcquireWaits++
		g.st.AcquireWaits++
		s.st.AcquireWaitTime += time.Duration(waited)
		g.st.AcquireWaitTime += time.Duration(waited)
	}
	s.hist.observe(time.Duration(waited))
}

// release takes back a connection from its holder: into the idle set when
// reuse allows, else closed.
func (s *server) release(c *conn, reuse bool) {
	now := s.m.now() // read outside the lock: the clock is not free
	s.mu.Lock()
	s.releaseLocked(c, reuse, now)
	s.mu.Unlock()
}

func (s *server) releaseLocked(c *conn, reuse bool, now int64) {
	g, ts := c.g, c.ts
	c.ts = nil
	ts.held--
	g.inUse--
	s.inUse--
	limit := s.m.cfg.MaxTenantsPerConn
	switch {
	case !reuse:
		s.st.Discards++
		g.st.Discards++
		s.startClose(c)
	case s.closed || g.closed:
		s.startClose(c)
	case c.expires != 0 && now >= c.expires:
		s.st.RecycledAge++
		g.st.RecycledAge++
		s.startClose(c)
	case c.overMemory || (limit > 0 && len(c.served) >= limit && !c.measured):
		s.st.RecycledTenants++
		g.st.RecycledTenants++
		s.startClose(c)
	default:
		s.putIdle(c, now)
	}
	s.maybeDropTenant(ts)
	if s.ring.n > 0 {
		s.dispatch(now)
	}
}

// startClose closes c, which is neither idle nor in use any more, on a
// goroutine of its own. Its slot in the budget stays taken until the
// server has ended the backend.
func (s *server) startClose(c *conn) {
	g := c.g
	g.dropConn(c)
	g.open--
	g.closing++
	s.closing++
	if s.closed {
		go s.finishClose(c, false)
		return
	}
	s.m.wg.Add(1)
	go s.finishClose(c, true)
}

func (s *server) finishClose(c *conn, tracked bool) {
	terminate(c.pgx)
	s.mu.Lock()
	s.closing--
	c.g.closing--
	s.groupChanged(c.g)
	if s.ring.n > 0 {
		s.dispatch(s.m.now())
	}
	s.mu.Unlock()
	if tracked {
		s.m.wg.Done()
	}
}

// dispatch serves waiting acquires after anything changed: one waiter per
// tenant per round, in round-robin order (a tenant that got something goes
// to the back of the ring), rounds until nothing more can be done. A waiter
// is served from its target's idle connections, or a dial is started for
// it (closing the least recently used idle connection of another target
// when the budget is full), or it keeps waiting.
func (s *server) dispatch(now int64) {
	for {
		s.round++
		progress := false
		ts := s.ring.head
		for n := s.ring.n; n > 0 && ts != nil; n-- {
			if s.idle.n == 0 && s.open() >= s.m.cfg.MaxConns {
				return // nothing left to hand out or to dial with
			}
			next := ts.ring.next // serve only ever unlinks ts itself
			if ts.held < ts.limit && s.serve(ts.queue.head, now) {
				progress = true
				if ts.inRing {
					s.ring.moveToBack(ts)
				}
			}
			ts = next
		}
		if !progress {
			return
		}
	}
}

// serve tries to make progress for w; it reports whether it did. In order:
// an idle connection of the tenant's own or a free one (victimFor); a
// dial already under way for the target; a new dial while the target and
// the budget have room (growing the pool gives each busy tenant a
// connection of its own); any idle connection of the target; a dial in
// place of the least recently used idle connection of another target.
func (s *server) serve(w *waiter, now int64) bool {
	g := w.g
	if s.serveIdle(w, now, false) {
		return true
	}
	if g.claimRound != s.round {
		g.claimRound, g.claims, g.blocked = s.round, 0, false
	}
	if g.blocked {
		return false
	}
	if g.claims < g.dialing {
		g.claims++ // a dial in flight will serve it
		return false
	}
	if w.key.OwnTables && g.idle.n > 0 && len(g.conns) > homes {
		// A schema tenant whose homes are all in use (takeIdle found none
		// idle) waits for one while it is likely to come back soon
		// (dispatch runs again when it does, or when homeWait is up), then
		// takes an idle connection rather than a new one.
		if now-w.start < int64(homeWait) {
			s.wakeAt(w.start+int64(homeWait), now)
			return false
		}
		if s.serveIdle(w, now, true) {
			return true
		}
	}
	dial := s.canDial(g, now)
	if dial && s.open() < s.m.cfg.MaxConns {
		s.startDial(g, nil)
		return true
	}
	if s.serveIdle(w, now, true) {
		return true
	}
	victim := s.evictionVictim(now)
	if !dial || victim == nil || !s.mayEvict(g, victim, now) {
		g.blocked = true
		return false
	}
	s.removeIdle(victim)
	vg := victim.g
	vg.dropConn(victim)
	vg.open--
	vg.closing++
	s.st.Evictions++
	vg.st.Evictions++
	s.groupChanged(vg)
	s.startDial(g, victim)
	return true
}

// serveIdle hands w an idle connection of its target (see takeIdle for
// force) and reports whether there was one.
func (s *server) serveIdle(w *waiter, now int64, force bool) bool {
	c := s.takeIdle(w.g, w.key, now, force)
	if c == nil {
		return false
	}
	s.handOut(c, w.key, w.ts, max(1, now-w.start))
	s.finishWaiter(w, c, nil)
	return true
}

// evictAfter is how long a connection of another target must have been idle
// before a target that already has connections may close it to grow.
//
// A target with no connection at all must take one (else it starves), and
// takes the least recently used idle connection of the server. A target
// that has connections, all busy, waits for one of them instead, unless the
// victim is cold: a warm connection (used within evictAfter) is likely to
// be wanted again soon, and taking it costs its target a dial (about 3 ms of
// server CPU, 9 with SCRAM) while the waiter would have had its own
// connection back within a query's time. Without this rule a busy tenant
// database grows by evicting other tenants' connections whenever the
// budget is full, they evict back, and the server spends its CPU on
// connection churn: in the database-zipf benchmark (200 tenant databases,
// a budget of 200) throughput was a thirtieth of a pool per tenant's.
const evictAfter = time.Second

// evictionVictim picks the idle connection of another target that a dial
// closes when the budget is full: the least recently used one of a target
// that keeps another connection, else the only connection of the target
// with the least demand (see group.demand).
//
// A target's only connection is its whole hit rate, a spare one of a busy
// target only its parallelism: plain least-recently-used let the hottest
// tenant databases, which grow while the budget has room, keep their spares
// while the tail's tenants evicted each other's only connections (with 200
// tenant databases and a budget of 200, a tenth of all calls still opened a
// connection). Among only connections, least recently used evicts a hot
// tenant's whenever a burst of the tail passed since its last call; least
// demand keeps the hottest tenants connected, which is what the best
// possible hit rate of a budget is (database-zipf benchmark).
func (s *server) evictionVictim(now int64) *conn {
	var best *conn
	bestDemand := math.Inf(1)
	for c := s.idle.tail; c != nil; c = c.sidle.prev {
		if c.g.open > 1 {
			return c
		}
		if d := c.g.demandAt(now); d < bestDemand {
			best, bestDemand = c, d
		}
	}
	return best
}

// mayEvict reports whether g may close victim, an idle connection of
// another target, to dial for itself when the budget is full.
func (s *server) mayEvict(g *group, victim *conn, now int64) bool {
	return g.established() == 0 || now-victim.idleSince >= int64(evictAfter)
}

// startDial counts a dial for g and starts it (see dial).
func (s *server) startDial(g *group, victim *conn) {
	g.open++
	g.dialing++
	s.dialing++
	g.claims++
	s.m.wg.Add(1)
	go s.dial(g, victim)
}

// canDial reports whether g may start a dial now, budget aside.
func (s *server) canDial(g *group, now int64) bool {
	switch {
	case s.closed || g.closed:
		return false
	case g.open >= s.m.cfg.MaxConnsPerTarget:
		return false
	case g.retryAt > now || s.retryAt > now:
		s.wakeAt(max(g.retryAt, s.retryAt), now) // dispatch again when it ends
		return false
	case g.dialing > 0 && g.established() == 0:
		return false // a target without connections probes with one dial
	case s.failing && s.dialing > 0:
		return false // so does a server that failed
	}
	return true
}

// backoff returns the wait after the n-th consecutive failure: doubling
// from BackoffMin up to BackoffMax, less a random part of up to half, so
// that clients that failed together do not retry together.
func (s *server) backoff(n int) int64 {
	cfg := s.m.cfg
	d := cfg.BackoffMin
	for i := 1; i < n && d < cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, cfg.BackoffMax)
	if d <= 0 {
		return 0
	}
	return int64(d - time.Duration(rand.Int64N(int64(d)/2+1)))
}

// closeTarget detaches t's group and starts closing its connections; it
// returns channels closed when the connections of t's groups (this one and
// any detached by an earlier call) are all gone.
func (s *server) closeTarget(t Target) []chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groups[t]; g != nil {
		delete(s.groups, t)
		g.closed = true
		g.gone = make(chan struct{})
		s.failWaiters(func(w *waiter) error {
			if w.g == g {
				return fmt.Errorf("acquire %s: %w", t, ErrTargetClosed)
			}
			return nil
		})
		for g.idle.n > 0 {
			c := g.idle.head
			s.removeIdle(c)
			s.startClose(c)
		}
		s.detached[t] = append(s.detached[t], g)
		s.groupChanged(g)
	}
	var gone []chan struct{}
	for _, g := range s.detached[t] {
		gone = append(gone, g.gone)
	}
	return gone
}

// failWaiters fails every waiter for which errFor returns an error.
func (s *server) failWaiters(errFor func(*waiter) error) {
	var fail []*waiter
	var errs []error
	for ts := s.ring.head; ts != nil; ts = ts.ring.next {
		for w := ts.queue.head; w != nil; w = w.q.next {
			if err := errFor(w); err != nil {
				fail = append(fail, w)
				errs = append(errs, err)
			}
		}
	}
	for i, w := range fail {
		s.finishWaiter(w, nil, errs[i])
	}
}

// close shuts the server down for Manager.Close.
func (s *server) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failWaiters(func(*waiter) error { return ErrClosed })
	if s.wake != nil {
		s.wake.Stop()
		s.wake = nil
	}
	for s.idle.n > 0 {
		c := s.idle.head
		s.removeIdle(c)
		s.startClose(c)
	}
	s.closed = true
}

// reap closes idle connections past the idle timeout or their lifetime and
// forgets groups whose backoff has ended.
func (s *server) reap() {
	cfg := s.m.cfg
	now := s.m.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if cfg.IdleTimeout > 0 {
		for c := s.idle.tail; c != nil && now-c.idleSince > int64(cfg.IdleTimeout); c = s.idle.tail {
			s.removeIdle(c)
			s.st.IdleClosed++
			c.g.st.IdleClosed++
			s.startClose(c)
		}
	}
	if cfg.MaxConnLifetime > 0 {
		for c := s.idle.head; c != nil; {
			next := c.sidle.next
			if now >= c.expires {
				s.removeIdle(c)
				s.st.RecycledAge++
				c.g.st.RecycledAge++
				s.startClose(c)
			}
			c = next
		}
	}
	for _, g := range s.groups {
		s.groupChanged(g)
	}
}
