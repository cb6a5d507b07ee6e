package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Each tenant's psql session is its own: its role, its context, its rows.
func TestPsqlTenant(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	psql := func(t *testing.T, tenant string, args ...string) string {
		t.Helper()
		return mustRun(t, append([]string{"psql", "--database-url", db.URL, "--tenant", tenant, "--"}, args...)...)
	}
	ids := map[string]string{}
	for _, tc := range []struct{ slug, model string }{
		{"psql-row-a", "row"}, {"psql-row-b", "row"}, {"psql-schema", "schema"}, {"psql-database", "database"},
	} {
		out := mustRun(t, "tenants", "create", tc.slug, "--model", tc.model, "--json", "--database-url", db.URL)
		m := decode(t, out, nil)
		ids[tc.slug] = m["id"].(string)
		// Each writes its own rows through its session; tenant_id comes
		// from the context.
		psql(t, tc.slug, "-qc", fmt.Sprintf(`INSERT INTO products (id, name, price_cents) VALUES (1, '%s-1', 1), (2, '%s-2', 2)`, tc.slug, tc.slug))
	}
	for slug, id := range ids {
		out := psql(t, slug, "-Atc", `SELECT current_user, current_setting('landlord.tenant_id'),
			(SELECT string_agg(name || '/' || tenant_id, ',' ORDER BY name) FROM products)`)
		f := strings.Split(strings.TrimSpace(out), "|")
		if len(f) != 3 {
			t.Fatalf("%s: unexpected output %q", slug, out)
		}
		if f[1] != id {
			t.Errorf("%s: landlord.tenant_id = %q, want %q", slug, f[1], id)
		}
		wantUser := "r_" + strings.ReplaceAll(id, "-", "")
		if strings.HasPrefix(slug, "psql-row") {
			wantUser = "landlord_app"
		}
		if f[0] != wantUser {
			t.Errorf("%s: current_user = %q, want %q", slug, f[0], wantUser)
		}
		want := fmt.Sprintf("%s-1/%s,%s-2/%s", slug, id, slug, id)
		if f[2] != want {
			t.Errorf("%s sees %q, want only its own rows %q", slug, f[2], want)
		}
	}

	// A read-only tenant's session cannot write.
	mustRun(t, "tenants", "read-only", "psql-schema", "--database-url", db.URL, "--reason", "test")
	_, errOut, code := cli(t, "", "psql", "--database-url", db.URL, "--tenant", "psql-schema", "--",
		"-c", "DELETE FROM products")
	if code != exitError || !strings.Contains(errOut, "read-only transaction") {
		t.Errorf("delete in a read-only tenant's session: exit %d, %q", code, errOut)
	}
	// A suspended one gets no session.
	mustRun(t, "tenants", "suspend", "psql-database", "--database-url", db.URL, "--reason", "test")
	_, errOut, code = cli(t, "", "psql", "--database-url", db.URL, "--tenant", "psql-database", "--", "-c", "SELECT 1")
	if code != exitError || !strings.Contains(errOut, "suspended") {
		t.Errorf("psql for a suspended tenant: exit %d, %q", code, errOut)
	}

	// The administrator's session is the control database's owner.
	out := mustRun(t, "psql", "--database-url", db.URL, "--", "-Atc", "SELECT count(*) FROM landlord.tenants")
	if strings.TrimSpace(out) != "4" {
		t.Errorf("administrator's psql: %q", out)
	}
}

func TestPsqlBadInput(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	for _, args := range [][]string{
		{"psql", "extra"},
		{"psql", "--tenant", "Not A Slug!"},
		{"psql", "--tenant", "00000000-0000-0000-0000-000000000000"},
		{"psql", "--", "-U", "postgres"},
		{"psql", "--", "--host=elsewhere"},
		{"psql", "--", "-qd", "other"},
		{"psql", "--", "-c", "SELECT 1", "otherdb"},
		{"psql", "--migrations", "/nonexistent"},
	} {
		_, errOut, code := cli(t, "", append(args, "--database-url", "postgres://nobody@/nowhere")...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, errOut)
		}
	}
	_, errOut, code := cli(t, "", "psql", "--database-url", db.URL, "--tenant", "no-such-tenant", "--", "-c", "SELECT 1")
	if code != exitError || !strings.Contains(errOut, "not found") {
		t.Errorf("unknown tenant: exit %d, %q", code, errOut)
	}
}

func TestCheckPsqlArgs(t *testing.T) {
	for _, ok := range [][]string{
		{"-c", "SELECT 1"}, {"-qAtc", "SELECT -h"}, {"--command", "-U"}, {"--command=x"}, {"-v", "ON_ERROR_STOP=1", "-f", "x.sql"},
		{"-X"}, {"--set", "-d"},
	} {
		if err := checkPsqlArgs(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range [][]string{
		{"-h", "x"}, {"-Upostgres"}, {"-qp", "5"}, {"--dbname", "x"}, {"--port=1"}, {"db"}, {"-c", "x", "--", "db"},
	} {
		if err := checkPsqlArgs(bad); err == nil || !slices.Contains([]int{exitUsage}, exitCode(err)) {
			t.Errorf("%q: %v, want a usage error", bad, err)
		}
	}
}
