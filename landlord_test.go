package landlord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/audit"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/fleet"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// TestOpenRefusesUnsafeAppRole: tenant traffic never runs as a role that
// row-level security would not bind (SECURITY.md, I01, I02).
//
// Not parallel: roles are the server's, not a database's, and an app role
// made a member of the owner shows in every other installation's audit
// (I33) while it is one. Tests that are not parallel run before the others
// start, and each case puts its role back before the next.
func TestOpenRefusesUnsafeAppRole(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		setup string // run as the superuser; %s is the app role
	}{
		{"member of the owner", "GRANT landlord_owner TO %s"},
		{"bypassrls", "ALTER ROLE %s BYPASSRLS"},
		{"superuser", "ALTER ROLE %s SUPERUSER"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app := fmt.Sprintf("unsafe_app_%d_%d", i, time.Now().UnixNano()%1e9)
			db := server.NewDB(t, template)
			l, err := Open(ctx, db.URL, testMigrations(), Config{AppRole: app})
			if err != nil {
				t.Fatalf("open with a fresh app role: %v", err)
			}
			l.Close()
			admin, err := pgx.Connect(ctx, db.AdminURL)
			must(t, err)
			// The role is cluster-wide: leave nothing unsafe behind. (The
			// connection stays open for this, past the function's end.)
			t.Cleanup(func() {
				defer admin.Close(ctx)
				if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER ROLE %[1]s NOSUPERUSER NOBYPASSRLS; REVOKE landlord_owner FROM %[1]s", pgx.Identifier{app}.Sanitize())); err != nil {
					t.Errorf("make role %s safe again: %v", app, err)
				}
			})
			_, err = admin.Exec(ctx, fmt.Sprintf(c.setup, pgx.Identifier{app}.Sanitize()))
			must(t, err)
			l, err = Open(ctx, db.URL, testMigrations(), Config{AppRole: app})
			if err == nil {
				l.Close()
				t.Fatal("Open accepted an app role that row-level security does not bind")
			}
			if !errors.Is(err, ErrUnsafeRole) {
				t.Fatalf("got %v, want ErrUnsafeRole", err)
			}
		})
	}
}

func TestConfigRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, cfg := range []Config{
		{MaxConns: -1}, {MaxConnsPerTenant: -1}, {DirectoryMaxAge: -time.Second},
		{AppRole: "Bad Role"}, {AppRole: "landlord_owner"},
	} {
		if l, err := Open(ctx, "postgres://nowhere.invalid/x", testMigrations(), cfg); err == nil {
			l.Close()
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
	for _, url := range []string{"", "  "} {
		if _, err := Open(ctx, url, testMigrations(), Config{}); !errors.Is(err, ErrNoDatabaseURL) {
			t.Errorf("Open(%q): %v, want ErrNoDatabaseURL", url, err)
		}
	}
	if _, err := Open(ctx, "postgres://%zz", testMigrations(), Config{}); err == nil {
		t.Error("a malformed URL was accepted")
	}
	if _, err := Open(ctx, "postgres://user:hunter2@nowhere.invalid:1/x?connect_timeout=1", testMigrations(), Config{}); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("unreachable server: %v (must fail without showing the password)", err)
	}
}

