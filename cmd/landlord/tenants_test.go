package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/demo"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/tenant"
)

// installed is a control database bootstrapped with the demo's migrations
// once per server; tests get clones of it.
var installed = func() *pgtest.Template {
	set, err := migration.Load(demo.Migrations())
	if err != nil {
		panic(err)
	}
	return &pgtest.Template{
		Name: "landlord-cli-" + set.Hash()[:12] + "-" + directory.Migrations().Hash()[:12],
		Setup: func(ctx context.Context, db *pgtest.DB) error {
			ll, err := landlord.Open(ctx, db.URL, demo.Migrations(), landlord.Config{})
			if err != nil {
				return err
			}
			ll.Close()
			return nil
		},
	}
}()

// setupDB returns a database for the test: a clone of the installed
// template, or an empty database when tmpl is nil. When the test passes,
// the cluster-wide objects (databases, roles) its installation made are
// dropped, as they outlive the test database.
func setupDB(t *testing.T, tmpl *pgtest.Template) *pgtest.DB {
	t.Helper()
	db := server.NewDB(t, tmpl)
	t.Cleanup(func() {
		if !t.Failed() {
			dropInstallationObjects(t, db)
		}
	})
	return db
}

// cli runs the command line args with stdin as standard input (never a
// terminal) and returns stdout, stderr and the exit code main would use.
// It goes through the real root command.
func cli(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	root := newRoot()
	var stdout, stderr bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	code := 0
	if err := root.ExecuteContext(t.Context()); err != nil {
		code = exitCode(err)
		stderr.WriteString(err.Error())
	}
	return stdout.String(), stderr.String(), code
}

// mustRun runs args and fails the test unless they exit with 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := cli(t, "", args...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, errOut)
	}
	return out
}

// decode parses one JSON object into a map, so tests see the exact field
// names, and into v when v is not nil.
func decode(t *testing.T, line string, v any) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, line)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(line), v); err != nil {
			t.Fatalf("decode %T: %v\n%s", v, err, line)
		}
	}
	return m
}

// ndjson parses one JSON object per line into Ts.
func ndjson[T any](t *testing.T, out string) []T {
	t.Helper()
	var vs []T
	for line := range strings.Lines(out) {
		var v T
		decode(t, line, &v)
		vs = append(vs, v)
	}
	return vs
}

func keys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// tenantKeys are the JSON field names of a tenant, sorted.
var tenantKeys = []string{"created_at", "database", "display_name", "epoch", "id", "model", "schema", "server", "settings", "slug", "state", "updated_at", "version"}

func dbFlag(db *pgtest.DB) []string { return []string{"--database-url", db.URL} }

// createTenant creates a tenant through the command line and returns it.
func createTenant(t *testing.T, db *pgtest.DB, slug string, m tenant.Model) tenantView {
	t.Helper()
	var v tenantView
	decode(t, mustRun(t, append([]string{"tenants", "create", slug, "--model", string(m), "--json"}, dbFlag(db)...)...), &v)
	return v
}

func listTenants(t *testing.T, db *pgtest.DB, extra ...string) []tenantView {
	t.Helper()
	return ndjson[tenantView](t, mustRun(t, append(append([]string{"tenants", "list", "--json"}, extra...), dbFlag(db)...)...))
}

