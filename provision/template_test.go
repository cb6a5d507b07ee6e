package provision

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/internal/shopschema"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/tenant"
)

// shopMigrations is a realistic store schema: ten tables in five migrations,
// with an enum, a trigger function, sequences, a view, an extra policy, a
// dropped column and comments. With upTo > 0 only the first upTo files.
func shopMigrations(upTo int) *migration.Set {
	sub := shopschema.FS()
	if upTo > 0 {
		entries, err := fs.ReadDir(sub, ".")
		if err != nil {
			panic(err)
		}
		m := fstest.MapFS{}
		for _, e := range entries[:upTo] {
			b, err := fs.ReadFile(sub, e.Name())
			if err != nil {
				panic(err)
			}
			m[e.Name()] = &fstest.MapFile{Data: b}
		}
		sub = m
	}
	set, err := migration.Load(sub)
	if err != nil {
		panic(err)
	}
	return set
}

// configFor is the Config of an installation made for set. Installations
// cloned from different templates have different secrets, so each gets an
// app role of its own: a shared one would get its password reset by each
// installation in turn.
func configFor(set *migration.Set) Config { return Config{AppRole: "app_" + set.Hash()[:12]} }

// installedWith is a control database bootstrapped with set, with the
// template schema and its clone script, once per server.
func installedWith(set *migration.Set) *pgtest.Template {
	return &pgtest.Template{
		Name: "landlord-provision-" + set.Hash()[:12] + "-" + directory.Migrations().Hash()[:12],
		Setup: func(ctx context.Context, db *pgtest.DB) error {
			pool, err := pgxpool.New(ctx, db.URL)
			if err != nil {
				return err
			}
			defer pool.Close()
			p, err := New(ctx, pool, set, configFor(set))
			if err != nil {
				return err
			}
			// The clone script lives in the control database and depends
			// only on the set: every test's copy starts with it.
			_, _, err = p.schemaScript(ctx)
			return err
		},
	}
}

var shopInstalled = installedWith(shopMigrations(0))

// setupShop is setup with the store schema as the tenant tables. When the
// test passes, the template database and reserved objects go too.
func setupShop(t *testing.T) *env {
	t.Helper()
	return setupSet(t, shopInstalled, shopMigrations(0))
}

func setupSet(t *testing.T, tmpl *pgtest.Template, set *migration.Set) *env {
	t.Helper()
	db := srv.NewDB(t, tmpl)
	pool := openPool(t, db.URL, 0)
	p, err := New(t.Context(), pool, set, configFor(set))
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	e := &env{db: db, pool: pool, p: p}
	cleanupTemplates(t, e)
	t.Cleanup(func() {
		if !t.Failed() {
			dropInstallationObjects(t, db.AdminURL, p.Installation().ID)
		}
	})
	return e
}

// cleanupTemplates drops, when the test passes, the template database and
// the reserved objects of e's installation, which outlive the test database
// and which dropInstallationObjects does not know.
func cleanupTemplates(t *testing.T, e *env) {
	t.Helper()
	inst, tpl := e.p.Installation().ID, e.p.TemplateDatabase()
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		ctx := context.Background()
		admin, err := pgx.Connect(ctx, e.db.AdminURL)
		if err != nil {
			t.Errorf("clean up: %v", err)
			return
		}
		defer admin.Close(ctx)
		rows, _ := admin.Query(ctx, `
			SELECT 'DROP SCHEMA IF EXISTS ' || quote_ident(nspname) || ' CASCADE' FROM pg_namespace
			WHERE obj_description(oid, 'pg_namespace') LIKE $1
			UNION ALL
			SELECT 'DROP DATABASE IF EXISTS ' || quote_ident(datname) || ' WITH (FORCE)' FROM pg_database
			WHERE shobj_description(oid, 'pg_database') LIKE $1 OR datname = $2
			UNION ALL
			SELECT 'DROP ROLE IF EXISTS ' || quote_ident(rolname) FROM pg_roles WHERE shobj_description(oid, 'pg_authid') LIKE $1`,
			"landlord pooled tenant % installation "+inst.String()+" unclaimed", tpl)
		stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Errorf("clean up: %v", err)
			return
		}
		for _, s := range stmts {
			if _, err := admin.Exec(ctx, s); err != nil {
				t.Errorf("clean up: %s: %v", s, err)
			}
		}
	})
}

