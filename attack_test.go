package landlord

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/tenant"
)

// The isolation attack suite (SECURITY.md). Tenant A attacks, tenant B holds
// canary values, and nothing A gets back may contain one: rows, command
// tags, errors (message, detail, hint, where and every other field),
// notices, and Landlord's own log. Every attack runs twice before it runs
// through the handle: once with the defense switched off, where the leak must
// appear (so the probe is known to work), and once with the defense on.
//
// A defense is switched off inside one transaction on a superuser connection
// to B's placement (the shared schema, B's schema, or B's database), which
// is rolled back afterwards: nothing outlives the probe, and cluster-wide
// objects (roles) created there vanish with it. In the schema and database
// models the probe first gets past the privilege layer (A's role is granted
// B's schema for that transaction), so that what the row-level layer does on
// its own is visible.

//go:embed testdata/attack/migrations/*.sql
var attackMigrationFiles embed.FS

func attackMigrations() fs.FS {
	sub, err := fs.Sub(attackMigrationFiles, "testdata/attack/migrations")
	if err != nil {
		panic(err)
	}
	return sub
}

// attackTemplate is a control database bootstrapped with the attack
// migrations.
var attackTemplate = func() *pgtest.Template {
	set, err := migration.Load(attackMigrations())
	if err != nil {
		panic(err)
	}
	return &pgtest.Template{
		Name: "landlord-attack-" + set.Hash()[:12] + "-" + directory.Migrations().Hash()[:12],
		Setup: func(ctx context.Context, db *pgtest.DB) error {
			l, err := Open(ctx, db.URL, attackMigrations(), Config{})
			if err != nil {
				return err
			}
			l.Close()
			return nil
		},
	}
}()

// noticeLog records the notices a set of connections received.
type noticeLog struct {
	mu sync.Mutex
	ns []*pgconn.Notice
}

func (n *noticeLog) add(_ *pgconn.PgConn, x *pgconn.Notice) {
	n.mu.Lock()
	n.ns = append(n.ns, x)
	n.mu.Unlock()
}

func (n *noticeLog) mark() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.ns)
}

func (n *noticeLog) since(mark int) []*pgconn.Notice {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.ns[mark:])
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fx is an installation with tenants A and B of one model, both seeded, with
// every notice the handle's connections receive recorded.
type fx struct {
	m          tenant.Model
	l          *Landlord
	db         *pgtest.DB
	h          *Handle
	a, b       tenant.Tenant
	ctxA, ctxB context.Context
	canaries   []string
	notices    *noticeLog
	log        *syncBuffer
	supers     map[string]*superConn // by database
	// partB is the partition of events that holds B's rows.
	partB string
}

// valueCanaries are B's values; B's id is a canary too, except in Landlord's
// log, which names tenants by id on purpose.
var valueCanaries = []string{"CANARY-B", "sku-b-only"}

