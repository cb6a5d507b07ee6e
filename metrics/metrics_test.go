package metrics

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/internal/itemschema"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

var server *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &server)) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// counters returns landlord_tenant_calls_total and _errors_total by tenant
// label.
func counters(t *testing.T, reg *prometheus.Registry) (calls, errs map[string]float64, names map[string]bool) {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	calls, errs, names = map[string]float64{}, map[string]float64{}, map[string]bool{}
	label := func(m *dto.Metric) string {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "tenant" {
				return lp.GetValue()
			}
		}
		return ""
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "landlord_tenant_calls_total":
				calls[label(m)] = m.GetCounter().GetValue()
			case "landlord_tenant_errors_total":
				errs[label(m)] = m.GetCounter().GetValue()
			}
		}
	}
	return calls, errs, names
}

// TestMetrics: the busiest tenants get series of their own, the rest count
// under "other", the number of series is bounded, and counters never go
// down when tenants are admitted or retired.
func TestMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m := New(Config{Tenants: 2})
	db := server.NewDB(t, nil)
	l, err := landlord.Open(ctx, db.URL, itemschema.FS(), landlord.Config{Tracer: m})
	must(t, err)
	t.Cleanup(l.Close)
	must(t, m.Register(reg, l))
	// No admission round before the test runs one, however slow the
	// machine is.
	m.mu.Lock()
	m.lastAdmit = time.Now().Add(24 * time.Hour)
	m.mu.Unlock()
	var ids []tenant.ID
	for i, model := range []tenant.Model{tenant.ModelRow, tenant.ModelRow, tenant.ModelSchema, tenant.ModelDatabase, tenant.ModelRow} {
		tn, err := l.CreateTenant(ctx, provision.Request{Slug: "metrics-" + string(rune('a'+i)), Model: model})
		must(t, err)
		ids = append(ids, tn.ID)
	}
	h := l.Handle()
	call := func(id tenant.ID, n int) {
		for range n {
			_, err := h.Exec(landlord.WithTenant(ctx, id), `SELECT 1`)
			must(t, err)
		}
	}
	// Tenants 2 and 3 are the busiest; 0 fails once.
	call(ids[2], 20)
	call(ids[3], 15)
	call(ids[0], 3)
	call(ids[1], 1)
	if _, err := h.Exec(landlord.WithTenant(ctx, ids[0]), `SELECT nope`); err == nil {
		t.Fatal("bad SQL succeeded")
	}
	calls, errs, names := counters(t, reg)
	if calls["other"] != 40 || errs["other"] != 1 || len(calls) != 1 {
		t.Fatalf("before admission: calls %v errors %v, want everything under other", calls, errs)
	}
	for _, n := range []string{"landlord_pool_connections", "landlord_pool_dials_total", "landlord_tenant_call_duration_seconds", "landlord_directory_cached_tenants"} {
		if !names[n] {
			t.Errorf("metric %s missing", n)
		}
	}

	m.admit(time.Now())
	call(ids[2], 5)
	call(ids[4], 7)
	calls, _, _ = counters(t, reg)
	if len(calls) != 3 || calls[ids[2].String()] != 5 || calls[ids[3].String()] != 0 || calls["other"] != 47 {
		t.Fatalf("after admission: %v; want tenants 2 and 3 with their own series (counting from admission) and 47 under other", calls)
	}

	// Tenant 4 is busy now but the places are taken; retiring idle tenants
	// frees them, and what they counted goes back to other.
	past := time.Now().Add(-2 * retireIdle).UnixNano()
	m.stats(tenant.Tenant{ID: ids[3]}).last.Store(past)
	call(ids[4], 1)
	m.admit(time.Now())
	calls, _, _ = counters(t, reg)
	if _, ok := calls[ids[3].String()]; ok || calls[ids[4].String()] != 0 || calls["other"] != 48 {
		t.Fatalf("after retiring: %v", calls)
	}
}
