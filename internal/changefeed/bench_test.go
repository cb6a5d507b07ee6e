package changefeed_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/landlordhq/landlord/internal/changefeed"
)

// BenchmarkCatchUp measures the catch-up of one large and many small
// transactions: inserts of 5,000 rows in one, then updates of 10 rows in
// each of 200.
func BenchmarkCatchUp(b *testing.B) {
	const name = "feed_bench"
	e := setup(b, name)
	ctx := b.Context()
	f, err := changefeed.Start(ctx, e.config(name, nil))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close(ctx)
	if err := f.ReleaseSnapshot(ctx); err != nil {
		b.Fatal(err)
	}
	a := applier()
	inner := e.applyFunc(a, nil)
	var inApply time.Duration
	apply := func(ctx context.Context, txn changefeed.Txn) error {
		s := time.Now()
		defer func() { inApply += time.Since(s) }()
		return inner(ctx, txn)
	}
	tenant := uuid.New()
	var changes int
	var took time.Duration
	for b.Loop() {
		b.StopTimer()
		if _, err := e.pool.Exec(ctx, `INSERT INTO src.items (tenant_id, name, doc, tags, price, at)
			SELECT $1, 'item ' || i, jsonb_build_object('i', i), ARRAY['a', i::text], i * 1.5, now()
			FROM generate_series(1, 5000) i`, tenant); err != nil {
			b.Fatal(err)
		}
		for i := range 200 {
			if _, err := e.pool.Exec(ctx, `UPDATE src.items SET name = name || '+' WHERE tenant_id = $1
				AND id IN (SELECT id FROM src.items WHERE tenant_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 10)`, tenant, i*10); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		stats, err := f.CatchUp(ctx, apply, nil)
		if err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
		changes += stats.Changes
	}
	b.ReportMetric(float64(changes)/took.Seconds(), "changes/s")
	b.ReportMetric(inApply.Seconds()/took.Seconds(), "apply-share")
}
