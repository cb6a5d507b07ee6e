package landlordtest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// Attacks on roles, catalogs, names and triggers (SECURITY.md, I02, I03, I07,
// I09, I11, I16, I17, I18, I20, I21, I23, I24).

// attackI02UnsafeRoleAtConnect: a role that turns BYPASSRLS after Open gets
// no tenant traffic: each new connection checks its role first. Before the
// check the role reads B's rows.
func attackI02UnsafeRoleAtConnect(t *testing.T, k Kit) {
	for _, m := range []tenant.Model{tenant.ModelRow, tenant.ModelDatabase} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			app := randomName("landlordtest_app")
			f := newFx(t, k, m, landlord.Config{AppRole: app, MaxConns: 1})
			sel := `SELECT x::text FROM ` + f.main.q() + ` x`
			role := f.roleOf(f.a)
			alter := func(attr string) {
				f.exec(t, f.a, fmt.Sprintf(`ALTER ROLE %s %s`, ident(role), attr))
			}
			alter("BYPASSRLS")
			t.Cleanup(func() { alter("NOBYPASSRLS") })
			t.Run("defense-off", func(t *testing.T) {
				// The role itself, with A's context, on B's placement.
				o := f.at(t, f.b, stage{}, "", sel)
				f.mustLeak(t, o)
			})
			t.Run("handle", func(t *testing.T) {
				// Close a connection made before the change, if one is
				// left, then call. With the budget of one connection the
				// other tenant's traffic may have closed it already, and
				// this call is refused as the next one must be.
				_, err := f.h.Exec(f.ctxA, `SELECT set_config('landlordtest.x', '1', false)`)
				if err != nil && !errors.Is(err, landlord.ErrUnsafeRole) {
					t.Fatal(err)
				}
				o := f.viaHandle(t, f.ctxA, nil, false, sel)
				if !errors.Is(o.err, landlord.ErrUnsafeRole) {
					t.Fatalf("a BYPASSRLS role served tenant traffic: %v", o)
				}
				f.noLeak(t, o)
				alter("NOBYPASSRLS")
				o = f.viaHandle(t, f.ctxA, nil, false, sel)
				must(t, o.err)
				f.noLeak(t, o)
			})
		})
	}
	t.Run("schema/tenant-role-bypassrls", func(t *testing.T) {
		// A schema tenant's role is not checked per transaction; with
		// BYPASSRLS it still has no privilege on B's schema.
		t.Parallel()
		f := newFx(t, k, tenant.ModelSchema, landlord.Config{MaxConns: 1})
		role := ident(f.a.ID.RoleName())
		f.exec(t, f.a, `ALTER ROLE `+role+` BYPASSRLS`)
		t.Cleanup(func() { f.exec(t, f.a, `ALTER ROLE `+role+` NOBYPASSRLS`) })
		o := f.viaHandle(t, f.ctxA, nil, false, `SELECT x::text FROM `+f.main.in(f.b)+` x`)
		if !isPgCode(o.err, "42501") {
			t.Fatalf("A's role read B's schema: %v", o)
		}
		f.noLeak(t, o)
	})
}

