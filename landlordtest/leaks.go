package landlordtest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// Attacks on what tenants share outside their tables: the planner's
// statistics, large objects, other sessions' query text and the server's
// maintenance databases (SECURITY.md, I32, I35, I36).
//
// What the database closes here only a superuser can revoke, and the kit's
// installations are bootstrapped by their own administrator, which need not
// be one. The handle runs therefore first bootstrap the installation once
// more as the superuser, on a session that says the server is Landlord's
// alone: what an operator does with `landlord init` as a superuser.

// bootstrapAsSuperuser runs the installation's bootstrap again with the
// superuser as its administrator, on a server that says it serves Landlord
// alone (provision.OwnServerSetting, for this session only).
func (f *fx) bootstrapAsSuperuser(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(f.k.SuperuserURL(f.control))
	must(t, err)
	cfg.ConnConfig.RuntimeParams[provision.OwnServerSetting] = "on"
	cfg.MaxConns = 2
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	must(t, err)
	defer admin.Close()
	_, err = provision.New(ctx, admin, f.l.Provisioner().Migrator().Set(), provision.Config{
		OwnerRole: f.roles.Owner, AppRole: f.roles.App, Install: provision.InstallExisting,
	})
	if err != nil {
		t.Fatalf("bootstrap as the superuser: %v", err)
	}
}

// estimates is the kit's table for the planner's estimates: 200 rows of B
// that share one value, 200 rows of A with values of their own, analyzed.
var estimates = []string{
	`CREATE TABLE {s}.landlordtest_estimates (tenant_id uuid NOT NULL, name text NOT NULL)`,
	`ALTER TABLE {s}.landlordtest_estimates ENABLE ROW LEVEL SECURITY`,
	`ALTER TABLE {s}.landlordtest_estimates FORCE ROW LEVEL SECURITY`,
	`CREATE POLICY p ON {s}.landlordtest_estimates USING (` + migration.TenantPredicate + `)`,
	`GRANT SELECT ON {s}.landlordtest_estimates TO {roleA}`,
	`INSERT INTO {s}.landlordtest_estimates SELECT '{B}', 'CANARY-B-estimate' FROM generate_series(1, 200)`,
	`INSERT INTO {s}.landlordtest_estimates SELECT '{A}', 'a-' || i FROM generate_series(1, 200) i`,
	`ANALYZE {s}.landlordtest_estimates`,
}

// planRows reads the row estimate of the top plan node from EXPLAIN's
// text, in rows or in notices.
var planRows = regexp.MustCompile(`rows=(\d+)`)

func estimate(t *testing.T, text string) int {
	t.Helper()
	m := planRows.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no row estimate in %q", text)
	}
	n, err := strconv.Atoi(m[1])
	must(t, err)
	return n
}

