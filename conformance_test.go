package landlord

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// The conformance suite runs the same isolation cases against every model
// (STYLE.md 14). Tenant B holds canary values; nothing tenant A gets back
// (rows, command tags, errors) may contain one, and nothing A does may
// change B's rows.

type pair struct {
	l          *Landlord
	a, b       tenant.Tenant
	ctxA, ctxB context.Context
	canaries   []string
}

func createTenant(t testing.TB, l *Landlord, slug string, m tenant.Model) tenant.Tenant {
	t.Helper()
	tn, err := l.CreateTenant(context.Background(), provision.Request{Slug: slug, Model: m})
	if err != nil {
		t.Fatalf("create %s tenant %s: %v", m, slug, err)
	}
	return tn
}

func newPair(t *testing.T, m tenant.Model, cfg Config) *pair {
	t.Helper()
	l, _ := setup(t, cfg)
	p := &pair{l: l}
	p.a = createTenant(t, l, "alpha", m)
	p.b = createTenant(t, l, "bravo", m)
	p.ctxA = WithTenant(context.Background(), p.a.ID)
	p.ctxB = WithTenant(context.Background(), p.b.ID)
	// B's id is a canary; its hex, which names B's schema and database, is
	// not: A has to name them to try them, and errors echo them back.
	p.canaries = []string{"CANARY-B-secret", "CANARY-B-parent", "sku-b-only", p.b.ID.String()}
	h := l.Handle()
	seed := func(ctx context.Context, who string) {
		_, err := h.Exec(ctx, `INSERT INTO parents (id, name) VALUES (1, $1)`, who+"-parent")
		must(t, err)
		_, err = h.Exec(ctx, `INSERT INTO items (id, parent_id, sku, secret) VALUES (1, 1, 'sku-1', $1), (2, NULL, 'sku-2', $2)`,
			who+"-secret-1", who+"-secret-2")
		must(t, err)
	}
	seed(p.ctxA, "A")
	seed(p.ctxB, "CANARY-B")
	_, err := h.Exec(p.ctxB, `INSERT INTO parents (id, name) VALUES (50, 'CANARY-B-parent-50')`)
	must(t, err)
	_, err = h.Exec(p.ctxB, `INSERT INTO items (id, parent_id, sku, secret) VALUES (100, 50, 'sku-b-only', 'CANARY-B-secret-100')`)
	must(t, err)
	return p
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// leaks returns the canaries found in v's text, or in an error's every part.
func (p *pair) leaks(v any) []string {
	var text string
	switch x := v.(type) {
	case nil:
		return nil
	case error:
		text = x.Error()
		var pgErr *pgconn.PgError
		if errors.As(x, &pgErr) {
			text += " " + pgErr.Detail + " " + pgErr.Hint + " " + pgErr.Where + " " + pgErr.TableName + " " + pgErr.SchemaName
		}
	default:
		text = fmt.Sprint(x)
	}
	var found []string
	for _, c := range p.canaries {
		if strings.Contains(text, c) {
			found = append(found, c)
		}
	}
	return found
}

func (p *pair) noLeak(t *testing.T, what string, v any) {
	t.Helper()
	if l := p.leaks(v); len(l) > 0 {
		t.Errorf("%s leaked tenant B's %q: %v", what, l, v)
	}
}

// all runs sql as ctx's tenant and returns every value of every row.
func all(ctx context.Context, q Querier, sql string, args ...any) ([][]any, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
}

// bIntact checks, as B, that B's rows are as seeded.
func (p *pair) bIntact(t *testing.T) {
	t.Helper()
	var n int
	var secrets string
	err := p.l.Handle().QueryRow(p.ctxB, `SELECT count(*), string_agg(secret, ',' ORDER BY id) FROM items`).Scan(&n, &secrets)
	must(t, err)
	if want := "CANARY-B-secret-1,CANARY-B-secret-2,CANARY-B-secret-100"; n != 3 || secrets != want {
		t.Fatalf("tenant B's items changed: %d rows %q, want 3 rows %q", n, secrets, want)
	}
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

func TestConformance(t *testing.T) {
	for _, m := range tenant.Models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			runConformance(t, m, Config{})
		})
	}
}

// TestConformanceThroughPgBouncer runs the same suite with tenant traffic
// through a real PgBouncer in transaction pooling mode (THREATS I06, I19).
func TestConformanceThroughPgBouncer(t *testing.T) {
	b := server.PgBouncer(t)
	for _, m := range tenant.Models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			runConformance(t, m, Config{Pooler: &Pooler{Host: b.Host(), Port: uint16(b.Port())}})
		})
	}
}

