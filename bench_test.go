package landlord

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// The row-model point lookup: 1,000 tenants × 100 rows, each call a random
// tenant and id. The baseline is what an application does by hand: raw pgx
// with WHERE tenant_id = $1 AND id = $2, as an ordinary (non-superuser) role,
// on a copy of the same rows in a table without row-level security, with the
// same connections and goroutines.

const (
	benchTenants = 1000
	benchRows    = 100
	benchConns   = 8
	benchProcs   = 4 // goroutines per GOMAXPROCS
)

type lookupBench struct {
	l        *Landlord
	raw      *pgxpool.Pool
	ids      []tenant.ID
	writes   *atomic.Int64 // socket writes of the tenant pool: one per round trip
	rawWrite *atomic.Int64
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(b []byte) (int, error) {
	benchReads.Add(1)
	return c.Conn.Read(b)
}

var benchReads atomic.Int64

func (c countingConn) Write(b []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(b)
}

func setupLookup(b *testing.B) *lookupBench {
	b.Helper()
	lb, err := newLookupBench(b)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { lb.raw.Close(); lb.l.Close() })
	return lb
}

func newLookupBench(b *testing.B) (*lookupBench, error) {
	ctx := context.Background()
	db := server.NewDB(b, template)
	lb := &lookupBench{writes: new(atomic.Int64), rawWrite: new(atomic.Int64)}
	// Count the tenant connections' writes with a counting dialer.
	countWrites := dialCounting(lb.writes)
	l, err := Open(ctx, db.URL, testMigrations(), Config{MaxConns: benchConns,
		tweak: func(cc *pgx.ConnConfig) { cc.DialFunc = countWrites }})
	if err != nil {
		return nil, err
	}
	lb.l = l
	for i := range benchTenants {
		t, err := l.CreateTenant(ctx, provision.Request{Slug: fmt.Sprintf("bench-%04d", i), Model: tenant.ModelRow})
		if err != nil {
			return nil, err
		}
		lb.ids = append(lb.ids, t.ID)
	}
	// Rows go in as the superuser, past row-level security, in one
	// statement.
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		return nil, err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `INSERT INTO shared.items (tenant_id, id, sku, secret)
		SELECT t.id, g, 'sku-' || g, md5(t.id::text || g) FROM landlord.tenants t, generate_series(1, $1) g`, benchRows); err != nil {
		return nil, err
	}
	if _, err := admin.Exec(ctx, `VACUUM ANALYZE shared.items`); err != nil {
		return nil, err
	}
	// The baseline's table: the same rows, an ordinary owner, no policies.
	owner, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		return nil, err
	}
	defer owner.Close(ctx)
	if _, err := owner.Exec(ctx, `CREATE SCHEMA raw;
		CREATE TABLE raw.items (tenant_id uuid NOT NULL, id bigint NOT NULL, parent_id bigint, sku text NOT NULL, secret text NOT NULL,
			PRIMARY KEY (tenant_id, id))`); err != nil {
		return nil, err
	}
	if _, err := admin.Exec(ctx, `INSERT INTO raw.items SELECT tenant_id, id, parent_id, sku, secret FROM shared.items`); err != nil {
		return nil, err
	}
	if _, err := owner.Exec(ctx, `VACUUM ANALYZE raw.items`); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = benchConns
	pc.ConnConfig.DialFunc = dialCounting(lb.rawWrite)
	if lb.raw, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, err
	}
	return lb, nil
}

// dialCounting dials like pgx does and counts writes to the server: one per
// round trip started.
func dialCounting(n *atomic.Int64) pgconn.DialFunc {
	d := &net.Dialer{KeepAlive: 5 * time.Minute}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, n: n}, nil
	}
}

func (lb *lookupBench) rawOp(ctx context.Context, r *rand.Rand) error {
	id := lb.ids[r.IntN(len(lb.ids))]
	var n int64
	var sku, secret string
	return lb.raw.QueryRow(ctx, `SELECT id, sku, secret FROM raw.items WHERE tenant_id = $1 AND id = $2`,
		id, 1+r.IntN(benchRows)).Scan(&n, &sku, &secret)
}

func (lb *lookupBench) ourOp(ctx context.Context, r *rand.Rand) error {
	tctx := WithTenant(ctx, lb.ids[r.IntN(len(lb.ids))])
	var n int64
	var sku, secret string
	return lb.l.Handle().QueryRow(tctx, `SELECT id, sku, secret FROM items WHERE id = $1`,
		1+r.IntN(benchRows)).Scan(&n, &sku, &secret)
}

