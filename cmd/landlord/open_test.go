package main

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestOneAdminPool: every command that opens the installation connects to
// the control database as the administrator through one pool only, the
// Landlord's own (plus its directory listener): no command builds a second
// pool or a second provisioner next to it.
func TestOneAdminPool(t *testing.T) {
	t.Parallel()
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	db := server.NewDB(t, nil)
	u, err := url.Parse(db.URL)
	must(t, err)
	q := u.Query()
	q.Set("application_name", "landlord-one-pool")
	u.RawQuery = q.Encode()
	ctx := context.Background()
	watcher, err := pgx.Connect(ctx, db.AdminURL)
	must(t, err)
	defer watcher.Close(ctx)

	for _, args := range [][]string{
		{"tenants", "create", "pool-a", "--model", "row"},
		{"tenants", "create", "pool-b", "--model", "database"},
		{"tenants", "list"},
		{"tenants", "show", "pool-a"},
		{"servers", "list"},
		{"migrate", "up"},
		{"migrate", "status"},
		{"migrate", "plan"},
	} {
		checked := 0
		g := &globals{}
		g.beforeClose = func(in *installation) {
			checked++
			// The pool's own count and the server's: connections that
			// others closed a moment ago may take a while to leave
			// pg_stat_activity, so wait for the two to agree.
			deadline := time.Now().Add(20 * time.Second)
			for {
				want := in.ll.Stats().AdminConns + 1 // and the listener
				var got int
				must(t, watcher.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
					WHERE application_name = 'landlord-one-pool' AND datname = $2
					  AND usename = $1`, u.User.Username(), strings.TrimPrefix(u.Path, "/")).Scan(&got))
				if got == want {
					return
				}
				if time.Now().After(deadline) {
					rows, _ := watcher.Query(ctx, `SELECT usename, datname, application_name, state FROM pg_stat_activity WHERE backend_type = 'client backend'`)
					all, _ := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
					t.Logf("backends: %v", all)
					t.Errorf("%v: %d administrator connections to the control database, want %d (the Landlord's pool and its listener)", args, got, want)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		var stdout, stderr bytes.Buffer
		root := newRootWith(g)
		root.SetArgs(append(args, "--database-url", u.String()))
		root.SetOut(&stdout)
		root.SetErr(&stderr)
		if err := root.ExecuteContext(ctx); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr.String())
		}
		if checked != 1 {
			t.Errorf("%v: opened %d installations, want 1", args, checked)
		}
	}
}

// TestLookingInstallsNothing: the commands that only look, or that change
// existing tenants, refuse a database without an installation, say how to
// install, and leave it as it was; init installs, and then they work.
func TestLookingInstallsNothing(t *testing.T) {
	t.Parallel()
	db := server.NewDB(t, nil)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	state := func() string {
		var s string
		if err := admin.QueryRow(ctx, `SELECT coalesce(string_agg(nspname, ',' ORDER BY nspname), '') || ' ' ||
			coalesce((SELECT datacl::text FROM pg_database WHERE datname = current_database()), '')
			FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema'`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := state()
	for _, args := range [][]string{
		{"tenants", "list"},
		{"tenants", "show", "acme"},
		{"servers", "list"},
		{"migrate", "status"},
		{"migrate", "plan"},
		{"migrate", "up"},
		{"tenants", "suspend", "acme", "--reason", "test"},
		{"tenants", "delete", "acme", "--yes"},
		{"tenants", "reconcile"},
		{"reserve", "list"},
		{"reserve", "fill", "--model", "schema", "--count", "1"},
	} {
		_, errOut, code := run(t, append(args, "--database-url", db.URL)...)
		if code != exitError || !strings.Contains(errOut, "no Landlord installation") || !strings.Contains(errOut, "landlord init") {
			t.Errorf("%v on an empty database: exit %d, %q; want 1 and how to install", args, code, errOut)
		}
		if after := state(); after != before {
			t.Fatalf("%v changed the database: %q, was %q", args, after, before)
		}
	}
	if out, errOut, code := run(t, "init", "--database-url", db.URL); code != 0 || !strings.Contains(out, "installed in database "+db.Name+" (") {
		t.Fatalf("init: exit %d, want it to name database %s\n%s%s", code, db.Name, out, errOut)
	}
	installed := state()
	if installed == before {
		t.Fatal("init installed nothing")
	}
	for _, args := range [][]string{{"tenants", "list"}, {"servers", "list"}, {"migrate", "status"}, {"migrate", "plan"}, {"reserve", "list"}, {"init"}} {
		if out, errOut, code := run(t, append(args, "--database-url", db.URL)...); code != 0 {
			t.Errorf("%v after init: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	if after := state(); after != installed {
		t.Errorf("looking after init changed the database: %q, was %q", after, installed)
	}
}