func runConformance(t *testing.T, m tenant.Model, cfg Config) {
	p := newPair(t, m, cfg)
	h := p.l.Handle()
	bg := context.Background()

	t.Run("select", func(t *testing.T) {
		rows, err := all(p.ctxA, h, `SELECT * FROM items ORDER BY id`)
		must(t, err)
		p.noLeak(t, "SELECT *", rows)
		if len(rows) != 2 {
			t.Fatalf("A sees %d items, want 2", len(rows))
		}
	})
	t.Run("join", func(t *testing.T) {
		// The second join ignores tenant_id on purpose.
		for _, sql := range []string{
			`SELECT i.secret, p.name FROM items i JOIN parents p ON p.tenant_id = i.tenant_id AND p.id = i.parent_id`,
			`SELECT i.secret, p.name FROM items i JOIN parents p ON p.id = i.parent_id OR p.id = 50`,
			`SELECT i.secret, p.name FROM items i CROSS JOIN parents p`,
		} {
			rows, err := all(p.ctxA, h, sql)
			must(t, err)
			p.noLeak(t, sql, rows)
		}
	})
	t.Run("count", func(t *testing.T) {
		var items, parents int
		must(t, h.QueryRow(p.ctxA, `SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM parents)`).Scan(&items, &parents))
		if items != 2 || parents != 1 {
			t.Fatalf("A counts %d items and %d parents, want 2 and 1", items, parents)
		}
		var exists bool
		must(t, h.QueryRow(p.ctxA, `SELECT EXISTS (SELECT FROM items WHERE sku = 'sku-b-only')`).Scan(&exists))
		if exists {
			t.Fatal("A can tell that B's sku exists")
		}
	})
	t.Run("returning", func(t *testing.T) {
		tx, err := h.Begin(p.ctxA)
		must(t, err)
		defer tx.Rollback(bg)
		rows, err := all(p.ctxA, tx, `UPDATE items SET sku = sku RETURNING secret, tenant_id`)
		must(t, err)
		p.noLeak(t, "UPDATE RETURNING", rows)
		if len(rows) != 2 {
			t.Fatalf("UPDATE RETURNING gave %d rows, want 2", len(rows))
		}
	})
	t.Run("insert-with-b-tenant-id", func(t *testing.T) {
		_, err := h.Exec(p.ctxA, `INSERT INTO items (tenant_id, id, sku, secret) VALUES ($1, 999, 'x', 'x')`, p.b.ID)
		if !isCode(err, "42501") {
			t.Fatalf("insert with B's tenant_id: got %v, want a row-level security violation", err)
		}
		p.noLeak(t, "error", err)
		p.bIntact(t)
	})
	t.Run("insert-defaults-to-context", func(t *testing.T) {
		tx, err := h.Begin(p.ctxA)
		must(t, err)
		defer tx.Rollback(bg)
		var got tenant.ID
		must(t, tx.QueryRow(p.ctxA, `INSERT INTO items (id, sku, secret) VALUES (3, 'sku-3', 'x') RETURNING tenant_id`).Scan(&got))
		if got != p.a.ID {
			t.Fatalf("tenant_id defaulted to %s, want A %s", got, p.a.ID)
		}
	})
	t.Run("update-set-tenant-id", func(t *testing.T) {
		_, err := h.Exec(p.ctxA, `UPDATE items SET tenant_id = $1`, p.b.ID)
		if !isCode(err, "42501") {
			t.Fatalf("moving A's rows to B: got %v, want a row-level security violation", err)
		}
		p.bIntact(t)
	})
	t.Run("update-without-where", func(t *testing.T) {
		tx, err := h.Begin(p.ctxA)
		must(t, err)
		defer tx.Rollback(bg)
		tag, err := tx.Exec(p.ctxA, `UPDATE items SET secret = 'A-overwrote'`)
		must(t, err)
		if tag.RowsAffected() != 2 {
			t.Fatalf("UPDATE without WHERE touched %d rows, want A's 2", tag.RowsAffected())
		}
	})
	t.Run("delete-without-where", func(t *testing.T) {
		tx, err := h.Begin(p.ctxA)
		must(t, err)
		tag, err := tx.Exec(p.ctxA, `DELETE FROM items`)
		must(t, err)
		if tag.RowsAffected() != 2 {
			t.Fatalf("DELETE without WHERE removed %d rows, want A's 2", tag.RowsAffected())
		}
		must(t, tx.Commit(bg))
		p.bIntact(t)
		// Put A's rows back for the cases that follow.
		_, err = h.Exec(p.ctxA, `INSERT INTO items (id, parent_id, sku, secret) VALUES (1, 1, 'sku-1', 'A-secret-1'), (2, NULL, 'sku-2', 'A-secret-2')`)
		must(t, err)
	})
	t.Run("qualified-names", func(t *testing.T) {
		for _, table := range []string{"items", "parents"} {
			sql := fmt.Sprintf(`SELECT * FROM %s`, pgx.Identifier{p.b.Schema, table}.Sanitize())
			rows, err := all(p.ctxA, h, sql)
			p.noLeak(t, sql, rows)
			p.noLeak(t, sql+" error", err)
			switch m {
			case tenant.ModelRow:
				must(t, err) // the shared table, filtered to A
			case tenant.ModelSchema:
				if !isCode(err, "42501") {
					t.Errorf("%s as A: got %v, want permission denied", sql, err)
				}
			case tenant.ModelDatabase:
				if !isCode(err, "42P01") {
					t.Errorf("%s as A: got %v, want no such relation in A's database", sql, err)
				}
			}
		}
	})
	t.Run("connect-to-b-database", func(t *testing.T) {
		if p.a.Database == p.b.Database {
			t.Skipf("%s tenants share a database", m)
		}
		cfg, err := p.l.prov.ConnConfig(bg, p.a.Server, p.b.Database, p.a.ID.RoleName())
		must(t, err)
		conn, err := pgx.ConnectConfig(bg, cfg)
		if err == nil {
			conn.Close(bg)
			t.Fatal("A's role connected to B's database")
		}
		if !isCode(err, "42501") {
			t.Fatalf("A's role connecting to B's database: got %v, want permission denied", err)
		}
	})
	t.Run("unique-probe", func(t *testing.T) {
		// A may use B's business key: nothing conflicts, nothing is revealed.
		tx, err := h.Begin(p.ctxA)
		must(t, err)
		defer tx.Rollback(bg)
		_, err = tx.Exec(p.ctxA, `INSERT INTO items (id, sku, secret) VALUES (100, 'sku-b-only', 'x')`)
		p.noLeak(t, "unique probe", err)
		must(t, err)
	})
	t.Run("fk-probe", func(t *testing.T) {
		// A reference to B's parent fails exactly like one to no parent.
		_, errB := h.Exec(p.ctxA, `INSERT INTO items (id, parent_id, sku, secret) VALUES (5, 50, 'sku-5', 'x')`)
		_, errNone := h.Exec(p.ctxA, `INSERT INTO items (id, parent_id, sku, secret) VALUES (5, 777, 'sku-5', 'x')`)
		if !isCode(errB, "23503") || !isCode(errNone, "23503") {
			t.Fatalf("FK probes: B's parent %v, no parent %v; want foreign key violations for both", errB, errNone)
		}
		p.noLeak(t, "FK probe", errB)
	})
	t.Run("no-tenant", func(t *testing.T) {
		if _, err := h.Exec(bg, `SELECT 1`); !errors.Is(err, ErrNoTenant) {
			t.Errorf("Exec: %v", err)
		}
		if _, err := h.Query(bg, `SELECT 1`); !errors.Is(err, ErrNoTenant) {
			t.Errorf("Query: %v", err)
		}
		if err := h.QueryRow(bg, `SELECT 1`).Scan(new(int)); !errors.Is(err, ErrNoTenant) {
			t.Errorf("QueryRow: %v", err)
		}
		if _, err := h.Begin(bg); !errors.Is(err, ErrNoTenant) {
			t.Errorf("Begin: %v", err)
		}
		b := &pgx.Batch{}
		b.Queue(`SELECT 1`)
		if err := h.SendBatch(bg, b).Close(); !errors.Is(err, ErrNoTenant) {
			t.Errorf("SendBatch: %v", err)
		}
	})
	t.Run("database-refuses-without-context", func(t *testing.T) {
		role := p.l.cfg.AppRole
		if m == tenant.ModelDatabase {
			role = p.a.ID.RoleName()
		}
		cfg, err := p.l.prov.ConnConfig(bg, p.a.Server, p.a.Database, role)
		must(t, err)
		conn, err := pgx.ConnectConfig(bg, cfg)
		must(t, err)
		defer conn.Close(bg)
		table := pgx.Identifier{p.a.Schema, "items"}.Sanitize()
		check := func(when string) {
			var n int
			err := conn.QueryRow(bg, `SELECT count(*) FROM `+table).Scan(&n)
			switch {
			case m == tenant.ModelSchema && !isCode(err, "42501"):
				t.Errorf("%s: the app role reads a tenant schema without switching role: %v", when, err)
			case m != tenant.ModelSchema && (err != nil || n != 0):
				t.Errorf("%s: without a tenant context the database returned %d rows (%v), want 0", when, n, err)
			}
			_, err = conn.Exec(bg, `INSERT INTO `+table+` (tenant_id, id, sku, secret) VALUES ($1, 42, 'sku-42', 'x')`, p.a.ID)
			if err == nil {
				t.Errorf("%s: an INSERT without tenant context succeeded", when)
			}
		}
		check("fresh connection")
		// After a transaction that set the context, the setting reads ''
		// rather than NULL (THREATS I05).
		_, err = conn.Exec(bg, `BEGIN; SELECT set_config('landlord.tenant_id', '`+p.a.ID.String()+`', true); COMMIT`)
		must(t, err)
		check("after an expired context")
	})
}