// catalogHas reports whether the object of kind named name exists on the
// test server, checked as the server's administrator, independently of the
// code under test.
func catalogHas(t *testing.T, db *pgtest.DB, kind, name string) bool {
	t.Helper()
	q := map[string]string{
		"role":     `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`,
		"database": `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`,
		"schema":   `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`,
	}[kind]
	conn, err := pgx.Connect(t.Context(), db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var b bool
	if err := conn.QueryRow(t.Context(), q, name).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

// adminExec runs sql on the test database as the server's administrator.
func adminExec(t *testing.T, db *pgtest.DB, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// dropInstallationObjects drops the databases, schemas and roles that carry
// the marker of the test database's installation.
func dropInstallationObjects(t *testing.T, db *pgtest.DB) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Errorf("clean up: %v", err)
		return
	}
	defer conn.Close(ctx)
	var inst tenant.ID
	if err := conn.QueryRow(ctx, `SELECT id FROM landlord.installation`).Scan(&inst); err != nil {
		return // never installed: nothing to drop
	}
	rows, _ := conn.Query(ctx, `
		SELECT 'DROP DATABASE IF EXISTS ' || quote_ident(datname) || ' WITH (FORCE)' FROM pg_database
		WHERE shobj_description(oid, 'pg_database') LIKE $1
		UNION ALL
		SELECT 'DROP SCHEMA IF EXISTS ' || quote_ident(nspname) || ' CASCADE' FROM pg_namespace
		WHERE obj_description(oid, 'pg_namespace') LIKE $1
		UNION ALL
		SELECT 'DROP ROLE IF EXISTS ' || quote_ident(rolname) FROM pg_roles
		WHERE shobj_description(oid, 'pg_authid') LIKE $1`, "% installation "+inst.String())
	stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Errorf("clean up: %v", err)
		return
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Errorf("clean up: %s: %v", s, err)
		}
	}
}

// TestTenantsRoundTrip creates, lists, shows and deletes a tenant in each
// model, and checks that the catalog follows.
func TestTenantsRoundTrip(t *testing.T) {
	t.Parallel()
	for _, m := range tenant.Models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			db := setupDB(t, installed)
			slug := "acme-" + string(m)

			out := mustRun(t, append([]string{"tenants", "create", "ACME-" + string(m), "--model", string(m), "--name", "Acme Ltd", "--json"}, dbFlag(db)...)...)
			var created tenantView
			if got := keys(decode(t, out, &created)); !slices.Equal(got, tenantKeys) {
				t.Errorf("create --json fields: %v, want %v", got, tenantKeys)
			}
			id := created.ID
			wantSchema, wantDB := id.SchemaName(), "" // database "" = the control database
			switch m {
			case tenant.ModelRow:
				wantSchema = "shared"
			case tenant.ModelDatabase:
				wantDB = id.DatabaseName()
			}
			if wantDB == "" {
				wantDB = db.Name
			}
			if created.Slug != slug || created.Model != string(m) || created.State != "active" || created.Version != 1 ||
				created.DisplayName != "Acme Ltd" || created.Schema != wantSchema || created.Database != wantDB || id.IsZero() {
				t.Fatalf("created %+v; want slug %s, model %s, active, version 1, schema %s, database %s", created, slug, m, wantSchema, wantDB)
			}

			// The table shows the tenant; the filters pick it or leave it out.
			out = mustRun(t, append([]string{"tenants", "list"}, dbFlag(db)...)...)
			if !strings.HasPrefix(out, "ID ") || !strings.Contains(out, id.String()) || !strings.Contains(out, wantSchema) {
				t.Errorf("list table lacks the tenant:\n%s", out)
			}
			if l := listTenants(t, db); len(l) != 1 || l[0].ID != id {
				t.Errorf("list --json: %+v", l)
			}
			if l := listTenants(t, db, "--model", string(m), "--state", "active"); len(l) != 1 {
				t.Errorf("list --model %s --state active: %d tenants, want 1", m, len(l))
			}
			other := tenant.ModelRow
			if m == other {
				other = tenant.ModelSchema
			}
			if l := listTenants(t, db, "--model", string(other)); len(l) != 0 {
				t.Errorf("list --model %s shows %+v", other, l)
			}
			if l := listTenants(t, db, "--state", "suspended"); len(l) != 0 {
				t.Errorf("list --state suspended shows %+v", l)
			}

			// show, by slug and by id.
			var d tenantDetail
			decode(t, mustRun(t, append([]string{"tenants", "show", slug, "--json"}, dbFlag(db)...)...), &d)
			if d.ID != id || len(d.Steps) == 0 || d.Steps[0].At.IsZero() ||
				(stepView{d.Steps[0].Operation, d.Steps[0].Step, d.Steps[0].Detail, time.Time{}}) != (stepView{"create", "intent", string(m) + " " + slug, time.Time{}}) {
				t.Errorf("show --json: id %s, steps %+v", d.ID, d.Steps)
			}
			wantKinds := map[tenant.Model][]string{
				tenant.ModelRow:      {"schema"},
				tenant.ModelSchema:   {"role", "schema"},
				tenant.ModelDatabase: {"role", "database", "schema"},
			}[m]
			var kinds []string
			for _, ob := range d.Objects {
				kinds = append(kinds, ob.Kind)
				if ob.Exists == nil || !*ob.Exists {
					t.Errorf("show: object %+v should exist (%s)", ob, ob.Error)
				}
			}
			if !slices.Equal(kinds, wantKinds) {
				t.Errorf("show: object kinds %v, want %v", kinds, wantKinds)
			}
			out = mustRun(t, append([]string{"tenants", "show", id.String()}, dbFlag(db)...)...)
			if !strings.Contains(out, slug) || !strings.Contains(out, "Provisioning ledger") || strings.Contains(out, "MISSING") {
				t.Errorf("show by id:\n%s", out)
			}

			// Without --yes, and no terminal to ask on, nothing is deleted.
			_, errOut, code := cli(t, slug+"\n", append([]string{"tenants", "delete", slug}, dbFlag(db)...)...)
			if code != exitUsage || !strings.Contains(errOut, "--yes") {
				t.Errorf("delete without --yes: exit %d, %q", code, errOut)
			}
			if l := listTenants(t, db); len(l) != 1 {
				t.Fatalf("delete without --yes removed the tenant")
			}

			var del deleted
			decode(t, mustRun(t, append([]string{"tenants", "delete", id.String(), "--yes", "--json"}, dbFlag(db)...)...), &del)
			if del.ID != id || del.Slug != slug || del.Model != string(m) || !del.Deleted {
				t.Errorf("delete --json: %+v", del)
			}
			if l := listTenants(t, db); len(l) != 0 {
				t.Errorf("after delete, list shows %+v", l)
			}
			_, errOut, code = cli(t, "", append([]string{"tenants", "show", slug}, dbFlag(db)...)...)
			if code != exitError || !strings.Contains(errOut, "not found") {
				t.Errorf("show after delete: exit %d, %q", code, errOut)
			}
			if m != tenant.ModelRow {
				for kind, name := range map[string]string{"role": id.RoleName(), "schema": id.SchemaName(), "database": id.DatabaseName()} {
					if catalogHas(t, db, kind, name) {
						t.Errorf("%s %s survived the delete", kind, name)
					}
				}
			}
		})
	}
}

