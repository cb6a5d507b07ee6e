package landlord

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/landlordhq/landlord/tenant"
)

// TestPrewarm: an installation opened with Prewarm has, when Open returns,
// one idle connection to each database of the busiest database-model
// tenants that the earlier process recorded, busiest first, and none to
// the others; without Prewarm it has none.
func TestPrewarm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	first, db := setup(t, Config{})
	calls := map[string]int{"quiet": 1, "busy": 8, "busier": 12, "row-busiest": 20}
	byName := map[string]tenant.Tenant{}
	for name, n := range calls {
		m := tenant.ModelDatabase
		if strings.HasPrefix(name, "row-") {
			m = tenant.ModelRow
		}
		tn := createTenant(t, first, name, m)
		byName[name] = tn
		for range n {
			var one int
			must(t, first.Handle().QueryRow(WithTenant(ctx, tn.ID), `SELECT 1`).Scan(&one))
		}
	}
	must(t, first.FlushTenantStats(ctx))
	first.Close()

	// warmDBs lists the tenant databases l holds connections to.
	warmDBs := func(l *Landlord) []string {
		var out []string
		for _, s := range l.Stats().Pool.Servers {
			for _, tg := range s.Targets {
				if strings.HasPrefix(tg.Target.Database, "t_") && tg.Open > 0 {
					out = append(out, tg.Target.Database)
				}
			}
		}
		slices.Sort(out)
		return out
	}
	var logs syncBuffer
	warm, err := Open(ctx, db.URL, testMigrations(), Config{Prewarm: 2, PrewarmTimeout: time.Minute, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	must(t, err)
	defer warm.Close()
	want := []string{byName["busier"].Database, byName["busy"].Database}
	slices.Sort(want)
	if got := warmDBs(warm); !slices.Equal(got, want) {
		t.Errorf("after Open with Prewarm 2: connections to %v, want the two busiest tenant databases %v", got, want)
	}
	if !strings.Contains(logs.String(), "prewarm") || !strings.Contains(logs.String(), "warmed=2") {
		t.Errorf("the prewarm is not logged as done:\n%s", logs.String())
	}
	// The warm connection serves the tenant's first call.
	before := warm.Stats().Pool.Servers[0].Dials
	var one int
	must(t, warm.Handle().QueryRow(WithTenant(ctx, byName["busier"].ID), `SELECT 1`).Scan(&one))
	if d := warm.Stats().Pool.Servers[0].Dials; d != before {
		t.Errorf("the first call of a warmed tenant dialed %d connections", d-before)
	}

	cold, err := Open(ctx, db.URL, testMigrations(), Config{})
	must(t, err)
	defer cold.Close()
	if got := warmDBs(cold); len(got) != 0 {
		t.Errorf("after Open without Prewarm: connections to %v", got)
	}
	if _, err := Open(ctx, db.URL, testMigrations(), Config{Prewarm: -1}); err == nil {
		t.Error("Open with a negative Prewarm")
	}
}
