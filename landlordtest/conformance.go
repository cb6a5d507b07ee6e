package landlordtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/tenant"
)

// Conformance runs the conformance suite (the same cases against every
// model) on installations of k, each case as a subtest of t.
// Tenant B holds canary values; nothing tenant A gets back (rows, command
// tags, errors) may contain one, and nothing A does may change B's rows.
//
// Per model, on every tenant table: A's reads, joins, counts and UPDATE ...
// RETURNING; writes with B's tenant_id and moves to B (refused); inserts that
// take tenant_id from the context; UPDATE and DELETE without WHERE; B's
// schema-qualified names and B's database (refused); B's unique keys (no
// conflict) and foreign keys (refused like a missing row); calls without a
// tenant; the database's own refusal of a connection without a context. Then
// the pool alternation: A and B alternate on one connection with a panic
// inside a transaction, a cancelled query and session state left behind in
// between (SECURITY.md, I05, I06, I19, I30). When k.PgBouncer is set, both
// run again with tenant traffic through PgBouncer in transaction pooling
// mode.
func Conformance(t *testing.T, k Kit) {
	k.check(t)
	suites := func(t *testing.T, cfg landlord.Config) {
		for _, m := range tenant.Models {
			t.Run(string(m), func(t *testing.T) {
				t.Parallel()
				runConformance(t, k, m, cfg)
			})
		}
		for _, m := range tenant.Models {
			t.Run("pool-alternation/"+string(m), func(t *testing.T) {
				t.Parallel()
				cfg := cfg
				cfg.MaxConns = 1
				runPoolAlternation(t, k, m, cfg)
			})
		}
	}
	suites(t, landlord.Config{})
	t.Run("pgbouncer", func(t *testing.T) {
		if k.PgBouncer == nil {
			t.Skip("Kit.PgBouncer is nil")
		}
		t.Parallel()
		suites(t, landlord.Config{Pooler: k.PgBouncer(t)})
	})
}

// bState returns, per table, what B reads of its own rows.
func (f *fx) bState(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tb := range f.tables {
		var n int
		var sum string
		must(t, f.h.QueryRow(f.ctxB, `SELECT count(*), coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM `+tb.q()+` x`).Scan(&n, &sum))
		out[tb.name] = fmt.Sprint(n, " ", sum)
	}
	return out
}

// bIntact checks, as B, that B's rows are as they were.
func (f *fx) bIntact(t *testing.T, before map[string]string) {
	t.Helper()
	for tb, now := range f.bState(t) {
		if now != before[tb] {
			t.Fatalf("tenant B's rows of %s changed: %s, were %s", tb, now, before[tb])
		}
	}
}

// noLeakIn fails t if v carries a canary.
func (f *fx) noLeakIn(t *testing.T, what string, v any) {
	t.Helper()
	var text string
	switch x := v.(type) {
	case nil:
		return
	case error:
		text = errText(x)
	default:
		text = fmt.Sprint(x)
	}
	if l := f.leaks(text); len(l) > 0 {
		t.Errorf("%s leaked tenant B's %q: %v", what, l, v)
	}
}

// all runs sql and returns every value of every row.
func all(ctx context.Context, q landlord.Querier, sql string, args ...any) ([][]any, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, rowValues)
}

