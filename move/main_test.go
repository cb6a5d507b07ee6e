package move

import (
	"context"
	"os"
	"testing"

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

// testMigrations are the tenant tables of these tests (internal/richschema):
// every kind of column, and a trigger that keeps stock levels from
// movements, which a move must not run again.
func testMigrations() *migration.Set {
	set, err := migration.Load(richschema.FS())
	if err != nil {
		panic(err)
	}
	return set
}

// installed is a control database bootstrapped once per server by its
// administrator, a superuser (moves go online); each test gets a clone.
var installed = &pgtest.Template{
	Name: "landlord-move-" + testMigrations().Hash()[:12] + "-" + directory.Migrations().Hash()[:12],
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

// setup returns a Provisioner on a fresh clone, as a superuser; when the
// test passes, what its tenants made outside the database is dropped.
func setup(t *testing.T) *provision.Provisioner {
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
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		ctx := context.Background()
		ts, err := p.Directory().List(ctx, directory.Filter{})
		if err != nil {
			t.Errorf("clean up: %v", err)
			return
		}
		for _, tn := range ts {
			if err := p.Delete(ctx, tn.ID); err != nil {
				t.Errorf("clean up %s: %v", tn.Slug, err)
			}
		}
	})
	return p
}

func create(t *testing.T, p *provision.Provisioner, slug string, m tenant.Model) tenant.Tenant {
	t.Helper()
	tn, err := p.Create(t.Context(), provision.Request{Slug: slug, Model: m})
	if err != nil {
		t.Fatalf("create %s: %v", slug, err)
	}
	return tn
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
