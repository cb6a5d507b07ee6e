// Package metrics exports Landlord's tenant traffic to Prometheus: calls,
// errors and latency of the busiest tenants and of all others together, the
// connection manager's pools, the routing cache, and connections replaced
// for leftover session state. Without it, an application compiles no
// Prometheus code:
//
//	m := metrics.New(metrics.Config{})
//	ll, err := landlord.Open(ctx, url, migrations, landlord.Config{Tracer: m})
//	...
//	err = m.Register(prometheus.DefaultRegisterer, ll)
//
// Per-tenant series would be unbounded with thousands of tenants, so only
// the busiest tenants get their own (at most Config.Tenants, chosen at most
// every admitEvery, at a scrape, by their calls since the last round); every other
// tenant's calls count under tenant="other". A tenant keeps its series while
// it is busy and gives it up after an hour without calls, making room for
// another. Counters stay monotonic through all of this: a tenant's own series
// counts from its admission, and "other" keeps everything else.
package metrics

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/tenant"
)

const (
	admitEvery = 15 * time.Second
	retireIdle = time.Hour
	otherLabel = "other"
)

// durationBuckets suit single statements on a nearby server: 50 µs to 10 s.
var durationBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

// Config holds the optional settings of New.
type Config struct {
	// Tenants bounds how many tenants get series of their own. Default 50;
	// negative: none, every call counts under tenant="other".
	Tenants int
}

// Source is what the metrics read at each scrape besides the calls:
// *landlord.Landlord.
type Source interface{ Stats() landlord.Stats }

var _ Source = (*landlord.Landlord)(nil)

// Metrics is a landlord.Tracer that counts tenant calls, and a Prometheus
// collector once registered. It is an unchecked collector: the set of
// tenant series changes at run time. It is safe for concurrent use.
type Metrics struct {
	topK  int
	mu    sync.Mutex
	all   map[tenant.ID]*tenantStats
	other *series
	src   Source
	// lastAdmit is when the last admission round ran.
	lastAdmit time.Time

	dirty atomic.Uint64 // connections replaced for leftover session state
}

var _ landlord.Tracer = (*Metrics)(nil)

// New returns metrics to set as landlord.Config.Tracer.
func New(cfg Config) *Metrics {
	switch {
	case cfg.Tenants == 0:
		cfg.Tenants = 50
	case cfg.Tenants < 0:
		cfg.Tenants = 0
	}
	return &Metrics{topK: cfg.Tenants, all: map[tenant.ID]*tenantStats{}, other: newSeries(otherLabel, ""), lastAdmit: time.Now()}
}

// Register registers m with reg; each scrape reads the connection manager
// and routing cache of src, the installation m traces.
func (m *Metrics) Register(reg prometheus.Registerer, src Source) error {
	m.mu.Lock()
	m.src = src
	m.mu.Unlock()
	if err := reg.Register(m); err != nil {
		return fmt.Errorf("register landlord metrics: %w", err)
	}
	return nil
}

// TenantCalls implements landlord.Tracer.
func (m *Metrics) TenantCalls(t tenant.Tenant) func(start time.Time, err error) {
	s := m.stats(t)
	return func(start time.Time, err error) { m.observe(s, start, err) }
}

// ConnReplaced implements landlord.Tracer.
func (m *Metrics) ConnReplaced() { m.dirty.Add(1) }

// tenantStats counts one tenant's calls. It is looked up once per route and
// updated with atomics on every call.
type tenantStats struct {
	id     tenant.ID
	model  tenant.Model
	calls  atomic.Uint64 // since process start
	errs   atomic.Uint64
	window atomic.Uint64 // calls since the last admission round
	last   atomic.Int64  // unix nanoseconds of the last call
	own    atomic.Pointer[series]
}

// series is the exported state of one tenant label value.
type series struct {
	calls, errs atomic.Uint64
	duration    prometheus.Histogram
}

func newSeries(tenantLabel, model string) *series {
	return &series{duration: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:        "landlord_tenant_call_duration_seconds",
		Help:        "Duration of tenant handle calls, from routing to the last result read.",
		Buckets:     durationBuckets,
		ConstLabels: prometheus.Labels{"tenant": tenantLabel, "model": model},
	})}
}

// stats returns the counters of tenant t, creating them on first use.
func (m *Metrics) stats(t tenant.Tenant) *tenantStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.all[t.ID]
	if !ok {
		s = &tenantStats{id: t.ID, model: t.Model}
		m.all[t.ID] = s
	}
	return s
}

// observe records one call of s that started at start.
func (m *Metrics) observe(s *tenantStats, start time.Time, err error) {
	now := time.Now()
	s.calls.Add(1)
	s.window.Add(1)
	s.last.Store(now.UnixNano())
	target := s.own.Load()
	if target == nil {
		target = m.other
	}
	target.calls.Add(1)
	if err != nil {
		s.errs.Add(1)
		target.errs.Add(1)
	}
	target.duration.Observe(now.Sub(start).Seconds())
}

// admit runs one admission round: retire idle tenants, then give free places
// to the busiest tenants without a series of their own.
func (m *Metrics) admit(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.admitLocked(now)
}

func (m *Metrics) admitLocked(now time.Time) {
	var admitted int
	var waiting []*tenantStats
	for _, s := range m.all {
		own := s.own.Load()
		switch {
		case own != nil && now.Sub(time.Unix(0, s.last.Load())) > retireIdle:
			// Its own counts go back to "other", which only grows.
			m.other.calls.Add(own.calls.Load())
			m.other.errs.Add(own.errs.Load())
			s.own.Store(nil)
		case own != nil:
			admitted++
		default:
			if s.window.Load() > 0 {
				waiting = append(waiting, s)
			}
		}
	}
	sort.Slice(waiting, func(i, j int) bool { return waiting[i].window.Load() > waiting[j].window.Load() })
	for _, s := range waiting {
		if admitted >= m.topK {
			break
		}
		s.own.Store(newSeries(s.id.String(), string(s.model)))
		admitted++
	}
	for _, s := range m.all {
		s.window.Store(0)
	}
}

