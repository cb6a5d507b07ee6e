package landlordtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// Tenant A attacks, tenant B holds canary values, and nothing A gets back may
// contain one: rows, command tags, errors (message, detail, hint, where and
// every other field), notices, and Landlord's own log.
//
// A defense is switched off inside one transaction on a superuser connection
// to B's placement (the shared schema, B's schema, or B's database), which is
// rolled back afterwards: nothing outlives the probe, and cluster-wide
// objects (roles) created there vanish with it. In the schema and database
// models the probe first gets past the privilege layer (A's role is granted
// B's schema for that transaction), so that what the row-level layer does on
// its own is visible.

// canaryMark prefixes every text value of B's rows that the constraints of
// its column allow.
const canaryMark = "CANARY-B"

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

// fx is an installation with tenants A and B of one model, both seeded, B
// given rows of keys A does not have and its text values marked, the tenant
// tables read from the catalog, every notice of the handle's connections
// recorded and Landlord's log kept.
type fx struct {
	k          Kit
	m          tenant.Model
	l          *landlord.Landlord
	h          *landlord.Handle
	roles      provision.Roles
	control    string // the control database
	a, b       tenant.Tenant
	ctxA, ctxB context.Context
	tables     []*table
	// main is the table the attacks on connections, names and routing
	// read and write.
	main *table
	// canaries are B's id and values: nothing A gets may contain one.
	// values are the values alone, for Landlord's log, which names tenants
	// by id on purpose.
	canaries, values []string
	notices          *noticeLog
	log              *syncBuffer

	mu     sync.Mutex
	supers map[string]*superConn // by database
}

// newFx opens an installation with cfg and creates and seeds tenants A and
// B of model m.
func newFx(t *testing.T, k Kit, m tenant.Model, cfg landlord.Config) *fx {
	t.Helper()
	ctx := context.Background()
	f := &fx{k: k, m: m, notices: &noticeLog{}, log: &syncBuffer{}, supers: map[string]*superConn{}}
	cfg.Logger = slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Every connection of the handle reports its notices to the test.
	cfg.BeforeConnect = func(cc *pgx.ConnConfig) { cc.OnNotice = f.notices.add }
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.supers {
			c.conn.Close(context.Background())
		}
		for _, c := range f.values {
			if strings.Contains(f.log.String(), c) {
				t.Errorf("Landlord's log carries tenant B's value %q", c)
			}
		}
	})
	f.l = k.open(t, cfg)
	f.h = f.l.Handle()
	f.roles = f.l.Provisioner().Roles()
	servers, err := f.l.Provisioner().Directory().Servers(ctx)
	must(t, err)
	for _, s := range servers {
		if s.ID == directory.DefaultServer {
			f.control = s.Database
		}
	}
	if f.control == "" {
		t.Fatal("the directory records no default server")
	}
	f.a = createTenant(t, f.l, "alpha", m)
	f.b = createTenant(t, f.l, "bravo", m)
	f.ctxA = landlord.WithTenant(ctx, f.a.ID)
	f.ctxB = landlord.WithTenant(ctx, f.b.ID)
	for _, c := range []context.Context{f.ctxA, f.ctxB} {
		if err := k.Seed(c, f.h); err != nil {
			t.Fatalf("Kit.Seed: %v", err)
		}
	}
	f.tables = f.readTables(t)
	f.prepareB(t)
	f.canaries = append(slices.Clone(f.values), f.b.ID.String())
	// The hook is live on every pool that serves A and B.
	for _, ctx := range []context.Context{f.ctxA, f.ctxB} {
		mark := f.notices.mark()
		// A notice that needs no PL/pgSQL, which tenant roles may lack.
		_, err := f.h.Exec(ctx, `DROP TABLE IF EXISTS landlordtest_hook_check`)
		must(t, err)
		if !strings.Contains(noticeText(f.notices.since(mark)), "landlordtest_hook_check") {
			t.Fatal("the handle's connections do not report notices to the test")
		}
	}
	return f
}

func createTenant(t testing.TB, l *landlord.Landlord, slug string, m tenant.Model) tenant.Tenant {
	t.Helper()
	tn, err := l.CreateTenant(context.Background(), provision.Request{Slug: slug, Model: m})
	if err != nil {
		t.Fatalf("create %s tenant %s: %v", m, slug, err)
	}
	return tn
}

// roleOf is the role tn's traffic runs as at its placement: the app role in
// the row model, tn's own role in the others.
// signature returns the signed context of tenant id (any text, to sign
// what is not an id too) under role, as migration.SignContext makes it with
// the installation's key: what the handle sends, for probes that enter a
// tenant by hand.
func (f *fx) signature(id, role string) string {
	return migration.SignContext(f.roles.ContextKey(), id, role, time.Now().Add(migration.ContextLifetime))
}

// handleRole is the role setting under which the handle runs tn's
// transactions: tn's role in the schema model, the login role ("none")
// otherwise.
func handleRole(tn tenant.Tenant) string {
	if tn.Model == tenant.ModelSchema {
		return tn.ID.RoleName()
	}
	return "none"
}

func (f *fx) roleOf(tn tenant.Tenant) string {
	if f.m == tenant.ModelRow {
		return f.roles.App
	}
	return tn.ID.RoleName()
}

// trafficConfig returns the connection settings of tn's traffic as
// Landlord's connections have them, logged in as the role of tn's traffic
// (the app role, or tn's own role in the database model).
func (f *fx) trafficConfig(t *testing.T, tn tenant.Tenant) *pgx.ConnConfig {
	t.Helper()
	role := f.roles.App
	if f.m == tenant.ModelDatabase {
		role = tn.ID.RoleName()
	}
	cc, err := f.l.Provisioner().ConnConfig(context.Background(), tn.Server, tn.Database, role)
	must(t, err)
	return cc
}

