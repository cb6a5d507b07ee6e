package landlordtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/tenant"
)

// Attacks through the state of pooled connections (SECURITY.md, I06, I19, I25,
// I26, I28, I30). The defense-off runs use a raw pgx pool that does what
// the handle does, minus its defenses: each call is a transaction that sets
// the tenant context transaction-locally, and the connection goes back to
// the pool whatever the call left on it.

// naivePool is a pool of one connection, made like the handle's, that never
// closes a dirty connection.
type naivePool struct {
	pool    *pgxpool.Pool
	notices *noticeLog
	sign    func(id, role string) string // signs a context as the handle does
}

func (f *fx) naivePool(t *testing.T, tn tenant.Tenant) *naivePool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig("")
	must(t, err)
	n := &naivePool{notices: &noticeLog{}, sign: f.signature}
	cc := f.trafficConfig(t, tn)
	cc.RuntimeParams["search_path"] = searchPath(tn.Schema)
	cc.OnNotice = n.notices.add
	cfg.ConnConfig = cc
	cfg.MaxConns = 1
	n.pool, err = pgxpool.NewWithConfig(context.Background(), cfg)
	must(t, err)
	t.Cleanup(n.pool.Close)
	return n
}

// call runs sql as tn in a transaction that sets tn's context (and, for
// schema tenants, its role and path) transaction-locally, and commits.
func (n *naivePool) call(t *testing.T, tn tenant.Tenant, sql string) outcome {
	t.Helper()
	ctx := context.Background()
	c, err := n.pool.Acquire(ctx)
	must(t, err)
	defer c.Release()
	tx, err := c.Begin(ctx)
	must(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true), set_config('landlord.tenant_sig', $2, true)`,
		tn.ID.String(), n.sign(tn.ID.String(), handleRole(tn)))
	must(t, err)
	if tn.Model == tenant.ModelSchema {
		_, err = tx.Exec(ctx, `SELECT set_config('role', $1, true), set_config('search_path', $2, true)`, tn.ID.RoleName(), searchPath(tn.Schema))
		must(t, err)
	}
	o := run(ctx, tx, n.notices, sql)
	if o.err == nil {
		o.err = tx.Commit(ctx)
	}
	return o
}

// leftover is session state B leaves on a connection and how A would see it.
type leftover struct {
	name           string
	leave, observe string
	// known: the handle does not close the connection for this one, a gap
	// SECURITY.md documents; the test asserts that it still shows.
	known string
}

func (f *fx) leftovers() []leftover {
	T := f.main.q()
	return []leftover{
		{name: "cursor-with-hold", leave: `DECLARE landlordtest_c CURSOR WITH HOLD FOR SELECT x::text FROM ` + T + ` x`, observe: `FETCH ALL FROM landlordtest_c`},
		{name: "set", leave: `SET landlordtest.note = 'CANARY-B-note'`, observe: `SELECT current_setting('landlordtest.note', true)`},
		{name: "set-dotted-local", leave: `SET local.note = 'CANARY-B-note'`, observe: `SELECT current_setting('local.note', true)`},
		{name: "set-config", leave: `SELECT set_config('landlordtest.note', 'CANARY-B-note', false)`, observe: `SELECT current_setting('landlordtest.note', true)`},
		{name: "set-config-out-of-sight", leave: `SELECT landlordtest_set_note('CANARY-B-note')`, observe: `SELECT current_setting('landlordtest.note', true)`,
			known: "a session setting set inside a function survives on the pooled connection: the enter statement checks only the role"},
		{name: "prepare", leave: `PREPARE landlordtest_p AS SELECT 'CANARY-B-prepared'::text`, observe: `EXECUTE landlordtest_p`},
		{name: "prepared-statement-text", leave: `SELECT count(*) FROM ` + T + ` x WHERE x::text = 'CANARY-B-literal'`,
			observe: `SELECT coalesce(string_agg(statement, ' '), '') FROM pg_prepared_statements`,
			known:   "the handle prepares every statement on the shared connection, and pg_prepared_statements shows its text, literals included, to the next tenant"},
		{name: "listen", leave: `LISTEN "CANARY-B-channel"`, observe: `SELECT coalesce(string_agg(c, ' '), '') FROM pg_listening_channels() c`},
		{name: "advisory-lock", leave: `SELECT pg_advisory_lock(4242)`,
			observe: `SELECT 'CANARY-B-lock held' FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = 4242`},
		{name: "advisory-lock-escaped", leave: `SELECT U&"pg_adviso\0072y_lock"(4245)`,
			observe: `SELECT 'CANARY-B-lock held' FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = 4245`},
		{name: "set-config-escaped", leave: `SELECT U&"set\005fconfig"('landlordtest.note', 'CANARY-B-note', false)`,
			observe: `SELECT current_setting('landlordtest.note', true)`},
		// B seeds the generator; A's first random() then equals the first
		// one after the same seed, which the observation computes after it.
		{name: "setseed", leave: `SELECT setseed(0.4242)`,
			observe: `WITH a AS MATERIALIZED (SELECT random() AS r), s AS MATERIALIZED (SELECT setseed(0.4242) FROM a),
				b AS MATERIALIZED (SELECT random() AS r FROM s)
				SELECT CASE WHEN a.r = b.r THEN 'CANARY-B-seed' ELSE 'unseeded' END FROM a, b`},
		{name: "statement-timeout", leave: `SET statement_timeout = 4242`,
			observe: `SELECT CASE WHEN current_setting('statement_timeout') = '4242ms' THEN 'CANARY-B-timeout' ELSE 'default' END`},
	}
}

// attackI06SessionLeftovers: session state B leaves on a connection
// never reaches A. Through a pool that keeps dirty connections it does; the
// handle closes them. In the database model A and B never share a
// connection at all.
func (f *fx) attackI06SessionLeftovers(t *testing.T) {
	if f.m == tenant.ModelDatabase {
		t.Run("separate-connections", func(t *testing.T) { f.disjointBackends(t) })
		return
	}
	// A function that sets a session setting where no statement text
	// shows it, in B's placement.
	f.exec(t, f.b, `CREATE FUNCTION {s}.landlordtest_set_note(text) RETURNS text LANGUAGE sql AS $$ SELECT set_config('landlordtest.note', $1, false) $$`)
	t.Cleanup(func() { f.exec(t, f.b, `DROP FUNCTION IF EXISTS {s}.landlordtest_set_note(text)`) })
	naive := f.naivePool(t, f.a)
	for _, lo := range f.leftovers() {
		t.Run(lo.name, func(t *testing.T) {
			t.Run("defense-off", func(t *testing.T) {
				o := naive.call(t, f.b, lo.leave)
				must(t, o.err)
				f.mustLeak(t, naive.call(t, f.a, lo.observe))
				// Leave the naive connection clean for the next case.
				naive.pool.Reset()
			})
			t.Run("handle", func(t *testing.T) {
				o := f.viaHandle(t, f.ctxB, nil, false, lo.leave)
				must(t, o.err)
				o = f.viaHandle(t, f.ctxA, nil, false, lo.observe)
				l := f.leaks(o.text())
				if lo.known != "" {
					// A known gap is asserted, not skipped: the day it is
					// closed, this case and SECURITY.md must say so.
					if len(l) == 0 {
						t.Fatalf("the known gap %q no longer shows (%v): mark it fixed here and in SECURITY.md", lo.known, o)
					}
					t.Logf("known gap, as documented: %s (A got %q)", lo.known, l)
					return
				}
				if len(l) > 0 {
					t.Fatalf("tenant A got tenant B's %q: %v", l, o)
				}
			})
		})
	}
}

// attackI34HiddenSessionState: session state that tenant SQL changes where
// no statement keyword of the call shows it (SECURITY.md, I34) does not
// reach the next tenant on the connection, and does not break its call:
// DEALLOCATE ALL drops the prepared enter statement (the statement costs
// its connection; from a DO block, where no keyword shows it, the next
// call finds its enter statement gone and runs again on a new
// connection), and a DO block that sets the session's search path by
// dynamic EXECUTE (the enter statement refuses the connection, the call
// runs again on another). Where PL/pgSQL is not PUBLIC's the DO block is
// refused, which is as good.
func (f *fx) attackI34HiddenSessionState(t *testing.T) {
	T := f.main.q()
	read := `SELECT current_setting('search_path'), count(*) FROM ` + T
	var want string
	if err := f.h.QueryRow(f.ctxA, `SELECT current_setting('search_path')`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, sql string }{
		{"deallocate", `DEALLOCATE ALL`},
		{"do-block-search-path", `DO $$ BEGIN EXECUTE 'SET search_' || 'path = pg_catalog'; END $$`},
		{"do-block-deallocate", `DO $$ BEGIN EXECUTE 'DEALLOCATE ' || 'ALL'; END $$`},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := f.viaHandle(t, f.ctxB, nil, false, c.sql)
			if o.err != nil && !isPgCode(o.err, "42501") {
				t.Fatalf("B's %s: %v", c.name, o.err)
			}
			for i := 0; i < 3; i++ {
				var path string
				var n int
				if err := f.h.QueryRow(f.ctxA, read).Scan(&path, &n); err != nil {
					t.Fatalf("A's call after B's %s: %v", c.name, err)
				}
				if path != want {
					t.Fatalf("A's call after B's %s ran with search path %q, want %q", c.name, path, want)
				}
			}
		})
	}
}

// disjointBackends: calls of A and B, alternating, never run on one
// backend, and each runs in its own tenant's database.
func (f *fx) disjointBackends(t *testing.T) {
	pids := map[tenant.ID]map[int32]bool{f.a.ID: {}, f.b.ID: {}}
	for i := 0; i < 10; i++ {
		for _, tn := range []tenant.Tenant{f.a, f.b} {
			var pid int32
			var db string
			must(t, f.h.QueryRow(landlord.WithTenant(context.Background(), tn.ID), `SELECT pg_backend_pid(), current_database()`).Scan(&pid, &db))
			if db != tn.Database {
				t.Fatalf("%s's call ran in database %s", tn.Slug, db)
			}
			pids[tn.ID][pid] = true
		}
	}
	for pid := range pids[f.a.ID] {
		if pids[f.b.ID][pid] {
			t.Fatalf("A and B shared backend %d", pid)
		}
	}
}

// attackI19AlternatingTenants: the same SQL, alternating A and B on one
// connection through every call path of the handle, returns each caller's
// own rows and context.
func (f *fx) attackI19AlternatingTenants(t *testing.T) {
	sql := `SELECT coalesce(string_agg(x::text, ',' ORDER BY x::text), ''), current_setting('landlord.tenant_id'), pg_backend_pid() FROM ` + f.main.q() + ` x`
	paths := []struct {
		name string
		do   func(ctx context.Context, h *landlord.Handle) (rows, setting string, pid int32, err error)
	}{
		{"query-row", func(ctx context.Context, h *landlord.Handle) (s, set string, pid int32, err error) {
			err = h.QueryRow(ctx, sql).Scan(&s, &set, &pid)
			return
		}},
		{"query", func(ctx context.Context, h *landlord.Handle) (s, set string, pid int32, err error) {
			rows, err := h.Query(ctx, sql)
			if err != nil {
				return
			}
			for rows.Next() {
				err = rows.Scan(&s, &set, &pid)
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
			return
		}},
		{"named-args", func(ctx context.Context, h *landlord.Handle) (s, set string, pid int32, err error) {
			err = h.QueryRow(ctx, sql+` WHERE @skip::int <> -2`, pgx.NamedArgs{"skip": -1}).Scan(&s, &set, &pid)
			return
		}},
		{"batch", func(ctx context.Context, h *landlord.Handle) (s, set string, pid int32, err error) {
			b := &pgx.Batch{}
			b.Queue(sql).QueryRow(func(r pgx.Row) error { return r.Scan(&s, &set, &pid) })
			err = h.SendBatch(ctx, b).Close()
			return
		}},
		{"transaction", func(ctx context.Context, h *landlord.Handle) (s, set string, pid int32, err error) {
			err = pgx.BeginFunc(ctx, h, func(tx pgx.Tx) error { return tx.QueryRow(ctx, sql).Scan(&s, &set, &pid) })
			return
		}},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			pids := map[int32]bool{}
			var own string
			for round := 0; round < 6; round++ {
				for _, tn := range []tenant.Tenant{f.a, f.b} {
					s, set, pid, err := p.do(landlord.WithTenant(context.Background(), tn.ID), f.h)
					must(t, err)
					pids[pid] = true
					if set != tn.ID.String() {
						t.Fatalf("round %d: %s's call ran with context %q", round, tn.Slug, set)
					}
					if tn.ID == f.a.ID {
						if round == 0 {
							own = s
						}
						if len(f.leaks(s)) > 0 || s != own || !strings.Contains(s, f.a.ID.String()) {
							t.Fatalf("round %d: A read %q, A's rows are %q", round, s, own)
						}
					}
					if tn.ID == f.b.ID && !strings.Contains(s, f.b.ID.String()) {
						t.Fatalf("round %d: B read %q", round, s)
					}
				}
			}
			if f.m != tenant.ModelDatabase && len(pids) != 1 {
				t.Fatalf("the calls ran on %d connections, want them all on one", len(pids))
			}
		})
	}
}

// attackI19SchemaVersions: a statement cached by its text only, planned for
// a schema tenant whose table has an extra column, fails for the next
// tenant; the handle keeps statements per schema, so each tenant gets its
// own columns on one connection.
func attackI19SchemaVersions(t *testing.T, k Kit) {
	ctx := context.Background()
	f := newFx(t, k, tenant.ModelSchema, landlord.Config{MaxConns: 1})
	T := f.main.q()
	f.exec(t, f.a, ownerDoSession(`ALTER TABLE {s}.`+T+` ADD COLUMN landlordtest_note text DEFAULT 'A-note'`)...)
	t.Run("defense-off", func(t *testing.T) {
		naive := f.naivePool(t, f.a)
		c, err := naive.pool.Acquire(ctx)
		must(t, err)
		defer c.Release()
		enter := func(tn tenant.Tenant) pgx.Tx {
			tx, err := c.Begin(ctx)
			must(t, err)
			_, err = tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true), set_config('role', $2, true), set_config('search_path', $3, true),
				set_config('landlord.tenant_sig', $4, true)`,
				tn.ID.String(), tn.ID.RoleName(), searchPath(tn.Schema), f.signature(tn.ID.String(), tn.ID.RoleName()))
			must(t, err)
			return tx
		}
		tx := enter(f.a)
		_, err = tx.Prepare(ctx, "by_text", `SELECT * FROM `+T)
		must(t, err)
		must(t, tx.Commit(ctx))
		tx = enter(f.b)
		defer tx.Rollback(ctx)
		_, err = tx.Exec(ctx, "by_text")
		if !isPgCode(err, "0A000") {
			t.Fatalf("a statement planned for A's schema and run for B: %v, want cached plan must not change result type", err)
		}
	})
	t.Run("handle", func(t *testing.T) {
		width := map[tenant.ID]int{}
		for round := 0; round < 4; round++ {
			for _, tn := range []tenant.Tenant{f.a, f.b} {
				ctx := landlord.WithTenant(ctx, tn.ID)
				o := f.viaHandle(t, ctx, nil, false, `SELECT * FROM `+T+` ORDER BY 1`)
				must(t, o.err)
				if len(o.rows) == 0 {
					t.Fatalf("round %d: %s read no rows", round, tn.Slug)
				}
				if round == 0 {
					width[tn.ID] = len(o.rows[0])
				}
				if len(o.rows[0]) != width[tn.ID] {
					t.Fatalf("round %d: %s got %d columns, then %d", round, tn.Slug, width[tn.ID], len(o.rows[0]))
				}
				if tn.ID == f.a.ID {
					f.noLeak(t, o)
				}
			}
			if width[f.a.ID] != width[f.b.ID]+1 {
				t.Fatalf("round %d: A got %d columns, B %d; want A's extra column", round, width[f.a.ID], width[f.b.ID])
			}
		}
	})
}