// TestStates: read-only tenants are read-only in the database, suspended
// ones get a typed error, and a state change reaches the cached route.
func TestStates(t *testing.T) {
	for _, m := range tenant.Models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l, _ := setup(t, Config{})
			tn := createTenant(t, l, "shop", m)
			tctx := WithTenant(ctx, tn.ID)
			h := l.Handle()
			_, err := h.Exec(tctx, `INSERT INTO parents (id, name) VALUES (1, 'p')`)
			must(t, err)
			admin, err := l.Admin(ctx, "test state changes")
			must(t, err)

			_, err = admin.SetState(ctx, tn.ID, tenant.StateReadOnly)
			must(t, err)
			var n int
			must(t, h.QueryRow(tctx, `SELECT count(*) FROM parents`).Scan(&n))
			if n != 1 {
				t.Fatalf("read-only tenant reads %d rows, want 1", n)
			}
			_, err = h.Exec(tctx, `INSERT INTO parents (id, name) VALUES (2, 'q')`)
			if !isCode(err, "25006") { // read_only_sql_transaction
				t.Fatalf("write to a read-only tenant: %v, want read-only transaction error", err)
			}
			tx, err := h.Begin(tctx)
			must(t, err)
			_, err = tx.Exec(tctx, `DELETE FROM parents`)
			tx.Rollback(ctx)
			if !isCode(err, "25006") {
				t.Fatalf("write in a transaction of a read-only tenant: %v", err)
			}

			_, err = admin.SetState(ctx, tn.ID, tenant.StateSuspended)
			must(t, err)
			_, err = h.Exec(tctx, `SELECT 1`)
			if !errors.Is(err, tenant.ErrSuspended) {
				t.Fatalf("suspended tenant: %v, want ErrSuspended", err)
			}
			// An admin scope still reaches it.
			must(t, admin.Tenant(ctx, tn.ID).QueryRow(ctx, `SELECT count(*) FROM parents`).Scan(&n))

			_, err = admin.SetState(ctx, tn.ID, tenant.StateActive)
			must(t, err)
			_, err = h.Exec(tctx, `INSERT INTO parents (id, name) VALUES (2, 'q')`)
			must(t, err)
			if _, err := admin.SetState(ctx, tn.ID, tenant.StateMoving); err == nil {
				t.Fatal("moving is set by moves, not by hand")
			}
		})
	}
}

// TestDirectoryChangeReachesRoute: a state change written by another process
// reaches this one's cached route through the directory's notifications.
func TestDirectoryChangeReachesRoute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := setup(t, Config{})
	tn := createTenant(t, l, "shop", tenant.ModelRow)
	tctx := WithTenant(ctx, tn.ID)
	_, err := l.Handle().Exec(tctx, `SELECT 1`) // cache the route
	must(t, err)
	other, err := Open(ctx, db.URL, testMigrations(), Config{})
	must(t, err)
	defer other.Close()
	admin, err := other.Admin(ctx, "suspend from another process")
	must(t, err)
	_, err = admin.SetState(ctx, tn.ID, tenant.StateSuspended)
	must(t, err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = l.Handle().Exec(tctx, `SELECT 1`)
		if errors.Is(err, tenant.ErrSuspended) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the suspension never reached the other process: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUnknownAndDeletedTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := setup(t, Config{})
	_, err := l.Handle().Exec(WithTenant(ctx, tenant.NewID()), `SELECT 1`)
	if !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
	for _, m := range tenant.Models {
		tn := createTenant(t, l, "gone-"+string(m), m)
		tctx := WithTenant(ctx, tn.ID)
		_, err := l.Handle().Exec(tctx, `INSERT INTO parents (id, name) VALUES (1, 'p')`)
		must(t, err)
		must(t, l.DeleteTenant(ctx, tn.ID))
		if _, err := l.Handle().Exec(tctx, `SELECT 1`); !errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("%s: deleted tenant: %v", m, err)
		}
	}
}

func TestAdmin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := setup(t, Config{})
	if _, err := l.Admin(ctx, "  "); !errors.Is(err, ErrNoReason) {
		t.Fatalf("admin scope without a reason: %v", err)
	}
	var ids []tenant.ID
	for _, m := range tenant.Models {
		tn := createTenant(t, l, "each-"+string(m), m)
		ids = append(ids, tn.ID)
		_, err := l.Handle().Exec(WithTenant(ctx, tn.ID), `INSERT INTO parents (id, name) VALUES (1, $1)`, string(m))
		must(t, err)
	}
	admin, err := l.Admin(ctx, "count every tenant's parents")
	must(t, err)
	seen := map[string]string{}
	err = admin.Each(ctx, directory.Filter{}, func(ctx context.Context, tn tenant.Tenant, q Querier) error {
		var name string
		if err := q.QueryRow(ctx, `SELECT name FROM parents`).Scan(&name); err != nil {
			return err
		}
		seen[tn.Slug] = name
		return nil
	})
	must(t, err)
	for _, m := range tenant.Models {
		if seen["each-"+string(m)] != string(m) {
			t.Errorf("Each saw %v", seen)
		}
	}
	ts, err := admin.Tenants(ctx, directory.Filter{Model: tenant.ModelSchema})
	must(t, err)
	if len(ts) != 1 || ts[0].ID != ids[1] {
		t.Errorf("Tenants(schema) = %v", ts)
	}
	// A fixed-tenant handle ignores the context's tenant.
	var name string
	must(t, admin.Tenant(ctx, ids[0]).QueryRow(WithTenant(ctx, ids[2]), `SELECT name FROM parents`).Scan(&name))
	if name != "row" {
		t.Errorf("admin.Tenant(row) read %q", name)
	}
}