// migratedSchema makes a schema tenant's role and schema by hand and applies
// every migration to it: the reference a clone must equal.
func migratedSchema(t *testing.T, e *env) (schema, role string) {
	t.Helper()
	ctx := t.Context()
	id := tenant.NewID()
	schema, role = id.SchemaName(), id.RoleName()
	_, err := e.pool.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s NOLOGIN NOINHERIT; BEGIN; SET LOCAL ROLE landlord_owner; CREATE SCHEMA %s; COMMIT`,
		ident.Quote(role), ident.Quote(schema)))
	must(t, err)
	t.Cleanup(func() {
		e.pool.Exec(context.Background(), fmt.Sprintf(`DROP SCHEMA IF EXISTS %s CASCADE; DROP ROLE IF EXISTS %s`, ident.Quote(schema), ident.Quote(role)))
	})
	conn, err := e.pool.Acquire(ctx)
	must(t, err)
	defer conn.Release()
	if _, err := e.p.Migrator().Apply(ctx, conn.Conn(), migration.Target{Schema: schema, Grantee: role}); err != nil {
		t.Fatalf("migrate reference schema: %v", err)
	}
	return schema, role
}

// describe returns catalogLines of schema in database db ("" = the control
// database) and the ledger rows of the schema, without their times.
func describe(t *testing.T, e *env, db, schema, role string) (lines, ledger []string) {
	t.Helper()
	ctx := t.Context()
	var conn *pgx.Conn
	if db == "" {
		c, err := e.pool.Acquire(ctx)
		must(t, err)
		defer c.Release()
		conn = c.Conn()
	} else {
		conn = connectAs(t, e, db, "")
	}
	must(t, pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) (err error) {
		if lines, err = catalogLines(ctx, tx, schema, role); err != nil {
			return err
		}
		ledger, err = collectStrings(ctx, tx, `SELECT version || ' ' || name || ' ' || checksum FROM landlord.target_migrations WHERE target = $1 ORDER BY version`, schema)
		return err
	}))
	if len(lines) < 50 {
		t.Fatalf("catalog of %s has only %d lines: %q", schema, len(lines), lines)
	}
	return lines, ledger
}

// TestCloneMatchesMigrated: a schema tenant made from the template's clone
// script and a database tenant copied from the template database are
// indistinguishable, in the catalog and the ledger, from a schema that ran
// every migration.
func TestCloneMatchesMigrated(t *testing.T) {
	t.Parallel()
	e := setupShop(t)
	ctx := t.Context()
	refSchema, refRole := migratedSchema(t, e)
	want, wantLedger := describe(t, e, "", refSchema, refRole)
	if len(wantLedger) != 5 {
		t.Fatalf("reference ledger %v, want 5 migrations", wantLedger)
	}

	s := create(t, e, "cloned-schema", tenant.ModelSchema)
	d := create(t, e, "cloned-database", tenant.ModelDatabase)

	// The clone really came from the script: every ledger row in one
	// statement, so with one timestamp.
	var times int
	must(t, e.pool.QueryRow(ctx, `SELECT count(DISTINCT applied_at) FROM landlord.target_migrations WHERE target = $1`, s.Schema).Scan(&times))
	if times != 1 {
		t.Errorf("the schema tenant's ledger has %d distinct times; it was migrated, not cloned", times)
	}
	ts, found, err := directory.LoadTemplateScript(ctx, e.pool, e.p.scriptKey())
	must(t, err)
	if !found || ts.Script == "" {
		t.Fatalf("no clone script stored (found %t): %s", found, ts.Note)
	}

	for _, c := range []struct {
		name, db string
		tn       tenant.Tenant
	}{{"schema", "", s}, {"database", d.Database, d}} {
		got, gotLedger := describe(t, e, c.db, c.tn.Schema, c.tn.ID.RoleName())
		if diff := diffLines(want, got); len(diff) > 0 {
			t.Errorf("%s tenant differs from the migrated schema (- migrated, + cloned):\n%s", c.name, strings.Join(diff, "\n"))
		}
		if strings.Join(gotLedger, "\n") != strings.Join(wantLedger, "\n") {
			t.Errorf("%s tenant's ledger:\n%s\nwant\n%s", c.name, strings.Join(gotLedger, "\n"), strings.Join(wantLedger, "\n"))
		}
	}
	checkCloneWorks(t, e, s)
}

// checkCloneWorks checks a cloned schema tenant the way the application
// meets it: it passes the shape check, Secure finds nothing to add, and the
// tenant's role uses its tables under row-level security, with the
// trigger, the sequences and the view working.
func checkCloneWorks(t *testing.T, e *env, tn tenant.Tenant) {
	t.Helper()
	ctx := t.Context()
	conn, err := e.pool.Acquire(ctx)
	must(t, err)
	defer conn.Release()
	must(t, migration.CheckShape(ctx, conn, tn.Schema))
	tx, err := conn.Begin(ctx)
	must(t, err)
	before, err := catalogLines(ctx, tx, tn.Schema, tn.ID.RoleName())
	must(t, err)
	must(t, migration.Secure(ctx, tx, migration.Target{Schema: tn.Schema, Grantee: tn.ID.RoleName()}))
	after, err := catalogLines(ctx, tx, tn.Schema, tn.ID.RoleName())
	must(t, err)
	must(t, tx.Rollback(ctx))
	if diff := diffLines(before, after); len(diff) > 0 {
		t.Errorf("Secure changed the cloned schema:\n%s", strings.Join(diff, "\n"))
	}

	q := func(sql string) string { return strings.ReplaceAll(sql, "S.", ident.Quote(tn.Schema)+".") }
	var number, auditID int64
	var touched bool
	app := connectAs(t, e, e.db.Name, e.p.Roles().App)
	err = pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL ROLE %s`, ident.Quote(tn.ID.RoleName()))); err != nil {
			return err
		}
		if err := enterSigned(ctx, tx, e, tn.ID, tn.ID.RoleName()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, q(`INSERT INTO S.products (id, sku, name, price_cents) VALUES (gen_random_uuid(), 'p1', 'Pear', 100)`)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, q(`UPDATE S.products SET updated_at = 'epoch', name = 'Pear!'`)); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, q(`SELECT updated_at > 'epoch' FROM S.products`)).Scan(&touched); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, q(`INSERT INTO S.orders (id) VALUES (gen_random_uuid()) RETURNING number`)).Scan(&number); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, q(`INSERT INTO S.audit (action) VALUES ('x') RETURNING id`)).Scan(&auditID); err != nil {
			return err
		}
		var n int
		return tx.QueryRow(ctx, q(`SELECT count(*) FROM S.order_totals`)).Scan(&n)
	})
	if err != nil {
		t.Fatalf("use the cloned tables as the tenant: %v", err)
	}
	if !touched || number != 1 || auditID != 1 {
		t.Errorf("trigger ran: %t, first order number %d, first audit id %d; want true, 1, 1", touched, number, auditID)
	}
}

