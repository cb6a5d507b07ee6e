package landlord

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// The row-model point lookup: 1,000 tenants × 100 rows, each call a random
// tenant and id, next to raw pgx with WHERE tenant_id = $1 AND id = $2 on a
// copy of the rows without row-level security. This is for profiling the hot
// path; the ratio, round trips and CPU per call are measured by
// `landlord bench row-lookup` (package internal/bench).

const (
	benchTenants = 1000
	benchRows    = 100
	benchConns   = 8
	benchProcs   = 4 // goroutines per GOMAXPROCS
)

type lookupBench struct {
	l   *Landlord
	raw *pgxpool.Pool
	ids []tenant.ID
}

func setupLookup(b *testing.B) *lookupBench {
	b.Helper()
	lb, err := newLookupBench(b)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { lb.raw.Close(); lb.l.Close() })
	return lb
}

func newLookupBench(b *testing.B) (*lookupBench, error) {
	ctx := context.Background()
	db := server.NewDB(b, template)
	lb := &lookupBench{}
	l, err := Open(ctx, db.URL, testMigrations(), Config{MaxConns: benchConns})
	if err != nil {
		return nil, err
	}
	lb.l = l
	for i := range benchTenants {
		t, err := l.CreateTenant(ctx, provision.Request{Slug: fmt.Sprintf("bench-%04d", i), Model: tenant.ModelRow})
		if err != nil {
			return nil, err
		}
		lb.ids = append(lb.ids, t.ID)
	}
	// Rows go in as the superuser, past row-level security, in one
	// statement.
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		return nil, err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `INSERT INTO shared.items (tenant_id, id, sku, secret)
		SELECT t.id, g, 'sku-' || g, md5(t.id::text || g) FROM landlord.tenants t, generate_series(1, $1) g`, benchRows); err != nil {
		return nil, err
	}
	if _, err := admin.Exec(ctx, `VACUUM ANALYZE shared.items`); err != nil {
		return nil, err
	}
	// The baseline's table: the same rows, an ordinary owner, no policies.
	owner, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		return nil, err
	}
	defer owner.Close(ctx)
	if _, err := owner.Exec(ctx, `CREATE SCHEMA raw;
		CREATE TABLE raw.items (tenant_id uuid NOT NULL, id bigint NOT NULL, parent_id bigint, sku text NOT NULL, secret text NOT NULL,
			PRIMARY KEY (tenant_id, id))`); err != nil {
		return nil, err
	}
	if _, err := admin.Exec(ctx, `INSERT INTO raw.items SELECT tenant_id, id, parent_id, sku, secret FROM shared.items`); err != nil {
		return nil, err
	}
	if _, err := owner.Exec(ctx, `VACUUM ANALYZE raw.items`); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = benchConns
	if lb.raw, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, err
	}
	return lb, nil
}

func (lb *lookupBench) rawOp(ctx context.Context, r *rand.Rand) error {
	id := lb.ids[r.IntN(len(lb.ids))]
	var n int64
	var sku, secret string
	return lb.raw.QueryRow(ctx, `SELECT id, sku, secret FROM raw.items WHERE tenant_id = $1 AND id = $2`,
		id, 1+r.IntN(benchRows)).Scan(&n, &sku, &secret)
}

func (lb *lookupBench) ourOp(ctx context.Context, r *rand.Rand) error {
	tctx := WithTenant(ctx, lb.ids[r.IntN(len(lb.ids))])
	var n int64
	var sku, secret string
	return lb.l.Handle().QueryRow(tctx, `SELECT id, sku, secret FROM items WHERE id = $1`,
		1+r.IntN(benchRows)).Scan(&n, &sku, &secret)
}

func runParallel(b *testing.B, op func(context.Context, *rand.Rand) error) {
	b.SetParallelism(benchProcs)
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		ctx := context.Background()
		for pb.Next() {
			if err := op(ctx, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRowLookup reports each side on its own, for profiling:
//
//	go test -run '^$' -bench 'RowLookup/' -cpuprofile cpu.prof .
func BenchmarkRowLookup(b *testing.B) {
	lb := setupLookup(b)
	b.Run("raw", func(b *testing.B) { runParallel(b, lb.rawOp) })
	b.Run("landlord", func(b *testing.B) { runParallel(b, lb.ourOp) })
}

// insertID numbers the rows BenchmarkRowInsert writes, past the seeded ones.
var insertID atomic.Int64

func (lb *lookupBench) rawInsert(ctx context.Context, r *rand.Rand) error {
	n := benchRows + insertID.Add(1)
	_, err := lb.raw.Exec(ctx, `INSERT INTO raw.items (tenant_id, id, sku, secret) VALUES ($1, $2, $3, 'written')`,
		lb.ids[r.IntN(len(lb.ids))], n, fmt.Sprint("w-", n))
	return err
}

func (lb *lookupBench) ourInsert(ctx context.Context, r *rand.Rand) error {
	n := benchRows + insertID.Add(1)
	_, err := lb.l.Handle().Exec(WithTenant(ctx, lb.ids[r.IntN(len(lb.ids))]), `INSERT INTO items (id, sku, secret) VALUES ($1, $2, 'written')`,
		n, fmt.Sprint("w-", n))
	return err
}

// BenchmarkRowInsert is BenchmarkRowLookup's INSERT: one row of a random
// tenant, its tenant_id from the column's default (the verified context)
// on Landlord's side, given on the baseline's.
//
//	go test -run '^$' -bench 'RowInsert/' -cpuprofile cpu.prof .
func BenchmarkRowInsert(b *testing.B) {
	lb := setupLookup(b)
	b.Run("raw", func(b *testing.B) { runParallel(b, lb.rawInsert) })
	b.Run("landlord", func(b *testing.B) { runParallel(b, lb.ourInsert) })
}