// keyText returns an expression of alias x that identifies its row without
// its values: the primary key's columns.
func (tb *table) keyText(x string) string {
	if pk := tb.primary(); pk != nil && pk.plain && len(pk.cols) > 0 {
		var cols []string
		for _, c := range pk.cols {
			cols = append(cols, x+"."+ident(c))
		}
		return "row(" + strings.Join(cols, ", ") + ")::text"
	}
	return x + ".ctid::text"
}

// attackI25ListenNotify: notification channels are database-wide, so
// payloads must carry ids only. Landlord's directory channel does; a tenant
// cannot hold a LISTEN through the handle; an application channel whose
// payload is an id leaks nothing once the receiver re-reads under its own
// tenant; in the database model another tenant's database is silent.
func (f *fx) attackI25ListenNotify(t *testing.T) {
	ctx := context.Background()
	T := f.main.q()
	// A's raw listener, as A's traffic role would connect.
	listener := func(t *testing.T, tn tenant.Tenant) *pgx.Conn {
		conn, err := pgx.ConnectConfig(ctx, f.trafficConfig(t, tn))
		must(t, err)
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	// drain collects notifications until the sentinel the listener
	// sends itself arrives: whatever was committed before it has
	// been delivered by then.
	drain := func(t *testing.T, conn *pgx.Conn, channel string) []string {
		_, err := conn.Exec(ctx, `SELECT pg_notify($1, 'sentinel')`, channel)
		must(t, err)
		var got []string
		for {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			n, err := conn.WaitForNotification(wctx)
			cancel()
			must(t, err)
			if n.Payload == "sentinel" {
				return got
			}
			got = append(got, n.Channel+": "+n.Payload)
		}
	}
	if f.m != tenant.ModelDatabase {
		t.Run("directory-channel-ids-only", func(t *testing.T) {
			conn := listener(t, f.a)
			_, err := conn.Exec(ctx, `LISTEN landlord_directory`)
			must(t, err)
			admin, err := f.l.Admin(ctx, "attack suite: make B's directory row change")
			must(t, err)
			_, err = admin.SetState(ctx, f.b.ID, tenant.StateReadOnly)
			must(t, err)
			_, err = admin.SetState(ctx, f.b.ID, tenant.StateActive)
			must(t, err)
			got := drain(t, conn, "landlord_directory")
			if len(got) < 2 {
				t.Fatalf("the directory announced %d changes, want 2: %q", len(got), got)
			}
			for _, p := range got {
				id, rest, _ := strings.Cut(strings.TrimPrefix(p, "landlord_directory: "), " ")
				if _, err := tenant.ParseID(id); err != nil || (rest != "deleted" && strings.Trim(rest, "0123456789") != "") {
					t.Fatalf("directory payload %q is not \"<id> <epoch>\"", p)
				}
				for _, c := range f.values {
					if strings.Contains(p, c) {
						t.Fatalf("directory payload %q carries B's value %q", p, c)
					}
				}
			}
		})
	}
	t.Run("app-channel", func(t *testing.T) {
		conn := listener(t, f.a)
		_, err := conn.Exec(ctx, `LISTEN landlordtest`)
		must(t, err)
		// Off: B's application puts a row in the payload.
		_, err = f.h.Exec(f.ctxB, `SELECT pg_notify('landlordtest', x::text) FROM `+T+` x LIMIT 1`)
		must(t, err)
		got := drain(t, conn, "landlordtest")
		if f.m == tenant.ModelDatabase {
			if len(got) != 0 {
				t.Fatalf("A's database heard B's notification: %q", got)
			}
			return
		}
		if len(f.leaks(strings.Join(got, " "))) == 0 {
			t.Fatalf("a row in the payload did not reach the other tenant's listener (%q): the probe proves nothing", got)
		}
		// On: the payload is the key; A re-reads under its own tenant.
		_, err = f.h.Exec(f.ctxB, `SELECT pg_notify('landlordtest', `+f.main.keyText("x")+`) FROM `+T+` x LIMIT 1`)
		must(t, err)
		got = drain(t, conn, "landlordtest")
		// A key is B's, and may be an id of B's row; nothing else of B's
		// may travel.
		if len(got) != 1 || strings.Contains(got[0], canaryMark) || strings.Contains(got[0], f.b.ID.String()) {
			t.Fatalf("key payload: %q", got)
		}
		key := strings.TrimPrefix(got[0], "landlordtest: ")
		o := f.viaHandle(t, f.ctxA, nil, false, `SELECT x::text FROM `+T+` x WHERE `+f.main.keyText("x")+` = $1 AND x.tenant_id <> $2`, key, f.a.ID)
		must(t, o.err)
		f.noLeak(t, o)
		if len(o.rows) != 0 {
			t.Fatalf("A re-read B's notified row: %v", o.rows)
		}
	})
	t.Run("listen-through-handle", func(t *testing.T) {
		// LISTEN costs the connection: the next call runs on
		// another backend that listens to nothing.
		var before, after int32
		must(t, f.h.QueryRow(f.ctxB, `SELECT pg_backend_pid()`).Scan(&before))
		_, err := f.h.Exec(f.ctxB, `LISTEN "CANARY-B-channel"`)
		must(t, err)
		var channels string
		must(t, f.h.QueryRow(f.ctxA, `SELECT pg_backend_pid(), coalesce(string_agg(c, ','), '') FROM pg_listening_channels() c`).Scan(&after, &channels))
		if f.m != tenant.ModelDatabase && after == before {
			t.Fatalf("the connection that ran LISTEN (pid %d) served A's next call", before)
		}
		if channels != "" {
			t.Fatalf("A's connection listens on %q", channels)
		}
	})
}

// attackI26AdvisoryLocks: a session advisory lock taken through the
// handle does not survive the call (its connection is closed), so the next
// tenant on the pool neither holds it nor waits for it; through a pool that
// keeps dirty connections the next tenant inherits it.
func (f *fx) attackI26AdvisoryLocks(t *testing.T) {
	const held = `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`
	if f.m != tenant.ModelDatabase {
		t.Run("defense-off", func(t *testing.T) {
			naive := f.naivePool(t, f.a)
			must(t, naive.call(t, f.b, `SELECT pg_advisory_lock(4243)`).err)
			o := naive.call(t, f.a, held)
			must(t, o.err)
			if fmt.Sprint(o.rows) != "[[1]]" {
				t.Fatalf("A's session does not hold B's lock through the naive pool: %v", o.rows)
			}
		})
	}
	for _, lock := range []string{`SELECT pg_advisory_lock(4244)`, `SELECT pg_try_advisory_lock(4244)`, `SELECT pg_try_advisory_lock_shared(4244)`, `SELECT pg_advisory_lock_shared(4244)`} {
		t.Run("handle/"+strings.TrimPrefix(lock, "SELECT "), func(t *testing.T) {
			_, err := f.h.Exec(f.ctxB, lock)
			must(t, err)
			var n int
			must(t, f.h.QueryRow(f.ctxA, held).Scan(&n))
			if n != 0 {
				t.Fatalf("A's call holds %d advisory locks it never took", n)
			}
			// And nobody waits for B's lock for long: it goes with
			// B's backend, which exits as its connection closes.
			for i := 0; ; i++ {
				var got bool
				must(t, f.h.QueryRow(f.ctxA, `SELECT pg_try_advisory_xact_lock(4244)`).Scan(&got))
				if got {
					break
				}
				if i > 500 {
					t.Fatal("B's session lock outlived B's call")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	t.Run("handle/xact-lock-ends-with-transaction", func(t *testing.T) {
		tx, err := f.h.Begin(f.ctxB)
		must(t, err)
		_, err = tx.Exec(f.ctxB, `SELECT pg_advisory_xact_lock(4245)`)
		must(t, err)
		must(t, tx.Commit(context.Background()))
		var got bool
		must(t, f.h.QueryRow(f.ctxA, `SELECT pg_try_advisory_xact_lock(4245)`).Scan(&got))
		if !got {
			t.Fatal("B's transaction lock outlived its transaction")
		}
	})
}

// attackI28JobWithoutTenant: a job carries its tenant in its context;
// one without a tenant fails instead of running as the previous job's
// tenant, which is what a connection with a session-level context does.
func (f *fx) attackI28JobWithoutTenant(t *testing.T) {
	ctx := context.Background()
	sel := `SELECT x::text FROM ` + f.main.q() + ` x`
	t.Run("defense-off", func(t *testing.T) {
		// A worker that sets the tenant for the session and a next
		// job that forgets to.
		naive := f.naivePool(t, f.a)
		c, err := naive.pool.Acquire(ctx)
		must(t, err)
		defer func() { c.Conn().Close(ctx); c.Release() }()
		_, err = c.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, false), set_config('landlord.tenant_sig', $2, false)`,
			f.b.ID.String(), f.signature(f.b.ID.String(), handleRole(f.b)))
		must(t, err)
		if f.m == tenant.ModelSchema {
			_, err = c.Exec(ctx, `SELECT set_config('role', $1, false), set_config('search_path', $2, false)`, f.b.ID.RoleName(), searchPath(f.b.Schema))
			must(t, err)
		}
		o := run(ctx, c, naive.notices, sel)
		must(t, o.err)
		f.mustLeak(t, o)
	})
	t.Run("handle", func(t *testing.T) {
		job := func(ctx context.Context) error {
			_, err := f.h.Exec(ctx, sel)
			return err
		}
		must(t, job(f.ctxB))
		if err := job(ctx); !errors.Is(err, landlord.ErrNoTenant) {
			t.Fatalf("a job without a tenant: %v, want ErrNoTenant", err)
		}
		if err := job(landlord.WithTenant(ctx, tenant.ID{})); !errors.Is(err, landlord.ErrNoTenant) {
			t.Fatalf("a job with the zero tenant: %v, want ErrNoTenant", err)
		}
		// A context that outlives its request keeps its tenant.
		o := f.viaHandle(t, context.WithoutCancel(f.ctxA), nil, false, sel)
		must(t, o.err)
		f.noLeak(t, o)
	})
}

// attackI30CancelStorm: on a pool of one connection, A and B alternate
// with random cancels and deadlines, mid-statement and mid-transaction. No
// statement of A ever runs with B's context or the reverse: every write is
// checked afterwards by the superuser, every read as it comes back.
func (f *fx) attackI30CancelStorm(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, uint64(len(f.m))))
	defer func() {
		if t.Failed() {
			t.Logf("seed %d", seed)
		}
	}()
	tb := f.main
	T := tb.q()
	// Writes are copies of the writer's own row with fresh keys, numbered
	// so that the superuser knows whose each is; tenant_id comes from the
	// context the write ran with.
	canWrite := tb.copyProblem == "" && tb.primary() != nil && tb.primary().plain
	source := map[tenant.ID]row{}
	if canWrite {
		source[f.a.ID], source[f.b.ID] = f.row(t, tb, f.a, 0), f.row(t, tb, f.b, 0)
	}
	write := fmt.Sprintf(`INSERT INTO %s AS n (%s) SELECT %s FROM (SELECT (jsonb_populate_record(s, %s)).* FROM jsonb_populate_record(NULL::%[1]s, $1::jsonb) s) r, pg_sleep($3::float8 / 1000)`,
		T, tb.colList("", "tenant_id"), tb.colList("r.", "tenant_id"), tb.freshBy("s", "$2::int"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	writes := map[int]tenant.Tenant{}
	for g := 0; g < 4; g++ {
		who := []tenant.Tenant{f.a, f.b}[g%2]
		r := rand.New(rand.NewPCG(rng.Uint64(), uint64(g)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				ctx, cancel := context.WithCancel(landlord.WithTenant(context.Background(), who.ID))
				delay := time.Duration(r.IntN(3000)) * time.Microsecond
				timer := time.AfterFunc(delay, cancel)
				var err error
				var setting, rows string
				op := r.IntN(3)
				if op == 1 && !canWrite {
					op = 0
				}
				switch op {
				case 0:
					err = f.h.QueryRow(ctx, `SELECT current_setting('landlord.tenant_id'), coalesce(string_agg(x::text, ','), '') FROM `+T+` x, pg_sleep($1::float8 / 1000)`,
						r.IntN(3)).Scan(&setting, &rows)
				case 1:
					k := 1000 + g*100 + i
					mu.Lock()
					writes[k] = who
					mu.Unlock()
					_, err = f.h.Exec(ctx, write, source[who.ID].String(), k, r.IntN(3))
				case 2:
					err = pgx.BeginFunc(ctx, f.h, func(tx pgx.Tx) error {
						if err := tx.QueryRow(ctx, `SELECT current_setting('landlord.tenant_id'), coalesce(string_agg(x::text, ','), '') FROM `+T+` x`).Scan(&setting, &rows); err != nil {
							return err
						}
						_, err := tx.Exec(ctx, `SELECT pg_sleep($1::float8 / 1000)`, r.IntN(3))
						return err
					})
				}
				timer.Stop()
				cancel()
				if err != nil || setting == "" {
					continue
				}
				mu.Lock()
				if setting != who.ID.String() {
					t.Errorf("%s's statement ran with context %s", who.Slug, setting)
				}
				if who.ID == f.a.ID && len(f.leaks(rows)) > 0 {
					t.Errorf("A read %q", rows)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Every row written landed in its writer's tenant, with its writer's
	// context as its tenant_id.
	for k, who := range writes {
		for _, place := range []tenant.Tenant{f.a, f.b} {
			rows, err := f.super(t, place).conn.Query(context.Background(), fmt.Sprintf(
				`SELECT x.tenant_id::text FROM %[1]s x, (SELECT (jsonb_populate_record(s, %[2]s)).* FROM jsonb_populate_record(NULL::%[1]s, $1::jsonb) s) r WHERE %[3]s`,
				tb.in(place), tb.freshBy("s", "$2::int"), pkEqual(tb, "x", "r")), source[who.ID].String(), k)
			must(t, err)
			got, err := pgx.CollectRows(rows, pgx.RowTo[string])
			must(t, err)
			for _, tid := range got {
				if tid != who.ID.String() {
					t.Errorf("row %d written by %s landed as tenant %s", k, who.Slug, tid)
				}
			}
		}
	}
	// The pool still serves both tenants correctly.
	for _, tn := range []tenant.Tenant{f.a, f.b} {
		var setting string
		must(t, f.h.QueryRow(landlord.WithTenant(context.Background(), tn.ID), `SELECT current_setting('landlord.tenant_id')`).Scan(&setting))
		if setting != tn.ID.String() {
			t.Fatalf("after the storm %s runs as %s", tn.Slug, setting)
		}
	}
}

// pkEqual returns a condition that aliases x and r have the same primary
// key after tenant_id.
func pkEqual(tb *table, x, r string) string {
	var l, rr []string
	for _, c := range tb.primary().cols {
		l = append(l, x+"."+ident(c))
		rr = append(rr, r+"."+ident(c))
	}
	return "(" + strings.Join(l, ", ") + ") = (" + strings.Join(rr, ", ") + ")"
}

// attackI30LateCancel: a cancel request sent for A's statement after it
// finished hits whatever the backend runs next. On a connection that goes
// back to the pool that is B's statement; the handle closes a cancelled
// connection, so B runs on another backend and the late cancel hits nothing.
func (f *fx) attackI30LateCancel(t *testing.T) {
	ctx := context.Background()
	t.Run("defense-off", func(t *testing.T) {
		naive := f.naivePool(t, f.a)
		c, err := naive.pool.Acquire(ctx)
		must(t, err)
		defer c.Release()
		var pid int32
		must(t, c.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
		// B's long statement on the same backend; the late cancel
		// meant for A arrives while it runs.
		done := make(chan error, 1)
		go func() {
			_, err := c.Exec(ctx, `SELECT pg_sleep(5)`)
			done <- err
		}()
		f.waitRunning(t, pid)
		f.exec(t, f.a, fmt.Sprintf(`SELECT pg_cancel_backend(%d)`, pid))
		if err := <-done; !isPgCode(err, "57014") {
			t.Fatalf("the late cancel did not hit the next statement: %v", err)
		}
	})
	t.Run("handle", func(t *testing.T) {
		var pid int32
		must(t, f.h.QueryRow(f.ctxA, `SELECT pg_backend_pid()`).Scan(&pid))
		cctx, cancel := context.WithTimeout(f.ctxA, 20*time.Millisecond)
		_, err := f.h.Exec(cctx, `SELECT pg_sleep(5)`)
		cancel()
		if err == nil {
			t.Fatal("the cancelled statement succeeded")
		}
		var next int32
		must(t, f.h.QueryRow(f.ctxB, `SELECT pg_backend_pid()`).Scan(&next))
		if next == pid {
			t.Fatalf("B's call ran on the cancelled connection %d", pid)
		}
		// A late cancel aimed at A's old backend cannot reach B's.
		done := make(chan error, 1)
		go func() {
			_, err := f.h.Exec(f.ctxB, `SELECT pg_sleep(0.3)`)
			done <- err
		}()
		f.exec(t, f.a, fmt.Sprintf(`SELECT pg_cancel_backend(%d)`, pid))
		if err := <-done; err != nil {
			t.Fatalf("B's statement was hit by the late cancel: %v", err)
		}
	})
}

// waitRunning waits until backend pid runs a statement.
func (f *fx) waitRunning(t *testing.T, pid int32) {
	t.Helper()
	c := f.super(t, f.a)
	for i := 0; ; i++ {
		var active bool
		must(t, c.conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND state = 'active')`, pid).Scan(&active))
		if active {
			return
		}
		if i > 500 {
			t.Fatalf("backend %d never started its statement", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
