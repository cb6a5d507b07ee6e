package landlord

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/landlordhq/landlord/tenant"
)

// Metrics. Per-tenant series would be unbounded with thousands of tenants,
// so only the busiest tenants get their own (at most Config.MetricsTenants,
// chosen every admitEvery by their calls since the last round); every other
// tenant's calls count under tenant="other". A tenant keeps its series while
// it is busy and gives it up after an hour without calls, making room for
// another. Counters stay monotonic through all of this: a tenant's own series
// counts from its admission, and "other" keeps everything else.
const (
	admitEvery = 15 * time.Second
	retireIdle = time.Hour
	otherLabel = "other"
)

// durationBuckets suit single statements on a nearby server: 50 µs to 10 s.
var durationBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

// metrics collects Landlord's Prometheus metrics. It is an unchecked
// collector: the set of tenant series changes at run time.
type metrics struct {
	l     *Landlord
	topK  int
	mu    sync.Mutex
	all   map[tenant.ID]*tenantStats
	other *series

	dirty atomic.Uint64 // connections replaced for leftover session state
}

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

func newMetrics(l *Landlord, topK int) *metrics {
	return &metrics{l: l, topK: topK, all: map[tenant.ID]*tenantStats{}, other: newSeries(otherLabel, "")}
}

// stats returns the counters of tenant t, creating them on first use.
func (m *metrics) stats(t tenant.Tenant) *tenantStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.all[t.ID]
	if !ok {
		s = &tenantStats{id: t.ID, model: t.Model}
		m.all[t.ID] = s
	}
	return s
}

// obs measures one handle call. The zero value measures nothing (metrics
// off, or no route).
type obs struct {
	m     *metrics
	s     *tenantStats
	start time.Time
}

// begin starts measuring a call on route r.
func (l *Landlord) begin(r *route) obs {
	if l.metrics == nil || r == nil {
		return obs{}
	}
	return obs{m: l.metrics, s: r.stats, start: time.Now()}
}

// end records the call; err is its outcome.
func (o obs) end(err error) {
	if o.m != nil {
		o.m.observe(o.s, o.start, err)
	}
}

// observe records one call of s that started at start.
func (m *metrics) observe(s *tenantStats, start time.Time, err error) {
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
func (m *metrics) admit(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
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
func (m *metrics) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
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

	for _, sv := range m.l.conns.Stats().Servers {
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
	ch <- prometheus.MustNewConstMetric(descRoutes, prometheus.GaugeValue, float64(m.l.routes.Len()))
	ch <- prometheus.MustNewConstMetric(descDirty, prometheus.CounterValue, float64(m.dirty.Load()))
}
