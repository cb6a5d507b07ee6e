package provision

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/itemschema"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/tenant"
)

var srv *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }

// testMigrations is a small set of tenant tables: parents and items, with a
// foreign key between them, every key led by tenant_id.
func testMigrations() *migration.Set {
	set, err := migration.Load(itemschema.FS())
	if err != nil {
		panic(err)
	}
	return set
}

// installed is a control database bootstrapped once per server; every test
// gets a clone of it.
var installed = &pgtest.Template{
	Name: "landlord-provision-" + testMigrations().Hash()[:12] + "-" + directory.Migrations().Hash()[:12],
	Setup: func(ctx context.Context, db *pgtest.DB) error {
		pool, err := pgxpool.New(ctx, db.URL)
		if err != nil {
			return err
		}
		defer pool.Close()
		_, err = New(ctx, pool, testMigrations(), Config{})
		return err
	},
}

// env is one test's installation.
type env struct {
	db   *pgtest.DB
	pool *pgxpool.Pool // the control database, as the administrator
	p    *Provisioner
}

// setup returns a Provisioner on a fresh clone of the installed template.
// maxConns bounds the administrator's pool (0 keeps pgxpool's default). When
// the test passes, the databases and roles its installation made, which
// outlive the test database, are dropped.
func setup(t *testing.T, maxConns int32) *env {
	t.Helper()
	db := srv.NewDB(t, installed)
	pool := openPool(t, db.URL, maxConns)
	p, err := New(t.Context(), pool, testMigrations(), Config{})
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			dropInstallationObjects(t, db.AdminURL, p.Installation().ID)
		}
	})
	return &env{db: db, pool: pool, p: p}
}

func openPool(t *testing.T, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// dropInstallationObjects removes the cluster-wide objects (databases and
// roles) that carry the marker of installation inst, so that passing tests
// leave the server as they found it. It connects to url as the server's
// administrator, so that the cleanup does not depend on the code under test.
func dropInstallationObjects(t *testing.T, url string, inst tenant.ID) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Errorf("clean up: %v", err)
		return
	}
	defer pool.Close()
	suffix := "% installation " + inst.String()
	rows, err := pool.Query(ctx, `
		SELECT 'DROP DATABASE IF EXISTS ' || quote_ident(datname) || ' WITH (FORCE)' FROM pg_database
		WHERE shobj_description(oid, 'pg_database') LIKE $1
		UNION ALL
		SELECT 'DROP SCHEMA IF EXISTS ' || quote_ident(nspname) || ' CASCADE' FROM pg_namespace
		WHERE obj_description(oid, 'pg_namespace') LIKE $1`, suffix)
	if err != nil {
		t.Errorf("list objects of installation: %v", err)
		return
	}
	stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Errorf("list objects of installation: %v", err)
		return
	}
	rows, _ = pool.Query(ctx, `SELECT 'DROP ROLE IF EXISTS ' || quote_ident(rolname) FROM pg_roles
		WHERE shobj_description(oid, 'pg_authid') LIKE $1`, suffix)
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Errorf("list roles of installation: %v", err)
		return
	}
	for _, s := range append(stmts, roles...) {
		if _, err := pool.Exec(ctx, s); err != nil {
			t.Errorf("clean up: %s: %v", s, err)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func create(t *testing.T, e *env, slug string, m tenant.Model) tenant.Tenant {
	t.Helper()
	tn, err := e.p.Create(t.Context(), Request{Slug: slug, Model: m})
	if err != nil {
		t.Fatalf("create %s tenant %q: %v", m, slug, err)
	}
	return tn
}

// queryBool runs a query returning one boolean.
func queryBool(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, sql string, args ...any) bool {
	t.Helper()
	var b bool
	if err := q.QueryRow(t.Context(), sql, args...).Scan(&b); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return b
}

func roleExists(t *testing.T, e *env, name string) bool {
	return queryBool(t, e.pool, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, name)
}

func schemaExists(t *testing.T, e *env, name string) bool {
	return queryBool(t, e.pool, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, name)
}

func databaseExists(t *testing.T, e *env, name string) bool {
	return queryBool(t, e.pool, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, name)
}

// objects lists the schemas (of the control database), databases and roles
// that carry this installation's marker, as "kind name", sorted.
func objects(t *testing.T, e *env) []string {
	t.Helper()
	rows, _ := e.pool.Query(t.Context(), `
		SELECT kind || ' ' || name FROM (
			SELECT 'database' AS kind, datname::text AS name FROM pg_database
			WHERE shobj_description(oid, 'pg_database') LIKE $1
			UNION ALL
			SELECT 'schema', nspname::text FROM pg_namespace WHERE obj_description(oid, 'pg_namespace') LIKE $1
			UNION ALL
			SELECT 'role', rolname::text FROM pg_roles WHERE shobj_description(oid, 'pg_authid') LIKE $1
		) o ORDER BY 1`, "% installation "+e.p.Installation().ID.String())
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("list objects: %v", err)
	}
	return out
}

// tenantObjects is what objects returns for one tenant of model m.
func tenantObjects(id tenant.ID, m tenant.Model) []string {
	switch m {
	case tenant.ModelSchema:
		return []string{"role " + id.RoleName(), "schema " + id.SchemaName()}
	case tenant.ModelDatabase:
		return []string{"database " + id.DatabaseName(), "role " + id.RoleName()}
	}
	return nil
}

// connectAs opens a connection to database as role (the administrator when
// role is ""), with the settings ConnConfig gives for the main server.
func connectAs(t *testing.T, e *env, database, role string) *pgx.Conn {
	t.Helper()
	conn, err := tryConnectAs(t, e, database, role)
	if err != nil {
		t.Fatalf("connect to %s as %q: %v", database, role, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func tryConnectAs(t *testing.T, e *env, database, role string) (*pgx.Conn, error) {
	t.Helper()
	cfg, err := e.p.ConnConfig(t.Context(), directory.DefaultServer, database, role)
	if err != nil {
		t.Fatal(err)
	}
	return pgx.ConnectConfig(t.Context(), cfg)
}

// snapshot records what a failed request must not change.
type snapshot struct {
	tenants, ledger, schemas int
	objects                  string
}

func takeSnapshot(t *testing.T, e *env) snapshot {
	t.Helper()
	var s snapshot
	err := e.pool.QueryRow(t.Context(), `SELECT
		(SELECT count(*) FROM landlord.tenants),
		(SELECT count(*) FROM landlord.provisioning_ledger),
		(SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't\_%')`).Scan(&s.tenants, &s.ledger, &s.schemas)
	if err != nil {
		t.Fatal(err)
	}
	s.objects = strings.Join(objects(t, e), ", ")
	return s
}

func (s snapshot) String() string {
	return fmt.Sprintf("%d tenants, %d ledger rows, %d t_ schemas, objects [%s]", s.tenants, s.ledger, s.schemas, s.objects)
}

// enterSigned sets tenant id's signed context in tx for role ("none": the
// connection's login role), as a tenant handle does.
func enterSigned(ctx context.Context, tx pgx.Tx, e *env, id tenant.ID, role string) error {
	_, err := tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true), set_config('landlord.tenant_sig', $2, true)`,
		id.String(), migration.SignContext(e.p.Roles().ContextKey(), id.String(), role, time.Now().Add(time.Hour)))
	return err
}