// attackI32ExplainEstimates: EXPLAIN's row estimates come from statistics
// over every row of a table, so in the row model A learns whether, and how
// often, B holds a value; a loop over prefixes recovers it. The handle
// refuses EXPLAIN, and a DO block that would run it dynamically has no
// PL/pgSQL once a superuser has bootstrapped the installation.
func (f *fx) attackI32ExplainEstimates(t *testing.T) {
	probe := `EXPLAIN SELECT * FROM {s}.landlordtest_estimates WHERE name = %s`
	if f.m == tenant.ModelRow {
		t.Run("defense-off", func(t *testing.T) {
			// Nothing refuses EXPLAIN on the superuser's connection: A's
			// role, with A's context, at the shared table.
			st := stage{ddl: estimates}
			hit := f.at(t, f.b, st, "", fmt.Sprintf(probe, `'CANARY-B-estimate'`))
			miss := f.at(t, f.b, st, "", fmt.Sprintf(probe, `'CANARY-B-absent'`))
			must(t, errors.Join(hit.err, miss.err))
			if h, m := estimate(t, fmt.Sprint(hit.rows)), estimate(t, fmt.Sprint(miss.rows)); h <= 5*m {
				t.Fatalf("the estimate of B's value (%d rows) does not stand out from an absent one (%d): the probe proves nothing", h, m)
			}
			// The same through a DO block, where PL/pgSQL is granted.
			st.ddl = append(st.ddl, `GRANT USAGE ON LANGUAGE plpgsql TO PUBLIC`)
			do := func(value string) string {
				return `DO $$ DECLARE l text; BEGIN FOR l IN EXECUTE ` + literal(fmt.Sprintf(probe, value)) + ` LOOP RAISE NOTICE 'plan %', l; END LOOP; END $$`
			}
			hit = f.at(t, f.b, st, "", do(`'CANARY-B-estimate'`))
			miss = f.at(t, f.b, st, "", do(`'CANARY-B-absent'`))
			must(t, errors.Join(hit.err, miss.err))
			if h, m := estimate(t, noticeText(hit.notices)), estimate(t, noticeText(miss.notices)); h <= 5*m {
				t.Fatalf("through a DO block, the estimate of B's value (%d rows) does not stand out from an absent one (%d)", h, m)
			}
		})
	}
	sel := `SELECT * FROM ` + f.main.q() + ` x`
	t.Run("handle/refused", func(t *testing.T) {
		f.mustRefuse(t, `EXPLAIN `+sel, `/* a comment */ explain (FORMAT json) `+sel, `SELECT 1; EXPLAIN `+sel)
		// A word that merely spells it is not refused.
		o := f.viaHandle(t, f.ctxA, nil, false, `SELECT 'EXPLAIN' AS "explain"`)
		must(t, o.err)
	})
	if f.m == tenant.ModelDatabase {
		// A database tenant's statistics hold its own rows only, and its
		// database is a copy of the template the kit's administrator
		// prepared.
		return
	}
	t.Run("handle/do-block", func(t *testing.T) {
		f.bootstrapAsSuperuser(t)
		o := f.viaHandle(t, f.ctxA, nil, false, `DO $$ DECLARE l text; BEGIN FOR l IN EXECUTE `+
			literal(`EXPLAIN `+sel)+` LOOP RAISE NOTICE 'plan %', l; END LOOP; END $$`)
		if !isPgCode(o.err, pgerrcode.InsufficientPrivilege) || len(o.notices) != 0 {
			t.Fatalf("a DO block ran EXPLAIN as A: %v", o)
		}
		// The owner still creates PL/pgSQL functions, and A still runs
		// an existing one: running one needs no USAGE on the language.
		st := stage{ddl: []string{
			`SET LOCAL ROLE {owner}`,
			`CREATE FUNCTION {s}.landlordtest_plpgsql() RETURNS int LANGUAGE plpgsql AS $f$ BEGIN RETURN 7; END $f$`,
			`GRANT EXECUTE ON FUNCTION {s}.landlordtest_plpgsql() TO {roleA}`,
			`RESET ROLE`,
		}}
		o = f.at(t, f.a, st, "", `SELECT {s}.landlordtest_plpgsql()`)
		must(t, o.err)
		if fmt.Sprint(o.rows) != "[[7]]" {
			t.Fatalf("A's call of a PL/pgSQL function: %v", o)
		}
	})
}

// largeObject is the canary of B's large objects.
const largeObject = canaryMark + "-large-object"

// attackI35LargeObjects: every row tenant runs as the app role, which owns
// every large object any of them made, so A reads B's. Once a superuser has
// bootstrapped the installation, PUBLIC may not call the large-object
// functions, nor read other sessions' query text in pg_stat_activity.
func (f *fx) attackI35LargeObjects(t *testing.T) {
	read := `SELECT convert_from(lo_get(%d), 'UTF8')`
	if f.m == tenant.ModelRow {
		t.Run("defense-off", func(t *testing.T) {
			// B's traffic made the object: the app role owns it.
			const oid = 1770001
			o := f.at(t, f.b, stage{ddl: []string{
				`GRANT EXECUTE ON FUNCTION lo_get(oid) TO PUBLIC`,
				fmt.Sprintf(`SELECT lo_from_bytea(%d, convert_to(%s, 'UTF8'))`, oid, literal(largeObject)),
				fmt.Sprintf(`ALTER LARGE OBJECT %d OWNER TO {app}`, oid),
			}}, "", fmt.Sprintf(read, oid))
			if !strings.Contains(o.text(), largeObject) {
				t.Fatalf("with the functions granted A did not read B's large object: %v", o)
			}
		})
	}
	if f.m == tenant.ModelDatabase {
		// Each tenant database holds its own large objects, and its own
		// tenant's sessions only.
		return
	}
	t.Run("handle", func(t *testing.T) {
		f.bootstrapAsSuperuser(t)
		const oid = 1770002
		f.exec(t, f.b, fmt.Sprintf(`SELECT lo_from_bytea(%d, convert_to(%s, 'UTF8'))`, oid, literal(largeObject)),
			fmt.Sprintf(`ALTER LARGE OBJECT %d OWNER TO %s`, oid, ident(f.roleOf(f.b))))
		t.Cleanup(func() { f.exec(t, f.b, fmt.Sprintf(`SELECT lo_unlink(%d)`, oid)) })
		o := f.viaHandle(t, f.ctxA, nil, false, fmt.Sprintf(read, oid))
		var pgErr *pgconn.PgError
		if !errors.As(o.err, &pgErr) || pgErr.Code != pgerrcode.InsufficientPrivilege || !strings.Contains(pgErr.Message, "lo_get") {
			t.Fatalf("A called lo_get on B's large object: %v", o)
		}
		if strings.Contains(o.text(), largeObject) {
			t.Fatalf("A read B's large object: %v", o)
		}
		for _, sql := range []string{`SELECT query FROM pg_stat_activity`, `SELECT pg_stat_get_backend_activity(1)`} {
			o := f.viaHandle(t, f.ctxA, nil, false, sql)
			if !isPgCode(o.err, pgerrcode.InsufficientPrivilege) {
				t.Fatalf("%s as A: %v, want permission denied", sql, o)
			}
		}
	})
}

