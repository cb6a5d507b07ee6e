package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/fleet"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// migFiles are the migration files of these tests, by version.
var migFiles = []struct{ name, sql string }{
	{"001_items.up.sql", `CREATE TABLE items (tenant_id uuid NOT NULL, id bigint NOT NULL, qty integer NOT NULL DEFAULT 0, PRIMARY KEY (tenant_id, id));`},
	{"002_note.up.sql", `ALTER TABLE items ADD COLUMN note text;`},
	{"003_qty_index.up.sql", `CREATE INDEX items_qty ON items (tenant_id, qty);`},
}

// migCheck adds a constraint that bad rows violate.
var migCheck = struct{ name, sql string }{"004_qty_nonneg.up.sql", `ALTER TABLE items ADD CONSTRAINT items_qty_nonneg CHECK (qty >= 0);`}

// migDir writes the first n migration files (and extra ones) into a new
// directory.
func migDir(t *testing.T, n int, extra ...struct{ name, sql string }) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range append(slices.Clone(migFiles[:n]), extra...) {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.sql), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// migEnv is an installation at version 1 with two schema tenants and a row
// tenant.
type migEnv struct {
	db       *pgtest.DB
	pool     *pgxpool.Pool
	prov     *provision.Provisioner
	one, two tenant.Tenant
}