// TestPoolAlternation runs A and B alternately through one connection per
// pool, with a panic inside a transaction, a cancelled query, and session
// state left behind on purpose in between (THREATS I05, I06, I19, I30).
func TestPoolAlternation(t *testing.T) {
	for _, m := range tenant.Models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			runPoolAlternation(t, m, Config{MaxConns: 1})
		})
	}
}

// TestPoolAlternationThroughPgBouncer: the same, behind PgBouncer in
// transaction mode, where a server connection serves another client at every
// transaction.
func TestPoolAlternationThroughPgBouncer(t *testing.T) {
	b := server.PgBouncer(t)
	for _, m := range tenant.Models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			runPoolAlternation(t, m, Config{MaxConns: 1, Pooler: &Pooler{Host: b.Host(), Port: uint16(b.Port())}})
		})
	}
}

func runPoolAlternation(t *testing.T, m tenant.Model, cfg Config) {
	{
		{
			p := newPair(t, m, cfg)
			h := p.l.Handle()
			expect := func(ctx context.Context, who string, want tenant.Tenant) {
				t.Helper()
				var secrets, setting, path string
				err := h.QueryRow(ctx, `SELECT string_agg(secret, ',' ORDER BY id), current_setting('landlord.tenant_id'), current_setting('search_path') FROM items`).
					Scan(&secrets, &setting, &path)
				must(t, err)
				if setting != want.ID.String() || !strings.Contains(path, want.Schema) {
					t.Fatalf("%s: context is tenant %q path %q, want %s", who, setting, path, want.ID)
				}
				if who == "A" {
					p.noLeak(t, who+" read", secrets)
				} else if !strings.Contains(secrets, "CANARY-B") {
					t.Fatalf("B reads %q", secrets)
				}
			}
			for round := 0; round < 3; round++ {
				expect(p.ctxA, "A", p.a)
				expect(p.ctxB, "B", p.b)

				// A panics inside a transaction.
				func() {
					defer func() { _ = recover() }()
					_ = pgx.BeginFunc(p.ctxA, h, func(tx pgx.Tx) error {
						if _, err := tx.Exec(p.ctxA, `UPDATE items SET secret = 'A-in-flight'`); err != nil {
							return err
						}
						panic("boom")
					})
				}()
				expect(p.ctxB, "B", p.b)

				// A's query is cancelled mid-flight.
				ctx, cancel := context.WithTimeout(p.ctxA, 50*time.Millisecond)
				_, err := h.Exec(ctx, `SELECT pg_sleep(5)`)
				cancel()
				if err == nil {
					t.Fatal("cancelled query succeeded")
				}
				expect(p.ctxB, "B", p.b)

				// A leaves session-level state behind on purpose. Its
				// connection is closed after the call; behind a
				// transaction pooler the statement is refused instead.
				pid := func() (pid int) {
					must(t, h.QueryRow(p.ctxA, `SELECT pg_backend_pid()`).Scan(&pid))
					return pid
				}
				before := pid()
				_, err = h.Exec(p.ctxA, `SELECT set_config('search_path', $1, false), set_config('landlord.tenant_id', $2, false)`,
					pgx.Identifier{p.a.Schema}.Sanitize(), p.a.ID.String())
				if cfg.Pooler != nil {
					if !errors.Is(err, ErrSessionState) {
						t.Fatalf("behind a pooler, a session-level set_config: %v, want ErrSessionState", err)
					}
				} else {
					must(t, err)
				}
				expect(p.ctxB, "B", p.b)
				if cfg.Pooler == nil {
					pid()
					if after := pid(); after == before {
						t.Fatalf("the connection that carried session state (pid %d) was not destroyed", before)
					}
				}

				// A's rows are unchanged by the rolled back transaction.
				var n int
				must(t, h.QueryRow(p.ctxA, `SELECT count(*) FROM items WHERE secret = 'A-in-flight'`).Scan(&n))
				if n != 0 {
					t.Fatal("a panicked transaction committed")
				}
			}
			p.bIntact(t)
		}
	}
}
