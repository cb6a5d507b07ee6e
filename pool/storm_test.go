package pool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/embedded"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

// These tests run a PostgreSQL server of their own: one needs hundreds of
// databases and a small max_connections, the other restarts its server.

// stormSettings keep a dedicated server small and fast.
var stormSettings = map[string]string{
	"max_connections": "40", "shared_buffers": "32MB",
	"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
}

// startServer starts a dedicated server, stopped at the end of the test.
func startServer(t *testing.T, cfg embedded.Config) *embedded.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := embedded.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

// createDatabases creates n databases named prefix_0 ... over a few
// connections at once.
func createDatabases(t *testing.T, url, prefix string, n int) []string {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s_%03d", prefix, i)
	}
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			conn, err := pgx.Connect(t.Context(), url)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close(context.Background())
			for i := w; i < n; i += workers {
				if _, err := conn.Exec(t.Context(), "CREATE DATABASE "+ident.Quote(names[i])+" STRATEGY FILE_COPY"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return names
}

// embeddedResolver resolves targets of server name to s over its unix
// socket, marking connections with app.
func embeddedResolver(s *embedded.Server, app string) Resolver {
	return func(_ context.Context, tg Target) (*pgx.ConnConfig, error) {
		cc, err := pgx.ParseConfig(s.URL(tg.Database))
		if err != nil {
			return nil, err
		}
		cc.User = tg.Role
		cc.RuntimeParams["application_name"] = app
		return cc, nil
	}
}

// sampler counts the server's backends of app from a connection of its own
// (not counted) as often as it can, and checks the manager's own books at
// the same time, until stopped.
type sampler struct {
	peak, samples atomic.Int64
	stop          chan struct{}
	done          chan struct{}
}

func startSampler(t *testing.T, url, app string, m *Manager, budget int) *sampler {
	t.Helper()
	sp := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(sp.done)
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		}()
		for {
			select {
			case <-sp.stop:
				return
			default:
			}
			for _, st := range m.Stats().Servers {
				if st.Open > budget || st.Open != st.Dialing+st.Idle+st.InUse+st.Closing {
					t.Errorf("manager books: %+v (budget %d)", st.Conns, budget)
				}
			}
			if conn == nil || conn.IsClosed() {
				var err error
				if conn, err = pgx.Connect(t.Context(), url); err != nil {
					conn = nil
					time.Sleep(10 * time.Millisecond) // the server is down
					continue
				}
			}
			var n int64
			err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n)
			if err != nil {
				continue
			}
			sp.samples.Add(1)
			for p := sp.peak.Load(); n > p && !sp.peak.CompareAndSwap(p, n); p = sp.peak.Load() {
			}
		}
	}()
	return sp
}

func (sp *sampler) finish() { close(sp.stop); <-sp.done }

