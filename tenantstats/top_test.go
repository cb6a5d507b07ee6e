package tenantstats_test

import (
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/internal/demo"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
	"github.com/landlordhq/landlord/tenantstats"
)

var server *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &server)) }

func count(t *testing.T, db *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := db.QueryRow(t.Context(), `SELECT count(*) FROM landlord.tenant_stats`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFlushAndTop: the handle's calls, failed ones too, reach the control
// database per tenant, and Top reads them back busiest first; an empty
// window writes nothing; a flush keeps at most MaxTenants rows and deletes
// rows past the retention.
func TestFlushAndTop(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := server.NewDB(t, nil)
	l, err := landlord.Open(ctx, db.URL, demo.Migrations(), landlord.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	admin, err := pgxpool.New(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var ts []tenant.Tenant
	for _, r := range []provision.Request{{Slug: "busy", Model: tenant.ModelRow}, {Slug: "failing", Model: tenant.ModelSchema}, {Slug: "idle", Model: tenant.ModelRow}} {
		tn, err := l.CreateTenant(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tn)
	}
	h := l.Handle()
	for range 20 {
		if _, err := h.Exec(landlord.WithTenant(ctx, ts[0].ID), `SELECT count(*) FROM products`); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 7 {
		sql := `SELECT count(*) FROM products`
		if i < 2 {
			sql = `SELECT 1/0`
		}
		_, _ = h.Exec(landlord.WithTenant(ctx, ts[1].ID), sql)
	}
	if err := l.FlushTenantStats(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := l.TenantStats(ctx, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Tenant != ts[0].ID || got[1].Tenant != ts[1].ID {
		t.Fatalf("top: %+v, want busy then failing", got)
	}
	if got[0].Calls != 20 || got[0].Errors != 0 || got[1].Calls != 7 || got[1].Errors != 2 {
		t.Errorf("counts: %+v", got)
	}
	for _, s := range got {
		if s.P50 <= 0 || s.P99 < s.P50 || s.Mean <= 0 || s.PerSecond != float64(s.Calls)/60 || s.ConnWait < 0 || s.ConnWait > s.Mean {
			t.Errorf("durations and rate of %s: %+v", s.Tenant, s)
		}
	}
	rows := count(t, admin)
	if err := l.FlushTenantStats(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, admin); n != rows {
		t.Errorf("a flush without calls wrote %d rows", n-rows)
	}
	if top, err := l.TenantStats(ctx, time.Minute, 1); err != nil || len(top) != 1 || top[0].Tenant != ts[0].ID {
		t.Errorf("limit 1: %+v, %v", top, err)
	}
	if _, err := l.TenantStats(ctx, 0, 1); err == nil {
		t.Error("a zero window was accepted")
	}

	// A recorder of its own: at most two rows, the quietest under Others,
	// and everything older than its retention deleted.
	r := tenantstats.NewRecorder("test-process", 2, time.Millisecond)
	start := time.Now()
	for i, tn := range ts {
		f := r.TenantCalls(tn)
		for range 3 - i {
			f(start, nil)
		}
	}
	time.Sleep(2 * time.Millisecond) // past the retention of the rows above
	if err := r.Flush(ctx, admin); err != nil {
		t.Fatal(err)
	}
	var procs []string
	rs, err := admin.Query(ctx, `SELECT process || ' ' || tenant_id || ' ' || calls FROM landlord.tenant_stats ORDER BY calls DESC`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var s string
		if err := rs.Scan(&s); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, s)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"test-process " + ts[0].ID.String() + " 3", "test-process " + tenantstats.Others.String() + " 3"}
	if len(procs) != 2 || procs[0] != want[0] || procs[1] != want[1] {
		t.Errorf("rows after a bounded flush: %q, want %q", procs, want)
	}
}
