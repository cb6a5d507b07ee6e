package bench

import (
	"context"
	"errors"
	"fmt"
	"github.com/jackc/pgerrcode"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/embedded"
	"github.com/landlordhq/landlord/tenant"
)

// database-zipf: lookups as database tenants chosen by Zipf(1.1), under a
// budget of server connections. A backend serves one database for life, so
// a request to a tenant whose database has no open connection must open
// one, and the best any connection cache can do is to keep the budget
// hottest tenants connected. The bound on throughput is then
//
//	cores / (query_cost + (1 - best_hit_rate) × connect_cost)
//
// with best_hit_rate the share of traffic of the budget hottest tenants.
// Both costs are measured in the same run, in rounds alternating with ours:
// the query cost as raw pgx lookups on warm connections, the connect cost
// as new connections to tenant databases, each with its first lookup. Each
// cost is the cores' time per operation at full load (cores / its
// throughput), which counts the machine's other load the same for all
// three. ratio = ours / bound, per round.
//
// The same run shows, after the rounds, what a pool per tenant database
// does (it runs out of server connections: "too many clients"), and what a
// pooler that closes idle server connections does (PgBouncer with
// server_idle_timeout, when the run has its own server).

func databaseZipfCase() benchCase {
	return benchCase{
		name: "database-zipf",
		what: "2,000 database tenants, Zipf(1.1), budget of 50 server connections: ratio to the connect-cost bound, hit rate, p99; a pool per tenant, PgBouncer with an idle timeout, budget 200",
		needs: func(sz sizes) needs {
			return needs{dbTenants: sz.dbTenants, dbRows: sz.dbTenants}
		},
		run: runDatabaseZipf,
	}
}

const (
	zipfBoundGoal = 0.8
	// pgbouncerIdleTimeout is PgBouncer's server_idle_timeout in the
	// comparison: short, so that it closes what the Zipf tail opened.
	pgbouncerIdleTimeout = "1"
)

// budgetConfig is the handle's configuration for a budget of server
// connections to tenant databases. It is the one place that maps the budget
// onto the handle's settings, so that the case follows whatever the handle
// uses: today Config.MaxConns, the budget of tenant connections per server
// across all models.
//
// Dial pacing is off: the bound assumes the server opens connections as
// fast as it can, and the default pace (100 a second, which keeps a
// reconnect storm from starving running queries) would cap this case at
// about 100 / (1 - hit rate) calls a second whatever the connection cache
// does. The result's detail says so (dial_pacing).
func budgetConfig(budget int) landlord.Config {
	return landlord.Config{MaxConns: budget, MaxDialsPerSecond: -1}
}

// connSampler samples the number of server connections to a set of
// databases until stopped: all of them, and those of roles other than the
// sampler's own (PgBouncer's auth_query logs in as the superuser, which is
// the sampler's role when the run started the server).
type connSampler struct {
	max, others atomic.Int64
	err         error
	stop        func()
}

// sampleConns counts backends of dbs (with application_name app, unless
// app is empty) in pg_stat_activity every 100 ms.
func (e *env) sampleConns(ctx context.Context, dbs []string, app string) *connSampler {
	s := &connSampler{}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			var n, others int64
			err := e.admin.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE usename <> current_user) FROM pg_stat_activity
				WHERE datname = ANY($1) AND ($2 = '' OR application_name = $2) AND backend_type = 'client backend'`, dbs, app).Scan(&n, &others)
			if err != nil {
				if ctx.Err() == nil {
					s.err = err
				}
				return
			}
			s.max.Store(max(s.max.Load(), n))
			s.others.Store(max(s.others.Load(), others))
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	s.stop = func() { cancel(); wg.Wait() }
	return s
}

// sessions is the number of sessions ever opened to dbs.
func (e *env) sessions(ctx context.Context, dbs []string) (int64, error) {
	var n int64
	err := e.admin.QueryRow(ctx, `SELECT coalesce(sum(sessions), 0)::int8 FROM pg_stat_database WHERE datname = ANY($1)`, dbs).Scan(&n)
	return n, err
}

// tenantConns holds each tenant database's connection settings as its own
// role, with the tenant's schema as the search path, as Landlord connects.
type tenantConns []*pgx.ConnConfig

func (e *env) tenantConnConfigs(ctx context.Context, ts []tenant.Tenant) (tenantConns, error) {
	out := make(tenantConns, len(ts))
	for i, t := range ts {
		cc, err := e.w.prov.ConnConfig(ctx, t.Server, t.Database, t.ID.RoleName())
		if err != nil {
			return nil, err
		}
		cc.RuntimeParams["search_path"] = ident(t.Schema) + ", pg_temp"
		out[i] = cc
	}
	return out, nil
}

// signature returns tenant id's signed context for the "none" role, signed
// on first use.
func (e *env) signature(id tenant.ID) string {
	if s, ok := e.sigs.Load(id); ok {
		return s.(string)
	}
	s := e.w.prov.Roles().SignContext(id, "none")
	e.sigs.Store(id, s)
	return s
}

// lookupOn runs the tenant lookup on conn in one round trip, with the tenant
// context set and signed for it, as the handle does.
func (e *env) lookupOn(ctx context.Context, q interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}, t tenant.Tenant, id int) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('landlord.tenant_id', $1, true), set_config('landlord.tenant_sig', $2, true)`,
		t.ID.String(), e.signature(t.ID))
	b.Queue(lookupSQL, id)
	return q.SendBatch(ctx, b).Close()
}

