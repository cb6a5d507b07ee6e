package migration_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

// session is the connection state a step must not leave behind on a
// connection that goes back to a pool (SECURITY.md, I06).
func session(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var s string
	err := conn.QueryRow(t.Context(), `SELECT concat_ws(' | ', current_user, session_user, current_setting('search_path'),
		current_setting('lock_timeout'), current_setting('landlord.tenant_id', true))`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestApplyNoTransaction(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	m := e.migrator(t, files(
		"001_products.up.sql", productsSQL,
		"002_sku_index.up.sql", "-- landlord:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS products_name_idx ON products (tenant_id, sku);\n",
		"003_notes.up.sql", `CREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));`,
	), migration.Config{LockTimeout: 1500 * time.Millisecond})
	if !m.Set().Migrations()[1].NoTransaction {
		t.Fatal("002 is not marked no-transaction")
	}
	before := session(t, e.conn)
	res, err := m.Apply(ctx, e.conn, e.target("app"))
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if !equalInts(res.Applied, []int{1, 2, 3}) {
		t.Fatalf("Applied = %v, want [1 2 3]", res.Applied)
	}
	if after := session(t, e.conn); after != before {
		t.Errorf("session state after Apply = %q, want %q as before", after, before)
	}
	var valid bool
	var owner string
	err = e.conn.QueryRow(ctx, `SELECT i.indisvalid, pg_get_userbyid(c.relowner) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE i.indexrelid = 'app.products_name_idx'::regclass`).Scan(&valid, &owner)
	if err != nil {
		t.Fatalf("index: %v", err)
	}
	if !valid || owner != e.owner {
		t.Errorf("index valid=%v owner=%s, want valid and owned by %s", valid, owner, e.owner)
	}
	if got := e.ledger(t, "app"); !equalInts(got, []int{1, 2, 3}) {
		t.Errorf("ledger = %v, want [1 2 3]", got)
	}
	// The step after it still got row-level security.
	var force bool
	if err := e.conn.QueryRow(ctx, `SELECT relforcerowsecurity FROM pg_class WHERE oid = 'app.notes'::regclass`).Scan(&force); err != nil || !force {
		t.Errorf("notes: forced row level security = %v, %v", force, err)
	}
	res, err = m.Apply(ctx, e.conn, e.target("app"))
	if err != nil || len(res.Applied) != 0 {
		t.Errorf("second Apply = %+v, %v, want a no-op", res, err)
	}
}

// TestApplyNoTransactionFailure checks that a failing no-transaction step is
// not recorded and leaves the session clean.
func TestApplyNoTransactionFailure(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	m := e.migrator(t, files(
		"001_products.up.sql", productsSQL,
		"002_bad_index.up.sql", "-- landlord:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS bad_idx ON no_such_table (x);\n",
	), migration.Config{})
	before := session(t, e.conn)
	_, err := m.Apply(ctx, e.conn, e.target("app"))
	if !isCode(err, pgerrcode.UndefinedTable) {
		t.Fatalf("Apply = %v, want undefined_table", err)
	}
	if !strings.Contains(err.Error(), "002_bad_index.up.sql") {
		t.Errorf("error %q does not name the migration", err)
	}
	if after := session(t, e.conn); after != before {
		t.Errorf("session state after a failed step = %q, want %q", after, before)
	}
	if got := e.ledger(t, "app"); !equalInts(got, []int{1}) {
		t.Errorf("ledger = %v, want [1]", got)
	}
	// The session lock is released: another connection can migrate.
	other := e.connect(t)
	fixed := e.migrator(t, files("001_products.up.sql", productsSQL,
		"002_bad_index.up.sql", "-- landlord:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS sku_idx ON products (tenant_id, sku);\n"), migration.Config{})
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := fixed.Apply(tctx, other, e.target("app")); err != nil {
		t.Fatalf("apply from another connection: %v", err)
	}
}

func TestApplyPlainTarget(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	e.createSchema(t, "control")
	m := e.migrator(t, files(
		"001_settings.up.sql", `CREATE TABLE settings (key text PRIMARY KEY, value text);`,
		"002_log.up.sql", `CREATE TABLE log (id bigint GENERATED ALWAYS AS IDENTITY, msg text, UNIQUE (msg));`,
	), migration.Config{})
	target := migration.Target{Schema: "control", Plain: true}
	res, err := m.Apply(ctx, e.conn, target)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if !equalInts(res.Applied, []int{1, 2}) {
		t.Fatalf("Applied = %v, want [1 2]", res.Applied)
	}
	var rls, policies int
	if err := e.conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE relrowsecurity OR relforcerowsecurity),
		(SELECT count(*) FROM pg_policies WHERE schemaname = 'control')
		FROM pg_class WHERE relnamespace = 'control'::regnamespace AND relkind = 'r'`).Scan(&rls, &policies); err != nil {
		t.Fatal(err)
	}
	if rls != 0 || policies != 0 {
		t.Errorf("plain target: %d tables with row level security, %d policies, want none", rls, policies)
	}
	if got := e.ledger(t, "control"); !equalInts(got, []int{1, 2}) {
		t.Errorf("ledger = %v, want [1 2]", got)
	}
	// The same tables in a tenant target are refused.
	_, err = m.Apply(ctx, e.conn, e.target("app"))
	if !errors.Is(err, migration.ErrShape) {
		t.Errorf("Apply to a tenant target = %v, want ErrShape", err)
	}
}

// lockTable holds a lock on schema.table that conflicts with ALTER TABLE until
// release is called or d has passed.
func lockTable(t *testing.T, e *env, schema, table string, d time.Duration) (release func()) {
	t.Helper()
	conn := e.connect(t)
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "LOCK TABLE "+ident.Quote(schema, table)+" IN ACCESS SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-done:
		case <-time.After(d):
		}
		_ = tx.Rollback(context.Background())
	}()
	var once bool
	release = func() {
		if !once {
			once = true
			close(done)
			<-stopped
		}
	}
	t.Cleanup(release)
	return release
}

func TestApplyLockTimeout(t *testing.T) {
	t.Parallel()
	alter := files(
		"001_products.up.sql", productsSQL,
		"002_price.up.sql", `ALTER TABLE products ADD COLUMN price_cents bigint NOT NULL DEFAULT 0;`,
	)

	t.Run("retried until the lock is free", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := t.Context()
		if _, err := e.migrator(t, files("001_products.up.sql", productsSQL), migration.Config{}).Apply(ctx, e.conn, e.target("app")); err != nil {
			t.Fatalf("apply 1: %v", err)
		}
		var logs logBuffer
		m := e.migrator(t, alter, migration.Config{
			LockTimeout: 200 * time.Millisecond,
			LockRetries: 10,
			Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
		})
		// The lock is held until Apply has retried twice, however long
		// that takes: the test counts retries, not time.
		release := lockTable(t, e, "app", "products", time.Minute)
		var released atomic.Bool
		watch, stopWatching := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			for strings.Count(logs.String(), "retrying") < 2 {
				select {
				case <-watch.Done():
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
			released.Store(true)
			release()
		}()
		res, err := m.Apply(ctx, e.conn, e.target("app"))
		stopWatching()
		<-watched
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		if !equalInts(res.Applied, []int{2}) {
			t.Fatalf("Applied = %v, want [2]", res.Applied)
		}
		if !released.Load() {
			t.Errorf("Apply finished while the lock was held")
		}
		if n := strings.Count(logs.String(), "retrying"); n < 2 {
			t.Errorf("logged %d retries, want at least 2:\n%s", n, logs.String())
		}
		if got := e.ledger(t, "app"); !equalInts(got, []int{1, 2}) {
			t.Errorf("ledger = %v, want [1 2]", got)
		}
	})

	t.Run("gives up", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := t.Context()
		if _, err := e.migrator(t, files("001_products.up.sql", productsSQL), migration.Config{}).Apply(ctx, e.conn, e.target("app")); err != nil {
			t.Fatalf("apply 1: %v", err)
		}
		var logs logBuffer
		m := e.migrator(t, alter, migration.Config{LockTimeout: 100 * time.Millisecond, LockRetries: 1,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		release := lockTable(t, e, "app", "products", time.Minute)
		start := time.Now()
		res, err := m.Apply(ctx, e.conn, e.target("app"))
		took := time.Since(start)
		release()
		if !isCode(err, pgerrcode.LockNotAvailable) {
			t.Fatalf("Apply = %+v, %v, want lock_not_available", res, err)
		}
		// One try, a pause, one retry, while the lock was still held: two
		// lock timeouts and the pause are the least it can take.
		if n := strings.Count(logs.String(), "retrying"); n != 1 {
			t.Errorf("logged %d retries, want 1:\n%s", n, logs.String())
		}
		if took < 400*time.Millisecond {
			t.Errorf("Apply gave up after %v, less than two lock timeouts and the pause between", took)
		}
		if res.To != 1 || len(res.Applied) != 0 {
			t.Errorf("Apply = %+v, want to stay at version 1", res)
		}
		if got := e.ledger(t, "app"); !equalInts(got, []int{1}) {
			t.Errorf("ledger = %v, want [1]", got)
		}
		var has bool
		if err := e.conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'app.products'::regclass AND attname = 'price_cents')`).Scan(&has); err != nil || has {
			t.Errorf("price_cents exists=%v, %v, want the ALTER rolled back", has, err)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	set, err := migration.Load(files("001_a.up.sql", productsSQL))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migration.New(nil, migration.Config{}); err == nil {
		t.Error("New(nil set) succeeded")
	}
	tests := []struct {
		name string
		cfg  migration.Config
		want string
		is   error
	}{
		{"owner upper case", migration.Config{Owner: "Owner"}, "Owner", tenant.ErrBadIdentifier},
		{"owner injection", migration.Config{Owner: `x"; DROP ROLE y; --`}, "Owner", tenant.ErrBadIdentifier},
		{"owner pg_", migration.Config{Owner: "pg_write_all_data"}, "Owner", tenant.ErrBadIdentifier},
		{"owner too long", migration.Config{Owner: strings.Repeat("o", 64)}, "Owner", tenant.ErrBadIdentifier},
		{"negative lock timeout", migration.Config{LockTimeout: -time.Second}, "LockTimeout", nil},
		{"negative lock retries", migration.Config{LockRetries: -1}, "LockRetries", nil},
	}
	for _, tt := range tests {
		m, err := migration.New(set, tt.cfg)
		if err == nil {
			t.Errorf("%s: New = %v, want an error", tt.name, m)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q does not name %s", tt.name, err, tt.want)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%s: error %v does not wrap %v", tt.name, err, tt.is)
		}
	}
}

