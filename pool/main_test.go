package pool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/tenant"
)

var srv *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }

// mainServer is the Target.Server name the tests give the pgtest server.
const mainServer = "main"

// env is one test's view of a database server: a base connection config,
// a superuser connection for looking at pg_stat_activity, and an
// application_name that marks this test's connections.
type env struct {
	t        testing.TB
	base     *pgx.ConnConfig // pgtest_owner on the test's first database
	admin    *pgx.Conn
	adminURL string // the superuser on the test's first database
	app      string
	db       string // the test's first database
}

// setup gives the test a fresh database on the pgtest server.
func setup(t testing.TB) *env {
	t.Helper()
	db := srv.NewDB(t, nil)
	base, err := pgx.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(context.Background(), db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	return &env{t: t, base: base, admin: admin, adminURL: db.AdminURL, app: "pooltest_" + randomHex(6), db: db.Name}
}

// newDB makes another database for the test, owned by pgtest_owner.
func (e *env) newDB() string {
	e.t.Helper()
	return srv.NewDB(e.t, nil).Name
}

// target is the test's target on database db as pgtest_owner.
func (e *env) target(db string) Target {
	return Target{Server: mainServer, Database: db, Role: e.base.User}
}

// resolver resolves the test's targets to its server, marking each
// connection with the test's application_name.
func (e *env) resolver() Resolver {
	return func(_ context.Context, t Target) (*pgx.ConnConfig, error) {
		cc := e.base.Copy()
		cc.Database = t.Database
		cc.User = t.Role
		cc.RuntimeParams["application_name"] = e.app
		return cc, nil
	}
}

// manager opens a manager closed at the end of the test.
func (e *env) manager(cfg Config) *Manager {
	e.t.Helper()
	return e.managerWith(e.resolver(), cfg)
}

func (e *env) managerWith(r Resolver, cfg Config) *Manager {
	e.t.Helper()
	m, err := New(r, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(m.Close)
	return m
}

// backends counts the server's backends of this test (on database db, or
// all when db is "").
func (e *env) backends(db string) int {
	e.t.Helper()
	var n int
	err := e.admin.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND ($2 = '' OR datname = $2)`,
		e.app, db).Scan(&n)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func key(t Target, id tenant.ID) Key { return Key{Target: t, Tenant: id} }

func acquire(t testing.TB, m *Manager, k Key) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := m.Acquire(ctx, k)
	if err != nil {
		t.Fatalf("acquire %s: %v", k.Target, err)
	}
	return c
}

func pid(c *Conn) uint32 { return c.Conn().PgConn().PID() }

// ping runs a statement on c, proving the connection works.
func ping(t testing.TB, c *Conn) {
	t.Helper()
	var one int
	if err := c.Conn().QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("query on acquired connection: %v", err)
	}
}

// serverStats returns the stats of the test's main server.
func serverStats(t testing.TB, m *Manager) ServerStats {
	t.Helper()
	for _, s := range m.Stats().Servers {
		if s.Server == mainServer {
			return s
		}
	}
	return ServerStats{Server: mainServer}
}

func targetStats(st ServerStats, tg Target) (TargetStats, bool) {
	for _, ts := range st.Targets {
		if ts.Target == tg {
			return ts, true
		}
	}
	return TargetStats{}, false
}

// eventually polls cond until it holds, failing the test after a generous
// deadline: conditions reached by background work (closes, the reaper).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