// attackI03NewTable: a table created by hand, without Landlord's security,
// shows every tenant's rows; the same table added by a migration gets
// row-level security before anyone can use it, and tables that would hold
// NULL or no tenant_id are refused.
func attackI03NewTable(t *testing.T, k Kit) {
	ctx := context.Background()
	f := newFx(t, k, tenant.ModelRow, landlord.Config{})
	const create = `CREATE TABLE %s (tenant_id uuid NOT NULL, id bigint NOT NULL, secret text NOT NULL, PRIMARY KEY (tenant_id, id))`
	shared := tenant.Tenant{Schema: provision.SharedSchema, Database: f.control}
	t.Run("defense-off", func(t *testing.T) {
		f.exec(t, f.a, `SET ROLE {owner}`, fmt.Sprintf(create, `{s}.landlordtest_by_hand`), `GRANT SELECT ON {s}.landlordtest_by_hand TO {app}`, `RESET ROLE`,
			`INSERT INTO {s}.landlordtest_by_hand VALUES ('{B}', 1, 'CANARY-B-by-hand')`)
		o := f.viaHandle(t, f.ctxA, nil, false, `SELECT secret FROM landlordtest_by_hand`)
		f.mustLeak(t, o)
	})
	t.Run("migration", func(t *testing.T) {
		set, err := migration.Load(k.Migrations)
		must(t, err)
		files := fstest.MapFS{}
		for _, mg := range set.Migrations() {
			files[mg.Name] = &fstest.MapFile{Data: []byte(mg.SQL)}
		}
		files[fmt.Sprintf("%03d_landlordtest_late.up.sql", set.Head()+1)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(create, "landlordtest_late"))}
		// The hand-made table of defense-off would fail the migration's
		// shape check.
		f.exec(t, shared, `DROP TABLE IF EXISTS {s}.landlordtest_by_hand`)
		late, err := migration.Load(files)
		must(t, err)
		mig, err := migration.New(late, migration.Config{Owner: f.roles.Owner})
		must(t, err)
		conn, err := pgx.Connect(ctx, k.SuperuserURL(f.control))
		must(t, err)
		defer conn.Close(ctx)
		_, err = mig.Apply(ctx, conn, migration.Target{Schema: provision.SharedSchema, Grantee: f.roles.App})
		must(t, err)
		_, err = f.h.Exec(f.ctxB, `INSERT INTO landlordtest_late (id, secret) VALUES (1, 'CANARY-B-late')`)
		must(t, err)
		_, err = f.h.Exec(f.ctxA, `INSERT INTO landlordtest_late (id, secret) VALUES (1, 'A-late')`)
		must(t, err)
		o := f.viaHandle(t, f.ctxA, nil, false, `SELECT secret FROM landlordtest_late`)
		must(t, o.err)
		f.noLeak(t, o)
		if fmt.Sprint(o.rows) != "[[A-late]]" {
			t.Fatalf("A reads %v from the new table", o.rows)
		}
	})
	t.Run("null-tenant-id", func(t *testing.T) {
		tb := f.main
		if tb.copyProblem != "" {
			t.Skip("the kit cannot make rows of " + tb.name + ": " + tb.copyProblem)
		}
		o := f.viaHandle(t, f.ctxA, nil, true, tb.insert(tb.q()), f.row(t, tb, f.a, 2).with("tenant_id", nil).String())
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
			mig, err := migration.New(set, migration.Config{Owner: f.roles.Owner})
			must(t, err)
			schema := randomName("landlordtest_shape")
			f.exec(t, f.a, `SET ROLE {owner}`, `CREATE SCHEMA `+schema, `RESET ROLE`)
			conn, err := pgx.Connect(ctx, k.SuperuserURL(f.control))
			must(t, err)
			defer conn.Close(ctx)
			if _, err := mig.Apply(ctx, conn, migration.Target{Schema: schema, Grantee: f.roles.App}); !errors.Is(err, migration.ErrShape) {
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

// definerAudit lists SECURITY DEFINER functions in the schemas $1 and
// whether their search_path is pinned.
const definerAudit = `
SELECT n.nspname || '.' || p.proname || CASE WHEN EXISTS (
	SELECT FROM unnest(coalesce(p.proconfig, '{}')) c WHERE c LIKE 'search_path=%') THEN ' pinned' ELSE ' unpinned' END
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prosecdef AND n.nspname = ANY ($1)
ORDER BY 1`

// attackI09DefinerAudit: Landlord itself installs one SECURITY DEFINER
// function, with its search path pinned (the app role's measure of its own
// backend's memory); the audit query that says so finds SECURITY DEFINER
// functions in tenant schemas, pinned or not.
func attackI09DefinerAudit(t *testing.T, k Kit) {
	ctx := context.Background()
	f := newFx(t, k, tenant.ModelSchema, landlord.Config{})
	audit := func(t *testing.T, q interface {
		Query(context.Context, string, ...any) (pgx.Rows, error)
	}, schemas ...string) []string {
		rows, err := q.Query(ctx, definerAudit, schemas)
		must(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		must(t, err)
		return got
	}
	t.Run("landlord", func(t *testing.T) {
		if got := audit(t, f.controlConn(t).conn, "landlord", "landlord_backend"); len(got) != 1 || got[0] != provision.MemoryFunc+" pinned" {
			t.Fatalf("SECURITY DEFINER functions in Landlord's schemas: %q, want only %s, pinned", got, provision.MemoryFunc)
		}
	})
	t.Run("the-audit-finds-them", func(t *testing.T) {
		c := f.controlConn(t).conn
		tx, err := c.Begin(ctx)
		must(t, err)
		defer tx.Rollback(ctx)
		for _, s := range []string{provision.SharedSchema, f.a.Schema} {
			for _, sql := range []string{
				`CREATE FUNCTION %s.landlordtest_pinned() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$ SELECT 1 $$`,
				`CREATE FUNCTION %s.landlordtest_unpinned() RETURNS int LANGUAGE sql SECURITY DEFINER AS $$ SELECT 1 $$`,
			} {
				_, err := tx.Exec(ctx, fmt.Sprintf(sql, ident(s)))
				must(t, err)
			}
		}
		got := strings.Join(audit(t, tx, provision.SharedSchema, f.a.Schema), ",")
		for _, want := range []string{"shared.landlordtest_pinned pinned", "shared.landlordtest_unpinned unpinned",
			f.a.Schema + ".landlordtest_pinned pinned", f.a.Schema + ".landlordtest_unpinned unpinned"} {
			if !strings.Contains(got, want) {
				t.Fatalf("the audit missed %q: %q", want, got)
			}
		}
	})
}

// attackI11ServerVersion: the server the suite runs on has the fixes for the
// row-level security disclosures of recent years (CVE-2023-2455,
// CVE-2024-10976, CVE-2025-8713). Landlord does not check this itself yet.
func attackI11ServerVersion(t *testing.T, k Kit) {
	ctx := context.Background()
	l := k.open(t, landlord.Config{})
	var v int
	tn := createTenant(t, l, "alpha", tenant.ModelRow)
	must(t, l.Handle().QueryRow(landlord.WithTenant(ctx, tn.ID), `SELECT current_setting('server_version_num')::int`).Scan(&v))
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
	T := f.main.q()
	t.Run("refreshed-in-b-context", func(t *testing.T) {
		o := f.at(t, f.b, stage{ddl: append(ownerDo(`CREATE MATERIALIZED VIEW {s}.landlordtest_mv AS SELECT * FROM {s}.`+T+` WITH NO DATA`),
			`GRANT SELECT ON {s}.landlordtest_mv TO {roleA}`,
			`SET LOCAL ROLE {owner}`, `SELECT landlord_context.enter('{B}')`,
			`REFRESH MATERIALIZED VIEW {s}.landlordtest_mv`, `RESET ROLE`)}, "", `SELECT x::text FROM landlordtest_mv x`)
		f.mustLeak(t, o)
	})
	t.Run("migrations-refuse-them", func(t *testing.T) {
		// The shape check that every migration step runs refuses the
		// schema that holds one.
		ctx := context.Background()
		tx, err := f.super(t, f.a).conn.Begin(ctx)
		must(t, err)
		defer tx.Rollback(ctx)
		_, err = tx.Exec(ctx, `CREATE MATERIALIZED VIEW `+ident(f.a.Schema)+`.landlordtest_mv AS SELECT * FROM `+f.main.in(f.a)+` WITH NO DATA`)
		must(t, err)
		err = migration.CheckShape(ctx, tx, f.a.Schema)
		if !errors.Is(err, migration.ErrShape) || !strings.Contains(err.Error(), "landlordtest_mv: is a materialized view") {
			t.Fatalf("shape check of a schema with a materialized view: %v", err)
		}
	})
}

// attackI17Sequences: a sequence shared by row tenants reveals how much
// the others write; schema and database tenants each have their own.
func (f *fx) attackI17Sequences(t *testing.T) {
	t.Run("catalog-volume", func(t *testing.T) {
		// The catalogs are readable by every role: after ANALYZE,
		// pg_class tells how many rows B's table holds.
		f.exec(t, f.b, `ANALYZE {s}.`+f.main.q())
		o := f.viaHandle(t, f.ctxA, nil, false, `SELECT c.reltuples::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2`, f.b.Schema, f.main.name)
		must(t, o.err)
		switch f.m {
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
	var tb *table
	for _, x := range f.tables {
		if x.serial != "" && x.copyProblem == "" && tb == nil {
			tb = x
		}
	}
	t.Run("sequence-gap", func(t *testing.T) {
		if tb == nil {
			t.Skip("no tenant table takes values from a sequence")
		}
		insert := tb.insert(tb.q(), "tenant_id", tb.serial) + ` RETURNING n.` + ident(tb.serial) + `::bigint`
		k := 20
		next := func(ctx context.Context, who tenant.Tenant) int64 {
			k++
			var id int64
			must(t, f.h.QueryRow(ctx, insert, f.row(t, tb, who, k).String()).Scan(&id))
			return id
		}
		first := next(f.ctxA, f.a)
		for i := 0; i < 5; i++ {
			next(f.ctxB, f.b)
		}
		gap := next(f.ctxA, f.a) - first - 1
		if f.m == tenant.ModelRow {
			// The documented hazard: tenant tables of the row model take
			// ids from uuids, not sequences.
			if gap != 5 {
				t.Fatalf("a shared sequence showed a gap of %d after B's 5 inserts, want 5", gap)
			}
			return
		}
		if gap != 0 {
			t.Fatalf("A's ids show %d of B's inserts", gap)
		}
	})
}

// attackI18SearchPath: nothing on a tenant's search path can be written by
// tenant traffic. With temporary tables allowed and pg_temp first, a
// tenant's table resolves to what another tenant planted on the pooled
// connection; Landlord revokes TEMP and puts pg_temp last.
func (f *fx) attackI18SearchPath(t *testing.T) {
	ctx := context.Background()
	tb := f.main
	T := tb.q()
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
		o := f.viaHandle(t, f.ctxA, nil, false, `CREATE TEMP TABLE `+T+` (x text)`)
		if !isPgCode(o.err, "42501") {
			t.Fatalf("CREATE TEMP TABLE through the handle: %v", o.err)
		}
	})
	if f.m == tenant.ModelDatabase {
		return
	}
	if tb.copyProblem != "" {
		t.Run("defense-off", func(t *testing.T) { t.Skip("the kit cannot make rows of " + tb.name + ": " + tb.copyProblem) })
		return
	}
	// The planted table has the columns of the real one, none of its
	// constraints.
	var cols string
	must(t, f.super(t, f.a).conn.QueryRow(ctx, `SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
		FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`, tb.in(f.a)).Scan(&cols))
	// Both layers off: TEMP granted and pg_temp first, on a pool
	// that keeps connections. A plants a table, B writes into it.
	db := ident(f.a.Database)
	f.exec(t, f.a, `GRANT TEMP ON DATABASE `+db+` TO {app}, {roleA}`)
	t.Cleanup(func() { f.exec(t, f.a, `REVOKE TEMP ON DATABASE `+db+` FROM {app}, {roleA}`) })
	bRow := f.row(t, tb, f.b, 8)
	t.Run("defense-off", func(t *testing.T) {
		naive := f.naivePool(t, f.a)
		c, err := naive.pool.Acquire(ctx)
		must(t, err)
		defer c.Release()
		_, err = c.Exec(ctx, `CREATE TEMP TABLE `+T+` (`+cols+`); GRANT ALL ON pg_temp.`+T+` TO PUBLIC`)
		must(t, err)
		tx, err := c.Begin(ctx)
		must(t, err)
		_, err = tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true), set_config('landlord.tenant_sig', $2, true)`,
			f.b.ID.String(), f.signature(f.b.ID.String(), handleRole(f.b)))
		must(t, err)
		if f.m == tenant.ModelSchema {
			_, err = tx.Exec(ctx, `SELECT set_config('role', $1, true)`, f.b.ID.RoleName())
			must(t, err)
		}
		_, err = tx.Exec(ctx, `SELECT set_config('search_path', 'pg_temp, '||$1, true)`, ident(f.b.Schema))
		must(t, err)
		// B's own statement: its row, into what its path names T.
		_, err = tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM jsonb_populate_record(NULL::%s, $1::jsonb) r`,
			T, tb.colList(""), tb.colList("r."), tb.in(f.b)), bRow.String())
		must(t, err)
		must(t, tx.Commit(ctx))
		f.mustLeak(t, run(ctx, c, naive.notices, `SELECT x::text FROM pg_temp.`+T+` x`))
	})
	t.Run("handle", func(t *testing.T) {
		// TEMP granted (one layer off): the planted table is last on
		// B's path, so B's write goes to B's table.
		o := f.viaHandle(t, f.ctxA, nil, false, `CREATE TEMP TABLE `+T+` (`+cols+`)`)
		must(t, o.err)
		_, err := f.h.Exec(f.ctxB, tb.insert(T), bRow.String())
		must(t, err)
		o = f.viaHandle(t, f.ctxA, nil, false, `SELECT x::text FROM pg_temp.`+T+` x`)
		if o.err != nil && !isPgCode(o.err, "42P01") {
			t.Fatal(o.err)
		}
		f.noLeak(t, o)
		var n int
		must(t, f.h.QueryRow(f.ctxB, `SELECT count(*) FROM `+T+` x WHERE `+tb.keyMatch("x", bRow)).Scan(&n))
		if n != 1 {
			t.Fatal("B's write did not land in B's table")
		}
	})
}

// hostileSlugs are slugs no tenant may get: injections, reserved names,
// lengths, Unicode tricks.
var hostileSlugs = []string{
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
// row cannot carry an identifier that is not one.
func (f *fx) attackI20Names(t *testing.T) {
	ctx := context.Background()
	c := f.controlConn(t)
	count := func() (n int) {
		must(t, c.conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM landlord.tenants) + (SELECT count(*) FROM landlord.provisioning_ledger)`).Scan(&n))
		return n
	}
	for i, slug := range hostileSlugs {
		t.Run(fmt.Sprintf("slug-%02d", i), func(t *testing.T) {
			before := count()
			_, err := f.l.CreateTenant(ctx, provision.Request{Slug: slug, Model: f.m})
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
			if (f.m != tenant.ModelRow && !re.MatchString(tn.Schema)) || (f.m == tenant.ModelDatabase && !re.MatchString(tn.Database)) ||
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

// attackI21DatabaseAccess: a tenant database grants nothing to PUBLIC;
// only its own role connects. Granted CONNECT to PUBLIC, anyone connects
// and learns how many rows B's tables hold.
func attackI21DatabaseAccess(t *testing.T, k Kit) {
	ctx := context.Background()
	f := newFx(t, k, tenant.ModelDatabase, landlord.Config{})
	stranger := randomName("landlordtest_stranger")
	f.exec(t, f.a, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'x-%s'`, stranger, stranger))
	t.Cleanup(func() { f.exec(t, f.a, `DROP ROLE IF EXISTS `+stranger) })
	bdb := ident(f.b.Database)
	connectAs := func(role string) (*pgx.Conn, error) {
		cc, err := f.l.Provisioner().ConnConfig(ctx, f.b.Server, f.b.Database, "")
		must(t, err)
		cc.User = role
		switch role {
		case stranger:
			cc.Password = "x-" + stranger
		default:
			cc.Password = f.roles.Password(role)
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
	for _, c := range []struct{ name, role string }{{"tenant-role", f.a.ID.RoleName()}, {"app-role", f.roles.App}, {"stranger", stranger}} {
		t.Run("refused/"+c.name, func(t *testing.T) {
			conn, err := connectAs(c.role)
			if err == nil {
				conn.Close(ctx)
				t.Fatalf("%s connected to B's database", c.role)
			}
			if !isPgCode(err, "42501") {
				t.Fatalf("%s: %v, want permission denied", c.role, err)
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
		must(t, conn.QueryRow(ctx, `SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables`).Scan(&rows))
		// Statistics reach the collector asynchronously; the connection
		// alone is the failure.
		t.Logf("a stranger connected to B's database (it sees %d inserted rows)", rows)
	})
}

// attackI23Export: with no context the database returns zero rows and
// no error, so an export that trusts it silently loses everything. The
// handle refuses instead, and an explicit export through an admin scope
// matches the superuser's counts and checksums per tenant.
func (f *fx) attackI23Export(t *testing.T) {
	ctx := context.Background()
	T := f.main.q()
	sum := func(from string) string {
		return `SELECT count(*), coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM ` + from + ` x`
	}
	t.Run("silent-zero", func(t *testing.T) {
		// B's own traffic role, on B's own placement, with no context.
		as := ""
		if f.m != tenant.ModelRow {
			as = f.b.ID.RoleName()
		}
		o := f.at(t, f.b, stage{setting: "unset", as: as}, "", `SELECT count(*) FROM `+T)
		must(t, o.err)
		if fmt.Sprint(o.rows) != "[[0]]" {
			t.Fatalf("without a context the database returned %v", o.rows)
		}
	})
	t.Run("handle-refuses", func(t *testing.T) {
		if _, err := f.h.Query(ctx, sum(T)); !errors.Is(err, landlord.ErrNoTenant) {
			t.Fatalf("an export without a tenant: %v", err)
		}
	})
	t.Run("explicit-export", func(t *testing.T) {
		admin, err := f.l.Admin(ctx, "attack suite: export and verify")
		must(t, err)
		got := map[tenant.ID]string{}
		err = admin.Each(ctx, directory.Filter{}, func(ctx context.Context, tn tenant.Tenant, q landlord.Querier) error {
			var n int64
			var h string
			if err := q.QueryRow(ctx, sum(T)).Scan(&n, &h); err != nil {
				return err
			}
			got[tn.ID] = fmt.Sprint(n, h)
			return nil
		})
		must(t, err)
		for _, tn := range []tenant.Tenant{f.a, f.b} {
			var n int64
			var h string
			must(t, f.super(t, tn).conn.QueryRow(ctx, sum(`(SELECT * FROM `+f.main.in(tn)+` WHERE tenant_id = $1)`), tn.ID).Scan(&n, &h))
			if got[tn.ID] != fmt.Sprint(n, h) || n == 0 {
				t.Fatalf("export of %s: %q, superuser sees %d rows %s", tn.Slug, got[tn.ID], n, h)
			}
		}
	})
}

// attackI24TriggerPaths: rows written by triggers land in the writer's
// placement with the writer's tenant. A trigger that resolves names through
// the caller's search path writes into B's schema when the path is hijacked
// and the privilege layer is off; through the handle the hijacked path
// meets the privilege layer.
func (f *fx) attackI24TriggerPaths(t *testing.T) {
	ctx := context.Background()
	t.Run("rows-land-with-writer", func(t *testing.T) {
		// Seeding fired the application's triggers: every row at a
		// tenant's own placement is that tenant's, and A reads only its
		// own.
		for _, tb := range f.tables {
			if f.m != tenant.ModelRow {
				for _, tn := range []tenant.Tenant{f.a, f.b} {
					var n int
					must(t, f.super(t, tn).conn.QueryRow(ctx, `SELECT count(*) FROM `+tb.in(tn)+` WHERE tenant_id <> $1`, tn.ID).Scan(&n))
					if n != 0 {
						t.Fatalf("%s's placement holds %d rows of %s of another tenant", tn.Slug, n, tb.name)
					}
				}
			}
			var own int
			must(t, f.super(t, f.a).conn.QueryRow(ctx, `SELECT count(*) FROM `+tb.in(f.a)+` WHERE tenant_id = $1`, f.a.ID).Scan(&own))
			o := f.viaHandle(t, f.ctxA, nil, false, `SELECT x::text FROM `+tb.q()+` x`)
			must(t, o.err)
			f.noLeak(t, o)
			if len(o.rows) != own {
				t.Fatalf("A reads %d rows of %s, want its own %d", len(o.rows), tb.name, own)
			}
		}
	})
	if f.m != tenant.ModelSchema {
		return
	}
	tb := f.main
	if tb.copyProblem != "" {
		t.Run("defense-off", func(t *testing.T) { t.Skip("the kit cannot make rows of " + tb.name + ": " + tb.copyProblem) })
		return
	}
	T := tb.q()
	// A trigger on A's table that writes a copy of each new row into the
	// table its caller's path names T.
	trigger := []string{`CREATE FUNCTION {s}.landlordtest_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF pg_trigger_depth() = 1 THEN
		` + tb.insertFrom(T, `jsonb_populate_record(NEW, `+tb.freshExprs("NEW", 9)+`)`) + `;
	END IF;
	RETURN NEW;
END $$`, `CREATE TRIGGER landlordtest_copy AFTER INSERT ON {s}.` + T + ` FOR EACH ROW EXECUTE FUNCTION {s}.landlordtest_copy()`}
	hijack := fmt.Sprintf(`SELECT set_config('search_path', %s, true)`, literal(ident(f.b.Schema)+", "+ident(f.a.Schema)))
	insert := tb.insert(tb.in(f.a))
	aRow := f.row(t, tb, f.a, 2)
	landed := `SELECT count(*) FROM ` + tb.in(f.b) + ` WHERE tenant_id = '{A}'`
	t.Run("defense-off", func(t *testing.T) {
		// Privileges on B's schema granted, path hijacked: the copy
		// lands in B's schema.
		ddl := append(slices.Clone(trigger),
			`GRANT USAGE ON SCHEMA `+ident(f.b.Schema)+` TO {roleA}`,
			`GRANT INSERT ON `+tb.in(f.b)+` TO {roleA}`)
		// A's copy in B's schema finds none of A's rows it refers to.
		for _, k := range tb.fks {
			ddl = append(ddl, `ALTER TABLE `+tb.in(f.b)+` DROP CONSTRAINT `+ident(k.name))
		}
		o := f.at(t, f.a, stage{ddl: ddl, pre: []string{hijack}, after: landed}, "", insert, aRow.String())
		must(t, o.err)
		if fmt.Sprint(o.after) != "[[1]]" {
			t.Fatalf("the trigger did not follow the hijacked path: %v", o.after)
		}
	})
	t.Run("handle", func(t *testing.T) {
		// B's schema is skipped on A's path: A has no USAGE on it.
		f.exec(t, f.a, trigger...)
		defer f.exec(t, f.a, `DROP TRIGGER landlordtest_copy ON {s}.`+T, `DROP FUNCTION {s}.landlordtest_copy()`)
		tx, err := f.h.Begin(f.ctxA)
		must(t, err)
		defer tx.Rollback(ctx)
		_, err = tx.Exec(f.ctxA, hijack)
		must(t, err)
		_, err = tx.Exec(f.ctxA, insert, aRow.String())
		must(t, err)
		var own int
		must(t, tx.QueryRow(f.ctxA, `SELECT count(*) FROM `+tb.in(f.a)+` x WHERE `+tb.keyMatch("x", f.refresh(t, tb, f.a, aRow, 9))).Scan(&own))
		if own != 1 {
			t.Fatalf("A's copy is %d times in A's schema, want once", own)
		}
		var n int
		must(t, f.super(t, f.b).conn.QueryRow(ctx, f.expand(landed, f.b, "")).Scan(&n))
		if n != 0 {
			t.Fatal("a row of A landed in B's schema")
		}
	})
}
