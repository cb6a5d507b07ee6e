package landlord

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/audit"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// TestTenantsOnSecondServer: tenants of every model on a second server
// take traffic through the same handle as those on the control server,
// each sees only its own rows, and the connection manager keeps a budget
// for each server.
func TestTenantsOnSecondServer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv2 := pgtest.StartExtra(t)
	db := srv2.Database
	l, _ := setup(t, Config{})
	admin, err := l.Admin(ctx, "second server test")
	must(t, err)
	if _, err := admin.AddServer(ctx, provision.ServerSpec{ID: "second", Host: srv2.Host, Port: srv2.Port, Database: db}); err != nil {
		t.Fatal(err)
	}
	h := l.Handle()
	var all []tenant.Tenant
	for _, server := range []string{"main", "second"} {
		for _, m := range tenant.Models {
			tn, err := l.CreateTenant(ctx, provision.Request{Slug: server + "-" + string(m), Model: m, Server: server})
			must(t, err)
			_, err = h.Exec(WithTenant(ctx, tn.ID), `INSERT INTO items (id, sku, secret) VALUES (1, 'sku', $1)`, tn.Slug)
			must(t, err)
			all = append(all, tn)
		}
	}
	for _, tn := range all {
		rows, err := h.Query(WithTenant(ctx, tn.ID), `SELECT secret FROM items`)
		must(t, err)
		var got []string
		for rows.Next() {
			var s string
			must(t, rows.Scan(&s))
			got = append(got, s)
		}
		must(t, rows.Err())
		if len(got) != 1 || got[0] != tn.Slug {
			t.Errorf("%s reads %v", tn.Slug, got)
		}
		// The handle runs it on its server.
		var port int
		must(t, h.QueryRow(WithTenant(ctx, tn.ID), `SELECT current_setting('port')::int`).Scan(&port))
		if tn.Server == "second" && port != srv2.Port || tn.Server == "main" && port == srv2.Port {
			t.Errorf("%s (server %s) ran on port %d", tn.Slug, tn.Server, port)
		}
	}
	servers := map[string]bool{}
	for _, s := range l.Stats().Pool.Servers {
		servers[s.Server] = true
	}
	if !servers["main"] || !servers["second"] {
		t.Errorf("the connection manager's servers: %v", servers)
	}
	// The audit covers the second server: clean, until a mistake is
	// planted there.
	errorsIn := func() []audit.Finding {
		t.Helper()
		fs, err := l.Audit(ctx, audit.FleetConfig{})
		must(t, err)
		var out []audit.Finding
		for _, f := range fs {
			if f.Severity == audit.SeverityError {
				out = append(out, f)
			}
		}
		return out
	}
	if fs := errorsIn(); len(fs) != 0 {
		t.Errorf("audit of two servers: %+v", fs)
	}
	conn2, err := pgx.Connect(ctx, srv2.AdminURL(db))
	must(t, err)
	defer conn2.Close(context.Background())
	_, err = conn2.Exec(ctx, `ALTER TABLE shared.items NO FORCE ROW LEVEL SECURITY`)
	must(t, err)
	fs := errorsIn()
	if len(fs) != 1 || fs[0].Check != "rls_not_forced" || fs[0].Database != db {
		t.Errorf("audit after the second server's shared table lost FORCE: %+v", fs)
	}
	_, err = conn2.Exec(ctx, `ALTER TABLE shared.items FORCE ROW LEVEL SECURITY`)
	must(t, err)
	for _, tn := range all {
		must(t, l.DeleteTenant(ctx, tn.ID))
	}
}