func TestTargetValidation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	m := e.migrator(t, files("001_products.up.sql", productsSQL), migration.Config{})
	tests := []struct {
		target migration.Target
		want   string
	}{
		{migration.Target{}, "target schema"},
		{migration.Target{Schema: "App"}, "target schema"},
		{migration.Target{Schema: "pg_catalog"}, "target schema"},
		{migration.Target{Schema: "public.x"}, "target schema"},
		{migration.Target{Schema: `app"; DROP SCHEMA app CASCADE; --`}, "target schema"},
		{migration.Target{Schema: strings.Repeat("s", 64)}, "target schema"},
		{migration.Target{Schema: "app", Grantee: "App"}, "target grantee"},
		{migration.Target{Schema: "app", Grantee: "pg_read_all_data"}, "target grantee"},
		{migration.Target{Schema: "app", Grantee: "a b"}, "target grantee"},
	}
	// A closed connection: had any SQL been sent, the error would say so
	// instead of naming the bad field.
	closed := e.connect(t)
	if err := closed.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		for _, conn := range []*pgx.Conn{e.conn, closed} {
			_, err := m.Apply(ctx, conn, tt.target)
			if !errors.Is(err, tenant.ErrBadIdentifier) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Apply(%+v) = %v, want ErrBadIdentifier naming the %s", tt.target, err, tt.want)
			}
			_, err = m.Version(ctx, conn, tt.target)
			if !errors.Is(err, tenant.ErrBadIdentifier) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Version(%+v) = %v, want ErrBadIdentifier naming the %s", tt.target, err, tt.want)
			}
		}
	}
	// Not even the ledger was created.
	var ledger bool
	if err := e.conn.QueryRow(ctx, `SELECT to_regnamespace('landlord') IS NOT NULL`).Scan(&ledger); err != nil {
		t.Fatal(err)
	}
	if ledger {
		t.Error("the ledger schema exists after refused targets")
	}
	if _, err := m.Apply(ctx, e.conn, e.target("app")); err != nil {
		t.Errorf("apply to a good target: %v", err)
	}
}