func runParallel(b *testing.B, op func(context.Context, *rand.Rand) error) {
	b.SetParallelism(benchProcs)
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		ctx := context.Background()
		for pb.Next() {
			if err := op(ctx, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRowLookup reports each side on its own, for profiling:
//
//	go test -run '^$' -bench 'RowLookup/' -cpuprofile cpu.prof .
func BenchmarkRowLookup(b *testing.B) {
	lb := setupLookup(b)
	b.Run("raw", func(b *testing.B) {
		r := benchReads.Load()
		runParallel(b, lb.rawOp)
		b.ReportMetric(float64(benchReads.Load()-r)/float64(b.N), "reads/op")
	})
	b.Run("landlord", func(b *testing.B) {
		w, r := lb.writes.Load(), benchReads.Load()
		runParallel(b, lb.ourOp)
		b.ReportMetric(float64(lb.writes.Load()-w)/float64(b.N), "writes/op")
		b.ReportMetric(float64(benchReads.Load()-r)/float64(b.N), "reads/op")
	})
}

// BenchmarkRowLookupRatio runs both sides in alternating one-second rounds
// and reports the median, min and max of the per-round throughput ratios
// (ours / raw), and socket writes (round trips) per call on each side:
//
//	go test -run '^$' -bench RowLookupRatio -benchtime 1x .
func BenchmarkRowLookupRatio(b *testing.B) {
	lb := setupLookup(b)
	const rounds = 12
	var clientCPU, serverCPU [2]time.Duration // [raw, ours]
	round := func(op func(context.Context, *rand.Rand) error) (perSec float64, calls int64) {
		side := 0
		if reflect.ValueOf(op).Pointer() == reflect.ValueOf(lb.ourOp).Pointer() {
			side = 1
		}
		c0, s0 := processCPU(), serverProcsCPU()
		defer func() {
			clientCPU[side] += processCPU() - c0
			serverCPU[side] += serverProcsCPU() - s0
		}()
		var n atomic.Int64
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var wg sync.WaitGroup
		start := time.Now()
		for range benchConns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
				for ctx.Err() == nil {
					if err := op(context.Background(), r); err != nil {
						b.Error(err)
						return
					}
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		return float64(n.Load()) / time.Since(start).Seconds(), n.Load()
	}
	for b.Loop() {
		var ratios []float64
		var ourCalls, rawCalls int64
		w0, r0 := lb.writes.Load(), lb.rawWrite.Load()
		round(lb.rawOp) // warm-up: prepare statements on every connection
		round(lb.ourOp)
		w0, r0 = lb.writes.Load(), lb.rawWrite.Load()
		clientCPU, serverCPU = [2]time.Duration{}, [2]time.Duration{}
		var ours, raw []float64
		for range rounds {
			r, rc := round(lb.rawOp)
			o, oc := round(lb.ourOp)
			ours, raw = append(ours, o), append(raw, r)
			ratios = append(ratios, o/r)
			ourCalls += oc
			rawCalls += rc
		}
		sort.Float64s(ratios)
		b.ReportMetric(ratios[len(ratios)/2], "ratio")
		b.ReportMetric(ratios[0], "ratio-min")
		b.ReportMetric(ratios[len(ratios)-1], "ratio-max")
		b.ReportMetric(median(ours), "ours/s")
		b.ReportMetric(median(raw), "raw/s")
		b.ReportMetric(float64(lb.writes.Load()-w0)/float64(ourCalls), "ours-writes/op")
		b.ReportMetric(float64(lb.rawWrite.Load()-r0)/float64(rawCalls), "raw-writes/op")
		us := func(d time.Duration, calls int64) float64 { return float64(d.Microseconds()) / float64(calls) }
		b.ReportMetric(us(clientCPU[1], ourCalls), "ours-client-µs/op")
		b.ReportMetric(us(serverCPU[1], ourCalls), "ours-server-µs/op")
		b.ReportMetric(us(clientCPU[0], rawCalls), "raw-client-µs/op")
		b.ReportMetric(us(serverCPU[0], rawCalls), "raw-server-µs/op")
	}
}

// processCPU is the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverProcsCPU is the CPU time used by the test server's processes that
// are alive now (its backends are: the pools keep them open), read from
// /proc. It is 0 where there is no /proc or no embedded server.
func serverProcsCPU() time.Duration {
	emb := server.Embedded()
	if emb == nil {
		return 0
	}
	pm := emb.PID()
	entries, _ := os.ReadDir("/proc")
	var ticks int64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesized command: state ppid ... utime(14) stime(15).
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if pid != pm && ppid != pm {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += ut + st
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	return s[len(s)/2]
}
