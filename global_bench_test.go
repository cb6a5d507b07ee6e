package landlord

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// BenchmarkGlobalSync measures how long SyncGlobal takes to bring one
// changed global row to N tenant databases (and the template database),
// and how long it takes when every copy is current already:
//
//	go test -run '^$' -bench GlobalSync -benchtime 5x .
//
// Each iteration updates one row through GlobalAdmin and syncs; the
// metrics are milliseconds per sync.
func BenchmarkGlobalSync(b *testing.B) {
	for _, n := range []int{20, 50} {
		b.Run(fmt.Sprintf("databases=%d", n), func(b *testing.B) {
			ctx := context.Background()
			db := server.NewDB(b, globalTemplate)
			ll, err := Open(ctx, db.URL, ordersV1(), Config{Global: globalV1()})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(ll.Close)
			for i := range n {
				if _, err := ll.CreateTenant(ctx, provision.Request{Slug: fmt.Sprintf("bench-%03d", i), Model: tenant.ModelDatabase}); err != nil {
					b.Fatal(err)
				}
			}
			w, err := ll.GlobalAdmin(ctx, "benchmark")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ll.SyncGlobal(ctx); err != nil {
				b.Fatal(err)
			}
			var change, noop time.Duration
			b.ResetTimer()
			for i := range b.N {
				if _, err := w.Exec(ctx, `UPDATE currencies SET name = $1 WHERE code = 'EUR'`, fmt.Sprintf("Euro %d", i)); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				rep, err := ll.SyncGlobal(ctx)
				change += time.Since(start)
				if err != nil || rep.Synced != n+1 {
					b.Fatalf("sync: %d of %d copies synced, %v", rep.Synced, n+1, err)
				}
				start = time.Now()
				rep, err = ll.SyncGlobal(ctx)
				noop += time.Since(start)
				if err != nil || rep.Current != n+1 {
					b.Fatalf("second sync: %d of %d copies current, %v", rep.Current, n+1, err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(change.Microseconds())/1000/float64(b.N), "ms/sync-change")
			b.ReportMetric(float64(noop.Microseconds())/1000/float64(b.N), "ms/sync-current")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkGlobalRead measures a point read of a global table through the
// tenant handle in each model, next to the same read of a tenant table:
//
//	go test -run '^$' -bench GlobalRead -benchtime 2000x .
func BenchmarkGlobalRead(b *testing.B) {
	ctx := context.Background()
	db := server.NewDB(b, globalTemplate)
	ll, err := Open(ctx, db.URL, ordersV1(), Config{Global: globalV1()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ll.Close)
	h := ll.Handle()
	for _, m := range tenant.Models {
		tn, err := ll.CreateTenant(ctx, provision.Request{Slug: "read-" + string(m), Model: m})
		if err != nil {
			b.Fatal(err)
		}
		tctx := WithTenant(ctx, tn.ID)
		if _, err := h.Exec(tctx, `INSERT INTO orders (id, currency) VALUES (1, 'EUR')`); err != nil {
			b.Fatal(err)
		}
		for _, q := range []struct{ name, sql string }{
			{"global", `SELECT digits FROM global.currencies WHERE code = 'EUR'`},
			{"tenant", `SELECT 2 FROM orders WHERE id = 1`},
		} {
			b.Run(fmt.Sprintf("model=%s/table=%s", m, q.name), func(b *testing.B) {
				var n int
				for b.Loop() {
					if err := h.QueryRow(tctx, q.sql).Scan(&n); err != nil || n != 2 {
						b.Fatalf("read: %d, %v", n, err)
					}
				}
			})
		}
	}
}
