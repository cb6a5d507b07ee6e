package archive

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/richschema"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

var srv *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }

// testMigrations are the tenant tables of these tests (internal/richschema).
func testMigrations() *migration.Set {
	set, err := migration.Load(richschema.FS())
	if err != nil {
		panic(err)
	}
	return set
}

// installed is a control database bootstrapped once per server by the
// server's administrator (an import needs a superuser); every test gets a
// clone of it.
var installed = &pgtest.Template{
	Name: "landlord-archive-" + testMigrations().Hash()[:12] + "-" + directory.Migrations().Hash()[:12],
	Setup: func(ctx context.Context, db *pgtest.DB) error {
		pool, err := pgxpool.New(ctx, db.AdminURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		_, err = provision.New(ctx, pool, testMigrations(), provision.Config{})
		return err
	},
}

type env struct {
	db   *pgtest.DB
	pool *pgxpool.Pool
	p    *provision.Provisioner
}

// setup returns a Provisioner, as a superuser, on a fresh clone of the
// installed template. When the test passes, the databases and roles its
// tenants made are dropped.
func setup(t *testing.T) *env {
	t.Helper()
	db := srv.NewDB(t, installed)
	pool, err := pgxpool.New(t.Context(), db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	p, err := provision.New(t.Context(), pool, testMigrations(), provision.Config{})
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	e := &env{db: db, pool: pool, p: p}
	t.Cleanup(func() {
		if !t.Failed() {
			e.dropTenants(t)
		}
	})
	return e
}

// dropTenants removes what the test's tenants left outside its database.
func (e *env) dropTenants(t *testing.T) {
	ctx := context.Background()
	ts, err := e.p.Directory().List(ctx, directory.Filter{})
	if err != nil {
		t.Errorf("clean up: %v", err)
		return
	}
	for _, tn := range ts {
		if err := e.p.Delete(ctx, tn.ID); err != nil {
			t.Errorf("clean up %s: %v", tn.Slug, err)
		}
	}
}

func (e *env) create(t *testing.T, slug string, m tenant.Model) tenant.Tenant {
	t.Helper()
	tn, err := e.p.Create(t.Context(), provision.Request{Slug: slug, Model: m, DisplayName: "Store " + slug})
	if err != nil {
		t.Fatalf("create %s: %v", slug, err)
	}
	return tn
}

// conn connects as the administrator to the database of tn's tables.
func (e *env) conn(t *testing.T, tn tenant.Tenant) *pgx.Conn {
	t.Helper()
	c, err := connect(t.Context(), e.p, tn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