// TestBatchAndTx covers the handle's other paths: batches, transactions,
// named arguments and a statement whose result type changed after a
// migration-like change.
func TestBatchAndTx(t *testing.T) {
	for _, m := range tenant.Models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l, _ := setup(t, Config{})
			tn := createTenant(t, l, "shop", m)
			tctx := WithTenant(ctx, tn.ID)
			h := l.Handle()

			b := &pgx.Batch{}
			for i := 1; i <= 3; i++ {
				b.Queue(`INSERT INTO parents (id, name) VALUES ($1, $2)`, i, fmt.Sprint("p", i))
			}
			var count int
			b.Queue(`SELECT count(*) FROM parents`).QueryRow(func(r pgx.Row) error { return r.Scan(&count) })
			must(t, h.SendBatch(tctx, b).Close())
			if count != 3 {
				t.Fatalf("batch saw %d rows, want 3", count)
			}
			bt := &pgx.Batch{}
			bt.BeginTx(pgx.TxOptions{})
			if err := h.SendBatch(tctx, bt).Close(); !errors.Is(err, ErrBatchTx) {
				t.Fatalf("batch with its own transaction: %v", err)
			}

			// Named arguments take the pgx batch path.
			var name string
			must(t, h.QueryRow(tctx, `SELECT name FROM parents WHERE id = @id`, pgx.NamedArgs{"id": 2}).Scan(&name))
			if name != "p2" {
				t.Fatalf("named args read %q", name)
			}
			// An exec mode changes nothing; result formats are refused
			// before anything is sent.
			for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheDescribe} {
				name = ""
				if err := h.QueryRow(tctx, `SELECT name FROM parents WHERE id = $1`, mode, 2).Scan(&name); err != nil || name != "p2" {
					t.Fatalf("with %v: read %q, %v", mode, name, err)
				}
			}
			if _, err := h.Exec(tctx, `SELECT 1`, pgx.QueryResultFormats{pgx.BinaryFormatCode}); !errors.Is(err, ErrResultFormats) {
				t.Fatalf("with result formats: %v, want ErrResultFormats", err)
			}

			err := pgx.BeginFunc(tctx, h, func(tx pgx.Tx) error {
				if _, err := tx.Exec(tctx, `DELETE FROM parents WHERE id = 1`); err != nil {
					return err
				}
				return errors.New("roll back")
			})
			if err == nil || err.Error() != "roll back" {
				t.Fatalf("BeginFunc: %v", err)
			}
			must(t, h.QueryRow(tctx, `SELECT count(*) FROM parents`).Scan(&count))
			if count != 3 {
				t.Fatalf("rolled back delete left %d rows", count)
			}
			tx, err := h.BeginTx(tctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
			must(t, err)
			var iso string
			must(t, tx.QueryRow(tctx, `SELECT current_setting('transaction_isolation')`).Scan(&iso))
			must(t, tx.Commit(ctx))
			if iso != "serializable" {
				t.Fatalf("isolation %q", iso)
			}
			if tx.Conn() != nil {
				t.Fatal("a tenant transaction exposes its connection")
			}

			// A statement cached before the table changed shape fails once
			// and works again after.
			must(t, h.QueryRow(tctx, `SELECT * FROM parents WHERE id = 1`).Scan(new(tenant.ID), new(int64), &name))
			admin, err := pgx.Connect(ctx, l.admin.Config().ConnConfig.ConnString())
			must(t, err)
			defer admin.Close(ctx)
			tables := []string{pgx.Identifier{tn.Schema, "parents"}.Sanitize()}
			if m == tenant.ModelDatabase {
				cfg, err := l.prov.ConnConfig(ctx, tn.Server, tn.Database, "")
				must(t, err)
				admin.Close(ctx)
				admin, err = pgx.ConnectConfig(ctx, cfg)
				must(t, err)
			}
			_, err = admin.Exec(ctx, `SET ROLE landlord_owner; ALTER TABLE `+tables[0]+` ADD COLUMN note text; RESET ROLE`)
			must(t, err)
			for i := 0; ; i++ {
				err := h.QueryRow(tctx, `SELECT * FROM parents WHERE id = 1`).Scan(new(tenant.ID), new(int64), &name, new(*string))
				if err == nil {
					break
				}
				if i > 0 {
					t.Fatalf("statement still failing after the table changed: %v", err)
				}
			}
		})
	}
}

