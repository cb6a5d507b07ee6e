package landlord

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// Attacks on roles, catalogs, names and routing (THREATS I02, I03, I07, I09,
// I11, I16, I17, I18, I20, I21, I22, I23, I24).

// TestAttackI02UnsafeRoleAtConnect: a role that turns BYPASSRLS after Open
// gets no tenant traffic: each new connection checks its role first.
// Before the check the role reads B's rows.
func TestAttackI02UnsafeRoleAtConnect(t *testing.T) {
	t.Parallel()
	for _, m := range []tenant.Model{tenant.ModelRow, tenant.ModelDatabase} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			app := randomName("atk_app")
			f := newFx(t, m, Config{AppRole: app, MaxConns: 1})
			role := app
			if m == tenant.ModelDatabase {
				role = f.a.ID.RoleName()
			}
			alter := func(attr string) {
				f.exec(t, f.a, fmt.Sprintf(`ALTER ROLE %s %s`, pgx.Identifier{role}.Sanitize(), attr))
			}
			alter("BYPASSRLS")
			t.Cleanup(func() { alter("NOBYPASSRLS") })
			t.Run("defense-off", func(t *testing.T) {
				// The role itself, with A's context, on B's placement.
				o := f.at(t, f.b, stage{}, "", `SELECT secret FROM items`)
				f.mustLeak(t, o)
			})
			t.Run("handle", func(t *testing.T) {
				// Close a connection made before the change, if one is
				// left, then call. With the budget of one connection the
				// other tenant's traffic may have closed it already, and
				// this call is refused as the next one must be.
				_, err := f.h.Exec(f.ctxA, `SELECT set_config('atk.x', '1', false)`)
				if err != nil && !errors.Is(err, ErrUnsafeRole) {
					t.Fatal(err)
				}
				o := f.viaHandle(t, f.ctxA, nil, false, `SELECT secret FROM items`)
				if !errors.Is(o.err, ErrUnsafeRole) {
					t.Fatalf("a BYPASSRLS role served tenant traffic: %v", o)
				}
				f.noLeak(t, o)
				alter("NOBYPASSRLS")
				o = f.viaHandle(t, f.ctxA, nil, false, `SELECT secret FROM items`)
				must(t, o.err)
				f.noLeak(t, o)
			})
		})
	}
	t.Run("schema/tenant-role-bypassrls", func(t *testing.T) {
		// A schema tenant's role is not checked per transaction; with
		// BYPASSRLS it still has no privilege on B's schema.
		t.Parallel()
		f := newFx(t, tenant.ModelSchema, Config{MaxConns: 1})
		role := pgx.Identifier{f.a.ID.RoleName()}.Sanitize()
		f.exec(t, f.a, `ALTER ROLE `+role+` BYPASSRLS`)
		t.Cleanup(func() { f.exec(t, f.a, `ALTER ROLE `+role+` NOBYPASSRLS`) })
		o := f.viaHandle(t, f.ctxA, nil, false, `SELECT secret FROM `+pgx.Identifier{f.b.Schema, "items"}.Sanitize())
		if !isPgCode(o.err, "42501") {
			t.Fatalf("A's role read B's schema: %v", o)
		}
		f.noLeak(t, o)
	})
}

