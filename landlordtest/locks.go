package landlordtest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/tenant"
)

// attackI38TableLocks: LOCK TABLE locks the whole table, and in the row
// model the table holds every tenant's rows: A's ACCESS EXCLUSIVE lock, held
// in an open transaction, stalls every statement of B's on it. The app role
// may take it (it holds UPDATE and DELETE), so the handle refuses LOCK in
// every model. defense-off takes the lock as A's role at B's placement and
// finds it granted on the table that holds B's rows.
func (f *fx) attackI38TableLocks(t *testing.T) {
	T := f.main.q()
	lock := `LOCK TABLE ` + T + ` IN ACCESS EXCLUSIVE MODE`
	if f.m == tenant.ModelRow {
		t.Run("defense-off", func(t *testing.T) {
			o := f.at(t, f.b, stage{after: `SELECT 'CANARY-B-stalled' FROM pg_locks
				WHERE locktype = 'relation' AND relation = '` + strings.ReplaceAll(T, "'", "''") + `'::regclass
				AND mode = 'AccessExclusiveLock' AND granted AND pid = pg_backend_pid()`}, "", lock)
			must(t, o.err)
			if len(o.after) != 1 {
				t.Fatalf("A's role took no ACCESS EXCLUSIVE lock on the table of B's rows: %v, after %v", o, o.after)
			}
		})
	}
	t.Run("handle", func(t *testing.T) {
		f.mustRefuse(t, lock, `lock `+T, `SELECT 1; LOCK TABLE `+T+` IN SHARE MODE`)
		// Row locks reach A's own rows only, and stay allowed.
		must(t, f.viaHandle(t, f.ctxA, nil, false, `SELECT count(*) FROM (SELECT 1 FROM `+T+` FOR UPDATE) x`).err)
	})
}

// mustRefuse fails unless the handle refuses each of sqls with
// ErrStatementRefused before sending it: alone, inside a transaction, and
// queued in a batch after another statement.
func (f *fx) mustRefuse(t *testing.T, sqls ...string) {
	t.Helper()
	for _, sql := range sqls {
		o := f.viaHandle(t, f.ctxA, nil, false, sql)
		if !errors.Is(o.err, landlord.ErrStatementRefused) {
			t.Fatalf("%s through the handle: %v, want ErrStatementRefused", sql, o)
		}
		o = f.viaHandle(t, f.ctxA, []string{`SELECT 1`}, false, sql)
		if !errors.Is(o.err, landlord.ErrStatementRefused) {
			t.Fatalf("%s in a transaction: %v, want ErrStatementRefused", sql, o)
		}
		b := &pgx.Batch{}
		b.Queue(`SELECT 1`)
		b.Queue(sql)
		if err := f.h.SendBatch(f.ctxA, b).Close(); !errors.Is(err, landlord.ErrStatementRefused) {
			t.Fatalf("a batch with %s: %v, want ErrStatementRefused", sql, err)
		}
	}
}

// landlordLocks are advisory locks Landlord itself waits for, in the control
// database: the template database's (provision/template.go, "LLTP", 2),
// the tenant context's installation (migration/context.go, "LLCX", 1) and
// the migration of the shared schema (migration/apply.go, "LLMG" and the
// schema's hashtext).
var landlordLocks = []struct{ name, keys string }{
	{"template-database", `1280070736, 2`},
	{"context-install", `1280066392, 1`},
	{"shared-schema-migration", `1280068935, hashtext('shared')`},
}