// TestTenantIDUUIDColumn checks that tenant.ID goes into and comes out of a
// PostgreSQL uuid as itself, in every query mode pgx offers (simple protocol
// included, as used behind transaction-mode poolers).
func TestTenantIDUUIDColumn(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	e.exec(t, `CREATE TABLE public.ids (id uuid PRIMARY KEY, label text NOT NULL)`)
	modes := []pgx.QueryExecMode{
		pgx.QueryExecModeCacheStatement,
		pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec,
		pgx.QueryExecModeExec,
		pgx.QueryExecModeSimpleProtocol,
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			id := tenant.NewID()
			if _, err := e.conn.Exec(ctx, `INSERT INTO public.ids (id, label) VALUES ($1, $2)`, mode, id, mode.String()); err != nil {
				t.Fatalf("insert: %v", err)
			}
			var text string
			var back tenant.ID
			if err := e.conn.QueryRow(ctx, `SELECT id::text, id FROM public.ids WHERE id = $1`, mode, id).Scan(&text, &back); err != nil {
				t.Fatalf("select: %v", err)
			}
			if text != id.String() {
				t.Errorf("stored as %s, want %s", text, id)
			}
			if back != id {
				t.Errorf("read back %s, want %s", back, id)
			}
			var ptr *tenant.ID
			if err := e.conn.QueryRow(ctx, `SELECT NULL::uuid`, mode).Scan(&ptr); err != nil || ptr != nil {
				t.Errorf("NULL into *tenant.ID = %v, %v, want nil", ptr, err)
			}
			keep := id
			err := e.conn.QueryRow(ctx, `SELECT NULL::uuid`, mode).Scan(&keep)
			if !errors.Is(err, tenant.ErrBadID) {
				t.Errorf("NULL into tenant.ID = %v, want ErrBadID", err)
			}
			if mode == pgx.QueryExecModeExec || mode == pgx.QueryExecModeSimpleProtocol {
				// Without a statement description pgx cannot tell which
				// array type a []tenant.ID is; callers pass []string there.
				return
			}
			var n int
			if err := e.conn.QueryRow(ctx, `SELECT count(*) FROM public.ids WHERE id = ANY($1)`, mode, []tenant.ID{id, tenant.NewID()}).Scan(&n); err != nil || n != 1 {
				t.Errorf("id = ANY([]tenant.ID) matched %d, %v, want 1", n, err)
			}
		})
	}
	var zero tenant.ID
	var s string
	if err := e.conn.QueryRow(ctx, `SELECT $1::uuid::text`, zero).Scan(&s); err != nil || s != "00000000-0000-0000-0000-000000000000" {
		t.Errorf("zero id = %q, %v", s, err)
	}
}