var (
	descCalls         = prometheus.NewDesc("landlord_tenant_calls_total", "Tenant handle calls, per busy tenant and \"other\".", []string{"tenant", "model"}, nil)
	descErrors        = prometheus.NewDesc("landlord_tenant_errors_total", "Tenant handle calls that failed, per busy tenant and \"other\".", []string{"tenant", "model"}, nil)
	descPoolConns     = prometheus.NewDesc("landlord_pool_connections", "Tenant-traffic connections of a server, by state; their sum never exceeds the budget.", []string{"server", "state"}, nil)
	descPoolBudget    = prometheus.NewDesc("landlord_pool_budget_connections", "The budget of tenant-traffic connections of a server.", []string{"server"}, nil)
	descPoolWaiting   = prometheus.NewDesc("landlord_pool_waiting_acquires", "Acquires waiting for a connection.", []string{"server"}, nil)
	descPoolAcq       = prometheus.NewDesc("landlord_pool_acquires_total", "Connections handed out.", []string{"server"}, nil)
	descPoolWait      = prometheus.NewDesc("landlord_pool_acquire_waits_total", "Acquires that had to wait for a connection.", []string{"server"}, nil)
	descPoolTimeouts  = prometheus.NewDesc("landlord_pool_acquire_timeouts_total", "Acquires whose context ended before a connection was free.", []string{"server"}, nil)
	descPoolDials     = prometheus.NewDesc("landlord_pool_dials_total", "New server connections attempted.", []string{"server"}, nil)
	descPoolDialErrs  = prometheus.NewDesc("landlord_pool_dial_errors_total", "New server connections that failed.", []string{"server"}, nil)
	descPoolEvictions = prometheus.NewDesc("landlord_pool_evictions_total", "Idle connections closed to make room for another target.", []string{"server"}, nil)
	descPoolRecycled  = prometheus.NewDesc("landlord_pool_recycled_total", "Connections replaced for age or for the schema tenants they served.", []string{"server"}, nil)
	descPoolAffinity  = prometheus.NewDesc("landlord_pool_affinity_hits_total", "Acquires that got the connection that last served their tenant.", []string{"server"}, nil)
	descPools         = prometheus.NewDesc("landlord_pool_targets", "Connection groups open on a server: the app role's and one per busy tenant database.", []string{"server"}, nil)
	descRoutes        = prometheus.NewDesc("landlord_directory_cached_tenants", "Tenants in the routing cache.", nil, nil)
	descDirty         = prometheus.NewDesc("landlord_connections_replaced_total", "Connections closed because tenant SQL may have left session state on them.", nil, nil)
)

// Describe sends nothing: the collector is unchecked, since its tenant
// series come and go.
func (m *Metrics) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector. It runs an admission round
// first when the last is admitEvery old.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	if now := time.Now(); now.Sub(m.lastAdmit) >= admitEvery {
		m.lastAdmit = now
		m.admitLocked(now)
	}
	src := m.src
	for _, s := range m.all {
		if own := s.own.Load(); own != nil {
			ch <- prometheus.MustNewConstMetric(descCalls, prometheus.CounterValue, float64(own.calls.Load()), s.id.String(), string(s.model))
			ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(own.errs.Load()), s.id.String(), string(s.model))
			own.duration.Collect(ch)
		}
	}
	m.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descCalls, prometheus.CounterValue, float64(m.other.calls.Load()), otherLabel, "")
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(m.other.errs.Load()), otherLabel, "")
	m.other.duration.Collect(ch)

	if src == nil {
		ch <- prometheus.MustNewConstMetric(descDirty, prometheus.CounterValue, float64(m.dirty.Load()))
		return
	}
	st := src.Stats()
	for _, sv := range st.Pool.Servers {
		gauge := func(state string, n int) {
			ch <- prometheus.MustNewConstMetric(descPoolConns, prometheus.GaugeValue, float64(n), sv.Server, state)
		}
		gauge("idle", sv.Idle)
		gauge("in_use", sv.InUse)
		gauge("opening", sv.Dialing)
		gauge("closing", sv.Closing)
		ch <- prometheus.MustNewConstMetric(descPoolWaiting, prometheus.GaugeValue, float64(sv.Waiting), sv.Server)
		ch <- prometheus.MustNewConstMetric(descPoolBudget, prometheus.GaugeValue, float64(sv.MaxConns), sv.Server)
		count := func(d *prometheus.Desc, n uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), sv.Server)
		}
		count(descPoolAcq, sv.Acquires)
		count(descPoolWait, sv.AcquireWaits)
		count(descPoolTimeouts, sv.AcquireTimeouts)
		count(descPoolDials, sv.Dials)
		count(descPoolDialErrs, sv.DialErrors)
		count(descPoolEvictions, sv.Evictions)
		count(descPoolRecycled, sv.RecycledAge+sv.RecycledTenants)
		count(descPoolAffinity, sv.AffinityHits)
		ch <- prometheus.MustNewConstMetric(descPools, prometheus.GaugeValue, float64(len(sv.Targets)), sv.Server)
	}
	ch <- prometheus.MustNewConstMetric(descRoutes, prometheus.GaugeValue, float64(st.CachedTenants))
	ch <- prometheus.MustNewConstMetric(descDirty, prometheus.CounterValue, float64(m.dirty.Load()))
}
