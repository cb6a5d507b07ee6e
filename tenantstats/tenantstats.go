// Package tenantstats records each tenant's calls where an operator can read
// them across every process of an installation: calls, errors and the
// distribution of call durations per tenant. A Recorder is a tracer of the
// tenant handle (landlord.Tracer): it counts in memory, with atomic adds on
// the hot path, and Flush writes what was counted since the last flush to
// the control database (landlord.tenant_stats), one row per process and
// tenant, at most MaxTenants rows per flush (the quieter tenants together
// under the zero id), and deletes rows past the retention. Top reads a
// recent window back, summed over processes, busiest first: what
// `landlord tenants top` prints, as citus_stat_tenants does for Citus.
//
// Durations go into power-of-two buckets of microseconds, so percentiles are
// estimates: the upper bound of the bucket the percentile falls in, at most
// twice the true value.
package tenantstats

import (
	"cmp"
	"context"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/tenant"
)

// Buckets is the number of duration buckets: bucket i counts calls of
// [2^i, 2^(i+1)) µs, the first also shorter ones, the last (about 17 s and
// more) also longer ones.
const Buckets = 25

// DefaultMaxTenants bounds the rows of one flush; DefaultRetention how long
// rows are kept.
const (
	DefaultMaxTenants = 500
	DefaultRetention  = time.Hour
)

// Others is the tenant id under which a flush sums the tenants past
// MaxTenants.
var Others tenant.ID

// Recorder counts tenant calls. It is safe for concurrent use.
type Recorder struct {
	process    string
	maxTenants int
	retention  time.Duration

	mu      sync.Mutex
	tenants map[tenant.ID]*counters
	last    time.Time // end of the last flushed window
	flushMu sync.Mutex
}

type counters struct {
	calls, errors, micros, wait atomic.Int64
	buckets                     [Buckets]atomic.Int64
}

// NewRecorder returns a Recorder that writes its rows as process (a name
// unique among the installation's running processes, such as host:pid).
// maxTenants and retention of 0 take the defaults.
func NewRecorder(process string, maxTenants int, retention time.Duration) *Recorder {
	return &Recorder{
		process:    process,
		maxTenants: cmp.Or(maxTenants, DefaultMaxTenants),
		retention:  cmp.Or(retention, DefaultRetention),
		tenants:    map[tenant.ID]*counters{},
		last:       time.Now(),
	}
}

// TenantCalls returns the function that counts each call of t.
func (r *Recorder) TenantCalls(t tenant.Tenant) func(start time.Time, err error) {
	c := r.counters(t.ID)
	return func(start time.Time, err error) { c.add(time.Since(start), err != nil) }
}

// TenantConnWaits returns the function that adds up how long t's calls
// waited for a connection (the handle's optional ConnWaitTracer).
func (r *Recorder) TenantConnWaits(t tenant.Tenant) func(wait time.Duration) {
	c := r.counters(t.ID)
	return func(wait time.Duration) { c.wait.Add(max(wait.Microseconds(), 0)) }
}

// ConnReplaced does nothing: it is not per tenant.
func (r *Recorder) ConnReplaced() {}

func (r *Recorder) counters(id tenant.ID) *counters {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.tenants[id]
	if c == nil {
		c = &counters{}
		r.tenants[id] = c
	}
	return c
}

func (c *counters) add(d time.Duration, failed bool) {
	us := max(d.Microseconds(), 0)
	c.calls.Add(1)
	if failed {
		c.errors.Add(1)
	}
	c.micros.Add(us)
	c.buckets[bucketOf(us)].Add(1)
}

// bucketOf returns the bucket of a duration of us microseconds.
func bucketOf(us int64) int {
	if us < 2 {
		return 0
	}
	return min(bits.Len64(uint64(us))-1, Buckets-1)
}

// row is one tenant's counts over a window.
type row struct {
	id                          tenant.ID
	calls, errors, micros, wait int64
	buckets                     []int64
}

// take swaps out what was counted since the last take.
func (c *counters) take() row {
	r := row{calls: c.calls.Swap(0), errors: c.errors.Swap(0), micros: c.micros.Swap(0), wait: c.wait.Swap(0), buckets: make([]int64, Buckets)}
	for i := range c.buckets {
		r.buckets[i] = c.buckets[i].Swap(0)
	}
	// A call that ended during the swaps may be counted in calls but not
	// yet in its bucket, or the other way round: the next window gets the
	// rest, and errors never exceed calls.
	r.errors = min(r.errors, r.calls)
	return r
}

// Execer runs a statement: a *pgxpool.Pool, *pgx.Conn or pgx.Tx.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

const insertSQL = `INSERT INTO landlord.tenant_stats (window_end, process, tenant_id, window_ms, calls, errors, total_us, wait_us, buckets)
SELECT $1, $2, u.id, $3, u.calls, u.errors, u.micros, u.wait, u.buckets::int8[]
FROM unnest($4::uuid[], $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::text[]) AS u(id, calls, errors, micros, wait, buckets)
ON CONFLICT (window_end, process, tenant_id) DO NOTHING`

const pruneSQL = `DELETE FROM landlord.tenant_stats WHERE window_end < $1`

