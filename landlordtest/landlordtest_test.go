package landlordtest_test

import (
	"context"
	"embed"
	"io/fs"
	"os"
	"testing"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/internal/itemschema"
	"github.com/landlordhq/landlord/landlordtest"
	"github.com/landlordhq/landlord/pgtest"
)

// Landlord's own run of its suites: the conformance suite and the
// pool-leak fuzz on the core tests' tables (internal/itemschema), the
// attack suite on tables that also hold a partitioned table, a sequence,
// triggers, views and SECURITY DEFINER functions (testdata/attack).

var srv *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }

//go:embed testdata/attack/migrations/*.sql
var attackFiles embed.FS

func attackMigrations() fs.FS {
	sub, err := fs.Sub(attackFiles, "testdata/attack/migrations")
	if err != nil {
		panic(err)
	}
	return sub
}

// exec runs each statement through q.
func exec(ctx context.Context, q landlord.Querier, sqls ...string) error {
	for _, sql := range sqls {
		if _, err := q.Exec(ctx, sql); err != nil {
			return err
		}
	}
	return nil
}

func seedItems(ctx context.Context, q landlord.Querier) error {
	return exec(ctx, q,
		`INSERT INTO parents (id, name) VALUES (1, 'parent-1')`,
		`INSERT INTO items (id, parent_id, sku, secret) VALUES (1, 1, 'sku-1', 'secret-1'), (2, NULL, 'sku-2', 'secret-2')`)
}

func seedAttack(ctx context.Context, q landlord.Querier) error {
	return exec(ctx, q,
		`INSERT INTO parents (id, name) VALUES (1, 'parent-1')`,
		`INSERT INTO items (id, parent_id, sku, secret) VALUES (1, 1, 'sku-1', 'secret-1'), (2, NULL, 'sku-2', 'secret-2')`,
		`INSERT INTO events (id, body) VALUES (1, 'event-1'), (2, 'event-2')`,
		`INSERT INTO tickets (note) VALUES ('ticket-1'), ('ticket-2')`,
		// Each note writes two rows of audit_log through its triggers.
		`INSERT INTO notes (id, body) VALUES (1, 'note-1')`)
}

func TestConformance(t *testing.T) {
	landlordtest.Conformance(t, landlordtest.PgtestKit(srv, itemschema.FS(), seedItems))
}

func TestAttacks(t *testing.T) {
	t.Parallel()
	k := landlordtest.PgtestKit(srv, attackMigrations(), seedAttack)
	// Every view and SECURITY DEFINER function of the fixture shows B's
	// rows with the defense off: none of them may pass as not applicable.
	k.Exposing = []string{"items_owner_view", "items_invoker_view", "definer_secrets", "definer_unpinned"}
	landlordtest.Attacks(t, k)
}

// TestLeakFuzz runs 24,000 operations, with a new seed each run, so that
// the suite stays within its time on two cores; LANDLORD_FUZZ_OPS asks for
// more (make fuzz-leaks: the library's default of 100,000).
func TestLeakFuzz(t *testing.T) {
	t.Parallel()
	ops := 24_000
	if os.Getenv(landlordtest.EnvFuzzOps) != "" {
		ops = 0 // LeakFuzz reads it
	}
	landlordtest.LeakFuzz(t, landlordtest.PgtestKit(srv, itemschema.FS(), seedItems), ops)
}