// observed waits until a sample that began after the call has completed,
// so that whatever backend the caller holds has been counted.
func (sp *sampler) observed(ctx context.Context) error {
	// The sample under way when the call came in may have begun before.
	for want := sp.samples.Load() + 2; sp.samples.Load() < want; {
		select {
		case <-ctx.Done():
			return fmt.Errorf("not sampled: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// createRoles creates n login roles named prefix_0 ... and returns them.
func createRoles(t *testing.T, url, prefix string, n int) []string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s_%03d", prefix, i)
		if _, err := conn.Exec(t.Context(), "CREATE ROLE "+ident.Quote(names[i])+" LOGIN"); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// F06: 300 tenant targets woken at once with a budget of 20. The server
// never sees more than 20 of the manager's backends, and every acquire
// completes. Each tenant has a login of its own, as in the database model;
// they share 20 databases because creating 300 takes minutes on a slow
// disk, while what the manager does depends only on the targets differing.
func TestStormStaysWithinBudget(t *testing.T) {
	t.Parallel()
	es := startServer(t, embedded.Config{Settings: stormSettings})
	const tenants, databases, budget = 300, 20, 20
	began := time.Now()
	dbs := createDatabases(t, es.URL("postgres"), "storm", databases)
	roles := createRoles(t, es.URL("postgres"), "storm", tenants)
	t.Logf("created %d databases and %d roles in %s", databases, tenants, time.Since(began).Round(time.Millisecond))
	const app = "pooltest_storm"
	m, err := New(embeddedResolver(es, app), Config{MaxConns: budget, MaxDialsPerSecond: 2000, DialBurst: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	targets := make([]Target, tenants)
	ids := make([]tenant.ID, tenants)
	for i := range ids {
		targets[i] = Target{Server: "storm", Database: dbs[i%databases], Role: roles[i]}
		ids[i] = tenant.NewID()
	}
	sp := startSampler(t, es.URL("postgres"), app, m, budget)

	for wave := range 2 {
		start := make(chan struct{})
		var wg sync.WaitGroup
		var failed atomic.Int64
		for i := range tenants {
			wg.Go(func() {
				<-start
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				c, err := m.Acquire(ctx, Key{Target: targets[i], Tenant: ids[i]})
				if err != nil {
					failed.Add(1)
					t.Errorf("wave %d, tenant %d: %v", wave, i, err)
					return
				}
				var db, role string
				err = c.Conn().QueryRow(ctx, "SELECT current_database(), current_user").Scan(&db, &role)
				if err != nil || db != targets[i].Database || role != targets[i].Role {
					t.Errorf("tenant %d got a connection to %s as %s (%v), want %s", i, db, role, err, targets[i])
				}
				// Every connection is seen by the sampler, however fast
				// or slow the storm runs.
				if err := sp.observed(ctx); err != nil {
					t.Errorf("tenant %d: %v", i, err)
				}
				c.Release()
			})
		}
		began := time.Now()
		close(start)
		wg.Wait()
		t.Logf("wave %d took %s", wave, time.Since(began).Round(time.Millisecond))
		if failed.Load() > 0 {
			break
		}
	}
	sp.finish()
	st := m.Stats().Servers[0]
	t.Logf("peak %d backends over %d samples; %d dials, %d evictions, %d groups created, %d dropped",
		sp.peak.Load(), sp.samples.Load(), st.Dials, st.Evictions, st.GroupsCreated, st.GroupsDropped)
	if p := sp.peak.Load(); p > budget || p < 1 {
		t.Errorf("peak of %d backends sampled, want 1..%d", p, budget)
	}
	// Every tenant needed a connection of its own: idle groups were
	// evicted, and no dial was wasted.
	if st.Evictions < 2*tenants-2*budget || st.GroupsDropped < 2*tenants-2*budget ||
		st.Dials > 2*tenants || st.Dials < 2*tenants-budget {
		t.Errorf("%d dials, %d evictions, %d groups dropped: want one dial per acquire (less the %d idle after the first wave) and most targets evicted",
			st.Dials, st.Evictions, st.GroupsDropped, budget)
	}
}

// sharedTempDir returns a t.TempDir the server's OS user can enter (when
// this process is root, the server runs as another user).
func sharedTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A server restarted under load (stopped, then started again on the same
// data directory and port) is used again without anyone's help, and the
// budget holds throughout.
func TestServerRestartRecovers(t *testing.T) {
	t.Parallel()
	cfg := embedded.Config{DataDir: filepath.Join(sharedTempDir(t), "pgdata"), Settings: stormSettings}
	first, err := embedded.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port = first.Port()
	dbs := createDatabases(t, first.URL("postgres"), "restart", 3)
	const app, budget = "pooltest_restart", 5
	poolCfg := Config{MaxConns: budget, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	m, err := New(embeddedResolver(first, app), poolCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sp := startSampler(t, first.URL("postgres"), app, m, budget)

	var ok [3]atomic.Int64
	// stopped says the server is (about to be) down; phase counts the
	// changes, so that a call that overlapped one is not held to the
	// server being up.
	var stopped atomic.Bool
	var phase atomic.Int64
	upThroughout := func(began int64) bool { return !stopped.Load() && phase.Load() == began }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			id := tenant.NewID()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				d := i % len(dbs)
				began := phase.Load()
				// An acquire gives up after a second, so that the callers
				// keep trying while the server is down; with it up, one
				// may still wait that long on a loaded machine.
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				c, err := m.Acquire(ctx, Key{Target: Target{Server: "restart", Database: dbs[d], Role: first.Superuser()}, Tenant: id})
				cancel()
				if err != nil {
					if !IsDialError(err) && !errors.Is(err, ErrAcquireTimeout) {
						t.Errorf("acquire during a restart = %v, want a DialError or a timeout", err)
					}
					if upThroughout(began) && !errors.Is(err, ErrAcquireTimeout) {
						t.Errorf("acquire with the server up: %v", err)
					}
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if _, err := c.Conn().Exec(t.Context(), "SELECT 1"); err == nil {
					ok[d].Add(1)
				} else if upThroughout(began) {
					t.Errorf("query with the server up: %v", err)
				}
				c.Release()
			}
		})
	}
	eventually(t, "traffic flows", func() bool { return ok[0].Load() > 20 && ok[1].Load() > 20 && ok[2].Load() > 20 })
	// The pool's connections stay open between calls: a sample now sees
	// them.
	eventually(t, "the sampler sees the pool's backends", func() bool { return sp.peak.Load() > 0 })

	stopped.Store(true)
	phase.Add(1)
	if err := first.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The server is gone: from now on every dial fails at the network
	// level, and the whole server backs off.
	down, errorsBefore := time.Now(), serverStatsOf(m, "restart").DialErrors
	time.Sleep(300 * time.Millisecond) // acquires fail meanwhile
	eventually(t, "a dial fails while the server is down", func() bool { return serverStatsOf(m, "restart").DialErrors > errorsBefore })
	downErrors := serverStatsOf(m, "restart").DialErrors - errorsBefore
	downFor := time.Since(down)
	second := startServer(t, cfg)
	if second.Port() != first.Port() || second.SocketDir() != first.SocketDir() {
		t.Fatalf("restarted on port %d in %s, want %d in %s", second.Port(), second.SocketDir(), first.Port(), first.SocketDir())
	}
	var before [3]int64
	for i := range ok {
		before[i] = ok[i].Load()
	}
	eventually(t, "every target serves again after the restart", func() bool {
		return ok[0].Load() > before[0]+20 && ok[1].Load() > before[1]+20 && ok[2].Load() > before[2]+20
	})
	phase.Add(1)
	stopped.Store(false)
	time.Sleep(100 * time.Millisecond) // and keeps serving, without errors
	close(stop)
	wg.Wait()
	sp.finish()

	st := serverStatsOf(m, "restart")
	t.Logf("peak %d backends over %d samples; %d dials, %d dial errors (%d once it was down)",
		sp.peak.Load(), sp.samples.Load(), st.Dials, st.DialErrors, downErrors)
	if p := sp.peak.Load(); p > budget || p < 1 {
		t.Errorf("peak of %d backends sampled, want 1..%d", p, budget)
	}
	// 8 goroutines retrying for 0.3 s without backoff: thousands of dials.
	// With it, the failed server is probed one dial at a time, each after
	// a backoff, besides the dials (at most the budget) under way when it
	// went.
	if most := uint64(budget) + backoffBound(poolCfg, downFor); downErrors > most {
		t.Errorf("%d failed dials in the %v the server was down, want at most %d (backoff)", downErrors, downFor, most)
	}
}

func serverStatsOf(m *Manager, name string) ServerStats {
	for _, s := range m.Stats().Servers {
		if s.Server == name {
			return s
		}
	}
	return ServerStats{}
}