// Flush writes what was counted since the last flush as one window ending
// now, at most MaxTenants rows and the rest summed under Others, and deletes
// rows older than the retention. A window without calls writes nothing.
// When the write fails the counts of the window are lost, not retried:
// statistics must never hold up traffic or pile up in memory.
func (r *Recorder) Flush(ctx context.Context, db Execer) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	cs := make(map[tenant.ID]*counters, len(r.tenants))
	for id, c := range r.tenants {
		cs[id] = c
	}
	r.mu.Unlock()
	now := time.Now()
	start := r.last
	r.last = now
	var rows []row
	for id, c := range cs {
		if t := c.take(); t.calls > 0 {
			t.id = id
			rows = append(rows, t)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(b.calls, a.calls) })
	if len(rows) > r.maxTenants {
		rest := row{id: Others, buckets: make([]int64, Buckets)}
		for _, t := range rows[r.maxTenants-1:] {
			rest.calls += t.calls
			rest.errors += t.errors
			rest.micros += t.micros
			rest.wait += t.wait
			for i, b := range t.buckets {
				rest.buckets[i] += b
			}
		}
		rows = append(rows[:r.maxTenants-1], rest)
	}
	n := len(rows)
	ids, calls, errs, micros, waits, buckets := make([]tenant.ID, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]string, n)
	for i, t := range rows {
		ids[i], calls[i], errs[i], micros[i], waits[i] = t.id, t.calls, t.errors, t.micros, min(t.wait, t.micros)
		buckets[i] = arrayText(t.buckets)
	}
	windowMS := max(now.Sub(start).Milliseconds(), 1)
	if _, err := db.Exec(ctx, insertSQL, now, r.process, windowMS, ids, calls, errs, micros, waits, buckets); err != nil {
		return fmt.Errorf("write tenant statistics: %w", err)
	}
	if _, err := db.Exec(ctx, pruneSQL, now.Add(-r.retention)); err != nil {
		return fmt.Errorf("prune tenant statistics: %w", err)
	}
	return nil
}

// arrayText is the text form of a bigint array.
func arrayText(xs []int64) string {
	b := []byte{'{'}
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "%d", x)
	}
	return string(append(b, '}'))
}

// Run flushes to db every interval until ctx ends, and once more then, so
// that a process that stops leaves its last window. Errors go to onErr.
func (r *Recorder) Run(ctx context.Context, db Execer, interval time.Duration, onErr func(error)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := r.Flush(fctx, db); err != nil {
				onErr(err)
			}
			return
		case <-tick.C:
			if err := r.Flush(ctx, db); err != nil && ctx.Err() == nil {
				onErr(err)
			}
		}
	}
}

// Stat is one tenant's calls over a window, summed over the processes that
// recorded them.
type Stat struct {
	Tenant tenant.ID // Others for the tenants past a flush's MaxTenants
	Calls  int64
	Errors int64
	// PerSecond is Calls over the window asked for.
	PerSecond float64
	// Mean, P50 and P99 are call durations; the percentiles are upper
	// bounds of power-of-two buckets.
	Mean, P50, P99 time.Duration
	// ConnWait is the mean time a call waited for its connection, part of
	// its duration.
	ConnWait time.Duration
}

// Querier runs a query: a *pgxpool.Pool, *pgx.Conn or pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

const topSQL = `WITH w AS MATERIALIZED (
	SELECT tenant_id, calls, errors, total_us, wait_us, buckets FROM landlord.tenant_stats WHERE window_end > $1
), t AS (
	SELECT tenant_id, sum(calls)::int8 AS calls, sum(errors)::int8 AS errors, sum(total_us)::int8 AS us, sum(wait_us)::int8 AS wait
	FROM w GROUP BY tenant_id ORDER BY sum(calls) DESC, tenant_id LIMIT $2
), b AS (
	SELECT w.tenant_id, u.o, sum(u.b)::int8 AS v
	FROM w JOIN t USING (tenant_id) CROSS JOIN LATERAL unnest(w.buckets) WITH ORDINALITY AS u(b, o)
	GROUP BY w.tenant_id, u.o
)
SELECT t.tenant_id, t.calls, t.errors, t.us, t.wait,
	coalesce((SELECT array_agg(b.v ORDER BY b.o) FROM b WHERE b.tenant_id = t.tenant_id), '{}')
FROM t ORDER BY t.calls DESC, t.tenant_id`

// Top returns the busiest tenants by calls over the last window, at most
// limit of them.
func Top(ctx context.Context, db Querier, window time.Duration, limit int) ([]Stat, error) {
	if window <= 0 || limit <= 0 {
		return nil, fmt.Errorf("tenant statistics: window %s and limit %d must be positive", window, limit)
	}
	rows, err := db.Query(ctx, topSQL, time.Now().Add(-window), limit)
	if err != nil {
		return nil, fmt.Errorf("read tenant statistics: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Stat, error) {
		var s Stat
		var micros, wait int64
		var buckets []int64
		if err := r.Scan(&s.Tenant, &s.Calls, &s.Errors, &micros, &wait, &buckets); err != nil {
			return s, err
		}
		s.PerSecond = float64(s.Calls) / window.Seconds()
		if s.Calls > 0 {
			s.Mean = time.Duration(micros/s.Calls) * time.Microsecond
			s.ConnWait = time.Duration(wait/s.Calls) * time.Microsecond
		}
		s.P50, s.P99 = percentile(buckets, 0.50), percentile(buckets, 0.99)
		return s, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tenant statistics: %w", err)
	}
	return out, nil
}

// percentile returns the upper bound of the bucket in which the q-quantile
// of the calls counted in buckets falls; 0 without calls.
func percentile(buckets []int64, q float64) time.Duration {
	var total int64
	for _, b := range buckets {
		total += b
	}
	if total == 0 {
		return 0
	}
	rank := int64(q*float64(total-1)) + 1 // 1-based rank of the quantile's call
	var seen int64
	for i, b := range buckets {
		seen += b
		if seen >= rank {
			return time.Duration(int64(1)<<(i+1)) * time.Microsecond
		}
	}
	return time.Duration(int64(1)<<len(buckets)) * time.Microsecond
}