// TestSchemaTenantsAtDifferentVersions alternates two schema tenants whose
// tables differ in shape (as during a fleet migration) on one connection:
// each must get its own columns, through the handle and in transactions, with
// no "cached plan must not change result type" on the way (SECURITY.md, I19).
func TestSchemaTenantsAtDifferentVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := setup(t, Config{MaxConns: 1})
	a := createTenant(t, l, "ahead", tenant.ModelSchema)
	b := createTenant(t, l, "behind", tenant.ModelSchema)
	admin, err := pgx.Connect(ctx, db.URL)
	must(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, `SET ROLE landlord_owner; ALTER TABLE `+pgx.Identifier{a.Schema, "parents"}.Sanitize()+` ADD COLUMN note text; RESET ROLE`)
	must(t, err)
	h := l.Handle()
	for _, tn := range []tenant.Tenant{a, b} {
		_, err := h.Exec(WithTenant(ctx, tn.ID), `INSERT INTO parents (id, name) VALUES (1, 'p')`)
		must(t, err)
	}
	cols := func(q Querier, ctx context.Context) int {
		rows, err := q.Query(ctx, `SELECT * FROM parents`)
		must(t, err)
		rows.Next()
		n := len(rows.FieldDescriptions())
		rows.Close()
		must(t, rows.Err())
		return n
	}
	for round := 0; round < 5; round++ {
		for _, c := range []struct {
			tn   tenant.Tenant
			want int
		}{{a, 4}, {b, 3}} {
			tctx := WithTenant(ctx, c.tn.ID)
			if got := cols(h, tctx); got != c.want {
				t.Fatalf("round %d: %s sees %d columns, want %d", round, c.tn.Slug, got, c.want)
			}
			tx, err := h.Begin(tctx)
			must(t, err)
			if got := cols(tx, tctx); got != c.want {
				t.Fatalf("round %d: %s in a transaction sees %d columns, want %d", round, c.tn.Slug, got, c.want)
			}
			must(t, tx.Commit(ctx))
		}
	}
}

// TestSchemaVersionGate: a tenant whose tables are outside the version range
// the code supports gets a typed error and no SQL; status lists it.
func TestSchemaVersionGate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := setup(t, Config{})
	tn := createTenant(t, l, "old-shop", tenant.ModelSchema)
	ok := createTenant(t, l, "new-shop", tenant.ModelRow)
	// The code now needs version 2; the tenants are at 1 (the test set's head).
	gated, err := Open(ctx, db.URL, testMigrations(), Config{MinSchemaVersion: 2})
	must(t, err)
	defer gated.Close()
	for _, id := range []tenant.ID{tn.ID, ok.ID} {
		_, err := gated.Handle().Exec(WithTenant(ctx, id), `SELECT 1`)
		var verr *tenant.VersionError
		if !errors.Is(err, tenant.ErrSchemaVersion) || !errors.As(err, &verr) || verr.Version != 1 || verr.Min != 2 {
			t.Fatalf("tenant below the range: %v", err)
		}
	}
	admin, err := gated.Admin(ctx, "what blocks the deploy")
	must(t, err)
	blocking, err := admin.Incompatible(ctx)
	must(t, err)
	if len(blocking) != 2 {
		t.Fatalf("Incompatible = %d tenants, want 2", len(blocking))
	}
	// Once the tenant reaches version 2, the cached route follows.
	must(t, l.dir.SetSchemaVersion(ctx, tn.ID, 2))
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := gated.Handle().Exec(WithTenant(ctx, tn.ID), `SELECT 1`)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new version never reached the route: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := Open(ctx, db.URL, testMigrations(), Config{MinSchemaVersion: 3, MaxSchemaVersion: 2}); err == nil {
		t.Fatal("an empty version range was accepted")
	}
}

