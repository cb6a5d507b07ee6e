package pgtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/landlordhq/landlord/embedded"
)

var srv *Server

func TestMain(m *testing.M) { os.Exit(Main(m, &srv)) }

var seedSetups atomic.Int32

// seeded is a template with one table and one row, set up as pgtest_owner.
var seeded = &Template{
	Name: "pgtest_test items v1",
	Setup: func(ctx context.Context, db *DB) error {
		seedSetups.Add(1)
		conn, err := pgx.Connect(ctx, db.URL)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		var user string
		if err := conn.QueryRow(ctx, "select current_user").Scan(&user); err != nil {
			return err
		}
		if user != OwnerRole {
			return errors.New("Setup runs as " + user)
		}
		_, err = conn.Exec(ctx, `create table items (id serial primary key, name text not null);
			insert into items (name) values ('seed')`)
		return err
	},
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func itemNames(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, _ := conn.Query(t.Context(), "select name from items order by id")
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestClonesAreIsolated(t *testing.T) {
	var wrote sync.WaitGroup
	wrote.Add(2)
	for _, name := range []string{"left", "right"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			done := sync.OnceFunc(wrote.Done)
			defer done()
			db := srv.NewDB(t, seeded)
			conn := connect(t, db.URL)
			if got := itemNames(t, conn); !slices.Equal(got, []string{"seed"}) {
				t.Fatalf("clone starts with %v, want [seed]", got)
			}
			if _, err := conn.Exec(t.Context(), "insert into items (name) values ($1)", name); err != nil {
				t.Fatal(err)
			}
			// Both have written before either looks.
			done()
			wrote.Wait()
			if got := itemNames(t, conn); !slices.Equal(got, []string{"seed", name}) {
				t.Fatalf("items = %v, want [seed %s]", got, name)
			}
		})
	}
}

func TestTemplateSetUpOnce(t *testing.T) {
	var calls atomic.Int32
	tmpl := &Template{Name: "pgtest_test once", Setup: func(context.Context, *DB) error {
		calls.Add(1)
		return nil
	}}
	a, b := srv.NewDB(t, tmpl), srv.NewDB(t, tmpl)
	if a.Name == b.Name {
		t.Fatalf("two NewDB calls returned the same database %s", a.Name)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("Setup ran %d times, want 1", n)
	}
}

func TestFailingSetup(t *testing.T) {
	var calls atomic.Int32
	tmpl := &Template{Name: "pgtest_test failing", Setup: func(context.Context, *DB) error {
		calls.Add(1)
		return errors.New("migration 3 broke")
	}}
	for range 2 {
		_, err := srv.template(t.Context(), tmpl)
		if err == nil || !strings.Contains(err.Error(), "migration 3 broke") {
			t.Fatalf("template = %v, want the Setup error", err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("failing Setup ran %d times, want 1", n)
	}
	conn := connect(t, srv.AdminURL("postgres"))
	var exists bool
	if err := conn.QueryRow(t.Context(), "select exists(select from pg_database where datname = $1)",
		templateName(tmpl.Name)).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Error("half set-up template database left behind")
	}
}

func TestOwnerRole(t *testing.T) {
	t.Parallel()
	db := srv.NewDB(t, nil)
	conn := connect(t, db.URL)
	var user, owner string
	var super, bypassRLS bool
	err := conn.QueryRow(t.Context(), `select current_user, rolsuper, rolbypassrls,
			(select pg_get_userbyid(datdba) from pg_database where datname = current_database())
		from pg_roles where rolname = current_user`).Scan(&user, &super, &bypassRLS, &owner)
	if err != nil {
		t.Fatal(err)
	}
	if user != OwnerRole || owner != OwnerRole || super || bypassRLS {
		t.Fatalf("user %s owner %s rolsuper %t rolbypassrls %t; want %s owning, neither flag",
			user, owner, super, bypassRLS, OwnerRole)
	}

	probe := "pgtest_probe_" + randomHex(4)
	if _, err := conn.Exec(t.Context(), "create role "+probe); err != nil {
		t.Fatalf("owner cannot create a role: %v", err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "drop role if exists "+probe) })
	var canCreate bool
	if err := conn.QueryRow(t.Context(), "select has_schema_privilege($1, 'public', 'CREATE')", probe).Scan(&canCreate); err != nil {
		t.Fatal(err)
	}
	if canCreate {
		t.Error("PUBLIC may create in schema public")
	}
	if _, err := conn.Exec(t.Context(), "create database "+probe); err != nil {
		t.Fatalf("owner cannot create a database: %v", err)
	}
	if _, err := conn.Exec(t.Context(), "drop database "+probe); err != nil {
		t.Fatal(err)
	}
}

func TestAdminURL(t *testing.T) {
	t.Parallel()
	if srv.Embedded() == nil {
		t.Skip("the admin of an external server need not be superuser")
	}
	db := srv.NewDB(t, nil)
	conn := connect(t, db.AdminURL)
	var super bool
	var dbName string
	if err := conn.QueryRow(t.Context(), "select rolsuper, current_database() from pg_roles where rolname = current_user").Scan(&super, &dbName); err != nil {
		t.Fatal(err)
	}
	if !super || dbName != db.Name {
		t.Fatalf("AdminURL: rolsuper %t database %s, want superuser in %s", super, dbName, db.Name)
	}
}

func TestDatabaseDroppedAfterPassingTest(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) { name = srv.NewDB(t, nil).Name })
	conn := connect(t, srv.AdminURL("postgres"))
	var exists bool
	if err := conn.QueryRow(t.Context(), "select exists(select from pg_database where datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatalf("database %s of a passing test not dropped", name)
	}
}