// outcome is everything one statement gave its caller.
type outcome struct {
	rows    [][]any
	tag     string
	err     error
	notices []*pgconn.Notice
	after   [][]any // what the superuser saw after the probe, in its transaction
	// changed reports that B's rows of the watched table changed.
	changed bool
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
func run(ctx context.Context, q landlord.Querier, notices *noticeLog, sql string, args ...any) outcome {
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
	return strings.NewReplacer(
		"{s}", ident(place.Schema),
		"{A}", f.a.ID.String(), "{B}", f.b.ID.String(),
		"{roleA}", ident(f.roleOf(f.a)),
		"{app}", ident(f.roles.App),
		"{owner}", ident(f.roles.Owner),
		"{role}", ident(role),
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
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.supers[place.Database]; ok {
		return c
	}
	cfg, err := pgx.ParseConfig(f.k.SuperuserURL(place.Database))
	must(t, err)
	c := &superConn{notices: &noticeLog{}}
	cfg.OnNotice = c.notices.add
	c.conn, err = pgx.ConnectConfig(context.Background(), cfg)
	must(t, err)
	f.supers[place.Database] = c
	return c
}

// controlConn returns a superuser connection to the control database,
// which holds the directory.
func (f *fx) controlConn(t *testing.T) *superConn {
	t.Helper()
	return f.super(t, tenant.Tenant{Database: f.control, Schema: provision.SharedSchema})
}

// exec runs statements as the superuser at place, committed, with the
// placement's schema first on the path.
func (f *fx) exec(t *testing.T, place tenant.Tenant, sqls ...string) {
	t.Helper()
	c := f.super(t, place)
	ctx := context.Background()
	if _, err := c.conn.Exec(ctx, `SELECT set_config('search_path', $1, false)`, searchPath(place.Schema)); err != nil {
		t.Fatal(err)
	}
	defer c.conn.Exec(ctx, `RESET search_path`)
	for _, sql := range sqls {
		if _, err := c.conn.Exec(ctx, f.expand(sql, place, "")); err != nil {
			t.Fatalf("%s: %v", f.expand(sql, place, ""), err)
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
	// sql and args replace the case's probe for this stage.
	sql  string
	args []any
	// watch names a table whose rows of B the superuser compares before and
	// after the probe (outcome.changed).
	watch *table
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
		sql, args = st.sql, st.args
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
	// The superuser's own statements resolve names in the placement, as
	// the triggers and functions they fire expect.
	if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, searchPath(place.Schema)); err != nil {
		t.Fatal(err)
	}
	for _, d := range st.ddl {
		if _, err := tx.Exec(ctx, x(d)); err != nil {
			t.Fatalf("switching the defense: %s: %v", x(d), err)
		}
	}
	var before string
	if st.watch != nil {
		before = f.fingerprint(t, tx, place, st.watch)
	}
	as := ""
	switch st.as {
	case "":
		as = f.roleOf(f.a)
		// Past the privilege layer of the schema and database models, so
		// that the row-level layer is seen on its own.
		if f.m != tenant.ModelRow && place.ID != f.a.ID {
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
	case "owner":
		as = f.roles.Owner
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
	if as != "" {
		if _, err := tx.Exec(ctx, `SELECT set_config('role', $1, true)`, as); err != nil {
			t.Fatalf("enter as %s: %v", as, err)
		}
	}
	if setContext {
		// Signed as the handle signs, for the role in force.
		role := as
		if role == "" {
			role = "none"
		}
		if _, err := tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true), set_config('landlord.tenant_sig', $2, true)`,
			setting, f.signature(setting, role)); err != nil {
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
	if st.after != "" || st.watch != nil {
		if _, err := tx.Exec(ctx, `SELECT set_config('role', 'none', true), set_config('landlord.tenant_id', '', true)`); err != nil {
			t.Fatal(err)
		}
	}
	if st.watch != nil {
		o.changed = f.fingerprint(t, tx, place, st.watch) != before
	}
	if st.after != "" {
		rows, err := tx.Query(ctx, x(st.after))
		must(t, err)
		o.after, err = pgx.CollectRows(rows, rowValues)
		must(t, err)
	}
	return o
}

// fingerprint identifies the versions of B's rows of tb at place: any
// insert, update or delete changes it.
func (f *fx) fingerprint(t *testing.T, q pgx.Tx, place tenant.Tenant, tb *table) string {
	t.Helper()
	var fp string
	err := q.QueryRow(context.Background(), `SELECT count(*)::text || ' ' || coalesce(md5(string_agg(
			x.tableoid::text || x.ctid::text || x.xmin::text || x::text, ',' ORDER BY x::text, x.tableoid, x.ctid)), '')
		FROM `+tb.in(place)+` x WHERE x.tenant_id = $1`, f.b.ID).Scan(&fp)
	must(t, err)
	return fp
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

// searchPath is the path Landlord gives a tenant's transactions: its schema,
// then pg_temp, which PostgreSQL would otherwise search first.
func searchPath(schema string) string { return ident(schema) + ", pg_temp" }

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// literal quotes s as an SQL string literal.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// randomName returns a role or object name unique on the cluster.
func randomName(prefix string) string {
	return prefix + "_" + tenant.NewID().Hex()[16:]
}

func isPgCode(err error, codes ...string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && slices.Contains(codes, pgErr.Code)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