// TestFailedQueryReleases: a Query that fails hands back closed rows and its
// connection, on both paths (a pool of one would hang otherwise).
func TestFailedQueryReleases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := setup(t, Config{MaxConns: 1})
	tctx := WithTenant(ctx, createTenant(t, l, "shop", tenant.ModelRow).ID)
	h := l.Handle()
	for i := 0; i < 3; i++ {
		if _, err := h.Query(tctx, `SELECT nope FROM parents WHERE id = @id`, pgx.NamedArgs{"id": 1}); err == nil {
			t.Fatal("a bad query succeeded on the batch path")
		}
		rows, _ := h.Query(tctx, `SELECT nope FROM parents`)
		rows.Close()
		if rows.Err() == nil {
			t.Fatal("a bad query succeeded on the lean path")
		}
	}
	tctx2, cancel := context.WithTimeout(tctx, 5*time.Second)
	defer cancel()
	var n int
	must(t, h.QueryRow(tctx2, `SELECT count(*) FROM parents`).Scan(&n))
}

// TestTagSessions: with TagSessions each transaction carries the tenant in
// application_name, and nothing of it outlives the transaction.
func TestTagSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := setup(t, Config{TagSessions: true, MaxConns: 1})
	for _, m := range tenant.Models {
		tn := createTenant(t, l, "tagged-"+string(m), m)
		tctx := WithTenant(ctx, tn.ID)
		var name string
		must(t, l.Handle().QueryRow(tctx, `SELECT current_setting('application_name')`).Scan(&name))
		if want := "landlord tenant " + tn.ID.String(); name != want {
			t.Fatalf("%s: application_name %q, want %q", m, name, want)
		}
		tx, err := l.Handle().Begin(tctx)
		must(t, err)
		must(t, tx.QueryRow(tctx, `SELECT current_setting('application_name')`).Scan(&name))
		must(t, tx.Rollback(ctx))
		if !strings.Contains(name, tn.ID.String()) {
			t.Fatalf("%s: in a transaction, application_name %q", m, name)
		}
	}
}

// TestStartupAudit: with AuditRefuse, Open fails on an isolation mistake in
// the catalog; with the default it only logs it.
func TestStartupAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := setup(t, Config{StartupAudit: AuditRefuse}) // clean: opens
	l.Close()
	admin, err := pgx.Connect(ctx, db.AdminURL)
	must(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, `ALTER TABLE shared.items NO FORCE ROW LEVEL SECURITY`)
	must(t, err)
	if l, err := Open(ctx, db.URL, testMigrations(), Config{StartupAudit: AuditRefuse}); err == nil {
		l.Close()
		t.Fatal("Open accepted a tenant table without forced row-level security")
	} else if !strings.Contains(err.Error(), "audit") {
		t.Fatalf("refusal: %v", err)
	}
	var logs strings.Builder
	l, err = Open(ctx, db.URL, testMigrations(), Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	must(t, err)
	l.Close()
	if !strings.Contains(logs.String(), "rls_not_forced") {
		t.Fatalf("the default mode did not log the finding:\n%s", logs.String())
	}
}

