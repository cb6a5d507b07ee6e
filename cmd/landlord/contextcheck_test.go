package main

import (
	"strings"
	"testing"
)

// TestContextCommands: context shows the check, set changes it everywhere
// (a database tenant included) and reports each database, the audit then
// warns of the unsigned choice, and bad input changes nothing.
func TestContextCommands(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	flag := dbFlag(db)
	mustRun(t, append([]string{"tenants", "create", "ctx-db", "--model", "database"}, flag...)...)
	if out := mustRun(t, append([]string{"context"}, flag...)...); out != "Context check: signed\n" {
		t.Errorf("context: %q", out)
	}
	for _, args := range [][]string{
		{"context", "set", "lax", "--reason", "x"},
		{"context", "set", "unsigned"},
		{"context", "set", "unsigned", "--reason", "  "},
		{"context", "set", "--reason", "x"},
	} {
		if _, errOut, code := run(t, append(args, flag...)...); code != exitUsage {
			t.Errorf("%v: exit %d, %q; want 2", args, code, errOut)
		}
	}
	var v contextSetView
	decode(t, mustRun(t, append([]string{"context", "set", "unsigned", "--reason", "test", "--json"}, flag...)...), &v)
	kinds := map[string]string{}
	for _, d := range v.Databases {
		kinds[d.Kind] = d.Status
	}
	if v.Check != "unsigned" || v.Failed != 0 || kinds["control"] != "changed" || kinds["tenant"] != "changed" || kinds["template"] != "changed" {
		t.Errorf("set unsigned --json: %+v", v)
	}
	var show map[string]string
	decode(t, mustRun(t, append([]string{"context", "--json"}, flag...)...), &show)
	if show["check"] != "unsigned" {
		t.Errorf("context --json after set: %v", show)
	}
	if out := mustRun(t, append([]string{"audit"}, flag...)...); !strings.Contains(out, "context_check_unsigned") || strings.Contains(out, "context_unsigned ") {
		t.Errorf("audit of an unsigned installation:\n%s", out)
	}
	out := mustRun(t, append([]string{"context", "set", "signed", "--reason", "test"}, flag...)...)
	if !strings.Contains(out, "Context check:") || !strings.Contains(out, "signed") || !strings.Contains(out, "0 failed") {
		t.Errorf("set signed:\n%s", out)
	}
	if out := mustRun(t, append([]string{"context"}, flag...)...); out != "Context check: signed\n" {
		t.Errorf("context after set signed: %q", out)
	}
}