// TestCloneScriptRefusesWhatItCannotCopy: a template with an object kind the
// generator does not reproduce gets no script, and schema tenants are then
// migrated, correctly.
func TestCloneScriptRefusesWhatItCannotCopy(t *testing.T) {
	t.Parallel()
	files := fstest.MapFS{
		"001_items.up.sql": {Data: []byte(`CREATE DOMAIN sku AS text CHECK (VALUE ~ '^[A-Z0-9-]+$');
CREATE TABLE items (tenant_id uuid NOT NULL, id bigint NOT NULL, sku sku NOT NULL, PRIMARY KEY (tenant_id, id));`)},
	}
	set, err := migration.Load(files)
	must(t, err)
	e := setupSet(t, installedWith(set), set)
	tn := create(t, e, "domain-store", tenant.ModelSchema)
	ts, found, err := directory.LoadTemplateScript(t.Context(), e.pool, e.p.scriptKey())
	must(t, err)
	if !found || ts.Script != "" || !strings.Contains(ts.Note, "type sku is of kind d") {
		t.Errorf("stored script for a template with a domain: found %t, script %d bytes, note %q", found, len(ts.Script), ts.Note)
	}
	if !queryBool(t, e.pool, `SELECT has_table_privilege($1, $2 || '.items', 'SELECT')`, tn.ID.RoleName(), tn.Schema) {
		t.Errorf("the migrated tenant's role cannot read its table")
	}
	checkSteps(t, e, tn.ID, "create intent", "create schema", "create active")
}

