package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/fleet"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

var srv *pgtest.Server

// The fault tests run the migrator as a child process of the test binary:
// with childEnv set, TestMain runs one fleet Up instead of the tests, so the
// test can kill it with SIGKILL at any point.
const (
	childEnv      = "FLEET_TEST_CHILD"
	childURL      = "FLEET_TEST_URL"
	childDir      = "FLEET_TEST_MIGRATIONS"
	childParallel = "FLEET_TEST_PARALLEL"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(pgtest.Main(m, &srv))
}

// runChild is the migrator process of the fault tests. It logs every applied
// step to stdout, which the parent reads to pick the moment to kill it.
func runChild() int {
	ctx := context.Background()
	set, err := migration.Load(os.DirFS(os.Getenv(childDir)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	pool, err := pgxpool.New(ctx, os.Getenv(childURL))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer pool.Close()
	prov, err := provision.New(ctx, pool, set, provision.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	parallel, _ := strconv.Atoi(os.Getenv(childParallel))
	f, err := fleet.New(prov, fleet.Config{
		Parallel:        parallel,
		ContinueOnError: true,
		Logger:          slog.New(slog.NewTextHandler(os.Stdout, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if _, err := f.Up(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// Migration sets. Every step fails when run twice (plain CREATE and ADD
// COLUMN), so a step applied twice shows as a failure.
const itemsSQL = `CREATE TABLE items (
	tenant_id uuid   NOT NULL,
	id        bigint NOT NULL,
	qty       integer NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, id)
);`

// step is one migration of the test sets, with a probe that tells whether
// its DDL is present in a schema.
type step struct {
	name, sql string
	probe     string // SQL returning a boolean, $1 = schema
}

var steps = []step{
	{"001_items.up.sql", itemsSQL, `SELECT to_regclass(format('%I.items', $1::text)) IS NOT NULL`},
	{"002_orders.up.sql", `CREATE TABLE orders (tenant_id uuid NOT NULL, id bigint NOT NULL, item_id bigint NOT NULL,
		PRIMARY KEY (tenant_id, id), FOREIGN KEY (tenant_id, item_id) REFERENCES items (tenant_id, id));`,
		`SELECT to_regclass(format('%I.orders', $1::text)) IS NOT NULL`},
	{"003_note.up.sql", `ALTER TABLE items ADD COLUMN note text;`,
		`SELECT EXISTS (SELECT FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'items' AND column_name = 'note')`},
	{"004_qty_index.up.sql", `CREATE INDEX items_qty ON items (tenant_id, qty);`,
		`SELECT to_regclass(format('%I.items_qty', $1::text)) IS NOT NULL`},
	{"005_returns.up.sql", `CREATE TABLE returns (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));`,
		`SELECT to_regclass(format('%I.returns', $1::text)) IS NOT NULL`},
}

// checkStep adds a constraint that existing rows may violate.
var checkStep = step{"002_qty_nonneg.up.sql", `ALTER TABLE items ADD CONSTRAINT items_qty_nonneg CHECK (qty >= 0);`,
	`SELECT EXISTS (SELECT FROM pg_constraint WHERE conname = 'items_qty_nonneg' AND connamespace = $1::regnamespace)`}

// files returns the first n steps as a file system.
func files(n int) fstest.MapFS {
	return filesOf(steps[:n]...)
}

func filesOf(ss ...step) fstest.MapFS {
	fsys := fstest.MapFS{}
	for _, s := range ss {
		fsys[s.name] = &fstest.MapFile{Data: []byte(s.sql)}
	}
	return fsys
}

func load(t testing.TB, fsys fs.FS) *migration.Set {
	t.Helper()
	set, err := migration.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// installed is a control database bootstrapped with the first step; every
// test gets a clone of it.
var installed = &pgtest.Template{
	Name: "landlord-fleet-" + must(migration.Load(files(1))).Hash()[:12] + "-" + directory.Migrations().Hash()[:12],
	Setup: func(ctx context.Context, db *pgtest.DB) error {
		pool, err := pgxpool.New(ctx, db.URL)
		if err != nil {
			return err
		}
		defer pool.Close()
		_, err = provision.New(ctx, pool, must(migration.Load(files(1))), provision.Config{})
		return err
	},
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// env is one test's installation.
type env struct {
	db   *pgtest.DB
	pool *pgxpool.Pool // control database, as the administrator
	prov *provision.Provisioner
}

func setup(t testing.TB) *env {
	t.Helper()
	db := srv.NewDB(t, installed)
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	prov, err := provision.New(t.Context(), pool, load(t, files(1)), provision.Config{})
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	e := &env{db: db, pool: pool, prov: prov}
	t.Cleanup(func() {
		if !t.Failed() {
			dropInstallationObjects(t, db.AdminURL, prov)
		}
	})
	return e
}

// fleet returns a Fleet over the installation with the migrations fsys.
func (e *env) fleet(t testing.TB, fsys fs.FS, cfg fleet.Config) *fleet.Fleet {
	t.Helper()
	prov, err := provision.New(t.Context(), e.pool, load(t, fsys), provision.Config{})
	if err != nil {
		t.Fatalf("open installation: %v", err)
	}
	f, err := fleet.New(prov, cfg)
	if err != nil {
		t.Fatalf("fleet.New: %v", err)
	}
	return f
}

// dropInstallationObjects removes the databases and roles the test's
// installation made, which outlive its control database. It connects as the
// server's administrator, so that it does not depend on the code under test.
func dropInstallationObjects(t testing.TB, url string, prov *provision.Provisioner) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("clean up: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `
		SELECT stmt FROM (
			SELECT 1 AS ord, 'DROP DATABASE IF EXISTS ' || quote_ident(datname) || ' WITH (FORCE)' AS stmt FROM pg_database
			WHERE shobj_description(oid, 'pg_database') LIKE $1 OR datname = $2
			UNION ALL
			SELECT 2, 'DROP SCHEMA IF EXISTS ' || quote_ident(nspname) || ' CASCADE' FROM pg_namespace
			WHERE obj_description(oid, 'pg_namespace') LIKE $1
			UNION ALL
			SELECT 3, 'DROP ROLE IF EXISTS ' || quote_ident(rolname) FROM pg_roles
			WHERE shobj_description(oid, 'pg_authid') LIKE $1
		) s ORDER BY ord`,
		"% installation "+prov.Installation().ID.String(), prov.TemplateDatabase())
	stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Errorf("clean up: %v", err)
		return
	}
	// Databases and schemas first: a role with privileges on them cannot go.
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Errorf("clean up: %s: %v", s, err)
		}
	}
}

func (e *env) create(t testing.TB, slug string, m tenant.Model) tenant.Tenant {
	t.Helper()
	tn, err := e.prov.Create(t.Context(), provision.Request{Slug: slug, Model: m})
	if err != nil {
		t.Fatalf("create %s tenant %q: %v", m, slug, err)
	}
	return tn
}

// connect opens an administrator connection to database ("" = control).
func (e *env) connect(t testing.TB, database string) *pgx.Conn {
	t.Helper()
	if database == "" {
		database = e.db.Name
	}
	cfg, err := e.prov.ConnConfig(t.Context(), directory.DefaultServer, database, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("connect to %s: %v", database, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// where returns the database and schema holding a tenant's tables.
func (e *env) where(tn tenant.Tenant) (database, schema string) {
	if tn.Model == tenant.ModelDatabase {
		return tn.Database, tn.Schema
	}
	return e.db.Name, tn.Schema
}

// insertItem writes an item as tn, as the owner with the tenant's context,
// so that row-level security admits it.
func (e *env) insertItem(t testing.TB, tn tenant.Tenant, id, qty int) {
	t.Helper()
	database, schema := e.where(tn)
	conn := e.connect(t, database)
	err := pgx.BeginFunc(t.Context(), conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), `SET LOCAL ROLE landlord_owner`); err != nil {
			return err
		}
		if _, err := tx.Exec(t.Context(), `SELECT landlord_context.enter($1)`, tn.ID); err != nil {
			return err
		}
		_, err := tx.Exec(t.Context(), fmt.Sprintf(`INSERT INTO %s (tenant_id, id, qty) VALUES ($1, $2, $3)`, ident.Quote(schema, "items")), tn.ID, id, qty)
		return err
	})
	if err != nil {
		t.Fatalf("insert item into %s: %v", tn.Slug, err)
	}
}

// fixItems sets every negative quantity of tn to zero.
func (e *env) fixItems(t testing.TB, tn tenant.Tenant) {
	t.Helper()
	database, schema := e.where(tn)
	conn := e.connect(t, database)
	err := pgx.BeginFunc(t.Context(), conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), `SET LOCAL ROLE landlord_owner; SELECT landlord_context.enter(`+ident.Literal(tn.ID.String())+`)`); err != nil {
			return err
		}
		_, err := tx.Exec(t.Context(), fmt.Sprintf(`UPDATE %s SET qty = 0 WHERE qty < 0`, ident.Quote(schema, "items")))
		return err
	})
	if err != nil {
		t.Fatalf("fix items of %s: %v", tn.Slug, err)
	}
}

// place is where one target's tables live, for the checks below.
type place struct {
	name             string
	database, schema string
}

func (e *env) places(tenants []tenant.Tenant) []place {
	ps := []place{{"shared", e.db.Name, provision.SharedSchema}}
	for _, tn := range tenants {
		if tn.Model == tenant.ModelRow {
			continue
		}
		d, s := e.where(tn)
		ps = append(ps, place{tn.Slug, d, s})
	}
	return ps
}

// ledger returns the versions recorded for schema in database, in order,
// with duplicates (there must be none).
func (e *env) ledger(t testing.TB, database, schema string) []int {
	t.Helper()
	conn := e.connect(t, database)
	rows, _ := conn.Query(t.Context(), `SELECT version FROM landlord.target_migrations WHERE target = $1 ORDER BY version`, schema)
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("ledger of %s.%s: %v", database, schema, err)
	}
	return vs
}

// checkConsistent asserts, for every place and every step of ss, that the
// step's DDL is present exactly when its ledger row is, that the ledger has
// one row per version and no gap, and returns each place's version.
func (e *env) checkConsistent(t testing.TB, ps []place, ss []step) map[string]int {
	t.Helper()
	versions := map[string]int{}
	conns := map[string]*pgx.Conn{}
	for _, p := range ps {
		conn := conns[p.database]
		if conn == nil {
			conn = e.connect(t, p.database)
			conns[p.database] = conn
		}
		rows, _ := conn.Query(t.Context(), `SELECT version FROM landlord.target_migrations WHERE target = $1 ORDER BY version`, p.schema)
		vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatalf("%s: ledger: %v", p.name, err)
		}
		for i, v := range vs {
			if v != i+1 {
				t.Fatalf("%s: ledger %v is not one row per version from 1 up", p.name, vs)
			}
		}
		for i, s := range ss {
			var present bool
			if err := conn.QueryRow(t.Context(), s.probe, p.schema).Scan(&present); err != nil {
				t.Fatalf("%s: probe %s: %v", p.name, s.name, err)
			}
			if recorded := i < len(vs); present != recorded {
				t.Fatalf("%s: %s: DDL present=%t but ledger row present=%t (ledger %v)", p.name, s.name, present, recorded, vs)
			}
		}
		versions[p.name] = len(vs)
	}
	return versions
}

// count runs a query returning one integer on the control database.
func (e *env) count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// schemaVersion returns the directory's schema_version of tn.
func (e *env) schemaVersion(t testing.TB, tn tenant.Tenant) int {
	return e.count(t, `SELECT schema_version FROM landlord.tenants WHERE id = $1`, tn.ID)
}

// targetRecord is one row of landlord.migration_targets.
type targetRecord struct {
	run      int
	status   string
	version  int
	attempts int
	err      string
}

func (e *env) records(t testing.TB) map[string]targetRecord {
	t.Helper()
	rows, _ := e.pool.Query(t.Context(), `SELECT target, run_id, status, version, attempts, error FROM landlord.migration_targets`)
	out := map[string]targetRecord{}
	var key string
	var r targetRecord
	if _, err := pgx.ForEachRow(rows, []any{&key, &r.run, &r.status, &r.version, &r.attempts, &r.err}, func() error {
		out[key] = r
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// key is the fleet key of a tenant's target.
func (e *env) key(tn tenant.Tenant) string {
	d, s := e.where(tn)
	return directory.DefaultServer + "/" + d + "/" + s
}

func (e *env) sharedKey() string {
	return directory.DefaultServer + "/" + e.db.Name + "/" + provision.SharedSchema
}

// writeDir writes fsys into a new directory and returns its path.
func writeDir(t testing.TB, fsys fstest.MapFS) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range slices.Sorted(maps.Keys(fsys)) {
		if err := os.WriteFile(filepath.Join(dir, name), fsys[name].Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// isErr reports whether err matches every target.
func isErr(err error, targets ...error) bool {
	for _, t := range targets {
		if !errors.Is(err, t) {
			return false
		}
	}
	return err != nil
}

// waitFor polls cond until it holds, failing the test with what after a
// minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("after a minute: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
