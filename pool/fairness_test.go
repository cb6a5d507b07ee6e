package pool

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/landlordhq/landlord/tenant"
)

// Waiting acquires are served round robin across tenants: a tenant that
// queued one acquire behind five of another's is served second, not sixth.
func TestFairnessRoundRobin(t *testing.T) {
	t.Parallel()
	e := setup(t)
	m := e.manager(Config{MaxConns: 2, MaxConnsPerTenant: 2})
	tg := e.target(e.db)
	a, b := tenant.NewID(), tenant.NewID()
	h1 := acquire(t, m, key(tg, a))
	h2 := acquire(t, m, key(tg, a))

	type served struct {
		who string
		c   *Conn
	}
	out := make(chan served, 6)
	wait := func(who string, id tenant.ID, queued int) {
		go func() {
			c, err := m.Acquire(t.Context(), key(tg, id))
			if err != nil {
				t.Error(err)
				return
			}
			out <- served{who, c}
		}()
		eventually(t, "the acquire queues", func() bool { return serverStats(t, m).Waiting == queued })
	}
	for i := range 5 {
		wait("a", a, i+1)
	}
	wait("b", b, 6)

	var order []string
	var held []*Conn
	for _, h := range []*Conn{h1, h2} {
		h.Release()
		s := <-out
		order = append(order, s.who)
		held = append(held, s.c)
	}
	if order[0] != "b" && order[1] != "b" {
		t.Errorf("served %v first: tenant b waited behind tenant a's queue", order)
	}
	// The rest drain.
	for range 4 {
		held[0].Release()
		s := <-out
		held[0] = s.c
	}
	held[0].Release()
	held[1].Release()
}

// A tenant flooding the server holds at most its cap, and another tenant's
// acquires keep completing.
func TestFairnessUnderFlood(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const maxConns, perTenant = 4, 2
	m := e.manager(Config{MaxConns: maxConns, MaxConnsPerTenant: perTenant})
	tg := e.target(e.db)
	hot, other := tenant.NewID(), tenant.NewID()

	var holding, peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				c, err := m.Acquire(ctx, key(tg, hot))
				cancel()
				if err != nil {
					t.Error(err)
					return
				}
				n := holding.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(time.Millisecond)
				holding.Add(-1)
				c.Release()
			}
		})
	}
	eventually(t, "the flood queues", func() bool { return serverStats(t, m).Waiting > 0 })
	for range 30 {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		c, err := m.Acquire(ctx, key(tg, other))
		cancel()
		if err != nil {
			t.Fatalf("the other tenant's acquire under a flood: %v", err)
		}
		ping(t, c)
		c.Release()
	}
	close(stop)
	wg.Wait()
	if p := peak.Load(); p > perTenant {
		t.Errorf("the flooding tenant held %d connections at once, over its cap of %d", p, perTenant)
	}
	if st := serverStats(t, m); st.Open > maxConns || st.Dials > 2*maxConns {
		t.Errorf("open %d, dials %d with a budget of %d", st.Open, st.Dials, maxConns)
	}
}
