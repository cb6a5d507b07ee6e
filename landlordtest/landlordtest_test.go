package landlordtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/internal/itemschema"
	"github.com/landlordhq/landlord/landlordtest"
	"github.com/landlordhq/landlord/pgtest"
)

// Landlord's own run of its suites: the conformance suite on the core
// tests' tables (internal/itemschema).

var srv *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }

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

func TestConformance(t *testing.T) {
	landlordtest.Conformance(t, landlordtest.PgtestKit(srv, itemschema.FS(), seedItems))
}
