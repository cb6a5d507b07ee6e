package pool

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

// Benchmarks compare the manager with pgxpool on the same target, the same
// number of connections and the same goroutines. The machines these run on
// drift from minute to minute, so the ratio benchmarks alternate short
// rounds of each side and report the median of the per-round ratios:
//
//	go test -run '^$' -bench 'Ratio|Zipf|Fairness|CatalogMemory' -benchtime 1x ./pool/

const (
	benchConns   = 8
	benchTenants = 1000
)

// sides holds the two pools under comparison.
type sides struct {
	e   *env
	m   *Manager
	px  *pgxpool.Pool
	tg  Target
	ids []tenant.ID
}

func setupSides(b *testing.B, cfg Config) *sides {
	b.Helper()
	e := setup(b)
	cfg.MaxConns = benchConns
	m := e.manager(cfg)
	pcfg, err := pgxpool.ParseConfig("")
	if err != nil {
		b.Fatal(err)
	}
	pcfg.ConnConfig = e.base.Copy()
	pcfg.ConnConfig.RuntimeParams["application_name"] = e.app
	pcfg.MaxConns = benchConns
	px, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(px.Close)
	s := &sides{e: e, m: m, px: px, tg: e.target(e.db)}
	for range benchTenants {
		s.ids = append(s.ids, tenant.NewID())
	}
	return s
}

// op is one acquire and release, with a statement in between when query
// is set, for a random tenant.
type op func(ctx context.Context, r *rand.Rand, query bool) error

func (s *sides) ours(ctx context.Context, r *rand.Rand, query bool) error {
	c, err := s.m.Acquire(ctx, Key{Target: s.tg, Tenant: s.ids[r.IntN(len(s.ids))]})
	if err != nil {
		return err
	}
	if query {
		_, err = c.Conn().Exec(ctx, "SELECT 1")
	}
	c.Release()
	return err
}

func (s *sides) theirs(ctx context.Context, r *rand.Rand, query bool) error {
	_ = r.IntN(len(s.ids)) // the same work as ours
	c, err := s.px.Acquire(ctx)
	if err != nil {
		return err
	}
	if query {
		_, err = c.Conn().Exec(ctx, "SELECT 1")
	}
	c.Release()
	return err
}

// runParallel runs o from goroutines goroutines per GOMAXPROCS.
func runParallel(b *testing.B, goroutines int, o op, query bool) {
	b.SetParallelism(goroutines)
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		for pb.Next() {
			if err := o(context.Background(), r, query); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAcquireRelease measures each side alone: with as many goroutines
// as connections (idle) and with four times as many (contended), bare and
// around a SELECT 1.
func BenchmarkAcquireRelease(b *testing.B) {
	s := setupSides(b, Config{MaxConnsPerTenant: benchConns})
	for _, query := range []bool{false, true} {
		for _, load := range []struct {
			name       string
			goroutines int // per GOMAXPROCS
		}{{"idle", max(1, benchConns/cpus())}, {"contended", 4 * max(1, benchConns/cpus())}} {
			name := load.name
			if query {
				name += "/query"
			}
			b.Run(name+"/manager", func(b *testing.B) { runParallel(b, load.goroutines, s.ours, query) })
			b.Run(name+"/pgxpool", func(b *testing.B) { runParallel(b, load.goroutines, s.theirs, query) })
		}
	}
}

func cpus() int { return max(1, runtime.GOMAXPROCS(0)) }

// processCPU returns the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// round runs o from goroutines goroutines for d and returns operations per
// second and this process's CPU time per operation.
func round(b *testing.B, goroutines int, d time.Duration, o op, query bool) (perSec float64, cpu time.Duration) {
	cpu0 := processCPU()
	var n atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
			var local int64
			for ctx.Err() == nil {
				if err := o(context.Background(), r, query); err != nil {
					b.Error(err)
					return
				}
				local++
			}
			n.Add(local)
		})
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds(), (processCPU() - cpu0) / time.Duration(max(1, n.Load()))
}