// newFx opens an installation on a fresh database cloned from the attack
// template and creates and seeds tenants A and B of model m.
func newFx(t *testing.T, m tenant.Model, cfg Config) *fx {
	t.Helper()
	ctx := context.Background()
	db := server.NewDB(t, attackTemplate)
	f := &fx{m: m, db: db, notices: &noticeLog{}, log: &syncBuffer{}, supers: map[string]*superConn{}}
	cfg.Logger = slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Every connection of the handle reports its notices to the test.
	cfg.BeforeConnect = func(cc *pgx.ConnConfig) { cc.OnNotice = f.notices.add }
	l, err := Open(ctx, db.URL, attackMigrations(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	f.l, f.h = l, l.Handle()
	t.Cleanup(func() {
		l.Close()
		for _, c := range f.supers {
			c.conn.Close(context.Background())
		}
		for _, c := range valueCanaries {
			if strings.Contains(f.log.String(), c) {
				t.Errorf("Landlord's log carries tenant B's value %q", c)
			}
		}
	})
	f.a = createTenant(t, l, "alpha", m)
	f.b = createTenant(t, l, "bravo", m)
	// A materialized view over items, made by hand past the migrations
	// (which refuse them), readable by tenant traffic: the mistake I16
	// probes.
	for i, place := range []tenant.Tenant{f.a, f.b} {
		if m == tenant.ModelRow && i > 0 {
			break // one shared schema
		}
		grantee := f.l.cfg.AppRole
		if m != tenant.ModelRow {
			grantee = place.ID.RoleName()
		}
		f.exec(t, place, `SET ROLE {owner}`,
			`CREATE MATERIALIZED VIEW {s}.items_mv AS SELECT tenant_id, id, secret FROM {s}.items WITH NO DATA`,
			`RESET ROLE`, `GRANT SELECT ON {s}.items_mv TO `+pgx.Identifier{grantee}.Sanitize())
	}
	f.ctxA = WithTenant(ctx, f.a.ID)
	f.ctxB = WithTenant(ctx, f.b.ID)
	f.canaries = append(slices.Clone(valueCanaries), f.b.ID.String())
	f.seed(t, f.ctxA, "A")
	f.seed(t, f.ctxB, "CANARY-B")
	for _, sql := range []string{
		`INSERT INTO parents (id, name) VALUES (50, 'CANARY-B-parent-50')`,
		`INSERT INTO items (id, parent_id, sku, secret) VALUES (100, 50, 'sku-b-only', 'CANARY-B-secret-100')`,
		`INSERT INTO tickets (note) VALUES ('CANARY-B-ticket-3')`,
	} {
		_, err := f.h.Exec(f.ctxB, sql)
		must(t, err)
	}
	err = f.super(t, f.b).conn.QueryRow(ctx, `SELECT tableoid::regclass::text FROM `+pgx.Identifier{f.b.Schema, "events"}.Sanitize()+` WHERE tenant_id = $1 LIMIT 1`, f.b.ID).Scan(&f.partB)
	must(t, err)
	f.partB = f.partB[strings.LastIndex(f.partB, ".")+1:]
	// The hook is live on every pool that serves A and B.
	for _, ctx := range []context.Context{f.ctxA, f.ctxB} {
		mark := f.notices.mark()
		_, err := f.h.Exec(ctx, `SELECT f_leak('hook-check')`)
		must(t, err)
		if !strings.Contains(noticeText(f.notices.since(mark)), "hook-check") {
			t.Fatal("the handle's connections do not report notices to the test")
		}
	}
	return f
}

func (f *fx) seed(t *testing.T, ctx context.Context, who string) {
	t.Helper()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO parents (id, name) VALUES (1, $1)`, []any{who + "-parent"}},
		{`INSERT INTO items (id, parent_id, sku, secret) VALUES (1, 1, 'sku-1', $1), (2, NULL, 'sku-2', $2)`, []any{who + "-secret-1", who + "-secret-2"}},
		{`INSERT INTO events (id, body) VALUES (1, $1), (2, $2)`, []any{who + "-event-1", who + "-event-2"}},
		{`INSERT INTO tickets (note) VALUES ($1), ($2)`, []any{who + "-ticket-1", who + "-ticket-2"}},
		{`INSERT INTO notes (id, body) VALUES (1, $1)`, []any{who + "-note-1"}},
	} {
		_, err := f.h.Exec(ctx, q.sql, q.args...)
		must(t, err)
	}
}

// outcome is everything one statement gave its caller.
type outcome struct {
	rows    [][]any
	tag     string
	err     error
	notices []*pgconn.Notice
	after   [][]any // what the superuser saw after the probe, in its transaction
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	text := err.Error()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		text += strings.Join([]string{"", pgErr.Detail, pgErr.Hint, pgErr.Where, pgErr.InternalQuery,
			pgErr.SchemaName, pgErr.TableName, pgErr.ColumnName, pgErr.DataTypeName, pgErr.ConstraintName}, " | ")
	}
	return text
}

func noticeText(ns []*pgconn.Notice) string {
	var b strings.Builder
	for _, n := range ns {
		fmt.Fprintf(&b, "%s | %s | %s | %s | %s\n", n.Message, n.Detail, n.Hint, n.Where, n.InternalQuery)
	}
	return b.String()
}

// text is what the caller could read of o (not o.after, which only the
// superuser saw).
func (o outcome) text() string {
	return fmt.Sprint(o.rows) + "\n" + o.tag + "\n" + errText(o.err) + "\n" + noticeText(o.notices)
}

func (o outcome) String() string {
	return fmt.Sprintf("rows %v, tag %q, err %v, notices %q", o.rows, o.tag, o.err, noticeText(o.notices))
}

// leaks returns the canaries found in text.
func (f *fx) leaks(text string) []string {
	var found []string
	for _, c := range f.canaries {
		if strings.Contains(text, c) {
			found = append(found, c)
		}
	}
	return found
}

func rowValues(r pgx.CollectableRow) ([]any, error) { return r.Values() }

// run runs sql on q and records what came back, notices included.
func run(ctx context.Context, q Querier, notices *noticeLog, sql string, args ...any) outcome {
	mark := notices.mark()
	var o outcome
	rows, err := q.Query(ctx, sql, args...)
	if err == nil {
		o.rows, err = pgx.CollectRows(rows, rowValues)
		o.tag = rows.CommandTag().String()
	}
	o.err = err
	o.notices = notices.since(mark)
	return o
}

// expand fills in the names a statement of the suite refers to: {s} is the
// schema of the placement (quoted), {A} and {B} the tenants' ids, {roleA}
// the role A's traffic runs as there, {app} and {owner} Landlord's roles,
// {role} the dedicated role of the case.
func (f *fx) expand(sql string, place tenant.Tenant, role string) string {
	roleA := f.l.cfg.AppRole
	if f.m != tenant.ModelRow {
		roleA = f.a.ID.RoleName()
	}
	return strings.NewReplacer(
		"{s}", pgx.Identifier{place.Schema}.Sanitize(),
		"{A}", f.a.ID.String(), "{B}", f.b.ID.String(),
		"{roleA}", pgx.Identifier{roleA}.Sanitize(),
		"{app}", pgx.Identifier{f.l.cfg.AppRole}.Sanitize(),
		"{owner}", pgx.Identifier{f.l.cfg.OwnerRole}.Sanitize(),
		"{role}", pgx.Identifier{role}.Sanitize(),
		"{pB}", pgx.Identifier{f.partB}.Sanitize(),
	).Replace(sql)
}

// superConn is a superuser connection to one database of the fixture.
type superConn struct {
	conn    *pgx.Conn
	notices *noticeLog
}

// super returns a superuser connection to the database of place.
func (f *fx) super(t *testing.T, place tenant.Tenant) *superConn {
	t.Helper()
	if c, ok := f.supers[place.Database]; ok {
		return c
	}
	cfg, err := pgx.ParseConfig(f.db.Server.AdminURL(place.Database))
	must(t, err)
	c := &superConn{notices: &noticeLog{}}
	cfg.OnNotice = c.notices.add
	c.conn, err = pgx.ConnectConfig(context.Background(), cfg)
	must(t, err)
	f.supers[place.Database] = c
	return c
}

// control returns a superuser connection to the control database, which
// holds the directory.
func (f *fx) control(t *testing.T) *superConn {
	t.Helper()
	return f.super(t, tenant.Tenant{Database: f.db.Name})
}

// exec runs statements as the superuser at place, committed.
func (f *fx) exec(t *testing.T, place tenant.Tenant, sqls ...string) {
	t.Helper()
	c := f.super(t, place)
	for _, sql := range sqls {
		if _, err := c.conn.Exec(context.Background(), f.expand(sql, place, "")); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// stage is how a probe runs at a placement, inside one rolled-back
// transaction of the superuser.
type stage struct {
	// ddl runs first, as the superuser: it switches a defense off, or sets
	// up the attack with the defense on.
	ddl []string
	// as is the role the probe runs as: "" the role of A's traffic (the app
	// role; A's own role in the schema and database models), "owner" the
	// owner role, "super" the superuser itself, "dedicated" the case's own
	// role (created by ddl), anything else a role name.
	as string
	// setting is landlord.tenant_id for the probe: "" A's id, "unset" not
	// set at all, "empty" the empty string, anything else itself.
	setting string
	// pre runs as the attacker, after the context is set.
	pre []string
	// keepPrivileges leaves the schema and database models' privilege layer
	// in place; otherwise A's role gets B's schema for the transaction.
	keepPrivileges bool
	// sql replaces the case's probe for this stage.
	sql string
	// after runs as the superuser after the probe, in the same
	// transaction; its rows go to outcome.after.
	after string
	// cleanup runs on the superuser's connection after the rollback, for
	// what a transaction does not undo (prepared statements).
	cleanup []string
}

// at runs sql as the attacker described by st at place (B's placement, for
// the suite's off and on runs) and rolls everything back.
func (f *fx) at(t *testing.T, place tenant.Tenant, st stage, role, sql string, args ...any) outcome {
	t.Helper()
	ctx := context.Background()
	c := f.super(t, place)
	if st.sql != "" {
		sql = st.sql
	}
	tx, err := c.conn.Begin(ctx)
	must(t, err)
	defer func() {
		must(t, tx.Rollback(ctx))
		for _, s := range st.cleanup {
			_, err := c.conn.Exec(ctx, s)
			must(t, err)
		}
	}()
	x := func(s string) string { return f.expand(s, place, role) }
	for _, d := range st.ddl {
		if _, err := tx.Exec(ctx, x(d)); err != nil {
			t.Fatalf("switching the defense: %s: %v", x(d), err)
		}
	}
	as := ""
	switch st.as {
	case "":
		as = f.l.cfg.AppRole
		if f.m != tenant.ModelRow {
			as = f.a.ID.RoleName()
			if !st.keepPrivileges && place.ID != f.a.ID {
				for _, g := range []string{
					`GRANT USAGE ON SCHEMA {s} TO {roleA}`,
					`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {roleA}`,
					`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {roleA}`,
				} {
					if _, err := tx.Exec(ctx, x(g)); err != nil {
						t.Fatalf("%s: %v", x(g), err)
					}
				}
			}
		}
	case "owner":
		as = f.l.cfg.OwnerRole
	case "super":
	case "dedicated":
		as = role
	default:
		as = st.as
	}
	setContext, setting := true, f.a.ID.String()
	switch st.setting {
	case "":
	case "unset":
		setContext = false
	case "empty":
		setting = ""
	default:
		setting = st.setting
	}
	enter := `SELECT set_config('search_path', $1, true)`
	enterArgs := []any{searchPath(place.Schema)}
	if as != "" {
		enter += `, set_config('role', $2, true)`
		enterArgs = append(enterArgs, as)
	}
	if _, err := tx.Exec(ctx, enter, enterArgs...); err != nil {
		t.Fatalf("enter as %s: %v", as, err)
	}
	if setContext {
		if _, err := tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true)`, setting); err != nil {
			t.Fatalf("set context: %v", err)
		}
	}
	for _, p := range st.pre {
		if _, err := tx.Exec(ctx, x(p)); err != nil {
			t.Fatalf("%s: %v", x(p), err)
		}
	}
	// The probe runs in a savepoint, so that the superuser can look after
	// a failed one.
	if _, err := tx.Exec(ctx, `SAVEPOINT probe`); err != nil {
		t.Fatal(err)
	}
	o := run(ctx, tx, c.notices, x(sql), args...)
	if o.err != nil {
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT probe`); err != nil {
			t.Fatal(err)
		}
	}
	if st.after != "" {
		if _, err := tx.Exec(ctx, `SELECT set_config('role', 'none', true), set_config('landlord.tenant_id', '', true)`); err != nil {
			t.Fatal(err)
		}
		rows, err := tx.Query(ctx, x(st.after))
		must(t, err)
		o.after, err = pgx.CollectRows(rows, rowValues)
		must(t, err)
	}
	return o
}

// viaHandle runs sql through the handle as the tenant in ctx. With pre
// statements or write set, it runs inside a transaction that is rolled back.
func (f *fx) viaHandle(t *testing.T, ctx context.Context, pre []string, write bool, sql string, args ...any) outcome {
	t.Helper()
	x := func(s string) string { return f.expand(s, f.a, "") }
	if len(pre) == 0 && !write {
		return run(ctx, f.h, f.notices, x(sql), args...)
	}
	tx, err := f.h.Begin(ctx)
	must(t, err)
	defer tx.Rollback(context.Background())
	for _, p := range pre {
		_, err := tx.Exec(ctx, x(p))
		must(t, err)
	}
	return run(ctx, tx, f.notices, x(sql), args...)
}

// mustLeak fails unless the probe found a canary: with the defense off, a
// probe that finds nothing proves nothing.
func (f *fx) mustLeak(t *testing.T, o outcome) {
	t.Helper()
	if len(f.leaks(o.text())) == 0 {
		t.Fatalf("with the defense switched off the probe found none of B's canaries %q: %v", f.canaries, o)
	}
}

// noLeak fails if A got any of B's canaries.
func (f *fx) noLeak(t *testing.T, o outcome) {
	t.Helper()
	if l := f.leaks(o.text()); len(l) > 0 {
		t.Fatalf("tenant A got tenant B's %q: %v", l, o)
	}
}

// randomName returns a role or object name unique on the cluster.
func randomName(prefix string) string {
	return prefix + "_" + tenant.NewID().Hex()[16:]
}

func isPgCode(err error, codes ...string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && slices.Contains(codes, pgErr.Code)
}
