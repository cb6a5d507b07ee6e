package migration_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pgtest"
)

var srv *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }

// env is one test's database with the roles a target needs: Owner owns what
// migrations create, Grantee runs tenant queries. The test connects as the
// database owner, a member of both so that it can SET ROLE to either.
type env struct {
	db      *pgtest.DB
	owner   string
	grantee string
	conn    *pgx.Conn // as the database owner
}

// setup returns a fresh database with an owner and a grantee role and a target
// schema "app" owned by the owner. Roles are server-wide, so their names are
// random; they are dropped after the test, unless it failed and its database
// is kept for inspection.
func setup(t *testing.T) *env {
	t.Helper()
	suffix := randomHex(t, 6)
	e := &env{owner: "mgt_own_" + suffix, grantee: "mgt_app_" + suffix}
	// Registered before NewDB so that it runs after the database is gone:
	// roles with privileges in a database cannot be dropped.
	t.Cleanup(func() {
		if t.Failed() || e.db == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cfg, err := pgx.ParseConfig(e.db.URL)
		if err != nil {
			t.Errorf("drop roles: %v", err)
			return
		}
		cfg.Database = "postgres"
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Errorf("drop roles: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, fmt.Sprintf("DROP ROLE IF EXISTS %s, %s", ident.Quote(e.owner), ident.Quote(e.grantee))); err != nil {
			t.Errorf("drop roles: %v", err)
		}
	})
	e.db = srv.NewDB(t, nil)
	e.conn = e.connect(t)
	e.exec(t, fmt.Sprintf(`
		CREATE ROLE %[1]s NOLOGIN;
		CREATE ROLE %[2]s NOLOGIN;
		GRANT %[1]s, %[2]s TO CURRENT_USER;
		GRANT CREATE ON DATABASE %[3]s TO %[1]s;`,
		ident.Quote(e.owner), ident.Quote(e.grantee), ident.Quote(e.db.Name)))
	if err := migration.InstallContext(context.Background(), e.conn, e.owner, testContextKey); err != nil {
		t.Fatal(err)
	}
	e.createSchema(t, "app")
	return e
}

// testContextKey signs the tenant context in these tests.
var testContextKey = []byte("landlord migration tests context!")[:migration.ContextKeySize]

// connect opens a connection to the test database as its owner.
func (e *env) connect(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), e.db.URL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// createSchema creates a schema owned by the owner role.
func (e *env) createSchema(t *testing.T, name string) {
	t.Helper()
	e.exec(t, fmt.Sprintf("CREATE SCHEMA %s AUTHORIZATION %s", ident.Quote(name), ident.Quote(e.owner)))
}

func (e *env) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := e.conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// target is a tenant target in schema.
func (e *env) target(schema string) migration.Target {
	return migration.Target{Schema: schema, Grantee: e.grantee}
}

// migrator returns a migrator for fsys that runs migrations as the owner.
func (e *env) migrator(t *testing.T, fsys fs.FS, cfg migration.Config) *migration.Migrator {
	t.Helper()
	cfg.Owner = e.owner
	m, err := migration.New(load(t, fsys), cfg)
	if err != nil {
		t.Fatalf("new migrator: %v", err)
	}
	return m
}

// ledger returns the versions recorded for schema, in order.
func (e *env) ledger(t *testing.T, schema string) []int {
	t.Helper()
	rows, err := e.conn.Query(t.Context(), `SELECT version FROM landlord.target_migrations WHERE target = $1 ORDER BY version`, schema)
	if err != nil {
		t.Fatalf("read ledger: %v", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("read ledger: %v", err)
	}
	return versions
}

// tables returns the names of the tables in schema, in order.
func (e *env) tables(t *testing.T, schema string) []string {
	t.Helper()
	rows, err := e.conn.Query(t.Context(), `SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1`, schema)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	return names
}

func load(t *testing.T, fsys fs.FS) *migration.Set {
	t.Helper()
	set, err := migration.Load(fsys)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return set
}

// files builds a migration set from name, content pairs.
func files(nameSQL ...string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for i := 0; i < len(nameSQL); i += 2 {
		fsys[nameSQL[i]] = &fstest.MapFile{Data: []byte(nameSQL[i+1])}
	}
	return fsys
}

// shop returns the fixture set in testdata/shop, which holds versions 1-3.
func shop() fs.FS { return os.DirFS("testdata/shop") }

// shopUpTo returns the first n migrations of the shop set.
func shopUpTo(t *testing.T, n int) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, mg := range load(t, shop()).Migrations() {
		if mg.Version <= n {
			fsys[mg.Name] = &fstest.MapFile{Data: []byte(mg.SQL)}
		}
	}
	return fsys
}

// isCode reports whether err is a PostgreSQL error with SQLSTATE code
// (pgerrcode).
func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// logBuffer collects log output from concurrent writers.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