// TestAttackI03NewTable: a table created by hand, without Landlord's
// security, shows every tenant's rows; the same table added by a migration
// gets row-level security before anyone can use it, and tables that would
// hold NULL or no tenant_id are refused.
func TestAttackI03NewTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFx(t, tenant.ModelRow, Config{})
	const create = `CREATE TABLE %s (tenant_id uuid NOT NULL, id bigint NOT NULL, secret text NOT NULL, PRIMARY KEY (tenant_id, id))`
	t.Run("defense-off", func(t *testing.T) {
		f.exec(t, f.a, `SET ROLE {owner}`, fmt.Sprintf(create, `{s}.by_hand`), `GRANT SELECT ON {s}.by_hand TO {app}`, `RESET ROLE`,
			`INSERT INTO {s}.by_hand VALUES ('{B}', 1, 'CANARY-B-by-hand')`)
		o := f.viaHandle(t, f.ctxA, nil, false, `SELECT secret FROM by_hand`)
		f.mustLeak(t, o)
	})
	t.Run("migration", func(t *testing.T) {
		files := fstest.MapFS{"002_late.up.sql": {Data: []byte(fmt.Sprintf(create, "late"))}}
		first, err := fs.ReadFile(attackMigrations(), "001_attack.up.sql")
		must(t, err)
		files["001_attack.up.sql"] = &fstest.MapFile{Data: first}
		set, err := migration.Load(files)
		must(t, err)
		mig, err := migration.New(set, migration.Config{Owner: f.l.cfg.OwnerRole})
		must(t, err)
		conn, err := pgx.Connect(ctx, f.db.URL)
		must(t, err)
		defer conn.Close(ctx)
		// The fixture's hand-made materialized view (see newFx) would fail
		// the migration's shape check.
		f.exec(t, tenant.Tenant{Schema: provision.SharedSchema, Database: f.db.Name}, `DROP MATERIALIZED VIEW {s}.items_mv`)
		_, err = mig.Apply(ctx, conn, migration.Target{Schema: provision.SharedSchema, Grantee: f.l.cfg.AppRole})
		must(t, err)
		_, err = f.h.Exec(f.ctxB, `INSERT INTO late (id, secret) VALUES (1, 'CANARY-B-late')`)
		must(t, err)
		_, err = f.h.Exec(f.ctxA, `INSERT INTO late (id, secret) VALUES (1, 'A-late')`)
		must(t, err)
		o := f.viaHandle(t, f.ctxA, nil, false, `SELECT secret FROM late`)
		must(t, o.err)
		f.noLeak(t, o)
		if fmt.Sprint(o.rows) != "[[A-late]]" {
			t.Fatalf("A reads %v from the new table", o.rows)
		}
	})
	t.Run("null-tenant-id", func(t *testing.T) {
		o := f.viaHandle(t, f.ctxA, nil, true, `INSERT INTO items (tenant_id, id, sku, secret) VALUES (NULL, 77, 'sku-77', 'x')`)
		if !isPgCode(o.err, "23502", "42501") {
			t.Fatalf("a row without tenant: %v", o)
		}
	})
	for name, sql := range map[string]string{
		"nullable-tenant-id": `CREATE TABLE t (tenant_id uuid, id bigint NOT NULL, UNIQUE (tenant_id, id))`,
		"no-tenant-id":       `CREATE TABLE t (id bigint PRIMARY KEY, secret text)`,
		"global-unique":      `CREATE TABLE t (tenant_id uuid NOT NULL, id bigint NOT NULL, sku text, PRIMARY KEY (tenant_id, id), UNIQUE (sku))`,
	} {
		t.Run("shape-refused/"+name, func(t *testing.T) {
			set, err := migration.Load(fstest.MapFS{"001_t.up.sql": {Data: []byte(sql)}})
			must(t, err)
			mig, err := migration.New(set, migration.Config{Owner: f.l.cfg.OwnerRole})
			must(t, err)
			schema := randomName("atk_shape")
			f.exec(t, f.a, `SET ROLE {owner}`, `CREATE SCHEMA `+schema, `RESET ROLE`)
			conn, err := pgx.Connect(ctx, f.db.URL)
			must(t, err)
			defer conn.Close(ctx)
			if _, err := mig.Apply(ctx, conn, migration.Target{Schema: schema, Grantee: f.l.cfg.AppRole}); !errors.Is(err, migration.ErrShape) {
				t.Fatalf("migration %q: %v, want ErrShape", sql, err)
			}
			var n int
			must(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 't'`, schema).Scan(&n))
			if n != 0 {
				t.Fatal("the refused migration left its table behind")
			}
		})
	}
}

// attackI07RawSetConfig records a documented limit: SQL the application
// runs can set another tenant's context in its own transaction, in the row
// and schema models. The database model's per-tenant logins hold.
func (f *fx) attackI07RawSetConfig(t *testing.T) {
	m := f.m
	pre := []string{`SELECT set_config('landlord.tenant_id', '{B}', true)`}
	if m == tenant.ModelSchema {
		pre = append(pre, fmt.Sprintf(`SELECT set_config('role', '%s', true), set_config('search_path', '%s', true)`, f.b.ID.RoleName(), searchPath(f.b.Schema)))
	}
	o := f.viaHandle(t, f.ctxA, pre, false, `SELECT secret FROM items`)
	if m == tenant.ModelDatabase {
		must(t, o.err)
		f.noLeak(t, o)
		return
	}
	// The limit README.md documents: if this stops leaking, the
	// documentation must change with it.
	f.mustLeak(t, o)
}

// definerAudit lists SECURITY DEFINER functions in schemas Landlord manages
// or that hold tenant tables, and whether their search_path is pinned.
const definerAudit = `
SELECT n.nspname || '.' || p.proname || CASE WHEN EXISTS (
	SELECT FROM unnest(coalesce(p.proconfig, '{}')) c WHERE c LIKE 'search_path=%') THEN ' pinned' ELSE ' unpinned' END
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prosecdef AND (n.nspname IN ('landlord', 'landlord_backend', 'shared', 'landlord_template') OR n.nspname ~ '^t_[0-9a-f]{32}$')
ORDER BY 1`

// TestAttackI09DefinerAudit: Landlord itself installs one SECURITY DEFINER
// function, with its search path pinned (the app role's measure of its own
// backend's memory, TestBackendMemory); the audit query that says so finds
// the suite's own.
func TestAttackI09DefinerAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	audit := func(t *testing.T, url string) []string {
		conn, err := pgx.Connect(ctx, url)
		must(t, err)
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, definerAudit)
		must(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		must(t, err)
		return got
	}
	t.Run("landlord", func(t *testing.T) {
		l, db := setup(t, Config{})
		createTenant(t, l, "plain-row", tenant.ModelRow)
		createTenant(t, l, "plain-schema", tenant.ModelSchema)
		if got := audit(t, db.AdminURL); len(got) != 1 || got[0] != provision.MemoryFunc+" pinned" {
			t.Fatalf("SECURITY DEFINER functions in Landlord's schemas: %q, want only %s, pinned", got, provision.MemoryFunc)
		}
	})
	t.Run("the-audit-finds-them", func(t *testing.T) {
		f := newFx(t, tenant.ModelSchema, Config{})
		got := strings.Join(audit(t, f.db.AdminURL), ",")
		for _, want := range []string{"shared.definer_secrets pinned", "shared.definer_unpinned unpinned", f.a.Schema + ".definer_unpinned unpinned"} {
			if !strings.Contains(got, want) {
				t.Fatalf("the audit missed %q: %q", want, got)
			}
		}
	})
}

// TestAttackI11ServerVersion: the server the suite runs on has the fixes for
// the row-level security disclosures of recent years (CVE-2023-2455,
// CVE-2024-10976, CVE-2025-8713). Landlord does not check this itself yet.
func TestAttackI11ServerVersion(t *testing.T) {
	t.Parallel()
	conn, err := pgx.Connect(context.Background(), server.AdminURL("postgres"))
	must(t, err)
	defer conn.Close(context.Background())
	var v int
	must(t, conn.QueryRow(context.Background(), `SELECT current_setting('server_version_num')::int`).Scan(&v))
	// Oldest fixed minor per major version.
	fixed := map[int]int{15: 150014, 16: 160010, 17: 170006}
	if min, ok := fixed[v/10000]; ok && v < min {
		t.Fatalf("server_version_num %d lacks row-level security fixes; need %d or newer", v, min)
	}
	if v < 150000 {
		t.Fatalf("server_version_num %d is older than Landlord supports", v)
	}
}

// attackI16MaterializedViews: a materialized view has no row-level
// security and holds what its refresher saw. Landlord's FORCE keeps one
// refreshed without a context empty, but one refreshed in B's context shows
// B's rows to everyone who may read it.
func (f *fx) attackI16MaterializedViews(t *testing.T) {
	t.Run("refreshed-in-b-context", func(t *testing.T) {
		o := f.at(t, f.b, stage{ddl: []string{`SET LOCAL ROLE {owner}`, `SELECT set_config('landlord.tenant_id', '{B}', true)`,
			`REFRESH MATERIALIZED VIEW {s}.items_mv`, `RESET ROLE`}}, "", `SELECT secret FROM items_mv`)
		f.mustLeak(t, o)
	})
	t.Run("migrations-refuse-them", func(t *testing.T) {
		// The shape check that every migration step runs refuses the
		// schema that holds one.
		c := f.super(t, f.a)
		err := migration.CheckShape(context.Background(), c.conn, f.a.Schema)
		if !errors.Is(err, migration.ErrShape) || !strings.Contains(err.Error(), "items_mv: is a materialized view") {
			t.Fatalf("shape check of a schema with a materialized view: %v", err)
		}
	})
}

// attackI17Sequences: a sequence shared by row tenants reveals how much
// the others write; schema and database tenants each have their own.
func (f *fx) attackI17Sequences(t *testing.T) {
	m := f.m
	t.Run("catalog-volume", func(t *testing.T) {
		// The catalogs are readable by every role: after ANALYZE,
		// pg_class tells how many rows B's table holds.
		f.exec(t, f.b, `ANALYZE {s}.items`)
		o := f.viaHandle(t, f.ctxA, nil, false, `SELECT c.reltuples::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = 'items'`, f.b.Schema)
		must(t, o.err)
		switch m {
		case tenant.ModelDatabase:
			if len(o.rows) != 0 {
				t.Fatalf("A's database knows B's table: %v", o.rows)
			}
		default:
			// The documented limit: B's volume (with A's, in the row model).
			if len(o.rows) != 1 || fmt.Sprint(o.rows[0][0]) == "0" {
				t.Fatalf("pg_class did not show the volume of B's table: %v", o.rows)
			}
		}
	})
	next := func() int64 {
		var id int64
		must(t, f.h.QueryRow(f.ctxA, `INSERT INTO tickets (note) VALUES ('A') RETURNING id`).Scan(&id))
		return id
	}
	first := next()
	for i := 0; i < 5; i++ {
		_, err := f.h.Exec(f.ctxB, `INSERT INTO tickets (note) VALUES ('CANARY-B-busy')`)
		must(t, err)
	}
	gap := next() - first - 1
	if m == tenant.ModelRow {
		// The documented hazard: tenant tables of the row model
		// take ids from uuids, not sequences.
		if gap != 5 {
			t.Fatalf("a shared sequence showed a gap of %d after B's 5 inserts, want 5", gap)
		}
		return
	}
	if gap != 0 {
		t.Fatalf("A's ids show %d of B's inserts", gap)
	}
}

// attackI18SearchPath: nothing on a tenant's search path can be
// written by tenant traffic. With temporary tables allowed and pg_temp
// first, a tenant's table resolves to what another tenant planted on the
// pooled connection; Landlord revokes TEMP and puts pg_temp last.
func (f *fx) attackI18SearchPath(t *testing.T) {
	ctx := context.Background()
	m := f.m
	t.Run("path", func(t *testing.T) {
		var path string
		must(t, f.h.QueryRow(f.ctxA, `SELECT current_setting('search_path')`).Scan(&path))
		if path != searchPath(f.a.Schema) {
			t.Fatalf("A's search path is %q, want %q", path, searchPath(f.a.Schema))
		}
	})
	t.Run("no-writable-schema", func(t *testing.T) {
		var temp, public bool
		must(t, f.h.QueryRow(f.ctxA, `SELECT has_database_privilege(current_database(), 'TEMP'),
			coalesce(has_schema_privilege(to_regnamespace('public'), 'CREATE'), false)`).Scan(&temp, &public))
		if temp || public {
			t.Fatalf("tenant traffic may create temporary tables (%t) or objects in public (%t)", temp, public)
		}
		o := f.viaHandle(t, f.ctxA, nil, false, `CREATE TEMP TABLE items (secret text)`)
		if !isPgCode(o.err, "42501") {
			t.Fatalf("CREATE TEMP TABLE through the handle: %v", o.err)
		}
	})
	if m == tenant.ModelDatabase {
		return
	}
	// Both layers off: TEMP granted and pg_temp first, on a pool
	// that keeps connections. A plants a table, B writes into it.
	db := pgx.Identifier{f.a.Database}.Sanitize()
	f.exec(t, f.a, `GRANT TEMP ON DATABASE `+db+` TO {app}, {roleA}`)
	t.Cleanup(func() { f.exec(t, f.a, `REVOKE TEMP ON DATABASE `+db+` FROM {app}, {roleA}`) })
	t.Run("defense-off", func(t *testing.T) {
		naive := f.naivePool(t, f.a)
		c, err := naive.pool.Acquire(ctx)
		must(t, err)
		defer c.Release()
		_, err = c.Exec(ctx, `CREATE TEMP TABLE items (tenant_id uuid, id bigint, parent_id bigint, sku text, secret text); GRANT ALL ON pg_temp.items TO PUBLIC`)
		must(t, err)
		tx, err := c.Begin(ctx)
		must(t, err)
		_, err = tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true)`, f.b.ID.String())
		must(t, err)
		if m == tenant.ModelSchema {
			_, err = tx.Exec(ctx, `SELECT set_config('role', $1, true)`, f.b.ID.RoleName())
			must(t, err)
		}
		_, err = tx.Exec(ctx, `SELECT set_config('search_path', 'pg_temp, '||$1, true)`, pgx.Identifier{f.b.Schema}.Sanitize())
		must(t, err)
		_, err = tx.Exec(ctx, `INSERT INTO items (id, sku, secret) VALUES (300, 'sku-300', 'CANARY-B-planted')`)
		must(t, err)
		must(t, tx.Commit(ctx))
		f.mustLeak(t, run(ctx, c, naive.notices, `SELECT secret FROM pg_temp.items`))
	})
	t.Run("handle", func(t *testing.T) {
		// TEMP granted (one layer off): the planted table is last on
		// B's path, so B's write goes to B's table.
		o := f.viaHandle(t, f.ctxA, nil, false, `CREATE TEMP TABLE items (tenant_id uuid, id bigint, parent_id bigint, sku text, secret text)`)
		must(t, o.err)
		_, err := f.h.Exec(f.ctxB, `INSERT INTO items (id, sku, secret) VALUES (301, 'sku-301', 'CANARY-B-planted')`)
		must(t, err)
		o = f.viaHandle(t, f.ctxA, nil, false, `SELECT secret FROM pg_temp.items`)
		if o.err != nil && !isPgCode(o.err, "42P01") {
			t.Fatal(o.err)
		}
		f.noLeak(t, o)
		var n int
		must(t, f.h.QueryRow(f.ctxB, `SELECT count(*) FROM items WHERE id = 301`).Scan(&n))
		if n != 1 {
			t.Fatal("B's write did not land in B's table")
		}
	})
}