// templateDB describes the template database: whether it exists, accepts
// connections, who may connect, its comment and its oid.
func templateDB(t *testing.T, e *env) (exists, allowConn, publicConnect bool, comment string, oid uint32) {
	t.Helper()
	err := e.pool.QueryRow(t.Context(), `SELECT datallowconn, has_database_privilege('public', oid, 'CONNECT'),
		coalesce(shobj_description(oid, 'pg_database'), ''), oid FROM pg_database WHERE datname = $1`, e.p.TemplateDatabase()).
		Scan(&allowConn, &publicConnect, &comment, &oid)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, false, "", 0
	}
	must(t, err)
	return true, allowConn, publicConnect, comment, oid
}

func TestTemplateDatabase(t *testing.T) {
	t.Parallel()
	e := setupShop(t)
	ctx := t.Context()
	if exists, _, _, _, _ := templateDB(t, e); exists {
		t.Fatalf("template database exists before the first database tenant")
	}
	a := create(t, e, "first-db", tenant.ModelDatabase)
	exists, allow, public, comment, oid := templateDB(t, e)
	if !exists || allow || public || comment != e.p.templateDatabaseMark() {
		t.Errorf("template database: exists %t, allows connections %t, PUBLIC may connect %t, comment %q", exists, allow, public, comment)
	}
	b := create(t, e, "second-db", tenant.ModelDatabase)
	if _, _, _, _, again := templateDB(t, e); again != oid {
		t.Errorf("the second tenant rebuilt the template (oid %d, was %d)", again, oid)
	}
	for _, tn := range []tenant.Tenant{a, b} {
		checkLiveDatabase(t, e, tn)
	}

	// The template is a database of its own: not a tenant, not touched by
	// Reconcile, not listed among the installation's objects.
	rep, err := e.p.Reconcile(ctx)
	if err != nil || len(rep.Orphans) > 0 || len(rep.Failures) > 0 {
		t.Errorf("reconcile: %+v, %v", rep, err)
	}
	if got, want := objects(t, e), append(tenantObjects(a.ID, tenant.ModelDatabase), tenantObjects(b.ID, tenant.ModelDatabase)...); !sameSet(got, want) {
		t.Errorf("objects %v, want %v", got, want)
	}
}

// checkLiveDatabase checks a database tenant from the tenant's side: its
// schema and ledger, no template left inside, and its role alone may
// connect.
func checkLiveDatabase(t *testing.T, e *env, tn tenant.Tenant) {
	t.Helper()
	ctx := t.Context()
	conn := connectAs(t, e, tn.Database, tn.ID.RoleName())
	var schemas string
	must(t, conn.QueryRow(ctx, `SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace
		WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'`).Scan(&schemas))
	if schemas != "landlord,"+migration.ContextSchema+","+tn.Schema {
		t.Errorf("schemas in %s: %s, want landlord, landlord_context and %s", tn.Database, schemas, tn.Schema)
	}
	var version int
	admin := connectAs(t, e, tn.Database, "")
	must(t, admin.QueryRow(ctx, `SELECT max(version) FROM landlord.target_migrations WHERE target = $1`, tn.Schema).Scan(&version))
	if version != e.p.Migrator().Set().Head() {
		t.Errorf("%s's ledger at %d, want %d", tn.Schema, version, e.p.Migrator().Set().Head())
	}
	if queryBool(t, conn, `SELECT has_database_privilege('public', current_database(), 'CONNECT') OR has_database_privilege('public', current_database(), 'TEMP')`) {
		t.Errorf("PUBLIC may connect to or make temporary tables in %s", tn.Database)
	}
	if !queryBool(t, conn, `SELECT has_table_privilege($1 || '.orders', 'SELECT, INSERT, UPDATE, DELETE') AND NOT has_table_privilege($1 || '.orders', 'TRUNCATE')`, tn.Schema) {
		t.Errorf("the tenant's role lacks its data privileges on %s.orders, or has TRUNCATE", tn.Schema)
	}
}

