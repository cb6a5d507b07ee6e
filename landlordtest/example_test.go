package landlordtest_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/landlordtest"
)

// shopMigrations are an application's tenant tables, as its migrations
// declare them (usually an embed.FS of NNN_name.up.sql files).
var shopMigrations = fstest.MapFS{"001_shop.up.sql": {Data: []byte(`
CREATE TABLE products (
	tenant_id uuid          NOT NULL,
	id        uuid          NOT NULL DEFAULT gen_random_uuid(),
	name      text          NOT NULL,
	price     numeric(10,2) NOT NULL CHECK (price >= 0),
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, name)
);
CREATE TABLE orders (
	tenant_id  uuid        NOT NULL,
	number     bigint      NOT NULL,
	product_id uuid        NOT NULL,
	email      text        NOT NULL,
	placed_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, number),
	FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id)
);`)}}

// seedShop fills every table for the tenant in ctx, through the handle.
func seedShop(ctx context.Context, q landlord.Querier) error {
	var product string
	if err := q.QueryRow(ctx, `INSERT INTO products (name, price) VALUES ('apples', 2.50) RETURNING id`).Scan(&product); err != nil {
		return err
	}
	_, err := q.Exec(ctx, `INSERT INTO orders (number, product_id, email) VALUES (1, $1, 'ada@example.com')`, product)
	return err
}

// TestExampleShop is what an application's own isolation test looks like:
// its migrations, a seed, and the three suites on a pgtest server (srv,
// from TestMain: pgtest.Main(m, &srv)).
func TestExampleShop(t *testing.T) {
	t.Parallel()
	k := landlordtest.PgtestKit(srv, shopMigrations, seedShop)
	t.Run("conformance", func(t *testing.T) { landlordtest.Conformance(t, k) })
	t.Run("attacks", func(t *testing.T) { landlordtest.Attacks(t, k) })
	// 0 runs the default 100,000 operations, or LANDLORD_FUZZ_OPS; the
	// example keeps to a few thousand.
	t.Run("leak-fuzz", func(t *testing.T) { landlordtest.LeakFuzz(t, k, 3000) })
}
