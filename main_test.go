package landlord

import (
	"context"
	"io/fs"
	"os"
	"testing"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/itemschema"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pgtest"
)

var server *pgtest.Server

func TestMain(m *testing.M) {
	if os.Getenv(moverChildEnv) != "" {
		// A mover child of TestMoveSurvivesKill: the server is its parent's.
		os.Exit(m.Run())
	}
	os.Exit(pgtest.Main(m, &server))
}

// testMigrations are the tenant tables of the core tests.
func testMigrations() fs.FS { return itemschema.FS() }

// template is a control database bootstrapped once per test binary; each
// test clones it.
var template = func() *pgtest.Template {
	set, err := migration.Load(testMigrations())
	if err != nil {
		panic(err)
	}
	return &pgtest.Template{
		Name: "landlord-core-" + set.Hash()[:12] + "-" + directory.Migrations().Hash()[:12],
		Setup: func(ctx context.Context, db *pgtest.DB) error {
			l, err := Open(ctx, db.URL, testMigrations(), Config{})
			if err != nil {
				return err
			}
			l.Close()
			return nil
		},
	}
}()

// setup returns an installation on a fresh database.
func setup(t testing.TB, cfg Config) (*Landlord, *pgtest.DB) {
	t.Helper()
	db := server.NewDB(t, template)
	l, err := Open(context.Background(), db.URL, testMigrations(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(l.Close)
	return l, db
}
