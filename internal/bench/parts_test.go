package bench

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestBestHitRate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		n, budget int
		want      float64
	}{
		{10, 10, 1},
		{10, 20, 1},
		{2, 1, 1 / (1 + math.Pow(2, -zipfS))},
		{3, 2, (1 + math.Pow(2, -zipfS)) / (1 + math.Pow(2, -zipfS) + math.Pow(3, -zipfS))},
	} {
		if got := bestHitRate(c.n, c.budget, zipfS); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("bestHitRate(%d, %d) = %v, want %v", c.n, c.budget, got, c.want)
		}
	}
	// The picker draws from the distribution the bound assumes: the share
	// of its draws that fall on the hottest tenants is the best hit rate.
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ n, budget int }{{2000, 50}, {2000, 200}, {200, 20}} {
		pick := zipfPicker(r, c.n)
		const draws = 200000
		hits := 0
		for range draws {
			i := pick()
			if i < 0 || i >= c.n {
				t.Fatalf("picked %d of %d tenants", i, c.n)
			}
			if i < c.budget {
				hits++
			}
		}
		want := bestHitRate(c.n, c.budget, zipfS)
		if got := float64(hits) / draws; math.Abs(got-want) > 0.01 {
			t.Errorf("n=%d budget=%d: %.3f of draws hit the hottest, bestHitRate says %.3f", c.n, c.budget, got, want)
		}
	}
}

func TestConnectBound(t *testing.T) {
	t.Parallel()
	// 1 ms per query and 10 ms per connection on the cores, half the calls
	// missing: 1 / (1 ms + 0.5 × 10 ms) = 166.7 calls/s.
	if got := connectBound(1000, 100, 0.5); math.Abs(got-1000.0/6) > 1e-9 {
		t.Errorf("connectBound = %v, want %v", got, 1000.0/6)
	}
	if got := connectBound(1000, 100, 1); math.Abs(got-1000) > 1e-9 {
		t.Errorf("all hits: connectBound = %v, want the query rate", got)
	}
	if got := connectBound(0, 100, 1); got != 0 {
		t.Errorf("no measurement: connectBound = %v, want 0", got)
	}
}

func TestSpread(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   []float64
		want spread
	}{
		{[]float64{3, 1, 2}, spread{2, 1, 3}},
		{[]float64{4, 1, 3, 2}, spread{2.5, 1, 4}},
		{nil, spread{}},
	} {
		if got := spreadOf(c.in); got != c.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
	a := []round{{calls: 10, elapsed: time.Second}, {calls: 30, elapsed: time.Second}}
	b := []round{{calls: 20, elapsed: time.Second}, {calls: 20, elapsed: time.Second}}
	if got := ratios(a, b); len(got) != 2 || got[0] != 0.5 || got[1] != 1.5 {
		t.Errorf("per-round ratios = %v, want [0.5 1.5]", got)
	}
}

func TestRewriteURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ base, want string }{
		{"postgres://u:pw@/old?host=/tmp/sock&port=5433", "dbname=new"},
		{"host=/tmp/sock port=5433 user=u dbname=old", "dbname=new"},
	} {
		got := rewriteURL(c.base, "new", map[string]string{"application_name": "it's"})
		cfg, err := pgconn.ParseConfig(got)
		if err != nil {
			t.Fatalf("%q: %v", got, err)
		}
		if cfg.Database != "new" || cfg.RuntimeParams["application_name"] != "it's" || cfg.Host != "/tmp/sock" || cfg.Port != 5433 || cfg.User != "u" {
			t.Errorf("rewriteURL(%q) = %q: database %q, app %q, host %q, port %d, user %q",
				c.base, got, cfg.Database, cfg.RuntimeParams["application_name"], cfg.Host, cfg.Port, cfg.User)
		}
	}
}