func runDatabaseZipf(ctx context.Context, e *env) ([]Result, error) {
	ts := e.w.database[:min(e.sz.dbTenants, len(e.w.database))]
	tids := ids(ts)
	dbs := make([]string, len(ts))
	for i, t := range ts {
		dbs[i] = t.Database
	}
	ccs, err := e.tenantConnConfigs(ctx, ts)
	if err != nil {
		return nil, err
	}
	workers := e.sz.zipfWorkers
	cores := float64(runtime.NumCPU())

	// An instance is the handle under a budget; its rounds are
	// instrumented: server connections sampled, new sessions counted.
	type instance struct {
		budget   int
		app      string
		l        *landlord.Landlord
		sampler  *connSampler
		sessions int64
	}
	open := func(budget int) (*instance, error) {
		in := &instance{budget: budget, app: fmt.Sprintf("landlord-bench-zipf-%d", budget)}
		var err error
		in.l, err = e.openLandlord(ctx, budgetConfig(budget), in.app, nil)
		return in, err
	}
	ourLoad := func(in *instance) load {
		l := ourLookup(fmt.Sprintf("ours (budget %d)", in.budget), in.l.Handle(), tids, zipfPicker, e.sz.rows, workers)
		l.latency = true
		l.before = func(ctx context.Context) error {
			n, err := e.sessions(ctx, dbs)
			if err != nil {
				return err
			}
			in.sessions = n
			in.sampler = e.sampleConns(ctx, dbs, in.app)
			return nil
		}
		l.after = func(ctx context.Context, r *round) error {
			in.sampler.stop()
			if in.sampler.err != nil {
				return in.sampler.err
			}
			// Sessions are counted when a new backend reports its first
			// statistics, right after its first transaction.
			time.Sleep(50 * time.Millisecond)
			n, err := e.sessions(ctx, dbs)
			if err != nil {
				return err
			}
			r.extra["new_connections"] = float64(n - in.sessions)
			r.extra["max_server_connections"] = float64(in.sampler.max.Load())
			return nil
		}
		return l
	}
	narrow, err := open(e.sz.budget)
	if err != nil {
		return nil, err
	}
	defer narrow.l.Close()
	wide, err := open(e.sz.wideBudget)
	if err != nil {
		return nil, err
	}
	defer wide.l.Close()
	raw, err := e.rawPool(ctx, int32(e.sz.budget), "landlord-bench-raw", nil, "")
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	connect := load{name: "connect", workers: workers, worker: func(r *rand.Rand) func(context.Context) error {
		return func(ctx context.Context) error {
			i := r.IntN(len(ts))
			conn, err := pgx.ConnectConfig(ctx, ccs[i])
			if err != nil {
				return err
			}
			err = e.lookupOn(ctx, conn, ts[i], 1+r.IntN(e.sz.rows))
			return errors.Join(err, conn.Close(ctx))
		}
	}}
	rs, err := e.alternate(ctx, "database-zipf", []load{
		ourLoad(narrow),
		rawLookup("query", raw, tids, zipfPicker, e.sz.rows, workers),
		connect,
		ourLoad(wide),
	}, e.sz.rounds, e.sz.roundTime, nil)
	if err != nil {
		return nil, err
	}
	queryRates, connectRates := rates(rs[1]), rates(rs[2])
	qps, cps := spreadOf(queryRates).Median, spreadOf(connectRates).Median
	costs := map[string]any{
		"queries_per_s":        round3(qps),
		"connects_per_s":       round3(cps),
		"query_cost_core_us":   round3(cores * 1e6 / qps),
		"connect_cost_core_us": round3(cores * 1e6 / cps),
		"cores":                cores,
		"query_is":             fmt.Sprintf("raw pgx lookups on the shared table over %d warm connections", e.sz.budget),
		"connect_is":           "pgx.Connect to a tenant database as its role, one lookup, close",
	}
	for name, r := range map[string][]round{"connect": rs[2], "query": rs[1]} {
		c, s := cpuPerCall(r)
		costs["client_cpu_us_"+name] = round3(c)
		if s >= 0 {
			costs["server_cpu_us_"+name] = round3(s)
		}
	}

	// bounds are the per-round bounds for a budget.
	bounds := func(budget int) []float64 {
		best := bestHitRate(len(ts), budget, zipfS)
		var out []float64
		for i := range rs[1] {
			out = append(out, connectBound(rs[1][i].rate(), rs[2][i].rate(), best))
		}
		return out
	}
	result := func(name string, in *instance, ours []round) Result {
		bs := bounds(in.budget)
		var rr []float64
		var hits []float64
		var maxConns float64
		var lat []time.Duration
		var errs int64
		for i, r := range ours {
			if bs[i] > 0 {
				rr = append(rr, r.rate()/bs[i])
			}
			if r.calls > 0 {
				hits = append(hits, 1-r.extra["new_connections"]/float64(r.calls))
			}
			maxConns = max(maxConns, r.extra["max_server_connections"])
			lat = append(lat, r.lat...)
			errs += r.errs
		}
		sp := spreadOf(rr)
		best := bestHitRate(len(ts), in.budget, zipfS)
		res := Result{
			Case: name, Unit: "calls/s",
			Ours:     round3(spreadOf(rates(ours)).Median),
			Baseline: ptr(round3(spreadOf(bs).Median)),
			Ratio:    ptr(round3(sp.Median)),
			Goal:     fmt.Sprintf("ratio to the bound >= %s, server connections <= %d", trimFloat(zipfBoundGoal), in.budget),
			Met:      sp.Median >= zipfBoundGoal && int(maxConns) <= in.budget && errs == 0,
			Detail: map[string]any{
				"baseline_is":            "the bound cores / (query_cost + (1 - best_hit_rate) × connect_cost), per round",
				"ratio_min":              round3(sp.Min),
				"ratio_max":              round3(sp.Max),
				"round_ratios":           roundAll(rr),
				"budget":                 in.budget,
				"handle_config":          fmt.Sprintf("%+v", budgetConfig(in.budget)),
				"dial_pacing":            "off (MaxDialsPerSecond -1): the bound assumes connections open at the server's pace; the default of 100 a second would cap throughput at about 100 / (1 - hit_rate)",
				"tenants":                len(ts),
				"goroutines":             workers,
				"tenant_choice":          fmt.Sprintf("Zipf(s=%.1f)", zipfS),
				"best_hit_rate":          round3(best),
				"hit_rate":               round3(spreadOf(hits).Median),
				"hit_rate_is":            "1 - new sessions in the tenant databases (pg_stat_database.sessions) / calls",
				"max_server_connections": maxConns,
				"server_connections_is":  "backends of the tenant databases with this handle's application_name, pg_stat_activity every 100 ms",
				"p50_ms":                 round3(ms(percentile(lat, 0.50))),
				"p99_ms":                 round3(ms(percentile(lat, 0.99))),
				"errors":                 errs,
				"costs":                  costs,
			},
		}
		return res
	}
	out := []Result{
		result("database-zipf", narrow, rs[0]),
		result(fmt.Sprintf("database-zipf/budget-%d", e.sz.wideBudget), wide, rs[3]),
	}
	narrowBound := spreadOf(bounds(e.sz.budget)).Median
	// The rest runs with no other pool open to the tenant databases.
	start := time.Now()
	narrow.l.Close()
	wide.l.Close()
	raw.Close()
	if err := e.waitIdle(ctx, dbs); err != nil {
		return out, err
	}
	e.progressf("database-zipf: closed the handles' connections in %s", time.Since(start).Round(time.Millisecond))
	perTenant, err := e.poolPerTenant(ctx, ts, ccs, dbs, narrowBound)
	if err != nil {
		return out, err
	}
	out = append(out, perTenant)
	e.progressf("database-zipf: pool per tenant: %.0f calls/s, %d server connections, %v errors",
		perTenant.Ours, perTenant.Detail["max_server_connections"], perTenant.Detail["errors"])
	if e.srv.Embedded == nil {
		out[0].Detail["idle_timeout_pool"] = "skipped: PgBouncer runs only in front of a server the run started itself"
		return out, nil
	}
	if err := e.waitIdle(ctx, dbs); err != nil {
		return out, err
	}
	start = time.Now()
	bouncer, err := e.idleTimeoutPool(ctx, ts, dbs, narrowBound)
	if errors.Is(err, embedded.ErrNoPgBouncer) {
		out[0].Detail["idle_timeout_pool"] = "skipped: " + err.Error()
		return out, nil
	}
	if err != nil {
		return out, err
	}
	e.progressf("database-zipf: PgBouncer with an idle timeout: %.0f calls/s, %d server connections (%s)",
		bouncer.Ours, bouncer.Detail["max_server_connections"], time.Since(start).Round(time.Millisecond))
	return append(out, bouncer), nil
}

