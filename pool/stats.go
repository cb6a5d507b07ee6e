package pool

import (
	"slices"
	"time"
)

// Stats is a snapshot of the manager for metrics. Gauges are in Conns,
// monotonically increasing counters in Counters; a target's counters start
// again from zero when its group is forgotten (after it held no connection
// for a while), while the server's keep counting.
type Stats struct {
	// Servers describes each server, by name.
	Servers []ServerStats
}

// ServerStats describes one server.
type ServerStats struct {
	// Server is the Target.Server name.
	Server string
	// MaxConns is the server's budget; Conns.Open never exceeds it.
	MaxConns int
	Conns
	Counters
	// Failing reports that the last connection attempt to the server failed
	// at the network level and the server is backing off.
	Failing bool
	// Tenants counts tenants holding or waiting for connections.
	Tenants int
	// AcquireWait is the distribution of acquire waits, immediate ones
	// included.
	AcquireWait Histogram
	// Targets describes each target group, in no particular order.
	Targets []TargetStats
}

// TargetStats describes one target group. An idle connection evicted to
// make room for another target counts, until the server has ended it, as
// Closing here and as Dialing in the target it makes room for (it holds
// one slot of the server's budget, counted once in ServerStats).
type TargetStats struct {
	// Target is the group's target.
	Target Target
	Conns
	Counters
	// LastDialError is the error of the last failed connection attempt
	// until one succeeds, else "".
	LastDialError string
}

// Conns are gauges of connections.
type Conns struct {
	// Open counts connections against the budget: Dialing + Idle + InUse +
	// Closing.
	Open int
	// Dialing counts connections being opened, including those waiting for
	// the rate limit or for the connection they replace to be closed.
	Dialing int
	// Idle counts open connections nobody holds.
	Idle int
	// InUse counts connections held by callers.
	InUse int
	// Closing counts connections whose backend the server has not ended yet.
	Closing int
	// Waiting counts acquires waiting.
	Waiting int
}

// Counters count events since the server or target group appeared.
type Counters struct {
	// Acquires counts connections handed out; AcquireWaits those that had
	// to wait, for AcquireWaitTime in total; AcquireTimeouts acquires whose
	// context ended first.
	Acquires, AcquireWaits, AcquireTimeouts uint64
	AcquireWaitTime                         time.Duration
	// AffinityHits counts acquires naming a tenant that got the connection
	// that last served it; AffinityMisses those that got another.
	AffinityHits, AffinityMisses uint64
	// Dials counts connection attempts, DialErrors the failed ones.
	Dials, DialErrors uint64
	// Evictions counts idle connections closed to make room for another
	// target; IdleClosed those closed after IdleTimeout.
	Evictions, IdleClosed uint64
	// RecycledAge counts connections closed at MaxConnLifetime,
	// RecycledTenants those closed at MaxTenantsPerConn.
	RecycledAge, RecycledTenants uint64
	// Discards counts connections closed on release because they were
	// discarded, broken, busy, inside a transaction or refused by
	// BeforeRelease.
	Discards uint64
	// GroupsCreated and GroupsDropped count target groups made and forgotten
	// (server level only).
	GroupsCreated, GroupsDropped uint64
}

// Histogram is a distribution in the shape of a Prometheus histogram.
type Histogram struct {
	// Bounds are the buckets' upper bounds, ascending; Counts[i] counts the
	// observations at or below Bounds[i] (cumulative), and Count all of
	// them, the last implicit bucket being +Inf.
	Bounds []time.Duration
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

// waitBounds spans an immediate hand-out (no wait), a hand-over from
// another caller, a dial, and the timeouts of a request.
var waitBounds = [...]time.Duration{
	0, 100 * time.Microsecond, time.Millisecond, 10 * time.Millisecond,
	100 * time.Millisecond, time.Second, 10 * time.Second,
}

// histogram accumulates observations in non-cumulative buckets.
type histogram struct {
	counts [len(waitBounds) + 1]uint64
	sum    time.Duration
}

func newHistogram() histogram { return histogram{} }

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(waitBounds) && d > waitBounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += d
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Bounds: slices.Clone(waitBounds[:]), Counts: make([]uint64, len(waitBounds)), Sum: h.sum}
	var cum uint64
	for i, n := range h.counts {
		cum += n
		if i < len(waitBounds) {
			out.Counts[i] = cum
		}
	}
	out.Count = cum
	return out
}

// Stats returns a snapshot of every server and target group.
func (m *Manager) Stats() Stats {
	var st Stats
	for _, s := range *m.servers.Load() {
		st.Servers = append(st.Servers, s.stats())
	}
	slices.SortFunc(st.Servers, func(a, b ServerStats) int {
		switch {
		case a.Server < b.Server:
			return -1
		case a.Server > b.Server:
			return 1
		}
		return 0
	})
	return st
}

func (s *server) stats() ServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := ServerStats{
		Server:   s.name,
		MaxConns: s.m.cfg.MaxConns,
		Conns: Conns{
			Open: s.open(), Dialing: s.dialing, Idle: s.idle.n, InUse: s.inUse, Closing: s.closing,
		},
		Counters:    s.st,
		Failing:     s.failing,
		Tenants:     len(s.tenants),
		AcquireWait: s.hist.snapshot(),
		Targets:     make([]TargetStats, 0, len(s.groups)),
	}
	for _, g := range s.groups {
		out.Waiting += g.waiters
		ts := TargetStats{
			Target: g.target,
			Conns: Conns{
				Open: g.open + g.closing, Dialing: g.dialing, Idle: g.idle.n, InUse: g.inUse,
				Closing: g.closing, Waiting: g.waiters,
			},
			Counters: g.st,
		}
		if g.lastErr != nil {
			ts.LastDialError = g.lastErr.Error()
		}
		out.Targets = append(out.Targets, ts)
	}
	return out
}