// TestTemplatesFollowTheMigrations: templates built by an older migration
// set are migrated before the next tenant is made from them.
func TestTemplatesFollowTheMigrations(t *testing.T) {
	t.Parallel()
	old := shopMigrations(4)
	e := setupSet(t, installedWith(old), old)
	ctx := t.Context()
	create(t, e, "old-schema", tenant.ModelSchema)
	create(t, e, "old-db", tenant.ModelDatabase)
	_, _, _, oldMark, oid := templateDB(t, e)

	// The same installation, now with the fifth migration.
	p, err := New(ctx, e.pool, shopMigrations(0), configFor(old))
	must(t, err)
	e5 := &env{db: e.db, pool: e.pool, p: p}
	s := create(t, e5, "new-schema", tenant.ModelSchema)
	d := create(t, e5, "new-db", tenant.ModelDatabase)
	if s.SchemaVersion != 5 || d.SchemaVersion != 5 {
		t.Errorf("new tenants at versions %d and %d, want 5", s.SchemaVersion, d.SchemaVersion)
	}
	exists, allow, _, mark, again := templateDB(t, e5)
	if !exists || allow || mark == oldMark || mark != p.templateDatabaseMark() || again != oid {
		t.Errorf("template database after the new set: exists %t, allows connections %t, comment %q (was %q), oid %d (was %d); want it migrated in place",
			exists, allow, mark, oldMark, again, oid)
	}
	var tplVersion int
	must(t, e.pool.QueryRow(ctx, `SELECT max(version) FROM landlord.target_migrations WHERE target = $1`, TemplateSchema).Scan(&tplVersion))
	if tplVersion != 5 {
		t.Errorf("template schema at version %d, want 5", tplVersion)
	}
	checkLiveDatabase(t, e5, d)
	var times int
	must(t, e.pool.QueryRow(ctx, `SELECT count(DISTINCT applied_at) FROM landlord.target_migrations WHERE target = $1`, s.Schema).Scan(&times))
	if times != 1 {
		t.Errorf("the new schema tenant was migrated, not cloned from the new script")
	}
}