func migSetup(t *testing.T) *migEnv {
	t.Helper()
	ctx := t.Context()
	db := server.NewDB(t, nil)
	pool, err := pgxpool.New(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	set, err := migration.Load(os.DirFS(migDir(t, 1)))
	if err != nil {
		t.Fatal(err)
	}
	prov, err := provision.New(ctx, pool, set, provision.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := &migEnv{db: db, pool: pool, prov: prov}
	t.Cleanup(func() {
		if !t.Failed() {
			migDropObjects(t, db.AdminURL, prov.Installation().ID)
		}
	})
	for i, slug := range []string{"shop-one", "shop-two", "row-shop"} {
		m := tenant.ModelSchema
		if i == 2 {
			m = tenant.ModelRow
		}
		tn, err := prov.Create(ctx, provision.Request{Slug: slug, Model: m})
		if err != nil {
			t.Fatal(err)
		}
		switch i {
		case 0:
			e.one = tn
		case 1:
			e.two = tn
		}
	}
	return e
}

// migDropObjects removes the schemas and roles the installation made.
func migDropObjects(t *testing.T, url string, inst tenant.ID) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("clean up: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT stmt FROM (
		SELECT 1 AS ord, 'DROP SCHEMA IF EXISTS ' || quote_ident(nspname) || ' CASCADE' AS stmt FROM pg_namespace
		WHERE obj_description(oid, 'pg_namespace') LIKE $1
		UNION ALL
		SELECT 2, 'DROP ROLE IF EXISTS ' || quote_ident(rolname) FROM pg_roles
		WHERE shobj_description(oid, 'pg_authid') LIKE $1) s ORDER BY ord`, "% installation "+inst.String())
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

// migRun runs landlord migrate with args against the installation and
// returns stdout, stderr and the exit code main would use.
func (e *migEnv) migRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := newMigrate(&globals{databaseURL: e.db.URL})
	cmd.SetArgs(args)
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	code := 0
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		code = exitCode(err)
		stderr.WriteString(err.Error())
	}
	return stdout.String(), stderr.String(), code
}

func (e *migEnv) ledger(t *testing.T, schema string) []int {
	t.Helper()
	rows, _ := e.pool.Query(t.Context(), `SELECT version FROM landlord.target_migrations WHERE target = $1 ORDER BY version`, schema)
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// targets is the number of targets of the installation: the two schema
// tenants, the shared schema, and the templates provisioning built.
func (e *migEnv) targets(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(t.Context(), `SELECT 3 + (SELECT count(*) FROM pg_namespace WHERE nspname = $1)
		+ (SELECT count(*) FROM pg_database WHERE datname = $2)`, provision.TemplateSchema, e.prov.TemplateDatabase()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *migEnv) runs(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM landlord.migration_runs`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// setQty writes an item with quantity qty into tn's schema, or updates it.
func (e *migEnv) setQty(t *testing.T, tn tenant.Tenant, qty int) {
	t.Helper()
	err := pgx.BeginFunc(t.Context(), e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), `SET LOCAL ROLE landlord_owner`); err != nil {
			return err
		}
		if _, err := tx.Exec(t.Context(), `SELECT landlord_context.enter($1)`, tn.ID); err != nil {
			return err
		}
		_, err := tx.Exec(t.Context(), fmt.Sprintf(`INSERT INTO %s.items (id, qty) VALUES (1, $1) ON CONFLICT (tenant_id, id) DO UPDATE SET qty = $1`,
			ident.Quote(tn.Schema)), qty)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigrateCommands(t *testing.T) {
	t.Parallel()
	e := migSetup(t)
	dir := migDir(t, 3)

	n := e.targets(t)
	out, errOut, code := e.migRun(t, "plan", "--migrations", dir)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d of %d selected targets to migrate", n, n)) || !strings.Contains(out, "shop-one") || !strings.Contains(out, "2, 3") {
		t.Fatalf("plan: exit %d\n%s%s", code, out, errOut)
	}
	if got := e.ledger(t, e.one.Schema); !slices.Equal(got, []int{1}) || e.runs(t) != 0 {
		t.Fatalf("plan changed something: ledger %v, %d runs", got, e.runs(t))
	}

	out, errOut, code = e.migRun(t, "up", "--migrations", dir, "--parallel", "2")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("done: %d done, 0 failed", n)) {
		t.Fatalf("up: exit %d\n%s%s", code, out, errOut)
	}
	// Not a terminal: a plain progress line on stderr.
	if !strings.Contains(errOut, fmt.Sprintf("%d of %d finished (%d done, 0 failed)", n, n, n)) {
		t.Errorf("up: no progress line on stderr:\n%s", errOut)
	}
	for _, tn := range []tenant.Tenant{e.one, e.two} {
		if got := e.ledger(t, tn.Schema); !slices.Equal(got, []int{1, 2, 3}) {
			t.Errorf("%s: ledger %v after up", tn.Slug, got)
		}
	}

	out, errOut, code = e.migRun(t, "up", "--migrations", dir)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("nothing to do: all %d selected targets are at version 3", n)) {
		t.Errorf("second up: exit %d\n%s%s", code, out, errOut)
	}

	out, errOut, code = e.migRun(t, "status", "--migrations", dir, "--json")
	if code != 0 {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	var st fleet.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st.Head != 3 || st.Summary.AtHead != n || st.Summary.Targets != n || st.LastRun == nil || st.LastRun.Status != fleet.RunDone {
		t.Errorf("status --json: %+v", st)
	}

	out, _, code = e.migRun(t, "status", "--migrations", dir, "--all", "--tenant", "shop-one", "--tenant", e.two.ID.String())
	if code != 0 || !strings.Contains(out, "2 targets, 2 at the head") || !strings.Contains(out, "shop-two") || !strings.Contains(out, "shop-one") {
		t.Errorf("status --all --model schema: exit %d\n%s", code, out)
	}

	// One more migration for one tenant, as JSON.
	dir4 := migDir(t, 3, migCheck)
	out, errOut, code = e.migRun(t, "up", "--migrations", dir4, "--tenant", "shop-two", "--json")
	if code != 0 {
		t.Fatalf("up --tenant: exit %d\n%s%s", code, out, errOut)
	}
	var rep fleet.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("up --json: %v\n%s", err, out)
	}
	if len(rep.Targets) != 1 || rep.Targets[0].Tenant != e.two.ID || !slices.Equal(rep.Targets[0].Applied, []int{4}) {
		t.Errorf("up --tenant shop-two --json: %+v", rep)
	}
	// The rest is behind: status exits 1 and lists it.
	out, _, code = e.migRun(t, "status", "--migrations", dir4)
	if code != exitError || !strings.Contains(out, "shop-one") || strings.Contains(out, "shop-two") {
		t.Errorf("status with targets behind: exit %d\n%s", code, out)
	}
}