// attackI39LockSquatting: advisory locks share one key space per database
// (I26), and Landlord coordinates its own work with advisory locks of two
// keys in the control database, where row and schema tenants run. Their
// keys are constants or derived from names, so a tenant transaction that
// took one and stayed open (an injected pg_sleep is enough) made
// Landlord's provisioning, migrations or context changes wait as long as
// it liked. Where a superuser bootstraps, PUBLIC loses the advisory-lock
// functions of two keys (the owner role keeps them): tenant SQL cannot
// take such a lock at all, while the one-key locks that applications
// coordinate with stay. defense-off grants them back to PUBLIC: A's
// transaction takes each of Landlord's keys, and Landlord's try-lock fails.
func (f *fx) attackI39LockSquatting(t *testing.T) {
	ctx := context.Background()
	super := f.super(t, f.a).conn
	squat := func(t *testing.T, keys string) error {
		tx, err := f.h.Begin(f.ctxA)
		must(t, err)
		defer tx.Rollback(ctx)
		_, err = tx.Exec(f.ctxA, `SELECT pg_advisory_xact_lock(`+keys+`)`)
		if err != nil {
			return err
		}
		var got bool
		must(t, super.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+keys+`)`).Scan(&got))
		if got {
			_, err := super.Exec(ctx, `SELECT pg_advisory_unlock(`+keys+`)`)
			must(t, err)
			t.Fatalf("Landlord's lock %s was free while A's transaction held its keys", keys)
		}
		return nil
	}
	t.Run("defense-off", func(t *testing.T) {
		const fn = `pg_catalog.pg_advisory_xact_lock(integer, integer)`
		var held bool
		must(t, super.QueryRow(ctx, `SELECT has_function_privilege('public', '`+fn+`', 'EXECUTE')`).Scan(&held))
		if !held {
			_, err := super.Exec(ctx, `GRANT EXECUTE ON FUNCTION `+fn+` TO PUBLIC`)
			must(t, err)
			defer func() {
				_, err := super.Exec(ctx, `REVOKE EXECUTE ON FUNCTION `+fn+` FROM PUBLIC`)
				must(t, err)
			}()
		}
		for _, l := range landlordLocks {
			if err := squat(t, l.keys); err != nil {
				t.Fatalf("%s: A could not take the keys with the function open to PUBLIC: %v", l.name, err)
			}
		}
	})
	t.Run("handle", func(t *testing.T) {
		f.bootstrapAsSuperuser(t)
		for _, l := range landlordLocks {
			if err := squat(t, l.keys); !isPgCode(err, pgerrcode.InsufficientPrivilege) {
				t.Fatalf("%s: A's transaction took Landlord's keys (%v), want permission denied", l.name, err)
			}
		}
		// The one-key locks that applications coordinate with stay open.
		tx, err := f.h.Begin(f.ctxA)
		must(t, err)
		defer tx.Rollback(ctx)
		_, err = tx.Exec(f.ctxA, `SELECT pg_advisory_xact_lock(4246)`)
		must(t, err)
	})
}

// attackI40TempFiles: a sort or hash over generate_series writes temporary
// files without end unless temp_file_limit bounds them, and a full disk
// stops every tenant. The embedded server sets the limit, the audit warns
// on a server that is Landlord's alone without one (SECURITY.md, I40), and
// only a superuser may raise it: tenant SQL, by SET or set_config, cannot.
// defense-off runs the same statements as the superuser, which may.
func (f *fx) attackI40TempFiles(t *testing.T) {
	ctx := context.Background()
	raise := []string{`SET LOCAL temp_file_limit = -1`, `SELECT set_config('temp_file_limit', '-1', true)`}
	t.Run("defense-off", func(t *testing.T) {
		for _, sql := range raise {
			tx, err := f.super(t, f.a).conn.Begin(ctx)
			must(t, err)
			_, err = tx.Exec(ctx, sql)
			must(t, errors.Join(err, tx.Rollback(ctx)))
		}
	})
	t.Run("handle", func(t *testing.T) {
		// Also from inside an expression of an injectable statement.
		injected := injectedWhere(f.main.q(), `' UNION ALL SELECT set_config('temp_file_limit', '-1', true) WHERE '' = '`)
		for _, sql := range append(raise, injected) {
			o := f.viaHandle(t, f.ctxA, []string{`SELECT 1`}, false, sql)
			if !isPgCode(o.err, pgerrcode.InsufficientPrivilege) {
				t.Fatalf("%s as A: %v, want permission denied", sql, o)
			}
		}
	})
}
