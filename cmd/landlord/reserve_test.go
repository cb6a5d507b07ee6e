package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestReserveCommands: fill shows and sets the reserve's size, list shows
// its entries in both forms, and bad input changes nothing.
func TestReserveCommands(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	flag := dbFlag(db)
	if out := mustRun(t, append([]string{"reserve", "list"}, flag...)...); !strings.Contains(out, "The reserve is empty") {
		t.Errorf("list of an empty reserve: %q", out)
	}
	if out := mustRun(t, append([]string{"reserve", "fill", "--model", "schema", "--count", "2"}, flag...)...); out != "The reserve holds 2 ready schema tenants.\n" {
		t.Errorf("fill: %q", out)
	}
	var fv fillView
	decode(t, mustRun(t, append([]string{"reserve", "fill", "--model", "database", "--count", "1", "--json"}, flag...)...), &fv)
	if fv != (fillView{Model: "database", Ready: 1}) {
		t.Errorf("fill --json: %+v", fv)
	}
	out := mustRun(t, append([]string{"reserve", "list"}, flag...)...)
	if !strings.Contains(out, "Ready: 2 schema, 1 database.") {
		t.Errorf("list:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(mustRun(t, append([]string{"reserve", "list", "--json"}, flag...)...)), "\n")
	models := map[string]int{}
	for _, l := range lines {
		var v reservedView
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("list --json line %q: %v", l, err)
		}
		if !v.Ready || v.ID.IsZero() || v.SchemaVersion == 0 {
			t.Errorf("list --json entry %+v", v)
		}
		models[v.Model]++
	}
	if models["schema"] != 2 || models["database"] != 1 {
		t.Errorf("list --json models %v", models)
	}
	for _, args := range [][]string{
		{"reserve", "fill", "--model", "row", "--count", "1"},
		{"reserve", "fill", "--model", "schema"},
		{"reserve", "fill", "--model", "nope", "--count", "1"},
		{"reserve", "fill", "--model", "schema", "--count", "-3"},
	} {
		if _, errOut, code := run(t, append(args, flag...)...); code != exitUsage {
			t.Errorf("%v: exit %d, %q; want 2", args, code, errOut)
		}
	}
	if out := mustRun(t, append([]string{"reserve", "fill", "--model", "schema", "--count", "0"}, flag...)...); out != "The reserve holds 0 ready schema tenants.\n" {
		t.Errorf("empty the reserve: %q", out)
	}
}
