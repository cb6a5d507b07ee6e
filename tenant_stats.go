package landlord

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/landlordhq/landlord/tenant"
	"github.com/landlordhq/landlord/tenantstats"
)

// TenantStat is one tenant's calls over a recent window, summed over every
// process of the installation (see TenantStats).
type TenantStat = tenantstats.Stat

// TenantStats returns the busiest tenants by calls over the last window, at
// most limit of them, as every process's handles measured them and wrote
// them to the control database (Config.TenantStatsInterval): calls, errors,
// calls per second, and mean, p50 and p99 durations, the percentiles as
// upper bounds of power-of-two buckets. The calls of tenants past the few
// hundred busiest of a write are summed under the zero id
// (tenantstats.Others).
func (l *Landlord) TenantStats(ctx context.Context, window time.Duration, limit int) ([]TenantStat, error) {
	return tenantstats.Top(ctx, l.admin, window, limit)
}

// FlushTenantStats writes what this process measured since its last write
// now, instead of at the next interval; Close does it too.
func (l *Landlord) FlushTenantStats(ctx context.Context) error {
	if l.stats == nil {
		return nil
	}
	return l.stats.Flush(ctx, l.admin)
}

// processName names this Landlord among the installation's processes in the
// statistics it writes: host, pid and a random suffix, so that two
// installations opened by one process keep their rows apart.
func processName() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	rand.Read(b)
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
}

// teeTracer returns a Tracer that passes everything to a (when not nil) and
// to b.
func teeTracer(a Tracer, b Tracer) Tracer {
	if a == nil {
		return b
	}
	return tee{a, b}
}

type tee [2]Tracer

func (t tee) TenantCalls(tn tenant.Tenant) func(start time.Time, err error) {
	f, g := t[0].TenantCalls(tn), t[1].TenantCalls(tn)
	switch {
	case f == nil:
		return g
	case g == nil:
		return f
	}
	return func(start time.Time, err error) { f(start, err); g(start, err) }
}

// TenantConnWaits passes the waits on to each side that wants them.
func (t tee) TenantConnWaits(tn tenant.Tenant) func(wait time.Duration) {
	var fs []func(time.Duration)
	for _, x := range t {
		if w, ok := x.(ConnWaitTracer); ok {
			if f := w.TenantConnWaits(tn); f != nil {
				fs = append(fs, f)
			}
		}
	}
	switch len(fs) {
	case 0:
		return nil
	case 1:
		return fs[0]
	}
	return func(wait time.Duration) { fs[0](wait); fs[1](wait) }
}

func (t tee) ConnReplaced() {
	t[0].ConnReplaced()
	t[1].ConnReplaced()
}