// waitIdle waits up to ten seconds for the backends of dbs to end.
func (e *env) waitIdle(ctx context.Context, dbs []string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := e.admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)`, dbs).Scan(&n); err != nil {
			return err
		}
		if n == 0 || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// poolPerTenant runs the Zipf traffic through a pgx pool per tenant
// database, opened on first use and never closed: what an application that
// keeps a pool per tenant does. On a server the run started itself it goes
// on until PostgreSQL refuses connections ("too many clients"); on a given
// server it stops short of max_connections and counts the tenants it could
// not serve, so as not to take the last connections of someone else's
// server.
func (e *env) poolPerTenant(ctx context.Context, ts []tenant.Tenant, ccs tenantConns, dbs []string, bound float64) (Result, error) {
	var maxConns, used int
	if err := e.admin.QueryRow(ctx, `SELECT current_setting('max_connections')::int, (SELECT count(*) FROM pg_stat_activity)::int`).
		Scan(&maxConns, &used); err != nil {
		return Result{}, err
	}
	limit := len(ts) + 1
	if !e.srv.Disposable {
		limit = maxConns - used - 10
	}
	var mu sync.Mutex
	pools := map[int]*pgxpool.Pool{}
	refusedByCount := errors.New("would exceed max_connections (not attempted on a server the run did not start)")
	get := func(ctx context.Context, i int) (*pgxpool.Pool, error) {
		mu.Lock()
		defer mu.Unlock()
		if p, ok := pools[i]; ok {
			return p, nil
		}
		if len(pools) >= limit {
			return nil, refusedByCount
		}
		pc, err := pgxpool.ParseConfig("")
		if err != nil {
			return nil, err
		}
		pc.ConnConfig = ccs[i].Copy()
		pc.ConnConfig.RuntimeParams["application_name"] = "landlord-bench-pool-per-tenant"
		pc.MaxConns = 1
		p, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			return nil, err
		}
		pools[i] = p
		return p, nil
	}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	l := load{name: "pool per tenant", workers: e.sz.zipfWorkers, tolerate: true, latency: true,
		worker: func(r *rand.Rand) func(context.Context) error {
			next := zipfPicker(r, len(ts))
			return func(ctx context.Context) error {
				i := next()
				p, err := get(ctx, i)
				if err != nil {
					return err
				}
				return e.lookupOn(ctx, p, ts[i], 1+r.IntN(e.sz.rows))
			}
		}}
	s := e.sampleConns(ctx, dbs, "landlord-bench-pool-per-tenant")
	r, err := e.runLoad(ctx, l, e.sz.failureRun)
	s.stop()
	if err != nil {
		return Result{}, err
	}
	if s.err != nil {
		return Result{}, s.err
	}
	tooMany := int64(0)
	for k, n := range r.errKinds {
		if strings.HasPrefix(k, pgerrcode.TooManyConnections) {
			tooMany += n
		}
	}
	if n, ok := r.errKinds[refusedByCount.Error()]; ok {
		tooMany += n
	}
	res := Result{
		Case: "database-zipf/pool-per-tenant", Unit: "calls/s",
		Ours: round3(r.rate()), Baseline: ptr(round3(bound)),
		Goal: fmt.Sprintf("server connections <= %d (the budget), no connection refused", e.sz.budget),
		Met:  s.max.Load() <= int64(e.sz.budget) && tooMany == 0 && r.errs == 0,
		Detail: map[string]any{
			"baseline_is":            fmt.Sprintf("the bound of the budget-%d case", e.sz.budget),
			"is":                     "a pgx pool of one connection per tenant database, opened on first use, never closed",
			"run_s":                  round3(r.elapsed.Seconds()),
			"calls":                  r.calls,
			"errors":                 r.errs,
			"too_many_clients":       tooMany,
			"errors_by_kind":         r.errKinds,
			"pools_opened":           len(pools),
			"max_server_connections": s.max.Load(),
			"max_connections":        maxConns,
			"p99_ms":                 round3(ms(percentile(r.lat, 0.99))),
		},
	}
	if bound > 0 {
		res.Ratio = ptr(round3(r.rate() / bound))
	}
	if r.firstErr != nil {
		res.Detail["first_error"] = r.firstErr.Error()
	}
	if !e.srv.Disposable {
		res.Detail["limit"] = fmt.Sprintf("stopped opening pools at %d, short of max_connections %d", limit, maxConns)
	}
	return res, nil
}

// idleTimeoutPool runs the Zipf traffic through PgBouncer in transaction
// mode with one server connection per tenant database and user, closed after
// pgbouncerIdleTimeout seconds idle: server connections follow the tenants
// active in the last second, with no budget over them.
func (e *env) idleTimeoutPool(ctx context.Context, ts []tenant.Tenant, dbs []string, bound float64) (Result, error) {
	b, err := embedded.StartPgBouncer(ctx, embedded.PoolerConfig{
		Server: e.srv.Embedded, PoolMode: "transaction", PoolSize: 1,
		Settings: map[string]string{
			"server_idle_timeout": pgbouncerIdleTimeout,
			"max_client_conn":     strconv.Itoa(2*len(ts) + 100),
			"query_wait_timeout":  "10",
		},
	})
	if err != nil {
		return Result{}, err
	}
	defer b.Stop()
	cfg := landlord.Config{
		// Client connections to PgBouncer are not what is compared: every
		// tenant may keep one.
		MaxConns: len(ts) + 8,
		Pooler:   &landlord.Pooler{Host: b.Host(), Port: uint16(b.Port())},
	}
	l, err := e.openLandlord(ctx, cfg, "landlord-bench-pgbouncer", nil)
	if err != nil {
		return Result{}, err
	}
	defer l.Close()
	ld := ourLookup("pgbouncer", l.Handle(), ids(ts), zipfPicker, e.sz.rows, e.sz.zipfWorkers)
	ld.tolerate, ld.latency = true, true
	// Every tenant's first call logs in to PgBouncer (SCRAM), at the
	// handle's pace of new connections; that is not what is compared.
	warm := max(e.sz.failureRun, time.Duration(len(ts))*time.Second/80)
	if _, err := e.runLoad(ctx, ld, warm); err != nil {
		return Result{}, err
	}
	s0, err := e.sessions(ctx, dbs)
	if err != nil {
		return Result{}, err
	}
	s := e.sampleConns(ctx, dbs, "")
	r, err := e.runLoad(ctx, ld, e.sz.failureRun)
	s.stop()
	if err != nil {
		return Result{}, err
	}
	if s.err != nil {
		return Result{}, s.err
	}
	s1, err := e.sessions(ctx, dbs)
	if err != nil {
		return Result{}, err
	}
	maxConns := s.max.Load()
	res := Result{
		Case: "database-zipf/idle-timeout-pool", Unit: "calls/s",
		Ours: round3(r.rate()), Baseline: ptr(round3(bound)),
		Goal: fmt.Sprintf("server connections <= %d (the budget), no errors", e.sz.budget),
		Met:  maxConns <= int64(e.sz.budget) && r.errs == 0,
		Detail: map[string]any{
			"baseline_is":                 fmt.Sprintf("the bound of the budget-%d case", e.sz.budget),
			"is":                          fmt.Sprintf("Landlord behind PgBouncer (pool_mode transaction, default_pool_size 1, server_idle_timeout %s s): no budget over server connections", pgbouncerIdleTimeout),
			"run_s":                       round3(r.elapsed.Seconds()),
			"calls":                       r.calls,
			"errors":                      r.errs,
			"errors_by_kind":              r.errKinds,
			"max_server_connections":      maxConns,
			"max_tenant_role_connections": s.others.Load(),
			"server_connections_is":       "all backends of the tenant databases, sampled every 100 ms; PgBouncer's auth_query keeps connections of its own (as the superuser) next to the tenant roles' ones",
			"new_server_connections":      s1 - s0,
			"p99_ms":                      round3(ms(percentile(r.lat, 0.99))),
		},
	}
	if r.calls > 0 {
		res.Detail["hit_rate"] = round3(1 - float64(s1-s0)/float64(r.calls))
	}
	if bound > 0 {
		res.Ratio = ptr(round3(r.rate() / bound))
	}
	if r.firstErr != nil {
		res.Detail["first_error"] = r.firstErr.Error()
	}
	return res, nil
}