// TestCreateBadInput: bad input exits with 2 and a one-line message, and
// creates nothing.
func TestCreateBadInput(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	cases := []struct {
		name string
		args []string
		want string // in the message
	}{
		{"bad slug", []string{"Bad Slug!", "--model", "row"}, "invalid slug"},
		{"injection", []string{"x'; DROP TABLE t; --", "--model", "schema"}, "invalid slug"},
		{"reserved slug", []string{"postgres", "--model", "schema"}, "invalid slug"},
		{"too short", []string{"ab", "--model", "row"}, "invalid slug"},
		{"unknown model", []string{"acme", "--model", "table"}, "unknown model"},
		{"no model", []string{"acme"}, "--model is required"},
		{"long name", []string{"acme", "--model", "schema", "--name", strings.Repeat("n", 201)}, "invalid display name"},
		{"NUL in name", []string{"acme", "--model", "database", "--name", "a\x00b"}, "invalid display name"},
		{"bad id", []string{"acme", "--model", "row", "--id", "not-a-uuid"}, "invalid tenant id"},
		{"zero id", []string{"acme", "--model", "row", "--id", "00000000-0000-0000-0000-000000000000"}, "invalid tenant id"},
		{"no slug", []string{"--model", "row"}, "arg"},
		{"two slugs", []string{"acme", "bravo", "--model", "row"}, "arg"},
		{"unknown flag", []string{"acme", "--model", "row", "--colour", "red"}, "unknown flag"},
	}
	for _, c := range cases {
		out, errOut, code := cli(t, "", append(append([]string{"tenants", "create"}, c.args...), dbFlag(db)...)...)
		if code != exitUsage {
			t.Errorf("%s: exit %d, want %d (%s)", c.name, code, exitUsage, errOut)
		}
		if msg := strings.TrimSpace(errOut); !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: message %q, want one line naming %q", c.name, msg, c.want)
		}
		if out != "" {
			t.Errorf("%s: printed %q", c.name, out)
		}
	}
	if l := listTenants(t, db); len(l) != 0 {
		t.Errorf("bad input created %+v", l)
	}
	// Unchanged: the ledger has no intent either.
	conn, err := pgx.Connect(t.Context(), db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM landlord.provisioning_ledger`).Scan(&n); err != nil || n != 0 {
		t.Errorf("ledger has %d entries (%v), want 0", n, err)
	}
}

// TestTenantArguments: the other commands take an id or a slug, and tell
// bad input (2) from a tenant that is not there (1).
func TestTenantArguments(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	v := createTenant(t, db, "bravo", tenant.ModelRow)
	for _, arg := range []string{"bravo", "BRAVO", v.ID.String(), strings.ReplaceAll(v.ID.String(), "-", "")} {
		var got tenantView
		decode(t, mustRun(t, append([]string{"tenants", "show", arg, "--json"}, dbFlag(db)...)...), &got)
		if got.ID != v.ID {
			t.Errorf("show %s: got %s, want %s", arg, got.ID, v.ID)
		}
	}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"tenants", "show", "Not A Slug"}, exitUsage, "invalid slug"},
		{[]string{"tenants", "show", "00000000-0000-0000-0000-000000000000"}, exitUsage, "zero id"},
		{[]string{"tenants", "show", "nobody-here"}, exitError, "not found"},
		{[]string{"tenants", "show", tenant.NewID().String()}, exitError, "not found"},
		{[]string{"tenants", "delete", "nobody-here", "--yes"}, exitError, "not found"},
		{[]string{"tenants", "suspend", "nobody-here", "--reason", "test"}, exitError, "not found"},
		{[]string{"tenants", "list", "--server", "nosuch"}, exitError, "unknown server"},
		{[]string{"tenants", "show"}, exitUsage, "arg"},
		{[]string{"tenants", "create", "Bravo", "--model", "schema"}, exitError, "slug already taken"},
		{[]string{"tenants", "create", "delta", "--model", "row", "--server", "nowhere"}, exitError, "unknown server"},
		{[]string{"tenants", "lst"}, exitUsage, "did you mean list"},
		{[]string{"servers", "bogus"}, exitUsage, "unknown command"},
		{[]string{"tenants", "list", "--model", "table"}, exitUsage, "unknown model"},
		{[]string{"tenants", "list", "--state", "asleep"}, exitUsage, "unknown state"},
		{[]string{"tenants", "reconcile", "--reason", " "}, exitUsage, "--reason"},
	}
	for _, c := range cases {
		_, errOut, code := cli(t, "", append(c.args, dbFlag(db)...)...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want exit %d naming %q", c.args, code, errOut, c.code, c.want)
		}
	}
	if l := listTenants(t, db); len(l) != 1 || l[0].State != "active" {
		t.Errorf("tenants after bad commands: %+v", l)
	}
}

func TestParseTenantRef(t *testing.T) {
	t.Parallel()
	id := tenant.NewID()
	hexSlug := "abcdef0123456789abcdef0123456789" // both an id and a valid slug
	cases := []struct {
		arg    string
		id     tenant.ID
		slug   string
		usageE bool
	}{
		{arg: id.String(), id: id},
		{arg: "Acme", slug: "acme"},
		{arg: hexSlug, id: tenant.ID{0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89}, slug: hexSlug},
		{arg: "00000000-0000-0000-0000-000000000000", usageE: true},
		{arg: "pg_catalog", usageE: true},
		{arg: "", usageE: true},
	}
	for _, c := range cases {
		ref, err := parseTenantRef(c.arg)
		var u usageError
		if c.usageE {
			if !errors.As(err, &u) {
				t.Errorf("%q: error %v, want a usage error", c.arg, err)
			}
			continue
		}
		if err != nil || ref.id != c.id || ref.slug != c.slug {
			t.Errorf("%q: got %+v, %v; want id %s, slug %q", c.arg, ref, err, c.id, c.slug)
		}
	}
}

func TestConfirm(t *testing.T) {
	t.Parallel()
	tn := tenant.Tenant{ID: tenant.NewID(), Slug: "acme", Model: tenant.ModelSchema}
	for answer, want := range map[string]error{
		"acme\n":   nil,
		"  acme  ": nil,
		"ACME\n":   errNotConfirmed,
		"y\n":      errNotConfirmed,
		"":         errNotConfirmed,
	} {
		var prompt bytes.Buffer
		if err := confirm(t.Context(), strings.NewReader(answer), &prompt, tn); !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("answer %q: %v, want %v", answer, err, want)
		}
		if !strings.Contains(prompt.String(), "acme") || !strings.Contains(prompt.String(), tn.ID.String()) {
			t.Errorf("prompt %q names neither slug nor id", prompt.String())
		}
	}
}

// TestConfirmInterrupted: Ctrl-C at the prompt ends the wait at once, with
// no answer typed (the reader never returns), and deletes nothing.
func TestConfirmInterrupted(t *testing.T) {
	t.Parallel()
	tn := tenant.Tenant{ID: tenant.NewID(), Slug: "acme", Model: tenant.ModelSchema}
	r, w := io.Pipe() // no line ever comes
	defer w.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- confirm(ctx, r, io.Discard, tn) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("confirm after Ctrl-C = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("confirm still waits for a line after Ctrl-C")
	}
}

// TestStateChanges: suspend, read-only and resume change the state in the
// directory, through an admin scope that needs a reason.
func TestStateChanges(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	v := createTenant(t, db, "charlie", tenant.ModelSchema)

	_, errOut, code := cli(t, "", append([]string{"tenants", "suspend", "charlie"}, dbFlag(db)...)...)
	if code != exitUsage || !strings.Contains(errOut, "--reason") {
		t.Errorf("suspend without --reason: exit %d, %q", code, errOut)
	}
	if l := listTenants(t, db); l[0].State != "active" {
		t.Fatalf("suspend without --reason changed the state to %s", l[0].State)
	}
	for _, step := range []struct{ cmd, arg, want string }{
		{"suspend", "charlie", "suspended"},
		{"suspend", v.ID.String(), "suspended"}, // again: no harm
		{"read-only", "charlie", "read_only"},
		{"resume", "charlie", "active"},
	} {
		var got tenantView
		out := mustRun(t, append([]string{"tenants", step.cmd, step.arg, "--reason", "test " + step.cmd, "--json"}, dbFlag(db)...)...)
		decode(t, out, &got)
		if got.State != step.want || got.ID != v.ID {
			t.Errorf("%s: printed state %s of %s, want %s", step.cmd, got.State, got.ID, step.want)
		}
		if l := listTenants(t, db, "--state", step.want); len(l) != 1 || l[0].ID != v.ID {
			t.Errorf("%s: directory has %+v in state %s", step.cmd, l, step.want)
		}
	}
	out := mustRun(t, append([]string{"tenants", "suspend", "charlie", "--reason", "ticket 4711"}, dbFlag(db)...)...)
	if !strings.Contains(out, "now suspended") {
		t.Errorf("suspend prints %q", out)
	}
	// Who set the state, when and why stays with the tenant.
	out = mustRun(t, append([]string{"tenants", "show", "charlie"}, dbFlag(db)...)...)
	if !regexp.MustCompile(`State set +suspended at \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ: ticket 4711 \(by \S+\)`).MatchString(out) {
		t.Errorf("show does not say who suspended the tenant, when and why:\n%s", out)
	}
	var d tenantDetail
	decode(t, mustRun(t, append([]string{"tenants", "show", "charlie", "--json"}, dbFlag(db)...)...), &d)
	var reasons []string
	for _, s := range d.Steps {
		if s.Operation == "state" {
			reasons = append(reasons, s.Step+": "+strings.SplitN(s.Detail, " (by ", 2)[0])
		}
	}
	if want := []string{"suspended: test suspend", "suspended: test suspend", "read_only: test read-only", "active: test resume", "suspended: ticket 4711"}; !slices.Equal(reasons, want) {
		t.Errorf("state steps %q, want %q", reasons, want)
	}
}

// TestTenantsSet: set changes the named settings and keeps the others,
// default and --reset unset them, show says who set them and why, and a
// bad name or value, a missing reason or nothing to set exits 2 and
// changes nothing.
func TestTenantsSet(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	v := createTenant(t, db, "delta", tenant.ModelRow)
	settings := func() map[string]string {
		t.Helper()
		var got tenantView
		decode(t, mustRun(t, append([]string{"tenants", "show", "delta", "--json"}, dbFlag(db)...)...), &got)
		return got.Settings
	}
	for _, bad := range [][]string{
		{"delta", "statement_timeout=2s"},               // no reason
		{"delta", "--reason", "x"},                      // nothing to set
		{"delta", "nope=1", "--reason", "x"},            // unknown name
		{"delta", "work_mem=1TB", "--reason", "x"},      // bad value
		{"delta", "statement_timeout", "--reason", "x"}, // no value
		{"delta", "statement_timeout=2s", "work_mem=lots", "--reason", "x"},
	} {
		_, errOut, code := cli(t, "", append(append([]string{"tenants", "set"}, bad...), dbFlag(db)...)...)
		if code != exitUsage || errOut == "" {
			t.Errorf("set %q: exit %d, %q; want %d and a message", bad, code, errOut, exitUsage)
		}
	}
	if got := settings(); len(got) != 0 {
		t.Fatalf("refused calls left settings %v", got)
	}
	if _, _, code := cli(t, "", append([]string{"tenants", "set", "nobody-here", "work_mem=1MB", "--reason", "x"}, dbFlag(db)...)...); code != exitError {
		t.Errorf("set of an unknown tenant: exit %d, want %d", code, exitError)
	}

	var got tenantView
	decode(t, mustRun(t, append([]string{"tenants", "set", v.ID.String(), "statement_timeout=2s", "work_mem=16MB", "max_conns=2", "--reason", "ticket 4711", "--json"}, dbFlag(db)...)...), &got)
	if want := map[string]string{"statement_timeout": "2s", "work_mem": "16MB", "max_conns": "2"}; !maps.Equal(got.Settings, want) {
		t.Errorf("set printed %v, want %v", got.Settings, want)
	}
	out := mustRun(t, append([]string{"tenants", "set", "delta", "max_conns=default", "lock_timeout=500ms", "--reason", "reports fixed"}, dbFlag(db)...)...)
	if !regexp.MustCompile(`Settings +statement_timeout=2s lock_timeout=500ms work_mem=16MB\n`).MatchString(out) {
		t.Errorf("set prints:\n%s", out)
	}
	if want := map[string]string{"statement_timeout": "2s", "lock_timeout": "500ms", "work_mem": "16MB"}; !maps.Equal(settings(), want) {
		t.Errorf("after the second set: %v, want %v", settings(), want)
	}
	out = mustRun(t, append([]string{"tenants", "show", "delta"}, dbFlag(db)...)...)
	if !regexp.MustCompile(`Settings set +statement_timeout=2s lock_timeout=500ms work_mem=16MB at \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ: reports fixed \(by \S+\)`).MatchString(out) {
		t.Errorf("show does not say who set the settings, when and why:\n%s", out)
	}
	var reset tenantView // a fresh one: decoding merges into a map
	decode(t, mustRun(t, append([]string{"tenants", "set", "delta", "--reset", "work_mem=8MB", "--reason", "defaults", "--json"}, dbFlag(db)...)...), &reset)
	if want := map[string]string{"work_mem": "8MB"}; !maps.Equal(reset.Settings, want) {
		t.Errorf("--reset work_mem=8MB: %v, want %v", reset.Settings, want)
	}
}

// TestReconcileOrphan: objects whose directory entry was lost are dropped
// and reported.
func TestReconcileOrphan(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	kept := createTenant(t, db, "keeper", tenant.ModelSchema)
	lostS := createTenant(t, db, "lost-schema", tenant.ModelSchema)
	lostD := createTenant(t, db, "lost-database", tenant.ModelDatabase)
	adminExec(t, db, `DELETE FROM landlord.tenants WHERE id = ANY($1)`, []tenant.ID{lostS.ID, lostD.ID})

	var rep reconcileView
	m := decode(t, mustRun(t, append([]string{"tenants", "reconcile", "--json"}, dbFlag(db)...)...), &rep)
	if got, want := keys(m), []string{"deleted", "dropped", "failures", "moves_finished", "moves_undone", "resumed", "skipped"}; !slices.Equal(got, want) {
		t.Errorf("reconcile --json fields: %v, want %v", got, want)
	}
	want := []objectName{
		{"database", lostD.ID.DatabaseName()},
		{"role", lostD.ID.RoleName()},
		{"role", lostS.ID.RoleName()},
		{"schema", lostS.ID.SchemaName()},
	}
	slices.SortFunc(rep.Dropped, func(a, b objectName) int { return strings.Compare(a.Kind+a.Name, b.Kind+b.Name) })
	slices.SortFunc(want, func(a, b objectName) int { return strings.Compare(a.Kind+a.Name, b.Kind+b.Name) })
	if !slices.Equal(rep.Dropped, want) || len(rep.Failures) != 0 || len(rep.Resumed)+len(rep.Deleted)+len(rep.Skipped) != 0 {
		t.Errorf("reconcile: %+v; want dropped %v and nothing else", rep, want)
	}
	for _, o := range want {
		if catalogHas(t, db, o.Kind, o.Name) {
			t.Errorf("%s %s is still there", o.Kind, o.Name)
		}
	}
	if !catalogHas(t, db, "schema", kept.ID.SchemaName()) || !catalogHas(t, db, "role", kept.ID.RoleName()) {
		t.Error("reconcile dropped the objects of a tenant that is in the directory")
	}
	out := mustRun(t, append([]string{"tenants", "reconcile"}, dbFlag(db)...)...)
	if !strings.Contains(out, "Dropped orphans:") || strings.Contains(out, lostS.ID.Hex()) {
		t.Errorf("second reconcile:\n%s", out)
	}
}

// TestReconcileFailureExits1: a provisioning that cannot be finished is a
// failure of reconcile, reported and with exit code 1.
func TestReconcileFailureExits1(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	// A server no one listens on: creating a database tenant there fails
	// part way and leaves it in state provisioning.
	adminExec(t, db, `INSERT INTO landlord.servers (id, host, port, database) VALUES ('far', '127.0.0.1', 1, 'landlord')`)
	_, errOut, code := cli(t, "", append([]string{"tenants", "create", "faraway", "--model", "database", "--server", "far"}, dbFlag(db)...)...)
	if code != exitError {
		t.Fatalf("create on an unreachable server: exit %d, %s", code, errOut)
	}
	if l := listTenants(t, db, "--state", "provisioning"); len(l) != 1 || l[0].Slug != "faraway" || l[0].Server != "far" {
		t.Fatalf("provisioning tenants: %+v", l)
	}
	// resume provisions it again, rather than refusing a tenant that is
	// not suspended.
	_, errOut, code = cli(t, "", append([]string{"tenants", "resume", "faraway", "--reason", "retry"}, dbFlag(db)...)...)
	if code != exitError || !strings.Contains(errOut, "provision tenant") {
		t.Errorf("resume of a provisioning tenant: exit %d, %q", code, errOut)
	}
	out, errOut, code := cli(t, "", append([]string{"tenants", "reconcile", "--json"}, dbFlag(db)...)...)
	if code != exitError || !strings.Contains(errOut, "failed") {
		t.Errorf("reconcile with a failure: exit %d, %q", code, errOut)
	}
	var rep reconcileView
	decode(t, out, &rep)
	if len(rep.Failures) != 1 || !strings.Contains(rep.Failures[0], "faraway") {
		t.Errorf("failures %q, want one naming faraway", rep.Failures)
	}
}

// TestMigrationsFlag: --migrations opens an installation with the
// application's own tables; a bad directory is bad input.
func TestMigrationsFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "001_notes.up.sql"), []byte(`CREATE TABLE notes (
	tenant_id uuid NOT NULL, id bigint NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, id));`), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "notes.sql"), []byte(`SELECT 1`), 0o644); err != nil {
		t.Fatal(err)
	}
	db := setupDB(t, nil)
	for _, d := range []string{filepath.Join(dir, "missing"), filepath.Join(dir, "001_notes.up.sql"), bad, t.TempDir()} {
		_, errOut, code := cli(t, "", append([]string{"tenants", "list", "--migrations", d}, dbFlag(db)...)...)
		if code != exitUsage || !strings.Contains(errOut, "--migrations") {
			t.Errorf("--migrations %s: exit %d, %q", d, code, errOut)
		}
	}
	v := tenantView{}
	decode(t, mustRun(t, append([]string{"tenants", "--migrations", dir, "create", "noted", "--model", "schema", "--json"}, dbFlag(db)...)...), &v)
	conn, err := pgx.Connect(t.Context(), db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var notes, products bool
	if err := conn.QueryRow(t.Context(), `SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL`,
		v.Schema+".notes", v.Schema+".products").Scan(&notes, &products); err != nil {
		t.Fatal(err)
	}
	if !notes || products {
		t.Errorf("tenant schema has notes %v, products %v; want the --migrations tables only", notes, products)
	}
}

// TestSubcommandHelp: every tenants and servers command has examples and
// documents its exit codes and --migrations.
func TestSubcommandHelp(t *testing.T) {
	t.Parallel()
	g := &globals{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" {
			t.Errorf("%q has no examples in its help", c.CommandPath())
		}
		if !strings.Contains(c.Long, "Exit codes") || !strings.Contains(c.Long, "--migrations") {
			t.Errorf("%q does not document its exit codes and --migrations", c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	for _, c := range []*cobra.Command{newTenants(g), newServers(g)} {
		walk(c)
		if c.PersistentFlags().Lookup("migrations") == nil {
			t.Errorf("%s has no --migrations flag", c.Name())
		}
	}
	out, _, code := cli(t, "", "tenants", "delete", "--help")
	if code != 0 || !strings.Contains(out, "landlord tenants delete acme") || !strings.Contains(out, "--migrations") {
		t.Errorf("tenants delete --help: exit %d\n%s", code, out)
	}
}

// TestEmptyListSaysSo: an empty list prints a sentence, not a lone header;
// its JSON form prints nothing.
func TestEmptyListSaysSo(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	if out := mustRun(t, append([]string{"tenants", "list"}, dbFlag(db)...)...); out != "No tenants.\n" {
		t.Errorf("empty list prints %q", out)
	}
	if out := mustRun(t, append([]string{"tenants", "list", "--model", "row"}, dbFlag(db)...)...); out != "No tenants match the filters.\n" {
		t.Errorf("empty filtered list prints %q", out)
	}
	if out := mustRun(t, append([]string{"tenants", "list", "--json"}, dbFlag(db)...)...); out != "" {
		t.Errorf("empty JSON list prints %q", out)
	}
}

// TestCreateSaysWhatItStores: a slug that normalization changes is reported,
// and a tenant created without --name is named by its slug.
func TestCreateSaysWhatItStores(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	out, errOut, code := run(t, append([]string{"tenants", "create", "BadSlug", "--model", "row", "--json"}, dbFlag(db)...)...)
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, `slug "BadSlug" is stored as "badslug"`) {
		t.Errorf("no word about the changed slug on stderr: %q", errOut)
	}
	var v tenantView
	decode(t, out, &v)
	if v.Slug != "badslug" || v.DisplayName != "badslug" {
		t.Errorf("created %+v, want slug and name badslug", v)
	}
	_, errOut, _ = run(t, append([]string{"tenants", "create", "plain-slug", "--model", "row"}, dbFlag(db)...)...)
	if strings.Contains(errOut, "stored as") {
		t.Errorf("an unchanged slug was reported: %q", errOut)
	}
}