// The counting proxy counts exactly the round trips pgx makes: a prepared
// statement once prepared, a batch, the simple protocol; a liveness ping
// apart.
func TestProxyCountsRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := srv.AdminURL("postgres")
	cc, err := pgconn.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	p, err := startProxy(cc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	conn, err := pgx.Connect(ctx, rewriteURL(url, "", p.params()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	trips := func(fn func() error) int64 {
		t.Helper()
		before := p.count.roundTrips()
		if err := fn(); err != nil {
			t.Fatal(err)
		}
		return p.count.roundTrips() - before
	}
	var n int
	query := func() error { return conn.QueryRow(ctx, `SELECT $1::int`, 7).Scan(&n) }
	if got := trips(query); got != 2 {
		t.Errorf("first prepared query: %d round trips, want 2 (prepare, then execute)", got)
	}
	if got := trips(query); got != 1 {
		t.Errorf("prepared query: %d round trips, want 1", got)
	}
	batch := func() error {
		b := &pgx.Batch{}
		for range 3 {
			b.Queue(`SELECT $1::int`, 1)
		}
		return conn.SendBatch(ctx, b).Close()
	}
	if got := trips(batch); got != 1 {
		t.Errorf("batch of prepared statements: %d round trips, want 1", got)
	}
	simple := func() error { _, err := conn.Exec(ctx, `SELECT 1; SELECT 2`); return err }
	if got := trips(simple); got != 1 {
		t.Errorf("simple protocol: %d round trips, want 1", got)
	}
	pings := p.count.pings.Load()
	if got := trips(func() error { return conn.Ping(ctx) }); got != 0 || p.count.pings.Load() != pings+1 {
		t.Errorf("ping: %d round trips and %d pings, want 0 and 1", got, p.count.pings.Load()-pings)
	}
}

func TestParseMemoryLog(t *testing.T) {
	t.Parallel()
	// Two backends logging at once; 11 has more than a hundred children
	// under CacheMemoryContext, summed up in one line at its level.
	log := strings.Join([]string{
		`2026-11-23 18:00:00.000 UTC [11] LOG:  logging memory contexts of PID 11`,
		`2026-11-23 18:00:00.000 UTC [12] LOG:  logging memory contexts of PID 12`,
		`2026-11-23 18:00:00.000 UTC [11] LOG:  level: 0; TopMemoryContext: 100000 total in 5 blocks; 1000 free (3 chunks); 99000 used`,
		`2026-11-23 18:00:00.000 UTC [11] LOG:  level: 1; CacheMemoryContext: 1048576 total in 8 blocks; 100 free (0 chunks); 1048476 used`,
		`2026-11-23 18:00:00.000 UTC [12] LOG:  level: 0; TopMemoryContext: 5 total in 1 blocks; 0 free (0 chunks); 5 used`,
		`2026-11-23 18:00:00.000 UTC [11] LOG:  level: 2; index info: 2048 total in 2 blocks; 880 free (0 chunks); 1168 used: pg_class_oid_index`,
		`2026-11-23 18:00:00.000 UTC [11] LOG:  level: 3; deeper: 1024 total in 1 blocks; 0 free (0 chunks); 1024 used`,
		`2026-11-23 18:00:00.000 UTC [12] LOG:  level: 1; CacheMemoryContext: 524288 total in 7 blocks; 0 free (0 chunks); 524288 used`,
		`2026-11-23 18:00:00.000 UTC [11] LOG:  level: 1; 500 more child contexts containing 3000000 total in 900 blocks; 5 free (0 chunks); 2999995 used`,
		`2026-11-23 18:00:00.000 UTC [11] LOG:  level: 1; MessageContext: 8192 total in 1 blocks; 0 free (0 chunks); 8192 used`,
		`2026-11-23 18:00:00.000 UTC [12] LOG:  level: 1; Timezones: 104000 total in 2 blocks; 0 free (0 chunks); 104000 used`,
		`2026-11-23 18:00:00.000 UTC [11] LOG:  level: 1; 7 more child contexts containing 99999 total in 9 blocks; 0 free (0 chunks); 99999 used`,
		`2026-11-23 18:00:00.000 UTC [11] LOG:  Grand total: 4200000 bytes in 930 blocks; 2000 free (5 chunks); 4198000 used`,
		`2026-11-23 18:00:00.000 UTC [12] LOG:  Grand total: 700000 bytes in 12 blocks; 0 free (0 chunks); 700000 used`,
		`2026-11-23 18:00:00.000 UTC [13] LOG:  level: 1; CacheMemoryContext: 1 total in 1 blocks; 0 free (0 chunks); 1 used`,
	}, "\n")
	got := parseMemoryLog(strings.NewReader(log))
	want := map[int]backendMemory{
		11: {Cache: 1048576 + 2048 + 1024 + 3000000, Total: 4200000},
		12: {Cache: 524288, Total: 700000},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v (a backend with no complete dump is left out)", got, want)
	}
	for pid, w := range want {
		if got[pid] != w {
			t.Errorf("pid %d: %+v, want %+v", pid, got[pid], w)
		}
	}
}

// What a backend logs about its CacheMemoryContext is what it reports about
// itself.
func TestMemoryProbeMatchesBackend(t *testing.T) {
	t.Parallel()
	emb := srv.Embedded()
	if emb == nil {
		t.Skip("needs the embedded server's log")
	}
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, srv.AdminURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	conn, err := pgx.Connect(ctx, srv.AdminURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Fill the catalog cache a little, so that the figure is not a fresh
	// backend's.
	if _, err := conn.Exec(ctx, `SELECT count(*) FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid JOIN pg_index i ON i.indrelid = c.oid`); err != nil {
		t.Fatal(err)
	}
	own := func() int64 {
		var n int64
		if err := conn.QueryRow(ctx, `
			WITH c AS (SELECT row_number() OVER () AS i, name, level, total_bytes FROM pg_get_backend_memory_contexts()),
			cache AS (SELECT i AS first, level FROM c WHERE name = 'CacheMemoryContext')
			SELECT sum(c.total_bytes)::int8 FROM c, cache WHERE c.i >= cache.first AND c.i < coalesce(
				(SELECT min(d.i) FROM c d WHERE d.i > cache.first AND d.level <= cache.level), 1e18)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	own() // its own first run caches what it needs
	want := own()
	var pid int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	p := &memProbe{admin: admin, logPath: emb.DataDir() + "/server.log"}
	got, err := p.sample(ctx, []int{pid})
	if err != nil {
		t.Fatal(err)
	}
	m, ok := got[pid]
	if !ok {
		t.Fatalf("backend %d logged no memory contexts: %v", pid, got)
	}
	if m.Cache < want*9/10 || m.Cache > want*11/10 || m.Total < m.Cache {
		t.Errorf("logged CacheMemoryContext %d bytes (total %d), the backend itself says %d", m.Cache, m.Total, want)
	}
}
