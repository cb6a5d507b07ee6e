package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/internal/demo"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// TestTenantsTop: what a process's handles measured shows busiest first,
// by slug, in both forms; an installation without calls says so; bad flags
// are usage errors.
func TestTenantsTop(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	flag := dbFlag(db)
	if out := mustRun(t, append([]string{"tenants", "top"}, flag...)...); out != "No tenant calls recorded in the last 5m0s.\n" {
		t.Errorf("top without calls: %q", out)
	}
	ctx := t.Context()
	ll, err := landlord.Open(ctx, db.URL, demo.Migrations(), landlord.Config{})
	if err != nil {
		t.Fatal(err)
	}
	hot, err := ll.CreateTenant(ctx, provision.Request{Slug: "hot-shop", Model: tenant.ModelRow})
	if err != nil {
		t.Fatal(err)
	}
	cold, err := ll.CreateTenant(ctx, provision.Request{Slug: "cold-shop", Model: tenant.ModelSchema})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		id := hot.ID
		if i%4 == 0 {
			id = cold.ID
		}
		if _, err := ll.Handle().Exec(landlord.WithTenant(ctx, id), `SELECT count(*) FROM products`); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = ll.Handle().Exec(landlord.WithTenant(ctx, cold.ID), `SELECT 1/0`)
	ll.Close() // writes what it measured

	out := mustRun(t, append([]string{"tenants", "top"}, flag...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "hot-shop ") || !strings.HasPrefix(lines[2], "cold-shop ") ||
		!strings.Contains(lines[0], "P99") {
		t.Fatalf("top:\n%s", out)
	}
	var vs []topView
	for _, l := range strings.Split(strings.TrimSpace(mustRun(t, append([]string{"tenants", "top", "--json", "--limit", "5"}, flag...)...)), "\n") {
		var v topView
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("top --json line %q: %v", l, err)
		}
		vs = append(vs, v)
	}
	if len(vs) != 2 || vs[0].Slug != "hot-shop" || vs[0].Calls != 9 || vs[0].Errors != 0 ||
		vs[1].Slug != "cold-shop" || vs[1].Model != "schema" || vs[1].Calls != 4 || vs[1].Errors != 1 || vs[1].P99MS <= 0 {
		t.Errorf("top --json: %+v", vs)
	}
	if out := mustRun(t, append([]string{"tenants", "top", "--limit", "1"}, flag...)...); strings.Contains(out, "cold-shop") {
		t.Errorf("--limit 1:\n%s", out)
	}
	for _, args := range [][]string{
		{"tenants", "top", "--window", "0s"},
		{"tenants", "top", "--window", "2h"},
		{"tenants", "top", "--limit", "0"},
		{"tenants", "top", "extra"},
	} {
		if _, errOut, code := run(t, append(args, flag...)...); code != exitUsage {
			t.Errorf("%v: exit %d, %q; want 2", args, code, errOut)
		}
	}
}