// BenchmarkAcquireReleaseRatio alternates rounds of the manager and pgxpool
// and reports the median (min, max) of the per-round throughput ratios,
// manager over pgxpool, and the median client CPU per operation of each,
// for the bare hot path and around a SELECT 1, each with as many
// goroutines as connections and with four times as many.
func BenchmarkAcquireReleaseRatio(b *testing.B) {
	s := setupSides(b, Config{MaxConnsPerTenant: benchConns})
	const rounds, d = 10, 300 * time.Millisecond
	for b.Loop() {
		for _, query := range []bool{false, true} {
			for _, g := range []int{benchConns, 4 * benchConns} {
				_, _ = round(b, g, d, s.theirs, query) // warm up both sides
				_, _ = round(b, g, d, s.ours, query)
				var ratios, ours, theirs, ourCPU, theirCPU []float64
				for range rounds {
					t, tc := round(b, g, d, s.theirs, query)
					o, oc := round(b, g, d, s.ours, query)
					ratios, ours, theirs = append(ratios, o/t), append(ours, o), append(theirs, t)
					ourCPU, theirCPU = append(ourCPU, float64(oc)), append(theirCPU, float64(tc))
				}
				name := fmt.Sprintf("bare-g%d", g)
				if query {
					name = fmt.Sprintf("query-g%d", g)
				}
				slices.Sort(ratios)
				b.ReportMetric(ratios[len(ratios)/2], name+"-ratio")
				b.ReportMetric(ratios[0], name+"-ratio-min")
				b.ReportMetric(ratios[len(ratios)-1], name+"-ratio-max")
				b.ReportMetric(median(ours), name+"-manager/s")
				b.ReportMetric(median(theirs), name+"-pgxpool/s")
				b.ReportMetric(median(ourCPU), name+"-manager-cpu-ns/op")
				b.ReportMetric(median(theirCPU), name+"-pgxpool-cpu-ns/op")
			}
		}
	}
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// BenchmarkAffinityZipf reports how often a tenant gets the connection that
// last served it when tenants are drawn from Zipf(1.1) over 1,000 tenants,
// with 8 connections and 4, 8 or 16 goroutines each running acquire,
// SELECT 1, release. The baseline is pgxpool on the same load, which hands
// out connections without regard to the tenant: its hit rate is what
// chance gives.
func BenchmarkAffinityZipf(b *testing.B) {
	s := setupSides(b, Config{MaxTenantsPerConn: -1})
	const d = 2 * time.Second
	zipfOp := func(goroutines int, acquire func(ctx context.Context, id tenant.ID) (func(), *pgx.Conn, error)) (hits, total int64) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var h, n atomic.Int64
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
				z := rand.NewZipf(r, 1.1, 1, benchTenants-1)
				for ctx.Err() == nil {
					id := s.ids[z.Uint64()]
					release, conn, err := acquire(context.Background(), id)
					if err != nil {
						b.Error(err)
						return
					}
					data := conn.PgConn().CustomData()
					if last, ok := data["bench.last"].(tenant.ID); ok && last == id {
						h.Add(1)
					}
					data["bench.last"] = id
					n.Add(1)
					_, err = conn.Exec(context.Background(), "SELECT 1")
					release()
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return h.Load(), n.Load()
	}
	for b.Loop() {
		for _, g := range []int{benchConns / 2, benchConns, 2 * benchConns} {
			oh, on := zipfOp(g, func(ctx context.Context, id tenant.ID) (func(), *pgx.Conn, error) {
				c, err := s.m.Acquire(ctx, Key{Target: s.tg, Tenant: id, OwnTables: true})
				if err != nil {
					return nil, nil, err
				}
				return c.Release, c.Conn(), nil
			})
			th, tn := zipfOp(g, func(ctx context.Context, id tenant.ID) (func(), *pgx.Conn, error) {
				c, err := s.px.Acquire(ctx)
				if err != nil {
					return nil, nil, err
				}
				return c.Release, c.Conn(), nil
			})
			b.ReportMetric(float64(oh)/float64(on), fmt.Sprintf("g%d-manager-hit-rate", g))
			b.ReportMetric(float64(th)/float64(tn), fmt.Sprintf("g%d-pgxpool-hit-rate", g))
		}
	}
}

// BenchmarkFairness floods the server from one tenant (32 goroutines, each
// holding its connection for a 1 ms statement) while another tenant runs
// acquire, SELECT 1, release in a loop, and reports the other tenant's
// median and p99 acquire wait and its throughput, 8 connections each: with
// the manager (default MaxConnsPerTenant, 4), with the manager and no cap
// (round robin alone: MaxConnsPerTenant 8), and with pgxpool (first come,
// first served).
func BenchmarkFairness(b *testing.B) {
	s := setupSides(b, Config{}) // MaxConnsPerTenant: the default, 4
	rrOnly := s.e.manager(Config{MaxConns: benchConns, MaxConnsPerTenant: benchConns})
	const d = 3 * time.Second
	hot, other := tenant.NewID(), tenant.NewID()
	measure := func(acquire func(ctx context.Context, id tenant.ID) (func(), *pgx.Conn, error)) []time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for ctx.Err() == nil {
					release, conn, err := acquire(context.Background(), hot)
					if err != nil {
						b.Error(err)
						return
					}
					_, err = conn.Exec(context.Background(), "SELECT pg_sleep(0.001)")
					release()
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		var waits []time.Duration
		time.Sleep(100 * time.Millisecond) // let the flood build up
		for ctx.Err() == nil {
			start := time.Now()
			release, conn, err := acquire(context.Background(), other)
			if err != nil {
				b.Error(err)
				break
			}
			waits = append(waits, time.Since(start))
			_, err = conn.Exec(context.Background(), "SELECT 1")
			release()
			if err != nil {
				b.Error(err)
				break
			}
		}
		wg.Wait()
		slices.Sort(waits)
		return waits
	}
	pct := func(w []time.Duration, p float64) float64 {
		return float64(w[int(float64(len(w)-1)*p)].Microseconds())
	}
	for b.Loop() {
		ours := measure(func(ctx context.Context, id tenant.ID) (func(), *pgx.Conn, error) {
			c, err := s.m.Acquire(ctx, Key{Target: s.tg, Tenant: id})
			if err != nil {
				return nil, nil, err
			}
			return c.Release, c.Conn(), nil
		})
		rr := measure(func(ctx context.Context, id tenant.ID) (func(), *pgx.Conn, error) {
			c, err := rrOnly.Acquire(ctx, Key{Target: s.tg, Tenant: id})
			if err != nil {
				return nil, nil, err
			}
			return c.Release, c.Conn(), nil
		})
		theirs := measure(func(ctx context.Context, id tenant.ID) (func(), *pgx.Conn, error) {
			c, err := s.px.Acquire(ctx)
			if err != nil {
				return nil, nil, err
			}
			return c.Release, c.Conn(), nil
		})
		b.ReportMetric(pct(ours, 0.5), "manager-p50-µs")
		b.ReportMetric(pct(ours, 0.99), "manager-p99-µs")
		b.ReportMetric(pct(rr, 0.5), "manager-nocap-p50-µs")
		b.ReportMetric(pct(rr, 0.99), "manager-nocap-p99-µs")
		b.ReportMetric(float64(len(rr))/d.Seconds(), "manager-nocap-other-ops/s")
		b.ReportMetric(pct(theirs, 0.5), "pgxpool-p50-µs")
		b.ReportMetric(pct(theirs, 0.99), "pgxpool-p99-µs")
		b.ReportMetric(float64(len(ours))/d.Seconds(), "manager-other-ops/s")
		b.ReportMetric(float64(len(theirs))/d.Seconds(), "pgxpool-other-ops/s")
	}
}

// BenchmarkCatalogMemoryPerSchema measures what a backend keeps per schema
// tenant of 10 tables it serves, over 100 tenants, and per prepared
// statement; DefaultMaxTenantsPerConn is chosen from it.
func BenchmarkCatalogMemoryPerSchema(b *testing.B) {
	e := setup(b)
	schemas := makeSchemas(b, e, 101)
	for b.Loop() {
		for _, write := range []bool{false, true} {
			conn, err := pgx.Connect(context.Background(), e.adminURL)
			if err != nil {
				b.Fatal(err)
			}
			cost, err := schemaMemory(context.Background(), conn, schemas, e.base.User, write)
			if err != nil {
				b.Fatal(err)
			}
			name := "read"
			if write {
				name = "write"
			}
			b.ReportMetric(cost.catalog/1024, name+"-catalog-KB/schema")
			b.ReportMetric(cost.backend/1024, name+"-backend-KB/schema")
			if write {
				b.ReportMetric(cost.base/1024, "base-KB")
				per, err := stmtMemory(context.Background(), conn, schemas[:10], e.base.User)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(per/1024, "stmt-KB")
			}
			conn.Close(context.Background())
		}
	}
}

// stmtMemory measures the memory of a prepared primary key lookup with its
// cached generic plan (after six executions), prepared per schema as the
// root package does.
func stmtMemory(ctx context.Context, conn *pgx.Conn, schemas []string, role string) (float64, error) {
	m0, err := backendMemory(ctx, conn)
	if err != nil {
		return 0, err
	}
	n := 0
	for si, s := range schemas {
		for i := range memTables {
			tx, err := conn.Begin(ctx)
			if err != nil {
				return 0, err
			}
			id := tenant.NewID().String()
			if _, err := tx.Exec(ctx, `SELECT set_config('role', $1, true), set_config('search_path', $2, true),
				set_config('landlord.tenant_id', $3, true)`, role, ident.Quote(s), id); err != nil {
				return 0, err
			}
			sd, err := tx.Conn().Prepare(ctx, fmt.Sprintf("bench_%d_%d", si, i),
				fmt.Sprintf("SELECT * FROM t%d WHERE tenant_id = $1 AND id = $2", i))
			if err != nil {
				return 0, err
			}
			for range 6 {
				if _, err := tx.Exec(ctx, sd.Name, id, 1); err != nil {
					return 0, err
				}
			}
			if err := tx.Rollback(ctx); err != nil {
				return 0, err
			}
			n++
		}
	}
	m1, err := backendMemory(ctx, conn)
	if err != nil {
		return 0, err
	}
	return (m1.used - m0.used) / float64(n) * m1.total / m1.used, nil
}