// attackI36MaintenanceDatabases: on a server that is Landlord's alone,
// bootstrap closes postgres and template1 to every role but the
// superusers, so that tenant logins reach nothing but their own database.
// The server's state before is put back afterwards.
func (f *fx) attackI36MaintenanceDatabases(t *testing.T) {
	ctx := context.Background()
	super := f.super(t, f.a).conn
	var before []string
	must(t, super.QueryRow(ctx, `SELECT coalesce(array_agg(format('GRANT %s ON DATABASE %I TO PUBLIC', p, d.datname)), '{}')
		FROM pg_database d, unnest(ARRAY['CONNECT', 'TEMPORARY']) p
		WHERE d.datname IN ('postgres', 'template1') AND has_database_privilege('public', d.oid, p)`).Scan(&before))
	t.Cleanup(func() { f.exec(t, f.a, before...) })
	f.bootstrapAsSuperuser(t)
	var open int
	must(t, super.QueryRow(ctx, `SELECT count(*) FROM pg_database d, unnest(ARRAY['CONNECT', 'TEMPORARY']) p
		WHERE d.datname IN ('postgres', 'template1') AND has_database_privilege('public', d.oid, p)`).Scan(&open))
	if open != 0 {
		t.Fatalf("PUBLIC keeps %d privileges on the maintenance databases", open)
	}
	for _, r := range []struct{ name, role string }{{"tenant-role", f.a.ID.RoleName()}, {"app-role", f.roles.App}} {
		role := r.role
		for _, db := range []string{"postgres", "template1"} {
			t.Run(r.name+"/"+db, func(t *testing.T) {
				cc := f.trafficConfig(t, f.a).Copy()
				cc.User, cc.Password, cc.Database = role, f.roles.Password(role), db
				conn, err := pgx.ConnectConfig(ctx, cc)
				if err == nil {
					conn.Close(ctx)
					t.Fatalf("%s connected to %s", role, db)
				}
				if !isPgCode(err, pgerrcode.InsufficientPrivilege) {
					t.Fatalf("%s to %s: %v, want permission denied", role, db, err)
				}
			})
		}
	}
}

// attackI37SignalBackends: a role may cancel and terminate every backend
// logged in as itself, and every row and schema tenant logs in as the app
// role, so a row tenant's SQL could end any other tenant's connection; the
// pids are small numbers to try, with or without pg_stat_activity. Where a
// superuser bootstraps, PUBLIC loses both functions (the administrator
// signals what it must). The target is an idle connection of B's traffic;
// cancelling an idle backend changes nothing, and answers whether the
// signal was allowed.
func (f *fx) attackI37SignalBackends(t *testing.T) {
	naive := f.naivePool(t, f.b)
	o := naive.call(t, f.b, `SELECT pg_backend_pid()`)
	must(t, o.err)
	if len(o.rows) != 1 || len(o.rows[0]) != 1 {
		t.Fatalf("B's backend pid: %v", o)
	}
	pid := o.rows[0][0]
	cancel := fmt.Sprintf(`SELECT CASE WHEN pg_cancel_backend(%d) THEN 'CANARY-B-signalled' END`, pid)
	if f.m == tenant.ModelRow {
		t.Run("defense-off", func(t *testing.T) {
			f.mustLeak(t, f.at(t, f.b, stage{ddl: []string{`GRANT EXECUTE ON FUNCTION pg_cancel_backend(integer) TO PUBLIC`}}, "", cancel))
		})
	}
	t.Run("handle", func(t *testing.T) {
		f.bootstrapAsSuperuser(t)
		injected := injectedWhere(f.main.q(), fmt.Sprintf(`' UNION ALL SELECT pg_terminate_backend(%d)::text WHERE '' = '`, pid))
		for _, sql := range []string{cancel, fmt.Sprintf(`SELECT pg_terminate_backend(%d)`, pid), injected} {
			o := f.viaHandle(t, f.ctxA, nil, false, sql)
			if !isPgCode(o.err, pgerrcode.InsufficientPrivilege) {
				t.Fatalf("%s as A: %v, want permission denied", sql, o)
			}
		}
		// B's connection is still there.
		must(t, naive.call(t, f.b, `SELECT 1`).err)
	})
}
