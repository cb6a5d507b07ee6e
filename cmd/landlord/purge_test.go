package main

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/tenant"
)

// TestTenantsPurge: delete with a grace period keeps the tenant, restore
// takes it back, purge refuses to purge it early and purges it with
// --now, printing each check of the verifier; verify-purge finds the tenant
// by its slug after it is gone, and fails (exit 1) on a leftover planted
// afterwards, which purging again removes.
func TestTenantsPurge(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	ctx := t.Context()
	tn := createTenant(t, db, "leaving", tenant.ModelSchema)
	flags := dbFlag(db)

	del := decode(t, mustRun(t, append([]string{"tenants", "delete", "leaving", "--grace", "72h", "--yes", "--json"}, flags...)...), nil)
	if del["deleted"] != true || del["purge_after"] == nil {
		t.Errorf("delete --grace --json: %v, want deleted and purge_after", del)
	}
	var shown tenantView
	decode(t, mustRun(t, append([]string{"tenants", "show", "leaving", "--json"}, flags...)...), &shown)
	if shown.State != string(tenant.StateDeleting) {
		t.Errorf("after delete --grace the tenant is %s, want deleting", shown.State)
	}
	if _, errOut, code := cli(t, "", append([]string{"tenants", "purge", "leaving"}, flags...)...); code != exitUsage || !strings.Contains(errOut, "grace period") {
		t.Errorf("purge in the grace period: exit %d, %q; want 2 and why", code, errOut)
	}
	var back tenantView
	decode(t, mustRun(t, append([]string{"tenants", "restore", "leaving", "--reason", "test", "--json"}, flags...)...), &back)
	if back.State != string(tenant.StateActive) {
		t.Errorf("restored tenant is %s, want active", back.State)
	}

	var pv purgeView
	out := mustRun(t, append([]string{"tenants", "purge", "leaving", "--now", "--json"}, flags...)...)
	decode(t, out, &pv)
	if !pv.Clean || pv.ID != tn.ID || pv.State != "purged" || len(pv.Checks) == 0 || pv.Left != 0 || pv.Unchecked != 0 {
		t.Errorf("purge --now --json: %+v, want a clean purge with its checks", pv)
	}
	human := mustRun(t, append([]string{"tenants", "verify-purge", "leaving"}, flags...)...)
	for _, want := range []string{"CHECK", "rows", "River jobs", "kept on purpose", "Nothing of tenant " + tn.ID.String() + " is left"} {
		if !strings.Contains(human, want) {
			t.Errorf("verify-purge prints no %q:\n%s", want, human)
		}
	}

	// A leftover after the purge: the verifier fails, purging again
	// removes it.
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA t_"+tn.ID.Hex()); err != nil {
		t.Fatal(err)
	}
	out, _, code := cli(t, "", append([]string{"tenants", "verify-purge", tn.ID.String(), "--json"}, flags...)...)
	decode(t, out, &pv)
	if code != exitError || pv.Clean || pv.Left != 1 {
		t.Errorf("verify-purge with a schema left: exit %d, %+v; want 1 and the schema found", code, pv)
	}
	mustRun(t, append([]string{"tenants", "purge", tn.ID.String(), "--json"}, flags...)...)
	mustRun(t, append([]string{"tenants", "verify-purge", tn.ID.String()}, flags...)...)
}

// TestTenantsPurgeDue: purge --due purges the tenants whose grace period
// is over, one result each, and says so when there are none.
func TestTenantsPurgeDue(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	ctx := t.Context()
	flags := dbFlag(db)
	if out := mustRun(t, append([]string{"tenants", "purge", "--due"}, flags...)...); !strings.Contains(out, "No tenant is due") {
		t.Errorf("purge --due with nothing due: %q", out)
	}
	tn := createTenant(t, db, "overdue", tenant.ModelRow)
	createTenant(t, db, "waiting", tenant.ModelRow)
	mustRun(t, append([]string{"tenants", "delete", "overdue", "--grace", "1h", "--yes"}, flags...)...)
	mustRun(t, append([]string{"tenants", "delete", "waiting", "--grace", "1h", "--yes"}, flags...)...)
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE landlord.purges SET purge_after = now() - interval '1 second' WHERE slug = 'overdue'`); err != nil {
		t.Fatal(err)
	}

	lines := ndjson[purgeView](t, mustRun(t, append([]string{"tenants", "purge", "--due", "--json"}, flags...)...))
	if len(lines) != 1 || lines[0].ID != tn.ID || !lines[0].Clean || lines[0].Error != "" {
		t.Errorf("purge --due --json: %+v, want the overdue tenant only, purged clean", lines)
	}
	var shown tenantView
	decode(t, mustRun(t, append([]string{"tenants", "show", "waiting", "--json"}, flags...)...), &shown)
	if shown.State != string(tenant.StateDeleting) {
		t.Errorf("the tenant in its grace period is %s after purge --due, want deleting", shown.State)
	}
}

// TestTenantsPurgeBadInput: bad command lines exit 2 and change nothing.
func TestTenantsPurgeBadInput(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	createTenant(t, db, "staying", tenant.ModelRow)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"tenants", "purge"}, "name the tenant"},
		{[]string{"tenants", "purge", "staying", "--due"}, "--due"},
		{[]string{"tenants", "purge", "--due", "--now"}, "--now"},
		{[]string{"tenants", "purge", "no such!"}, "slug"},
		{[]string{"tenants", "purge", "staying", "--reason", " "}, "--reason"},
		{[]string{"tenants", "purge", "staying"}, "not deleted"},
		{[]string{"tenants", "delete", "staying", "--grace", "-1h", "--yes"}, "--grace"},
		{[]string{"tenants", "restore", "staying"}, "--reason"},
		{[]string{"tenants", "restore", "staying", "--reason", "x"}, "not deleted"},
		{[]string{"tenants", "verify-purge"}, "arg"},
	} {
		_, errOut, code := cli(t, "", append(c.args, dbFlag(db)...)...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", c.args, code, errOut, c.want)
		}
	}
	var shown tenantView
	decode(t, mustRun(t, append([]string{"tenants", "show", "staying", "--json"}, dbFlag(db)...)...), &shown)
	if shown.State != string(tenant.StateActive) {
		t.Errorf("after refused commands the tenant is %s, want active", shown.State)
	}
}