var maliciousSlugs = []string{
	`acme'; DROP SCHEMA shared CASCADE; --`,
	`acme"; DROP TABLE landlord.tenants; --`,
	`$$; SELECT 1; $$`,
	"acme\x00evil",
	`pg_catalog`,
	`public`,
	`information_schema`,
	`postgres`,
	`template0`,
	`landlord_owner`,
	`t_00000000000000000000000000000000`,
	strings.Repeat("a", 64),
	`ÅcmÉ-ünïcödé-` + strings.Repeat("ß", 30),
	"acme\u200bshop",
	"аcme", // Cyrillic a
	`../../etc/passwd`,
	`acme shop`,
	`-acme`,
	``,
}

// attackI20Names: tenant input never becomes an identifier. Bad slugs
// are refused before anything is written; names come from ids; a directory
// row cannot carry an identifier that is not one; pointing a tenant at
// another's placement by hand meets the privilege layer.
func (f *fx) attackI20Names(t *testing.T) {
	ctx := context.Background()
	m := f.m
	c := f.control(t)
	count := func() (n int) {
		must(t, c.conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM landlord.tenants) + (SELECT count(*) FROM landlord.provisioning_ledger)`).Scan(&n))
		return n
	}
	for i, slug := range maliciousSlugs {
		t.Run(fmt.Sprintf("slug-%02d", i), func(t *testing.T) {
			before := count()
			_, err := f.l.CreateTenant(ctx, provision.Request{Slug: slug, Model: m})
			if !errors.Is(err, tenant.ErrBadSlug) {
				t.Fatalf("slug %q: %v, want ErrBadSlug", slug, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			if after := count(); after != before {
				t.Fatalf("slug %q left %d directory rows behind", slug, after-before)
			}
		})
	}
	t.Run("names-from-ids", func(t *testing.T) {
		re := regexp.MustCompile(`^t_[0-9a-f]{32}$`)
		for _, tn := range []tenant.Tenant{f.a, f.b} {
			if (m != tenant.ModelRow && !re.MatchString(tn.Schema)) || (m == tenant.ModelDatabase && !re.MatchString(tn.Database)) ||
				tn.ID.RoleName() != "r_"+tn.ID.Hex() {
				t.Fatalf("%s is placed at %s.%s", tn.Slug, tn.Database, tn.Schema)
			}
		}
	})
	for _, col := range []string{"schema_name", "database_name"} {
		t.Run("directory-refuses-"+col, func(t *testing.T) {
			_, err := c.conn.Exec(ctx, `UPDATE landlord.tenants SET `+col+` = $1 WHERE id = $2`, `t_x"; DROP SCHEMA shared CASCADE; --`, f.a.ID)
			if !isPgCode(err, "23514") {
				t.Fatalf("a directory row took an injected %s: %v", col, err)
			}
		})
	}
}

