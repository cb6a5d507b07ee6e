package pool

import (
	"context"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// closeTimeout bounds the wait for the server to end a backend.
const closeTimeout = 5 * time.Second

// dial opens a connection for g, whose slot in the budget is already taken
// (counted in dialing). victim, if not nil, is an idle connection of another
// target evicted to free that slot: it is closed first, so that the server
// never sees both backends at once.
//
// The dial waits for a token of the rate limit, and is abandoned if by then
// no acquire waits for the target any more. Its connection goes to a
// waiter of the target, not necessarily the one that caused it.
func (s *server) dial(g *group, victim *conn) {
	defer s.m.wg.Done()
	m := s.m
	if victim != nil {
		terminate(victim.pgx)
		s.mu.Lock()
		victim.g.closing--
		s.groupChanged(victim.g)
		s.mu.Unlock()
	}
	if d := m.limiter.reserve(time.Now()); d > 0 && (!m.sleep(d) || !s.wanted(g)) {
		s.abandonDial(g)
		return
	}

	s.mu.Lock()
	s.st.Dials++
	g.st.Dials++
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.DialTimeout)
	pc, err := m.connect(ctx, g.target)
	cancel()

	now := m.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	g.dialing--
	s.dialing--
	if err != nil && s.closed {
		g.open-- // cancelled by Close: not a failure of the target
		s.groupChanged(g)
		return
	}
	if err != nil {
		s.dialFailed(g, err, now)
		return
	}
	if g.failures > 0 || s.failing {
		m.cfg.Logger.Info("pool: connected again", "target", g.target.String(), "failures", max(g.failures, s.failures))
	}
	g.failures, g.retryAt, g.lastErr = 0, 0, nil
	s.failing, s.failures, s.retryAt, s.lastErr = false, 0, 0, nil
	c := &conn{pgx: pc, s: s, g: g, seed: rand.Uint64()}
	g.addConn(c)
	if lt := m.cfg.MaxConnLifetime; lt > 0 {
		c.expires = now + int64(lt) - rand.Int64N(int64(lt)/5+1)
	}
	if s.closed || g.closed {
		s.startClose(c)
		return
	}
	if !s.serveFresh(c, now) {
		s.putIdle(c, now)
	}
	if s.ring.n > 0 {
		s.dispatch(now)
	}
}

// serveFresh hands a new connection straight to a waiter of its target,
// the first in round-robin order whose tenant is under its cap: left idle,
// it could be evicted for another target's waiter before its own got it,
// and under a storm of targets every dial would be lost that way.
func (s *server) serveFresh(c *conn, now int64) bool {
	limit := s.m.cfg.MaxConnsPerTenant
	for ts := s.ring.head; ts != nil; ts = ts.ring.next {
		w := ts.queue.head
		if ts.held >= limit || w.g != c.g {
			continue
		}
		s.handOut(c, w.key, ts, max(1, now-w.start))
		s.finishWaiter(w, c, nil)
		if ts.inRing {
			s.ring.moveToBack(ts)
		}
		return true
	}
	return false
}

// wanted reports whether a dial for g still has an acquire to serve.
func (s *server) wanted(g *group) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return g.waiters > 0 && !g.closed && !s.closed
}

// abandonDial gives back the slot of a dial that will not happen.
func (s *server) abandonDial(g *group) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g.dialing--
	s.dialing--
	g.open--
	s.groupChanged(g)
	if s.ring.n > 0 {
		s.dispatch(s.m.now())
	}
}

