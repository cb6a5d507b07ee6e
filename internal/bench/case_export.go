package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/archive"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// export: one row tenant of 10,000 rows exported to an archive (gzip, to
// nowhere) from shared tables that hold a few hundred tenants and from
// shared tables that hold ten times as many, in two installations, in
// alternating rounds. The export reads the tenant's rows by the primary
// key's index, so its time must not grow with the tenants beside it: the
// ratio is the small installation's time over the large one's (goal >=
// 0.8). The second result is the export's time itself (goal <= 1 s) next
// to a hand-written COPY of the same rows without an archive.

const (
	exportRows   = 10000
	exportGoalMS = 1000
)

func exportCase() benchCase {
	return benchCase{
		name: "export",
		what: "one 10k-row tenant exported from shared tables of 200 vs 2,000 tenants: time ratio (goal >= 0.8) and time (goal <= 1 s)",
		// Its own two installations, built by the case.
		needs: func(sizes) needs { return needs{} },
		run:   runExport,
	}
}

// exportSizes are the tenants beside the exported one in the small and the
// large installation.
func exportSizes(sz sizes) (small, large int) {
	if sz.quick {
		return 200, 1000
	}
	return 200, 2000
}

func runExport(ctx context.Context, e *env) ([]Result, error) {
	nSmall, nLarge := exportSizes(e.sz)
	worlds := []*world{
		{suffix: "_xs", migrations: appMigrations(), times: map[string]float64{}},
		{suffix: "_xl", migrations: appMigrations(), times: map[string]float64{}},
	}
	var big []tenant.Tenant
	for i, n := range []int{nSmall, nLarge} {
		w := worlds[i]
		if err := e.ensure(ctx, w, needs{rowTenants: n}); err != nil {
			return nil, err
		}
		defer w.pool.Close()
		t, err := w.prov.Create(ctx, provision.Request{Slug: "export-big", Model: tenant.ModelRow})
		if err != nil {
			return nil, err
		}
		if err := fillItems(ctx, w.pool, w.owner, t.Schema, []tenant.ID{t.ID}, exportRows, ""); err != nil {
			return nil, err
		}
		big = append(big, t)
	}
	copyOut := fmt.Sprintf(`COPY (SELECT id, sku, secret FROM %s.items WHERE tenant_id = '%s' ORDER BY id) TO STDOUT`, ident(big[1].Schema), big[1].ID)
	rawCfg := e.base.Copy()
	rawCfg.Database = worlds[1].db
	rawConn, err := pgx.ConnectConfig(ctx, rawCfg)
	if err != nil {
		return nil, err
	}
	defer rawConn.Close(context.WithoutCancel(ctx))

	exportOnce := func(i int) (time.Duration, int64, error) {
		start := time.Now()
		m, err := archive.Export(ctx, worlds[i].prov, big[i].ID, io.Discard, archive.ExportOptions{})
		return time.Since(start), m.Rows(), err
	}
	// One of each first, unmeasured: connections and caches warm.
	for i := range worlds {
		if _, _, err := exportOnce(i); err != nil {
			return nil, err
		}
	}
	rounds := max(e.sz.rounds, 3)
	var small, large, hand []time.Duration
	var ratios []float64
	for r := range rounds {
		ds, n1, err := exportOnce(0)
		if err != nil {
			return nil, err
		}
		dl, n2, err := exportOnce(1)
		if err != nil {
			return nil, err
		}
		if n1 != exportRows || n2 != exportRows {
			return nil, fmt.Errorf("exported %d and %d rows, want %d", n1, n2, exportRows)
		}
		start := time.Now()
		if _, err := rawConn.PgConn().CopyTo(ctx, io.Discard, copyOut); err != nil {
			return nil, err
		}
		dh := time.Since(start)
		small, large, hand = append(small, ds), append(large, dl), append(hand, dh)
		ratios = append(ratios, ds.Seconds()/dl.Seconds())
		e.progressf("export round %d/%d: %d tenants %.1f ms, %d tenants %.1f ms, hand-written COPY %.1f ms",
			r+1, rounds, nSmall+1, ms(ds), nLarge+1, ms(dl), ms(dh))
	}
	sp := spreadOf(ratios)
	p50, worst := percentile(large, 0.5), slices.Max(large)
	hp50 := percentile(hand, 0.5)
	detail := func(extra map[string]any) map[string]any {
		d := map[string]any{
			"rows": exportRows, "tenants_small": nSmall + 1, "tenants_large": nLarge + 1,
			"rows_per_other_tenant": e.sz.rows, "rounds": rounds,
			"small_p50_ms": ms(percentile(small, 0.5)), "large_p50_ms": ms(p50), "large_max_ms": ms(worst),
			"hand_copy_p50_ms": ms(hp50), "format": "gzip level 1",
		}
		for k, v := range extra {
			d[k] = v
		}
		return e.withSetup(d)
	}
	return []Result{
		{
			Case: "export/scaling", Ours: ms(p50), Baseline: ptr(ms(percentile(small, 0.5))), Ratio: ptr(round3(sp.Median)),
			Unit: "ms", Goal: "ratio >= 0.8", Met: sp.Median >= 0.8,
			Detail: detail(map[string]any{"ratio_min": round3(sp.Min), "ratio_max": round3(sp.Max)}),
		},
		{
			Case: "export/10k-rows", Ours: ms(worst), Baseline: ptr(ms(hp50)), Ratio: ptr(round3(ms(hp50) / ms(p50))),
			Unit: "ms", Goal: fmt.Sprintf("max <= %d ms", exportGoalMS), Met: ms(worst) <= exportGoalMS,
			Detail: detail(nil),
		},
	}, nil
}