// The app role measures its own backend's memory through the function
// bootstrap installs, and nothing else: the view it reads stays closed to
// it, and tenant roles cannot call the function.
func TestBackendMemory(t *testing.T) {
	t.Parallel()
	l, _ := setup(t, Config{})
	ctx := context.Background()
	cc, err := l.Provisioner().ConnConfig(ctx, directory.DefaultServer, l.controlDB, l.cfg.AppRole)
	must(t, err)
	conn, err := pgx.ConnectConfig(ctx, cc)
	must(t, err)
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, "SELECT "+provision.MemoryFunc+"()").Scan(&n); err != nil {
		t.Fatalf("measure: %v", err)
	}
	if n < 1<<20 || n > 1<<30 {
		t.Errorf("backend memory %d bytes, want between 1 MB and 1 GB", n)
	}
	if _, err := conn.Exec(ctx, "SELECT count(*) FROM pg_backend_memory_contexts"); !isCode(err, "42501") {
		t.Errorf("app role reading pg_backend_memory_contexts: %v, want permission denied", err)
	}
	ten := createTenant(t, l, "memory-probe", tenant.ModelSchema)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+pgx.Identifier{ten.ID.RoleName()}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT "+provision.MemoryFunc+"()"); !isCode(err, "42501") {
		t.Errorf("tenant role calling %s: %v, want permission denied", provision.MemoryFunc, err)
	}
}

// TestRoleSetOutOfSight: a function that sets a session-level role, which no
// statement text shows, gets its connection refused on the next call; the
// call goes again on a fresh connection and succeeds (SECURITY.md, I06).
func TestRoleSetOutOfSight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := setup(t, Config{MaxConns: 1})
	tn := createTenant(t, l, "shop", tenant.ModelRow)
	admin, err := pgx.Connect(ctx, db.URL)
	must(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, `SET ROLE landlord_owner;
		CREATE FUNCTION shared.sneak() RETURNS int LANGUAGE sql AS $$ SELECT 1 FROM (SELECT set_config('role', current_user, false)) s $$;
		RESET ROLE`)
	must(t, err)
	h := l.Handle()
	tctx := WithTenant(ctx, tn.ID)
	pid := func() (p int) {
		must(t, h.QueryRow(tctx, `SELECT pg_backend_pid()`).Scan(&p))
		return p
	}
	before := pid()
	_, err = h.Exec(tctx, `SELECT shared.sneak()`)
	must(t, err)
	after := pid() // refused on the tainted connection, then served by a new one
	if after == before {
		t.Fatal("the connection with a session-level role served another call")
	}
	var role string
	must(t, h.QueryRow(tctx, `SELECT current_setting('role')`).Scan(&role))
	if role != "none" {
		t.Fatalf("role %q leaked into a later call", role)
	}
}

// TestDeleteRecordsIntent: deleting through the installation writes the
// deletion's intent to the ledger before anything is dropped, in every
// model, so that a crash mid-deletion is finished by Reconcile.
func TestDeleteRecordsIntent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := setup(t, Config{})
	for _, m := range tenant.Models {
		tn := createTenant(t, l, "doomed-"+string(m), m)
		_, err := l.Handle().Exec(WithTenant(ctx, tn.ID), `SELECT 1`) // a live connection to close
		must(t, err)
		must(t, l.DeleteTenant(ctx, tn.ID))
		steps, err := l.Directory().Steps(ctx, tn.ID)
		must(t, err)
		var got []string
		for _, s := range steps {
			if s.Operation == "delete" {
				got = append(got, s.Step)
			}
		}
		if len(got) < 2 || got[0] != "intent" || got[len(got)-1] != "removed" {
			t.Errorf("%s: delete steps %v, want the intent first and removed last", m, got)
		}
		if _, err := l.Handle().Exec(WithTenant(ctx, tn.ID), `SELECT 1`); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("%s: a deleted tenant's call: %v, want not found", m, err)
		}
	}
}

