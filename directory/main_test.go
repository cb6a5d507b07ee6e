package directory

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/tenant"
)

var srv *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }

// owner owns the control schema in these tests, as in an installation.
const owner = "landlord_owner"

// prepareOwner creates the owner role (once per server; roles are
// cluster-wide) and lets it create schemas in the database conn is on.
func prepareOwner(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, "CREATE ROLE "+ident.Quote(owner)+" NOLOGIN")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == pgerrcode.DuplicateObject || pgErr.Code == pgerrcode.UniqueViolation) { // exists, or a racing creator
		err = nil
	}
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, fmt.Sprintf("GRANT %s TO CURRENT_USER; GRANT CREATE ON DATABASE %s TO %s",
		ident.Quote(owner), ident.Quote(conn.Config().Database), ident.Quote(owner)))
	return err
}

// migrated is a database holding the control schema, its installation row
// and the default server.
var migrated = &pgtest.Template{
	Name: "landlord-directory-" + Migrations().Hash()[:12],
	Setup: func(ctx context.Context, db *pgtest.DB) error {
		conn, err := pgx.Connect(ctx, db.URL)
		if err != nil {
			return err
		}
		err = prepareOwner(ctx, conn)
		conn.Close(ctx)
		if err != nil {
			return err
		}
		pool, err := pgxpool.New(ctx, db.URL)
		if err != nil {
			return err
		}
		defer pool.Close()
		d := New(pool)
		if err := d.Migrate(ctx, owner); err != nil {
			return err
		}
		if _, err := d.Installation(ctx); err != nil {
			return err
		}
		return d.EnsureServer(ctx, Server{ID: DefaultServer, Database: db.Name})
	},
}

// env is one test's directory.
type env struct {
	db   *pgtest.DB
	pool *pgxpool.Pool
	d    *Directory
}

func setup(t *testing.T) *env {
	t.Helper()
	db := srv.NewDB(t, migrated)
	pool := openPool(t, db.URL)
	d := New(pool)
	must(t, d.EnsureServer(t.Context(), Server{ID: DefaultServer, Database: db.Name}))
	return &env{db: db, pool: pool, d: d}
}

func openPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// insert records a tenant of model m in state s on the default server.
func (e *env) insert(t *testing.T, slug string, m tenant.Model, s tenant.State) tenant.Tenant {
	t.Helper()
	id := tenant.NewID()
	tn := tenant.Tenant{
		ID: id, Slug: slug, DisplayName: "Tenant " + slug, Model: m, Server: DefaultServer,
		Schema: id.SchemaName(), Database: e.db.Name, State: s,
	}
	if m == tenant.ModelRow {
		tn.Schema = "shared"
	}
	if m == tenant.ModelDatabase {
		tn.Database = id.DatabaseName()
	}
	if err := e.d.Insert(t.Context(), tn); err != nil {
		t.Fatalf("insert %s: %v", slug, err)
	}
	got, err := e.d.Get(t.Context(), id)
	must(t, err)
	return got
}

func (e *env) get(t *testing.T, id tenant.ID) tenant.Tenant {
	t.Helper()
	tn, err := e.d.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return tn
}