// TestAttackI21DatabaseAccess: a tenant database grants nothing to PUBLIC;
// only its own role connects. Granted CONNECT to PUBLIC, anyone connects
// and learns how many rows B's tables hold.
func TestAttackI21DatabaseAccess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFx(t, tenant.ModelDatabase, Config{})
	stranger := randomName("atk_stranger")
	f.exec(t, f.a, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'x-%s'`, stranger, stranger))
	t.Cleanup(func() { f.exec(t, f.a, `DROP ROLE IF EXISTS `+stranger) })
	bdb := pgx.Identifier{f.b.Database}.Sanitize()
	connectAs := func(role string) (*pgx.Conn, error) {
		cc, err := f.l.prov.ConnConfig(ctx, f.b.Server, f.b.Database, "")
		must(t, err)
		cc.User = role
		switch role {
		case stranger:
			cc.Password = "x-" + stranger
		default:
			cc.Password = f.l.prov.Roles().Password(role)
		}
		return pgx.ConnectConfig(ctx, cc)
	}
	t.Run("no-public-grants", func(t *testing.T) {
		var n int
		must(t, f.super(t, f.a).conn.QueryRow(ctx, `SELECT count(*) FROM pg_database d, aclexplode(d.datacl) a
			WHERE d.datname = ANY($1) AND a.grantee = 0`, []string{f.a.Database, f.b.Database}).Scan(&n))
		if n != 0 {
			t.Fatalf("tenant databases grant %d privileges to PUBLIC", n)
		}
	})
	for _, role := range []string{f.a.ID.RoleName(), f.l.cfg.AppRole, stranger} {
		t.Run("refused/"+strings.SplitN(role, "_", 2)[0], func(t *testing.T) {
			conn, err := connectAs(role)
			if err == nil {
				conn.Close(ctx)
				t.Fatalf("%s connected to B's database", role)
			}
			if !isPgCode(err, "42501") {
				t.Fatalf("%s: %v, want permission denied", role, err)
			}
		})
	}
	t.Run("defense-off", func(t *testing.T) {
		f.exec(t, f.b, `GRANT CONNECT, TEMP ON DATABASE `+bdb+` TO PUBLIC`)
		defer f.exec(t, f.b, `REVOKE CONNECT, TEMP ON DATABASE `+bdb+` FROM PUBLIC`)
		conn, err := connectAs(stranger)
		must(t, err)
		defer conn.Close(ctx)
		var rows int64
		must(t, conn.QueryRow(ctx, `SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables WHERE relname = 'items'`).Scan(&rows))
		// Statistics reach the collector asynchronously; the connection
		// alone is the failure.
		t.Logf("a stranger connected to B's database (it sees %d inserted items)", rows)
	})
}

// TestAttackI22StaleRouting: a tenant moved to another placement by hand in
// the directory is served from the new placement only: the route and the
// pool are keyed by the routing epoch. Its old pool still reaches the old
// placement, which is what a pool keyed by tenant alone would keep using.
// Pointed at another tenant's placement, its traffic meets the privilege
// layer.
func TestAttackI22StaleRouting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, m := range []tenant.Model{tenant.ModelSchema, tenant.ModelDatabase} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			f := newFx(t, m, Config{MaxConns: 1})
			dest := createTenant(t, f.l, "charlie", m)
			old, err := f.l.Tenant(ctx, f.a.ID)
			must(t, err)
			var oldPID int32
			must(t, f.h.QueryRow(f.ctxA, `SELECT pg_backend_pid()`).Scan(&oldPID))
			grantA := []string{
				`GRANT USAGE ON SCHEMA {s} TO {roleA}`,
				`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {roleA}`,
			}
			if m == tenant.ModelDatabase {
				grantA = append(grantA, `GRANT CONNECT ON DATABASE `+pgx.Identifier{dest.Database}.Sanitize()+` TO {roleA}`)
			}
			f.exec(t, dest, grantA...)
			f.exec(t, dest, `INSERT INTO {s}.items (tenant_id, id, sku, secret) VALUES ('{A}', 1, 'sku-1', 'A-moved-1')`)
			move := func(t *testing.T, to tenant.Tenant) {
				_, err := f.control(t).conn.Exec(ctx, `UPDATE landlord.tenants SET schema_name = $1, database_name = $2 WHERE id = $3`,
					to.Schema, to.Database, f.a.ID)
				must(t, err)
			}
			read := func() outcome {
				return f.viaHandle(t, f.ctxA, nil, false, `SELECT secret, current_database(), current_schema() FROM items`)
			}
			t.Run("moved", func(t *testing.T) {
				move(t, dest)
				deadline := time.Now().Add(10 * time.Second)
				for {
					o := read()
					if o.err == nil && strings.Contains(fmt.Sprint(o.rows), "A-moved-1") {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("the move never reached the route: %v", o)
					}
					time.Sleep(20 * time.Millisecond)
				}
				for i := 0; i < 10; i++ {
					o := read()
					must(t, o.err)
					if fmt.Sprint(o.rows) != fmt.Sprintf("[[A-moved-1 %s %s]]", dest.Database, dest.Schema) {
						t.Fatalf("after the move A read %v", o.rows)
					}
					var pid int32
					must(t, f.h.QueryRow(f.ctxA, `SELECT pg_backend_pid()`).Scan(&pid))
					if m == tenant.ModelDatabase && pid == oldPID {
						t.Fatal("A's traffic still runs on its old pool's connection")
					}
				}
			})
			if m == tenant.ModelDatabase {
				t.Run("defense-off", func(t *testing.T) {
					// The old target, as a pool map keyed by tenant alone
					// would hand it out, still reaches the old database.
					cc, err := f.l.Provisioner().ConnConfig(ctx, old.Server, old.Database, old.ID.RoleName())
					must(t, err)
					cc.RuntimeParams["search_path"] = searchPath(old.Database)
					c, err := pgx.ConnectConfig(ctx, cc)
					must(t, err)
					defer c.Close(ctx)
					var secret string
					err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
						if _, err := tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true)`, f.a.ID.String()); err != nil {
							return err
						}
						return tx.QueryRow(ctx, `SELECT secret FROM items WHERE id = 1`).Scan(&secret)
					})
					must(t, err)
					if secret != "A-secret-1" {
						t.Fatalf("the old pool read %q, want the stale A-secret-1", secret)
					}
				})
			}
			t.Run("pointed-at-b", func(t *testing.T) {
				move(t, f.b)
				deadline := time.Now().Add(10 * time.Second)
				for {
					o := read()
					f.noLeak(t, o)
					// Schemas without USAGE are left out of the search, so
					// in the schema model B's tables are not even found.
					if isPgCode(o.err, "42501", "42P01") {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("A's traffic, pointed at B's placement, got %v; want permission denied", o)
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
			t.Run("pointed-at-b-defense-off", func(t *testing.T) {
				grants := slices.Clone(grantA[:2])
				if m == tenant.ModelDatabase {
					grants = append(grants, `GRANT CONNECT ON DATABASE `+pgx.Identifier{f.b.Database}.Sanitize()+` TO {roleA}`)
				}
				f.exec(t, f.b, append(grants, openPolicies...)...)
				deadline := time.Now().Add(10 * time.Second)
				for {
					o := read()
					if len(f.leaks(o.text())) > 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("with B's placement open to A's role the probe found nothing: %v", o)
					}
					admin, err := f.l.Admin(ctx, "refresh a route in the stale-routing attack")
					must(t, err)
					_, err = admin.SetState(ctx, f.a.ID, tenant.StateActive)
					must(t, err)
					time.Sleep(20 * time.Millisecond)
				}
			})
		})
	}
}