// TestInstallationOperations: the installation runs what needs several of
// its parts, with nothing assembled by the caller: a fleet migration, an
// audit of every database, filling the reserve.
func TestInstallationOperations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := setup(t, Config{})
	createTenant(t, l, "ops-row", tenant.ModelRow)
	createTenant(t, l, "ops-db", tenant.ModelDatabase)

	f, err := l.Fleet(fleet.Config{})
	must(t, err)
	rep, err := f.Up(ctx)
	must(t, err)
	for _, r := range rep.Targets {
		if r.Status != fleet.StateDone {
			t.Errorf("fleet target %+v", r)
		}
	}

	findings, err := l.Audit(ctx, audit.FleetConfig{})
	must(t, err)
	if err := audit.AsError(findings); err != nil {
		t.Fatalf("a fresh installation has findings: %v", err)
	}
	// A mistake planted in the tenant database is found there.
	tn, err := l.TenantBySlug(ctx, "ops-db")
	must(t, err)
	cc, err := l.Provisioner().ConnConfig(ctx, tn.Server, tn.Database, "")
	must(t, err)
	conn, err := pgx.ConnectConfig(ctx, cc)
	must(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `ALTER TABLE `+pgx.Identifier{tn.Schema, "items"}.Sanitize()+` NO FORCE ROW LEVEL SECURITY`)
	must(t, err)
	findings, err = l.Audit(ctx, audit.FleetConfig{})
	must(t, err)
	found := false
	for _, f := range findings {
		found = found || (f.Check == "rls_not_forced" && f.Database == tn.Database)
	}
	if !found {
		t.Errorf("the audit missed a tenant database's table without forced RLS: %+v", findings)
	}

	ready, err := l.FillReserve(ctx, tenant.ModelSchema, 2)
	must(t, err)
	if ready != 2 {
		t.Fatalf("reserve holds %d, want 2", ready)
	}
	reserved, err := l.Directory().ListReserved(ctx, tenant.ModelSchema, directory.DefaultServer)
	must(t, err)
	claimed := createTenant(t, l, "ops-claimed", tenant.ModelSchema)
	fromReserve := false
	for _, r := range reserved {
		fromReserve = fromReserve || r.ID == claimed.ID
	}
	if !fromReserve {
		t.Errorf("the new schema tenant %s was not claimed from the reserve %+v", claimed.ID, reserved)
	}
}

// TestStaleStatementInTransaction: a schema tenant's statement that went
// stale (its table changed shape after the connection prepared it) fails
// once inside a transaction and is forgotten, so that the next transaction
// on the same connection prepares it afresh, for Exec and for Query.
func TestStaleStatementInTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := setup(t, Config{MaxConns: 1})
	tn := createTenant(t, l, "stale", tenant.ModelSchema)
	tctx := WithTenant(ctx, tn.ID)
	h := l.Handle()
	_, err := h.Exec(tctx, `INSERT INTO parents (id, name) VALUES (1, 'p')`)
	must(t, err)
	admin, err := pgx.Connect(ctx, l.admin.Config().ConnConfig.ConnString())
	must(t, err)
	defer admin.Close(ctx)
	const sel = `SELECT * FROM parents WHERE id = 1`
	for _, c := range []struct {
		name string
		run  func(tx pgx.Tx) error
	}{
		{"exec", func(tx pgx.Tx) error { _, err := tx.Exec(tctx, sel); return err }},
		{"query", func(tx pgx.Tx) error {
			rows, err := tx.Query(tctx, sel)
			if err != nil {
				return err
			}
			rows.Close()
			return rows.Err()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Prepared on the one connection, then made stale.
			must(t, pgx.BeginFunc(tctx, h, c.run))
			_, err := admin.Exec(ctx, `SET ROLE landlord_owner; ALTER TABLE `+pgx.Identifier{tn.Schema, "parents"}.Sanitize()+
				` ADD COLUMN `+pgx.Identifier{"note_" + c.name}.Sanitize()+` text; RESET ROLE`)
			must(t, err)
			if err := pgx.BeginFunc(tctx, h, c.run); err == nil {
				t.Fatal("the stale statement ran: the test proves nothing")
			}
			if err := pgx.BeginFunc(tctx, h, c.run); err != nil {
				t.Fatalf("the next transaction on the connection: %v, want the statement prepared afresh", err)
			}
		})
	}
}
