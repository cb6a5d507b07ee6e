// Package landlordtest runs Landlord's isolation suites against an
// application's own tenant tables: the conformance suite (the same cases in
// every model, directly and through PgBouncer), the attack suite (every
// attack first run with its defense switched off, where the leak must show,
// then with the defense on, then through the handle) and the pool-leak
// fuzz. They are the suites Landlord's own tests run (SECURITY.md).
//
// The kit needs nothing but what passes Landlord's shape check: it finds the
// tenant tables in the catalog, fills them through Seed, and builds its
// probes per table (reads across tenants, writes with the other tenant's
// id, copies of rows made with jsonb_populate_record, oracles on every
// unique key and foreign key, partitions). The objects an attack needs
// (leaky functions, views, SECURITY DEFINER functions, triggers,
// materialized views) the kit makes itself, inside the probe's rolled-back
// transaction, or for the one handle run that needs them; views and
// SECURITY DEFINER functions of the application are attacked too.
//
// A test on a pgtest server:
//
//	var srv *pgtest.Server
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }
//
//	func TestIsolation(t *testing.T) {
//		k := landlordtest.PgtestKit(srv, migrations, seed)
//		t.Run("conformance", func(t *testing.T) { landlordtest.Conformance(t, k) })
//		t.Run("attacks", func(t *testing.T) { landlordtest.Attacks(t, k) })
//		t.Run("leak-fuzz", func(t *testing.T) { landlordtest.LeakFuzz(t, k, 0) })
//	}
package landlordtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sync"
	"testing"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pgtest"
)

// Kit describes the application under test and how to get installations of
// it.
type Kit struct {
	// Migrations are the application's tenant-table migrations, the set Open
	// opens installations with. LeakFuzz and the new-table attack apply them
	// themselves.
	Migrations fs.FS

	// Seed writes rows of the tenant in ctx to every tenant table through q
	// (the installation's handle, with the tenant in ctx). The kit calls it
	// once for each tenant it creates, on an empty tenant; every table must
	// hold at least one of the tenant's rows afterwards, or nothing the kit
	// does with that table would prove anything. Both tenants may get the
	// same values: the kit marks the victim's text values itself.
	Seed func(ctx context.Context, q landlord.Querier) error

	// Open returns a fresh installation, on a control database of its own,
	// opened with Migrations and cfg; the kit closes it. The conformance and
	// attack suites open their installations with it; LeakFuzz runs on a
	// server of its own, which it restarts.
	Open func(t testing.TB, cfg landlord.Config) *landlord.Landlord

	// SuperuserURL returns a connection URL to database, on the server of
	// the installations Open returns, as a superuser: the kit plants rows,
	// reads what every tenant holds and switches defenses off inside
	// transactions it rolls back.
	SuperuserURL func(database string) string

	// PgBouncer returns the address of a PgBouncer in transaction pooling
	// mode in front of that server (see landlord.Pooler), for the
	// conformance runs through a pooler. It may skip t. nil skips those
	// runs.
	PgBouncer func(t testing.TB) *landlord.Pooler

	// Exposing names the application's views and SECURITY DEFINER
	// functions that show every tenant's rows when row-level security is
	// off. The attack suite skips an object of the application that shows
	// none of B's rows even with the defense off, as one that exposes
	// nothing; one named here fails instead, since a broken object (a
	// function whose pinned search path names a schema that is not there)
	// would otherwise pass as harmless.
	Exposing []string
}

// check fails t unless k has what every suite needs.
func (k Kit) check(t testing.TB) {
	t.Helper()
	switch {
	case k.Migrations == nil:
		t.Fatal("landlordtest: Kit.Migrations is nil")
	case k.Seed == nil:
		t.Fatal("landlordtest: Kit.Seed is nil")
	case k.Open == nil:
		t.Fatal("landlordtest: Kit.Open is nil")
	case k.SuperuserURL == nil:
		t.Fatal("landlordtest: Kit.SuperuserURL is nil")
	}
}

// open opens an installation with cfg and closes it when t ends.
func (k Kit) open(t testing.TB, cfg landlord.Config) *landlord.Landlord {
	t.Helper()
	l := k.Open(t, cfg)
	if l == nil {
		t.Fatal("landlordtest: Kit.Open returned no installation")
	}
	t.Cleanup(l.Close)
	return l
}

// PgtestKit returns a Kit whose installations each get a database of srv,
// cloned from a template that is bootstrapped once with migrations (see
// package pgtest), and whose PgBouncer runs are pgtest's.
func PgtestKit(srv *pgtest.Server, migrations fs.FS, seed func(ctx context.Context, q landlord.Querier) error) Kit {
	return pgtestKit(srv, migrations, nil, seed)
}

// PgtestKitGlobal is PgtestKit for an application with platform-wide
// tables (landlord.Config.Global): every installation is opened with
// global too, and its tenant tables may reference them.
func PgtestKitGlobal(srv *pgtest.Server, migrations, global fs.FS, seed func(ctx context.Context, q landlord.Querier) error) Kit {
	return pgtestKit(srv, migrations, global, seed)
}

func pgtestKit(srv *pgtest.Server, migrations, global fs.FS, seed func(ctx context.Context, q landlord.Querier) error) Kit {
	var once sync.Once
	var tmpl *pgtest.Template
	var loadErr error
	// app is the kit's own app role. Installations cloned from one
	// template share its secret, so their app role's password agrees; a
	// kit of other migrations has another template and secret, and on a
	// shared role each Open would set its own password and fail the
	// other kit's logins that check it (PgBouncer's).
	var app string
	template := func() (*pgtest.Template, error) {
		once.Do(func() {
			set, err := migration.Load(migrations)
			if err != nil {
				loadErr = err
				return
			}
			name := "landlordtest-" + set.Hash()[:12] + "-" + directory.Migrations().Hash()[:12]
			if global != nil {
				g, err := migration.Load(global)
				if err != nil {
					loadErr = fmt.Errorf("global: %w", err)
					return
				}
				name += "-" + g.Hash()[:12]
			}
			h := sha256.Sum256([]byte(name))
			app = "landlordtest_app_" + hex.EncodeToString(h[:6])
			tmpl = &pgtest.Template{
				Name: name,
				Setup: func(ctx context.Context, db *pgtest.DB) error {
					l, err := landlord.Open(ctx, db.URL, migrations, landlord.Config{Global: global, AppRole: app})
					if err != nil {
						return err
					}
					l.Close()
					return nil
				},
			}
		})
		return tmpl, loadErr
	}
	return Kit{
		Migrations: migrations,
		Seed:       seed,
		Open: func(t testing.TB, cfg landlord.Config) *landlord.Landlord {
			t.Helper()
			tmpl, err := template()
			if err != nil {
				t.Fatalf("landlordtest: %v", err)
			}
			if cfg.Global == nil {
				cfg.Global = global
			}
			if cfg.AppRole == "" {
				cfg.AppRole = app
			}
			db := srv.NewDB(t, tmpl)
			l, err := landlord.Open(context.Background(), db.URL, migrations, cfg)
			if err != nil {
				t.Fatalf("landlordtest: open: %v", err)
			}
			return l
		},
		SuperuserURL: srv.AdminURL,
		PgBouncer: func(t testing.TB) *landlord.Pooler {
			b := srv.PgBouncer(t)
			return &landlord.Pooler{Host: b.Host(), Port: uint16(b.Port())}
		},
	}
}