func TestKeepDecision(t *testing.T) {
	if keepDatabase(false) || !keepDatabase(true) {
		t.Error("keepDatabase must keep exactly the databases of failed tests")
	}
	for _, tc := range []struct {
		code, kept int
		want       bool
	}{
		{0, 0, false},
		{1, 0, true},
		{1, 2, true},
		{0, 1, true},
	} {
		if got := keepServer(tc.code, tc.kept); got != tc.want {
			t.Errorf("keepServer(%d, %d) = %t, want %t", tc.code, tc.kept, got, tc.want)
		}
	}
}

// TestExternalServer uses the test binary's server as if it were named by
// LANDLORD_DATABASE_URL, like a second test binary sharing it.
func TestExternalServer(t *testing.T) {
	if srv.Embedded() == nil {
		t.Skip("already running against an external server")
	}
	ext, err := startExternal(t.Context(), srv.AdminURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var db *DB
	t.Run("clone", func(t *testing.T) {
		db = ext.NewDB(t, seeded)
		if got := itemNames(t, connect(t, db.URL)); !slices.Equal(got, []string{"seed"}) {
			t.Fatalf("items = %v", got)
		}
	})
	if n := seedSetups.Load(); n != 1 {
		t.Errorf("seeded Setup ran %d times; a second binary must reuse the template", n)
	}
	leftover := ext.db("pgtest_" + randomHex(8))
	if err := ext.clone(t.Context(), leftover.Name, templateName(seeded.Name)); err != nil {
		t.Fatal(err)
	}
	if err := ext.Close(); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, srv.AdminURL("postgres"))
	var n int
	if err := conn.QueryRow(t.Context(), "select count(*) from pg_database where datname = any($1)",
		[]string{db.Name, leftover.Name}).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d databases left after Close of an external server", n)
	}
	if err := conn.Ping(t.Context()); err != nil {
		t.Errorf("Close of an external server affected the server: %v", err)
	}
}

func TestConnStrings(t *testing.T) {
	for _, tc := range []struct{ base, user, pw, db, want string }{
		{"postgres://admin:secret@db.example:5433/main?sslmode=require", OwnerRole, "pw", "t1",
			"postgres://pgtest_owner:pw@db.example:5433/t1?sslmode=require"},
		{"postgres://admin:secret@db.example/main", "", "", "t1", "postgres://admin:secret@db.example/t1"},
		{"postgres://postgres@/postgres?host=/tmp/x&port=5", OwnerRole, "", "t1",
			"postgres://pgtest_owner@/t1?host=/tmp/x&port=5"},
		{"host=db user=admin password=secret dbname=main", OwnerRole, "", "t1",
			"host=db user=admin password=secret dbname=main user='pgtest_owner' password='' dbname='t1'"},
	} {
		if got := rewriteConnString(tc.base, tc.user, tc.pw, tc.db); got != tc.want {
			t.Errorf("rewriteConnString(%q) = %q, want %q", tc.base, got, tc.want)
		}
	}
	for _, conn := range []string{
		"postgres://u:secret@h/db",
		"postgres://u@h/db?password=secret&sslmode=disable",
		"host=h password='se cret' user=u",
		"host=h password=secret",
	} {
		if got := redact(conn); strings.Contains(got, "secret") || strings.Contains(got, "cret") {
			t.Errorf("redact(%q) = %q", conn, got)
		}
	}
}

// sharedTempDir returns a t.TempDir that a server's OS user can enter.
func sharedTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCleanStale(t *testing.T) {
	t.Parallel()
	root := sharedTempDir(t)
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	dead := exited.Process.Pid

	mk := func(m *marker) string {
		dir, err := os.MkdirTemp(root, dirPrefix+"*")
		if err != nil {
			t.Fatal(err)
		}
		if m != nil {
			if err := writeMarker(dir, *m); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	crashed := mk(&marker{PID: dead})
	running := mk(&marker{PID: dead})
	ownerAlive := mk(&marker{PID: os.Getpid()})
	keptDir := mk(&marker{PID: dead, Kept: true})
	noMarker := mk(nil)
	if err := os.Chmod(running, 0o755); err != nil {
		t.Fatal(err)
	}

	// A crashed binary's server still running.
	emb, err := embedded.Start(t.Context(), embedded.Config{DataDir: filepath.Join(running, dataSubdir), Temporary: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emb.Stop(context.Background()) })

	removed := cleanStale(t.Context(), root)
	slices.Sort(removed)
	want := []string{crashed, running}
	slices.Sort(want)
	if !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	for _, dir := range []string{crashed, running} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there: %v", dir, err)
		}
	}
	for _, dir := range []string{ownerAlive, keptDir, noMarker} {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s was touched: %v", dir, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := emb.Stop(ctx); err != nil {
		t.Errorf("Stop after cleanStale: %v", err)
	}
	if processAlive(emb.PID()) {
		t.Errorf("server of the crashed binary still running (pid %d)", emb.PID())
	}
}

// TestMainWithoutBinaries runs this test binary again with nowhere to find
// server binaries: Main must fail loudly instead of skipping.
func TestMainWithoutBinaries(t *testing.T) {
	t.Parallel()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, EnvDatabaseURL+"=")
	}), embedded.EnvBinDir+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Fatalf("exit: %v, want code 1\n%s", err, out)
	}
	if !strings.Contains(string(out), embedded.ErrNoBinaries.Error()) {
		t.Fatalf("output lacks %q:\n%s", embedded.ErrNoBinaries, out)
	}
}