// dialFailed records a failed dial: the target backs off or, when the
// failure was at the network level, the whole server does (so that a
// server coming back is used again by all its targets at once). Acquires
// that no open connection can serve fail with the error instead of waiting
// for the next attempt.
func (s *server) dialFailed(g *group, err error, now int64) {
	g.open--
	s.st.DialErrors++
	g.st.DialErrors++
	g.lastErr = err
	wide := serverLevel(err)
	if wide {
		s.failures++
		s.failing = true
		s.retryAt = now + s.backoff(s.failures)
		s.lastErr = err
		if s.failures == 1 {
			s.m.cfg.Logger.Warn("pool: server unreachable", "server", s.name, "target", g.target.String(), "err", err)
		}
		s.wakeAt(s.retryAt, now)
	} else {
		g.failures++
		g.retryAt = now + s.backoff(g.failures)
		if g.failures == 1 {
			s.m.cfg.Logger.Warn("pool: connection attempt failed", "target", g.target.String(), "err", err)
		}
		s.wakeAt(g.retryAt, now)
	}
	s.failWaiters(func(w *waiter) error {
		if w.g == g && g.established() == 0 {
			return &DialError{Target: g.target, Err: err}
		}
		if wide && w.g.established() == 0 && w.g.dialing == 0 {
			return &DialError{Target: w.g.target, Err: err}
		}
		return nil
	})
	s.groupChanged(g)
	if s.ring.n > 0 {
		s.dispatch(now)
	}
}

// wakeAt makes sure dispatch runs again at t (manager clock), when a
// backoff ends: waiters that arrive during a backoff wait for it without
// holding a slot of the budget.
func (s *server) wakeAt(t, now int64) {
	if s.closed || (s.wake != nil && s.wakeTime <= t) {
		return
	}
	if s.wake != nil {
		s.wake.Stop()
	}
	s.wakeTime = t
	s.wake = time.AfterFunc(time.Duration(t-now), func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.wake, s.wakeTime = nil, 0
		if !s.closed && s.ring.n > 0 {
			s.dispatch(s.m.now())
		}
	})
}

// connect opens a connection to t and runs AfterConnect on it.
func (m *Manager) connect(ctx context.Context, t Target) (*pgx.Conn, error) {
	cc, err := m.resolve(ctx, t)
	if err != nil {
		return nil, &resolveError{err}
	}
	if cc == nil {
		return nil, &resolveError{errNilConfig}
	}
	pc, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, err
	}
	if m.cfg.AfterConnect != nil {
		if err := m.cfg.AfterConnect(ctx, pc); err != nil {
			terminate(pc)
			return nil, &afterConnectError{err}
		}
	}
	return pc, nil
}

// terminate closes pc and returns once the server has ended its backend, so
// that the slot it frees in the budget is free on the server too.
//
// PostgreSQL closes a backend's socket only after it has left
// pg_stat_activity and given back its max_connections slot, so reading
// until end of file after the Terminate message is that proof. A connection
// still busy (a result not read to the end) has its query cancelled first;
// one pgx already closed is waited for through its cleanup, which drains
// the socket the same way after a cancelled query.
func terminate(pc *pgx.Conn) {
	pg := pc.PgConn()
	if pg.IsClosed() {
		t := time.NewTimer(closeTimeout)
		defer t.Stop()
		select {
		case <-pg.CleanupDone():
		case <-t.C:
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if pg.IsBusy() {
		_ = pg.CancelRequest(ctx)
	}
	nc := pg.Conn()
	_ = nc.SetDeadline(time.Now().Add(closeTimeout))
	// The Terminate message: type 'X', length 4.
	if _, err := nc.Write([]byte{'X', 0, 0, 0, 4}); err == nil {
		_, _ = io.Copy(io.Discard, nc)
	}
	_ = pc.Close(ctx)
}

// limiter is a token bucket: rate tokens a second, at most burst saved up.
// A dial reserves a token and waits until it is due, so dials queue in
// order instead of polling.
type limiter struct {
	mu     sync.Mutex
	rate   float64 // tokens per second; <= 0: unlimited
	burst  float64
	tokens float64
	last   time.Time
}

func (l *limiter) init(rate float64, burst int) {
	l.rate, l.burst, l.tokens = rate, float64(max(1, burst)), float64(max(1, burst))
}

// reserve takes a token and returns how long to wait before it is due.
func (l *limiter) reserve(now time.Time) time.Duration {
	if l.rate <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	l.tokens--
	if l.tokens >= 0 {
		return 0
	}
	return time.Duration(-l.tokens / l.rate * float64(time.Second))
}