func runConformance(t *testing.T, k Kit, m tenant.Model, cfg landlord.Config) {
	f := newFx(t, k, m, cfg)
	h := f.h
	bg := context.Background()
	before := f.bState(t)
	copyable := func(t *testing.T, tb *table) bool {
		t.Helper()
		if tb.copyProblem != "" {
			t.Logf("%s: the kit cannot make rows of it: %s", tb.name, tb.copyProblem)
			return false
		}
		return true
	}

	t.Run("select", func(t *testing.T) {
		for _, tb := range f.tables {
			rows, err := all(f.ctxA, h, `SELECT x::text FROM `+tb.q()+` x`)
			must(t, err)
			f.noLeakIn(t, "SELECT from "+tb.name, rows)
			if len(rows) != tb.nA {
				t.Fatalf("A sees %d rows of %s, want %d", len(rows), tb.name, tb.nA)
			}
		}
	})
	t.Run("join", func(t *testing.T) {
		var sqls []string
		for _, tb := range f.tables {
			sqls = append(sqls, `SELECT a::text, b::text FROM `+tb.q()+` a CROSS JOIN `+tb.q()+` b`)
			for _, fk := range tb.fks {
				c, p := identCols("c", fk.cols), identCols("p", fk.refCols)
				// The second join ignores tenant_id on purpose.
				sqls = append(sqls,
					fmt.Sprintf(`SELECT c::text, p::text FROM %s c JOIN %s p ON (c.tenant_id, %s) = (p.tenant_id, %s)`, tb.q(), ident(fk.ref), c, p),
					fmt.Sprintf(`SELECT c::text, p::text FROM %s c JOIN %s p ON (%s) = (%s)`, tb.q(), ident(fk.ref), c, p))
			}
		}
		for _, sql := range sqls {
			rows, err := all(f.ctxA, h, sql)
			must(t, err)
			f.noLeakIn(t, sql, rows)
		}
	})
	t.Run("count", func(t *testing.T) {
		for _, tb := range f.tables {
			var n int
			must(t, h.QueryRow(f.ctxA, `SELECT count(*) FROM `+tb.q()).Scan(&n))
			if n != tb.nA {
				t.Fatalf("A counts %d rows of %s, want %d", n, tb.name, tb.nA)
			}
			if tb.bOnly != nil {
				var exists bool
				must(t, h.QueryRow(f.ctxA, `SELECT EXISTS (SELECT FROM `+tb.q()+` x WHERE `+tb.keyMatch("x", tb.bOnly)+`)`).Scan(&exists))
				if exists {
					t.Fatalf("A can tell that B's key of %s exists", tb.name)
				}
			}
		}
	})
	t.Run("returning", func(t *testing.T) {
		for _, tb := range f.tables {
			func() {
				tx, err := h.Begin(f.ctxA)
				must(t, err)
				defer tx.Rollback(bg)
				rows, err := all(f.ctxA, tx, `UPDATE `+tb.q()+` x SET tenant_id = x.tenant_id RETURNING x::text`)
				must(t, err)
				f.noLeakIn(t, "UPDATE RETURNING", rows)
				if len(rows) != tb.nA {
					t.Fatalf("UPDATE %s RETURNING gave %d rows, want %d", tb.name, len(rows), tb.nA)
				}
			}()
		}
	})
	t.Run("insert-with-b-tenant-id", func(t *testing.T) {
		for _, tb := range f.tables {
			if !copyable(t, tb) {
				continue
			}
			_, err := h.Exec(f.ctxA, tb.insert(tb.q()), f.row(t, tb, f.a, 2).with("tenant_id", f.b.ID.String()).String())
			if !isPgCode(err, "42501") {
				t.Fatalf("insert into %s with B's tenant_id: got %v, want a row-level security violation", tb.name, err)
			}
			f.noLeakIn(t, "error", err)
		}
		f.bIntact(t, before)
	})
	t.Run("insert-defaults-to-context", func(t *testing.T) {
		for _, tb := range f.tables {
			if !copyable(t, tb) {
				continue
			}
			func() {
				tx, err := h.Begin(f.ctxA)
				must(t, err)
				defer tx.Rollback(bg)
				var got tenant.ID
				must(t, tx.QueryRow(f.ctxA, tb.insert(tb.q(), "tenant_id")+` RETURNING n.tenant_id`, f.row(t, tb, f.a, 2).String()).Scan(&got))
				if got != f.a.ID {
					t.Fatalf("tenant_id of %s defaulted to %s, want A %s", tb.name, got, f.a.ID)
				}
			}()
		}
	})
	t.Run("update-set-tenant-id", func(t *testing.T) {
		for _, tb := range f.tables {
			_, err := h.Exec(f.ctxA, `UPDATE `+tb.q()+` SET tenant_id = $1`, f.b.ID)
			if !isPgCode(err, "42501") {
				t.Fatalf("moving A's rows of %s to B: got %v, want a row-level security violation", tb.name, err)
			}
		}
		f.bIntact(t, before)
	})
	t.Run("update-without-where", func(t *testing.T) {
		for _, tb := range f.tables {
			func() {
				tx, err := h.Begin(f.ctxA)
				must(t, err)
				defer tx.Rollback(bg)
				tag, err := tx.Exec(f.ctxA, `UPDATE `+tb.q()+` SET tenant_id = tenant_id`)
				must(t, err)
				if tag.RowsAffected() != int64(tb.nA) {
					t.Fatalf("UPDATE %s without WHERE touched %d rows, want A's %d", tb.name, tag.RowsAffected(), tb.nA)
				}
			}()
		}
	})
	t.Run("qualified-names", func(t *testing.T) {
		for _, tb := range f.tables {
			sql := `SELECT x::text FROM ` + tb.in(f.b) + ` x`
			rows, err := all(f.ctxA, h, sql)
			f.noLeakIn(t, sql, rows)
			f.noLeakIn(t, sql+" error", err)
			switch m {
			case tenant.ModelRow:
				must(t, err) // the shared table, filtered to A
			case tenant.ModelSchema:
				if !isPgCode(err, "42501") {
					t.Errorf("%s as A: got %v, want permission denied", sql, err)
				}
			case tenant.ModelDatabase:
				if !isPgCode(err, "42P01") {
					t.Errorf("%s as A: got %v, want no such relation in A's database", sql, err)
				}
			}
		}
	})
	t.Run("connect-to-b-database", func(t *testing.T) {
		if f.a.Database == f.b.Database {
			t.Skipf("%s tenants share a database", m)
		}
		cfg, err := f.l.Provisioner().ConnConfig(bg, f.a.Server, f.b.Database, f.a.ID.RoleName())
		must(t, err)
		conn, err := pgx.ConnectConfig(bg, cfg)
		if err == nil {
			conn.Close(bg)
			t.Fatal("A's role connected to B's database")
		}
		if !isPgCode(err, "42501") {
			t.Fatalf("A's role connecting to B's database: got %v, want permission denied", err)
		}
	})
	t.Run("unique-probe", func(t *testing.T) {
		// A may use B's keys: nothing conflicts, nothing is revealed.
		for _, tb := range f.tables {
			if !copyable(t, tb) || tb.bOnly == nil {
				continue
			}
			r := f.row(t, tb, f.a, 1)
			for c := range tb.fresh {
				r = r.with(c, tb.bOnly[c])
			}
			func() {
				tx, err := h.Begin(f.ctxA)
				must(t, err)
				defer tx.Rollback(bg)
				_, err = tx.Exec(f.ctxA, tb.insert(tb.q()), r.String())
				f.noLeakIn(t, "unique probe", err)
				must(t, err)
			}()
		}
	})
	t.Run("fk-probe", func(t *testing.T) {
		// A reference to B's row fails exactly like one to no row.
		for _, tb := range f.tables {
			for _, fk := range tb.fks {
				ref := f.table(fk.ref)
				if !copyable(t, tb) || ref == nil || ref.bOnly == nil {
					continue
				}
				nobody := f.refresh(t, ref, f.b, ref.bOnly, 7)
				toB, toNone := f.row(t, tb, f.a, 2), f.row(t, tb, f.a, 2)
				for i, c := range fk.cols {
					toB = toB.with(c, ref.bOnly[fk.refCols[i]])
					toNone = toNone.with(c, nobody[fk.refCols[i]])
				}
				_, errB := h.Exec(f.ctxA, tb.insert(tb.q()), toB.String())
				_, errNone := h.Exec(f.ctxA, tb.insert(tb.q()), toNone.String())
				if !isPgCode(errB, "23503") || !isPgCode(errNone, "23503") {
					t.Fatalf("%s: B's row %v, no row %v; want foreign key violations for both", fk.name, errB, errNone)
				}
				f.noLeakIn(t, "FK probe", errB)
			}
		}
	})
	t.Run("no-tenant", func(t *testing.T) {
		if _, err := h.Exec(bg, `SELECT 1`); !errors.Is(err, landlord.ErrNoTenant) {
			t.Errorf("Exec: %v", err)
		}
		if _, err := h.Query(bg, `SELECT 1`); !errors.Is(err, landlord.ErrNoTenant) {
			t.Errorf("Query: %v", err)
		}
		if err := h.QueryRow(bg, `SELECT 1`).Scan(new(int)); !errors.Is(err, landlord.ErrNoTenant) {
			t.Errorf("QueryRow: %v", err)
		}
		if _, err := h.Begin(bg); !errors.Is(err, landlord.ErrNoTenant) {
			t.Errorf("Begin: %v", err)
		}
		b := &pgx.Batch{}
		b.Queue(`SELECT 1`)
		if err := h.SendBatch(bg, b).Close(); !errors.Is(err, landlord.ErrNoTenant) {
			t.Errorf("SendBatch: %v", err)
		}
	})
	t.Run("database-refuses-without-context", func(t *testing.T) {
		conn, err := pgx.ConnectConfig(bg, f.trafficConfig(t, f.a))
		must(t, err)
		defer conn.Close(bg)
		check := func(when string) {
			for _, tb := range f.tables {
				var n int
				err := conn.QueryRow(bg, `SELECT count(*) FROM `+tb.in(f.a)).Scan(&n)
				switch {
				case m == tenant.ModelSchema && !isPgCode(err, "42501"):
					t.Errorf("%s: the app role reads a tenant schema without switching role: %v", when, err)
				case m != tenant.ModelSchema && (err != nil || n != 0):
					t.Errorf("%s: without a tenant context the database returned %d rows of %s (%v), want 0", when, n, tb.name, err)
				}
				if tb.copyProblem != "" {
					continue
				}
				if _, err = conn.Exec(bg, tb.insert(tb.in(f.a)), f.row(t, tb, f.a, 2).String()); err == nil {
					t.Errorf("%s: an INSERT into %s without tenant context succeeded", when, tb.name)
				}
			}
		}
		check("fresh connection")
		// After a transaction that set the context, the setting reads ''
		// rather than NULL (SECURITY.md, I05).
		_, err = conn.Exec(bg, `BEGIN; SELECT set_config('landlord.tenant_id', '`+f.a.ID.String()+`', true); COMMIT`)
		must(t, err)
		check("after an expired context")
	})
	// Last: it empties A.
	t.Run("delete-without-where", func(t *testing.T) {
		// One statement, so that foreign keys between the tables are
		// checked when every table is empty.
		var ctes, counts []string
		for i, tb := range f.tables {
			ctes = append(ctes, fmt.Sprintf(`d%d AS (DELETE FROM %s RETURNING 1)`, i, tb.q()))
			counts = append(counts, fmt.Sprintf(`(SELECT count(*) FROM d%d)`, i))
		}
		tx, err := h.Begin(f.ctxA)
		must(t, err)
		defer tx.Rollback(bg)
		got := make([]int64, len(f.tables))
		dest := make([]any, len(got))
		for i := range got {
			dest[i] = &got[i]
		}
		must(t, tx.QueryRow(f.ctxA, `WITH `+strings.Join(ctes, ", ")+` SELECT `+strings.Join(counts, ", ")).Scan(dest...))
		for i, tb := range f.tables {
			if got[i] != int64(tb.nA) {
				t.Fatalf("DELETE FROM %s without WHERE removed %d rows, want A's %d", tb.name, got[i], tb.nA)
			}
		}
		must(t, tx.Commit(bg))
		f.bIntact(t, before)
	})
}

