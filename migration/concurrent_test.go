package migration_test

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/migration"
)

// fiveSteps is a set whose every step fails when run twice: plain CREATE
// and ADD COLUMN, no IF NOT EXISTS.
func fiveSteps() map[string]string {
	return map[string]string{
		"001_products.up.sql": productsSQL,
		"002_orders.up.sql": `CREATE TABLE orders (tenant_id uuid NOT NULL, id bigint NOT NULL, product_id bigint NOT NULL,
			PRIMARY KEY (tenant_id, id), FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id));`,
		"003_price.up.sql":   `ALTER TABLE products ADD COLUMN price_cents bigint NOT NULL DEFAULT 0;`,
		"004_index.up.sql":   `CREATE INDEX orders_product_idx ON orders (tenant_id, product_id);`,
		"005_returns.up.sql": `CREATE TABLE returns (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));`,
	}
}

// TestApplyConcurrent runs two migrators on two connections against the same
// target at the same moment (SECURITY.md, F02): every step runs exactly once.
func TestApplyConcurrent(t *testing.T) {
	t.Parallel()
	sets := map[string]map[string]string{
		"transactional": fiveSteps(),
		"with a no-transaction step": func() map[string]string {
			s := fiveSteps()
			s["004_index.up.sql"] = "-- landlord:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS orders_product_idx ON orders (tenant_id, product_id);\n"
			return s
		}(),
	}
	for name, set := range sets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			ctx := t.Context()
			var args []string
			for k, v := range set {
				args = append(args, k, v)
			}
			fsys := files(args...)
			// Two migrators, as two processes would have.
			ms := []*migration.Migrator{e.migrator(t, fsys, migration.Config{}), e.migrator(t, fsys, migration.Config{})}
			conns := [2]*pgx.Conn{e.connect(t), e.connect(t)}
			for round := range 10 {
				schema := fmt.Sprintf("c%d", round)
				e.createSchema(t, schema)
				var wg sync.WaitGroup
				var results [2]migration.Result
				var errs [2]error
				start := make(chan struct{})
				for i := range 2 {
					wg.Go(func() {
						<-start
						results[i], errs[i] = ms[i].Apply(ctx, conns[i], e.target(schema))
					})
				}
				close(start)
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("round %d: migrator %d: %v", round, i, err)
					}
				}
				applied := append(slices.Clone(results[0].Applied), results[1].Applied...)
				slices.Sort(applied)
				if !equalInts(applied, []int{1, 2, 3, 4, 5}) {
					t.Fatalf("round %d: applied %v and %v, want each of 1-5 once", round, results[0].Applied, results[1].Applied)
				}
				for i, r := range results {
					if r.To != 5 {
						t.Errorf("round %d: migrator %d ended at version %d, want 5", round, i, r.To)
					}
				}
				if got := e.ledger(t, schema); !equalInts(got, []int{1, 2, 3, 4, 5}) {
					t.Fatalf("round %d: ledger = %v, want one row per version", round, got)
				}
				var valid bool
				if err := e.conn.QueryRow(ctx, `SELECT indisvalid FROM pg_index WHERE indexrelid = format('%I.orders_product_idx', $1::text)::regclass`, schema).Scan(&valid); err != nil || !valid {
					t.Fatalf("round %d: index orders_product_idx valid=%v, %v", round, valid, err)
				}
			}
		})
	}
}

// TestApplyWaitsForASharedHolder: a session that holds the target's
// migration lock in shared mode, as a move into or out of shared tables
// does, keeps every step off the target until it lets go; the migrator
// says that it waits. Not parallel: it shortens the notice.
func TestApplyWaitsForASharedHolder(t *testing.T) {
	defer migration.SetBusyNotice(50 * time.Millisecond)()
	e := setup(t)
	ctx := t.Context()
	holder := e.connect(t)
	_, err := holder.Exec(ctx, `SELECT pg_advisory_lock_shared(1280068935, hashtext('app'))`)
	if err != nil {
		t.Fatal(err)
	}
	var log logBuffer
	m := e.migrator(t, files("001_products.up.sql", productsSQL), migration.Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	done := make(chan error, 1)
	go func() {
		_, err := m.Apply(ctx, e.connect(t), e.target("app"))
		done <- err
	}()
	for deadline := time.Now().Add(time.Minute); !strings.Contains(log.String(), "migration waits for the target's lock"); {
		if time.Now().After(deadline) {
			t.Fatalf("no notice of the wait after a minute; log:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := e.ledger(t, "app"); len(got) != 0 {
		t.Fatalf("migrated to %v while a session held the lock in shared mode", got)
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock_shared(1280068935, hashtext('app'))`); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := e.ledger(t, "app"); !slices.Equal(got, []int{1}) {
		t.Fatalf("ledger after the holder let go: %v", got)
	}
}