// TestMigrateFailure: a target whose data violates a new constraint makes up
// exit 1 naming it; status shows the error; after a fix, up finishes it.
func TestMigrateFailure(t *testing.T) {
	t.Parallel()
	e := migSetup(t)
	e.setQty(t, e.two, -5)
	dir := migDir(t, 3, migCheck)
	out, errOut, code := e.migRun(t, "up", "--migrations", dir, "--continue-on-error")
	if code != exitError || !strings.Contains(out, "shop-two") || !strings.Contains(out, "items_qty_nonneg") || !strings.Contains(errOut, "targets failed: 1 of") {
		t.Fatalf("up with bad data: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = e.migRun(t, "status", "--migrations", dir)
	if code != exitError || !strings.Contains(out, "1 behind") || !strings.Contains(out, "items_qty_nonneg") || !strings.Contains(out, "failed (run") {
		t.Fatalf("status after a failure: exit %d\n%s", code, out)
	}
	e.setQty(t, e.two, 5)
	out, errOut, code = e.migRun(t, "up", "--migrations", dir)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("1 done, 0 failed, 0 not started, %d already at version 4", e.targets(t)-1)) {
		t.Fatalf("up after the fix: exit %d\n%s%s", code, out, errOut)
	}
}

// TestMigrateStatusAfterFirstDatabaseTenant: the first database tenant of a
// new installation builds the template database, which then stays closed
// to connections. Status must know its version without a run having
// recorded it: every target at the head, none unreadable, exit 0.
func TestMigrateStatusAfterFirstDatabaseTenant(t *testing.T) {
	t.Parallel()
	db := setupDB(t, nil)
	mustRun(t, append([]string{"tenants", "create", "first", "--model", "database"}, dbFlag(db)...)...)

	out, errOut, code := cli(t, "", append([]string{"migrate", "status", "--json"}, dbFlag(db)...)...)
	if code != 0 {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	var st statusView
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st.Summary.AtHead != st.Summary.Targets || st.Summary.Unreadable != 0 || st.LastRun != nil {
		t.Errorf("status after the first database tenant: %+v, last run %+v; want every target at the head and no run", st.Summary, st.LastRun)
	}
	var templateDB bool
	for _, ts := range st.Targets {
		if ts.Version == nil || *ts.Version != st.Head || ts.Problem != "" || len(ts.Pending) != 0 {
			t.Errorf("target %s: version %v of %d, pending %v, problem %q", ts.Key, ts.Version, st.Head, ts.Pending, ts.Problem)
		}
		templateDB = templateDB || (ts.Kind == fleet.KindTemplate && ts.Database != db.Name)
	}
	if !templateDB {
		t.Errorf("status lists no template database: %+v", st.Targets)
	}

	out, errOut, code = cli(t, "", append([]string{"migrate", "status"}, dbFlag(db)...)...)
	n := st.Summary.Targets
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d targets, %d at the head, 0 behind, 0 unreadable", n, n)) {
		t.Errorf("status as text: exit %d\n%s%s", code, out, errOut)
	}
}

// TestMigrateBadInput: every kind of bad input exits 2 with a clear message
// and records nothing.
func TestMigrateBadInput(t *testing.T) {
	t.Parallel()
	e := migSetup(t)
	dir := migDir(t, 2)
	if _, errOut, code := e.migRun(t, "up", "--migrations", dir, "--tenant", "shop-one"); code != 0 {
		t.Fatal(errOut)
	}
	runs := e.runs(t)

	malformed := migDir(t, 1)
	if err := os.WriteFile(filepath.Join(malformed, "2_Add Note.sql"), []byte("SELECT 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := migDir(t, 3)
	if err := os.WriteFile(filepath.Join(changed, migFiles[1].name), []byte(migFiles[1].sql+"\n-- edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"plan", "--migrations", dir, "--tenant", "Bad Slug!"}, "slug"},
		{[]string{"up", "--migrations", dir, "--tenant", ""}, "--tenant"},
		{[]string{"up", "--migrations", malformed}, "2_Add Note.sql"},
		{[]string{"up", "--migrations", filepath.Join(dir, "missing")}, "--migrations"},
		{[]string{"up", "--migrations", changed}, "changed after it was applied"},
		{[]string{"plan", "--migrations", changed}, "changed after it was applied"},
		{[]string{"up", "--migrations", dir, "--parallel", "0"}, "--parallel"},
		{[]string{"up", "--migrations", dir, "--canary", "-1"}, "--canary"},
		{[]string{"up", "--migrations", dir, "--model", "rows"}, "--model"},
		{[]string{"up", "--migrations", dir, "--lock-timeout", "soon"}, "lock-timeout"},
		{[]string{"up", "--no-such-flag"}, "no-such-flag"},
		{[]string{"up", "extra"}, "extra"},
	} {
		out, errOut, code := e.migRun(t, c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit %d naming %q", c.args, code, errOut, out, exitUsage, c.want)
		}
	}
	// A tenant that is not in the directory fails the operation (exit 1),
	// as for every command, and records nothing either.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "--migrations", dir, "--tenant", "no-such-shop"}, `tenant "no-such-shop"`},
		{[]string{"status", "--migrations", dir, "--tenant", "no-such-shop"}, "no-such-shop"},
	} {
		out, errOut, code := e.migRun(t, c.args...)
		if code != exitError || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit %d naming %q", c.args, code, errOut, out, exitError, c.want)
		}
	}
	if n := e.runs(t); n != runs {
		t.Errorf("bad input recorded %d runs", n-runs)
	}
	if got := e.ledger(t, e.two.Schema); !slices.Equal(got, []int{1}) {
		t.Errorf("bad input migrated a target: %v", got)
	}
}

func TestMigrateHelp(t *testing.T) {
	t.Parallel()
	cmd := newMigrate(&globals{})
	if cmd.Example == "" {
		t.Error("migrate has no examples")
	}
	var names []string
	for _, c := range cmd.Commands() {
		names = append(names, c.Name())
		if c.Example == "" {
			t.Errorf("migrate %s has no examples", c.Name())
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"plan", "status", "up"}) {
		t.Errorf("subcommands %v", names)
	}
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"up", "--help"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--migrations", "demo", "--canary", "--continue-on-error", "--lock-timeout", "--parallel", "--tenant", "--model", "--json"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("migrate up --help does not mention %s", want)
		}
	}
}