// TestTemplatesRebuilt: a template database that was dropped, or whose
// ledger no longer matches the migrations, and a broken template schema are
// rebuilt, and tenants made from them are whole.
func TestTemplatesRebuilt(t *testing.T) {
	t.Parallel()
	e := setupShop(t)
	ctx := t.Context()
	create(t, e, "first-db", tenant.ModelDatabase)
	tpl := e.p.TemplateDatabase()
	_, _, _, _, oid := templateDB(t, e)

	// Tampered: a checksum in its ledger changed.
	admin := connectAs(t, e, e.db.Name, "")
	_, err := admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s ALLOW_CONNECTIONS true`, ident.Quote(tpl)))
	must(t, err)
	inside := connectAs(t, e, tpl, "")
	_, err = inside.Exec(ctx, `UPDATE landlord.target_migrations SET checksum = md5(checksum) WHERE version = 2`)
	must(t, err)
	must(t, inside.Close(ctx))
	tampered := create(t, e, "after-tamper", tenant.ModelDatabase)
	exists, allow, _, mark, again := templateDB(t, e)
	if !exists || allow || mark != e.p.templateDatabaseMark() || again == oid {
		t.Errorf("tampered template: exists %t, allows connections %t, comment %q, oid %d (was %d); want it rebuilt", exists, allow, mark, again, oid)
	}
	checkLiveDatabase(t, e, tampered)

	// Dropped.
	_, err = admin.Exec(ctx, fmt.Sprintf(`DROP DATABASE %s`, ident.Quote(tpl)))
	must(t, err)
	dropped := create(t, e, "after-drop", tenant.ModelDatabase)
	if exists, _, _, _, _ := templateDB(t, e); !exists {
		t.Errorf("dropped template was not rebuilt")
	}
	checkLiveDatabase(t, e, dropped)

	// A template schema with a tampered ledger, once its script is gone.
	create(t, e, "first-schema", tenant.ModelSchema)
	_, err = admin.Exec(ctx, `UPDATE landlord.target_migrations SET checksum = md5(checksum) WHERE target = $1 AND version = 3`, TemplateSchema)
	must(t, err)
	_, err = admin.Exec(ctx, `DELETE FROM landlord.template_scripts`)
	must(t, err)
	s := create(t, e, "after-schema-tamper", tenant.ModelSchema)
	ts, found, err := directory.LoadTemplateScript(ctx, e.pool, e.p.scriptKey())
	must(t, err)
	if !found || ts.Script == "" {
		t.Errorf("no script after rebuilding the template schema: %q", ts.Note)
	}
	refSchema, refRole := migratedSchema(t, e)
	want, _ := describe(t, e, "", refSchema, refRole)
	got, _ := describe(t, e, "", s.Schema, s.ID.RoleName())
	if diff := diffLines(want, got); len(diff) > 0 {
		t.Errorf("tenant from the rebuilt template differs:\n%s", strings.Join(diff, "\n"))
	}
}

// TestTemplateDatabaseBusy: while a fleet run holds the template database
// open (WithTemplateDatabase), new database tenants wait for it and are
// then copied from the template it left.
func TestTemplateDatabaseBusy(t *testing.T) {
	t.Parallel()
	e := setupShop(t)
	ctx := t.Context()
	must(t, e.p.PrepareTemplates(ctx))
	_, _, _, _, oid := templateDB(t, e)

	opened := make(chan struct{})
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var fleetErr error
	go func() {
		defer wg.Done()
		fleetErr = e.p.WithTemplateDatabase(ctx, func(ctx context.Context, conn *pgx.Conn) error {
			close(opened)
			<-release
			_, err := conn.Exec(ctx, `SELECT 1`)
			return err
		})
	}()
	<-opened
	if _, allow, _, _, _ := templateDB(t, e); !allow {
		t.Errorf("the template database does not accept connections inside WithTemplateDatabase")
	}
	done := make(chan error, 1)
	var tn tenant.Tenant
	go func() {
		var err error
		tn, err = e.p.Create(ctx, Request{Slug: "waits", Model: tenant.ModelDatabase})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Create finished while the template was open: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	wg.Wait()
	must(t, fleetErr)
	if err := <-done; err != nil {
		t.Fatalf("create after the template closed: %v", err)
	}
	exists, allow, _, mark, again := templateDB(t, e)
	if !exists || allow || mark != e.p.templateDatabaseMark() || again != oid {
		t.Errorf("template after WithTemplateDatabase: exists %t, allows connections %t, comment %q, oid %d (was %d)", exists, allow, mark, again, oid)
	}
	checkLiveDatabase(t, e, tn)
}

// TestCloneFailureLeavesNothing is F03 (SECURITY.md) for the clone: the role,
// schema, tables, ledger and activation of a schema tenant commit together,
// so a clone that fails part way leaves only the intent, and Resume then
// finishes the tenant.
func TestCloneFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	e := setupShop(t)
	ctx := t.Context()
	good, found, err := directory.LoadTemplateScript(ctx, e.pool, e.p.scriptKey())
	must(t, err)
	if !found || good.Script == "" {
		t.Fatalf("no clone script: %q", good.Note)
	}
	s, err := decodeCloneScript(good.Script)
	must(t, err)
	// Fails after most of the tables exist.
	s.Parts[len(s.Parts)-1] += "\nSELECT 1 / 0;\n"
	bad := good
	bad.Script, err = s.encode()
	must(t, err)
	must(t, e.p.Directory().SaveTemplateScript(ctx, bad))

	before := takeSnapshot(t, e)
	_, err = e.p.Create(ctx, Request{Slug: "half-cloned", Model: tenant.ModelSchema})
	if !isCode(err, pgerrcode.DivisionByZero) {
		t.Fatalf("create with a failing clone: %v, want division by zero", err)
	}
	tn, err := e.p.Directory().GetBySlug(ctx, "half-cloned")
	must(t, err)
	if tn.State != tenant.StateProvisioning {
		t.Errorf("tenant after a failed clone is %s, want provisioning", tn.State)
	}
	after := takeSnapshot(t, e)
	if after.schemas != before.schemas || after.objects != before.objects || roleExists(t, e, tn.ID.RoleName()) {
		t.Errorf("a failed clone left objects:\nbefore %v\nafter  %v", before, after)
	}
	if queryBool(t, e.pool, `SELECT EXISTS (SELECT FROM landlord.target_migrations WHERE target = $1)`, tn.Schema) {
		t.Errorf("a failed clone left ledger rows")
	}

	must(t, e.p.Directory().SaveTemplateScript(ctx, good))
	got, err := e.p.Resume(ctx, tn.ID)
	if err != nil || got.State != tenant.StateActive || got.SchemaVersion != 5 {
		t.Fatalf("resume after the failed clone: %+v, %v", got, err)
	}
	var times int
	must(t, e.pool.QueryRow(ctx, `SELECT count(DISTINCT applied_at) FROM landlord.target_migrations WHERE target = $1`, tn.Schema).Scan(&times))
	if times != 1 {
		t.Errorf("Resume migrated the tenant instead of cloning it")
	}
	checkCloneWorks(t, e, got)
}