// attackI23Export: with no context the database returns zero rows and
// no error, so an export that trusts it silently loses everything. The
// handle refuses instead, and an explicit export through an admin scope
// matches the superuser's counts and checksums per tenant.
func (f *fx) attackI23Export(t *testing.T) {
	ctx := context.Background()
	const sum = `SELECT count(*), coalesce(md5(string_agg(secret, ',' ORDER BY id)), '') FROM items`
	m := f.m
	t.Run("silent-zero", func(t *testing.T) {
		// B's own traffic role, on B's own placement, with no context.
		as := ""
		if m != tenant.ModelRow {
			as = f.b.ID.RoleName()
		}
		o := f.at(t, f.b, stage{setting: "unset", as: as}, "", `SELECT count(*) FROM items`)
		must(t, o.err)
		if fmt.Sprint(o.rows) != "[[0]]" {
			t.Fatalf("without a context the database returned %v", o.rows)
		}
	})
	t.Run("handle-refuses", func(t *testing.T) {
		if _, err := f.h.Query(ctx, sum); !errors.Is(err, ErrNoTenant) {
			t.Fatalf("an export without a tenant: %v", err)
		}
	})
	t.Run("explicit-export", func(t *testing.T) {
		admin, err := f.l.Admin(ctx, "attack suite: export and verify")
		must(t, err)
		got := map[tenant.ID]string{}
		err = admin.Each(ctx, directory.Filter{}, func(ctx context.Context, tn tenant.Tenant, q Querier) error {
			var n int64
			var h string
			if err := q.QueryRow(ctx, sum).Scan(&n, &h); err != nil {
				return err
			}
			got[tn.ID] = fmt.Sprint(n, h)
			return nil
		})
		must(t, err)
		for _, tn := range []tenant.Tenant{f.a, f.b} {
			var n int64
			var h string
			must(t, f.super(t, tn).conn.QueryRow(ctx, f.expand(strings.Replace(sum, "FROM items", "FROM {s}.items WHERE tenant_id = '"+tn.ID.String()+"'", 1), tn, "")).Scan(&n, &h))
			if got[tn.ID] != fmt.Sprint(n, h) || n == 0 {
				t.Fatalf("export of %s: %q, superuser sees %d rows %s", tn.Slug, got[tn.ID], n, h)
			}
		}
	})
}