func TestMigrateVersions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   []int
		want string
	}{{nil, "-"}, {[]int{4}, "4"}, {[]int{2, 3}, "2, 3"}, {[]int{2, 3, 4, 5}, "2-5"}, {[]int{2, 4, 5}, "2, 4, 5"}} {
		if got := migrateVersions(c.in); got != c.want {
			t.Errorf("migrateVersions(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestOlderMigrationsRefused: after the fleet moved to version 3, commands
// given the older set refuse with exit 2 and say which versions differ,
// instead of calling the fleet at the head or creating a tenant of the old
// shape; the library refuses to create tenants with it too.
func TestOlderMigrationsRefused(t *testing.T) {
	t.Parallel()
	e := migSetup(t)
	newer, older := migDir(t, 3), migDir(t, 1)
	if out, errOut, code := e.migRun(t, "up", "--migrations", newer); code != 0 {
		t.Fatalf("up: exit %d\n%s%s", code, out, errOut)
	}
	for _, args := range [][]string{
		{"migrate", "status", "--migrations", older},
		{"migrate", "up", "--migrations", older},
		{"tenants", "create", "late-comer", "--model", "schema", "--migrations", older},
		{"tenants", "list", "--migrations", older},
	} {
		_, errOut, code := run(t, append(args, "--database-url", e.db.URL)...)
		if code != exitUsage || !strings.Contains(errOut, "at version 3 (003_qty_index.up.sql)") || !strings.Contains(errOut, "end at version 1") {
			t.Errorf("%v: exit %d, %q; want 2 and both versions named", args, code, errOut)
		}
	}
	ll, err := landlord.Open(t.Context(), e.db.URL, os.DirFS(older), landlord.Config{})
	if err != nil {
		t.Fatalf("open with the older set (serving traffic stays allowed): %v", err)
	}
	defer ll.Close()
	if _, err := ll.CreateTenant(t.Context(), provision.Request{Slug: "late-comer", Model: tenant.ModelRow}); !errors.Is(err, provision.ErrOlderMigrations) {
		t.Errorf("create with the older set: %v, want ErrOlderMigrations", err)
	}
	if _, err := ll.Tenant(t.Context(), e.one.ID); err != nil {
		t.Errorf("reading the directory with the older set: %v", err)
	}
	if out, errOut, code := run(t, "tenants", "create", "late-comer", "--model", "schema", "--migrations", newer, "--database-url", e.db.URL); code != 0 {
		t.Errorf("create with the installation's set: exit %d\n%s%s", code, out, errOut)
	}
}

// TestBadMigrationCaughtBeforeUp: a migration that breaks the table shape is
// refused by plan and by up before any target runs it, with exit 2 and the
// migration named.
func TestBadMigrationCaughtBeforeUp(t *testing.T) {
	t.Parallel()
	e := migSetup(t)
	bad := migDir(t, 1, struct{ name, sql string }{"002_no_tenant.up.sql", `CREATE TABLE notes (id bigint PRIMARY KEY, body text);`})
	for _, sub := range []string{"plan", "up"} {
		_, errOut, code := e.migRun(t, sub, "--migrations", bad)
		if code != exitUsage || !strings.Contains(errOut, "002_no_tenant.up.sql") || !strings.Contains(errOut, "tenant_id") {
			t.Errorf("%s: exit %d, %q; want 2 and the bad migration named", sub, code, errOut)
		}
	}
	if got := e.ledger(t, e.one.Schema); !slices.Equal(got, []int{1}) || e.runs(t) != 0 {
		t.Fatalf("a bad migration reached a target: ledger %v, %d runs", got, e.runs(t))
	}
	var left int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'landlord_rehearsal%'`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("rehearsal schemas left: %d (%v)", left, err)
	}
}