func identCols(x string, cols []string) string {
	var q []string
	for _, c := range cols {
		q = append(q, x+"."+ident(c))
	}
	return strings.Join(q, ", ")
}

// runPoolAlternation runs A and B alternately through one connection per
// pool, with a panic inside a transaction, a cancelled query, and session
// state left behind on purpose in between (SECURITY.md, I05, I06, I19, I30).
func runPoolAlternation(t *testing.T, k Kit, m tenant.Model, cfg landlord.Config) {
	f := newFx(t, k, m, cfg)
	h := f.h
	tb := f.main
	T := tb.q()
	before := f.bState(t)
	expect := func(ctx context.Context, who string, want tenant.Tenant) {
		t.Helper()
		var rows, setting, path string
		err := h.QueryRow(ctx, `SELECT coalesce(string_agg(x::text, ',' ORDER BY x::text), ''), current_setting('landlord.tenant_id'), current_setting('search_path') FROM `+T+` x`).
			Scan(&rows, &setting, &path)
		must(t, err)
		if setting != want.ID.String() || !strings.Contains(path, want.Schema) {
			t.Fatalf("%s: context is tenant %q path %q, want %s", who, setting, path, want.ID)
		}
		if who == "A" {
			f.noLeakIn(t, who+" read", rows)
		} else if !strings.Contains(rows, f.b.ID.String()) {
			t.Fatalf("B reads %q", rows)
		}
	}
	// The write of the transaction that panics: a copy of one of A's
	// rows, or, where the kit cannot make one, an update.
	inFlight, inFlightArgs := `UPDATE `+T+` SET tenant_id = tenant_id`, []any(nil)
	var inFlightRow row
	if tb.copyProblem == "" {
		inFlightRow = f.row(t, tb, f.a, 2)
		inFlight, inFlightArgs = tb.insert(T), []any{inFlightRow.String()}
	}
	for round := 0; round < 3; round++ {
		expect(f.ctxA, "A", f.a)
		expect(f.ctxB, "B", f.b)

		// A panics inside a transaction.
		func() {
			defer func() { _ = recover() }()
			_ = pgx.BeginFunc(f.ctxA, h, func(tx pgx.Tx) error {
				if _, err := tx.Exec(f.ctxA, inFlight, inFlightArgs...); err != nil {
					return err
				}
				panic("boom")
			})
		}()
		expect(f.ctxB, "B", f.b)

		// A's query is cancelled mid-flight.
		ctx, cancel := context.WithTimeout(f.ctxA, 50*time.Millisecond)
		_, err := h.Exec(ctx, `SELECT pg_sleep(5)`)
		cancel()
		if err == nil {
			t.Fatal("cancelled query succeeded")
		}
		expect(f.ctxB, "B", f.b)

		// A leaves session-level state behind on purpose. Its
		// connection is closed after the call; behind a
		// transaction pooler the statement is refused instead.
		pid := func() (pid int) {
			must(t, h.QueryRow(f.ctxA, `SELECT pg_backend_pid()`).Scan(&pid))
			return pid
		}
		was := pid()
		_, err = h.Exec(f.ctxA, `SELECT set_config('search_path', $1, false), set_config('landlord.tenant_id', $2, false)`,
			ident(f.a.Schema), f.a.ID.String())
		if cfg.Pooler != nil {
			if !errors.Is(err, landlord.ErrSessionState) {
				t.Fatalf("behind a pooler, a session-level set_config: %v, want ErrSessionState", err)
			}
		} else {
			must(t, err)
		}
		expect(f.ctxB, "B", f.b)
		if cfg.Pooler == nil {
			pid()
			if after := pid(); after == was {
				t.Fatalf("the connection that carried session state (pid %d) was not destroyed", was)
			}
		}

		// A's rows are unchanged by the rolled back transaction.
		if inFlightRow != nil {
			var n int
			must(t, h.QueryRow(f.ctxA, `SELECT count(*) FROM `+T+` x WHERE `+tb.keyMatch("x", inFlightRow)).Scan(&n))
			if n != 0 {
				t.Fatal("a panicked transaction committed")
			}
		}
	}
	f.bIntact(t, before)
}