// attackI24TriggerPaths: audit rows written by triggers land in the
// writer's placement with the writer's tenant. A trigger that resolves
// names through the caller's search path writes into B's schema when the
// path is hijacked and the privilege layer is off; the pinned one does not;
// through the handle the hijacked path meets the privilege layer.
func (f *fx) attackI24TriggerPaths(t *testing.T) {
	ctx := context.Background()
	m := f.m
	t.Run("rows-land-with-writer", func(t *testing.T) {
		for _, tn := range []tenant.Tenant{f.a, f.b} {
			var n int
			must(t, f.super(t, tn).conn.QueryRow(ctx, f.expand(`SELECT count(*) FROM {s}.audit_log a JOIN {s}.notes n
				ON n.tenant_id = a.tenant_id AND n.id = a.note_id WHERE a.tenant_id = $1`, tn, ""), tn.ID).Scan(&n))
			if n != 2 {
				t.Fatalf("%s's note has %d audit rows in its placement, want 2 (pinned and unpinned)", tn.Slug, n)
			}
		}
		o := f.viaHandle(t, f.ctxA, nil, false, `SELECT a.tenant_id, a.how, n.body FROM audit_log a JOIN notes n ON n.id = a.note_id`)
		must(t, o.err)
		f.noLeak(t, o)
		if len(o.rows) != 2 {
			t.Fatalf("A sees %d audit rows, want its own 2", len(o.rows))
		}
	})
	if m != tenant.ModelSchema {
		return
	}
	hijack := fmt.Sprintf(`SELECT set_config('search_path', '%s, %s', true)`, pgx.Identifier{f.b.Schema}.Sanitize(), pgx.Identifier{f.a.Schema}.Sanitize())
	insert := `INSERT INTO ` + pgx.Identifier{f.a.Schema, "notes"}.Sanitize() + ` (id, body) VALUES (77, 'A-hijacked')`
	landed := `SELECT count(*) FROM ` + pgx.Identifier{f.b.Schema, "audit_log"}.Sanitize() + ` WHERE note_id = 77`
	t.Run("defense-off", func(t *testing.T) {
		// Privileges on B's schema granted, path hijacked: the
		// unpinned trigger writes A's audit row into B's schema.
		o := f.at(t, f.a, stage{ddl: []string{
			`GRANT USAGE ON SCHEMA ` + pgx.Identifier{f.b.Schema}.Sanitize() + ` TO {roleA}`,
			`GRANT INSERT ON ` + pgx.Identifier{f.b.Schema, "audit_log"}.Sanitize() + ` TO {roleA}`,
		}, pre: []string{hijack}, after: landed}, "", insert)
		must(t, o.err)
		if fmt.Sprint(o.after) != "[[1]]" {
			t.Fatalf("the unpinned trigger did not follow the hijacked path: %v", o.after)
		}
	})
	t.Run("handle", func(t *testing.T) {
		// B's schema is skipped on A's path: A has no USAGE on it.
		tx, err := f.h.Begin(f.ctxA)
		must(t, err)
		defer tx.Rollback(ctx)
		_, err = tx.Exec(f.ctxA, hijack)
		must(t, err)
		_, err = tx.Exec(f.ctxA, insert)
		must(t, err)
		var own int
		must(t, tx.QueryRow(f.ctxA, `SELECT count(*) FROM `+pgx.Identifier{f.a.Schema, "audit_log"}.Sanitize()+` WHERE note_id = 77`).Scan(&own))
		if own != 2 {
			t.Fatalf("A's note has %d audit rows in A's schema, want 2", own)
		}
		var n int
		must(t, f.super(t, f.b).conn.QueryRow(ctx, landed).Scan(&n))
		if n != 0 {
			t.Fatal("an audit row of A landed in B's schema")
		}
	})
}
