package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

// intent writes the directory row a Create writes before it acts, as if the
// process died right after: state provisioning, nothing created yet.
func intent(t *testing.T, e *env, slug string, m tenant.Model) tenant.Tenant {
	t.Helper()
	id := tenant.NewID()
	tn := tenant.Tenant{
		ID: id, Slug: slug, Model: m, Server: directory.DefaultServer,
		Schema: id.SchemaName(), Database: e.db.Name, State: tenant.StateProvisioning,
	}
	if m == tenant.ModelDatabase {
		tn.Database = id.DatabaseName()
	}
	must(t, e.p.Directory().Insert(t.Context(), tn))
	return tn
}

// checkLive checks that a schema or database tenant is active and that its
// objects exist, carry the marker and work.
func checkLive(t *testing.T, e *env, id tenant.ID) {
	t.Helper()
	ctx := t.Context()
	tn, err := e.p.Directory().Get(ctx, id)
	must(t, err)
	if tn.State != tenant.StateActive || tn.SchemaVersion != e.p.Migrator().Set().Head() {
		t.Errorf("tenant %s is %s at version %d, want active at %d", id, tn.State, tn.SchemaVersion, e.p.Migrator().Set().Head())
	}
	want := tenantObjects(id, tn.Model)
	if got := objects(t, e); !sameSet(got, want) {
		t.Errorf("marked objects %v, want %v", got, want)
	}
	var conn interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	} = e.pool
	if tn.Model == tenant.ModelDatabase {
		conn = connectAs(t, e, tn.Database, id.RoleName())
		if queryBool(t, conn, `SELECT has_database_privilege('public', current_database(), 'CONNECT')`) {
			t.Errorf("PUBLIC may connect to %s", tn.Database)
		}
		if queryBool(t, conn, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'public')`) {
			t.Errorf("database %s still has a public schema", tn.Database)
		}
	}
	if !queryBool(t, conn, `SELECT has_table_privilege($1, $2 || '.items', 'SELECT, INSERT, UPDATE, DELETE')`, id.RoleName(), tn.Schema) {
		t.Errorf("role %s cannot use %s.items", id.RoleName(), tn.Schema)
	}
}

// TestResumeAfterIntent is F03 (SECURITY.md): the process died right after
// writing the intent; a retry finishes the tenant.
func TestResumeAfterIntent(t *testing.T) {
	t.Parallel()
	for _, m := range []tenant.Model{tenant.ModelSchema, tenant.ModelDatabase} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			e := setup(t, 0)
			tn := intent(t, e, "crashed", m)
			if got := objects(t, e); len(got) != 0 {
				t.Fatalf("objects before Resume: %v", got)
			}
			got, err := e.p.Resume(t.Context(), tn.ID)
			if err != nil {
				t.Fatalf("resume: %v", err)
			}
			if got.ID != tn.ID || got.State != tenant.StateActive {
				t.Errorf("Resume returned %+v, want the active tenant", got)
			}
			checkLive(t, e, tn.ID)
			// Again: a no-op on an active tenant.
			again, err := e.p.Resume(t.Context(), tn.ID)
			if err != nil || again.State != tenant.StateActive || again.Epoch != got.Epoch {
				t.Errorf("second Resume: %+v, %v; want the same active tenant", again, err)
			}
		})
	}
}

// TestCreateWithIDFinishesIntent: a retried Create (same Request.ID) finishes
// what the first attempt left in state provisioning.
func TestCreateWithIDFinishesIntent(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	tn := intent(t, e, "retry-me", tenant.ModelSchema)
	got, err := e.p.Create(t.Context(), Request{ID: tn.ID, Slug: "Retry-Me", Model: tenant.ModelSchema})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if got.ID != tn.ID || got.State != tenant.StateActive {
		t.Errorf("Create returned %+v, want %s active", got, tn.ID)
	}
	checkLive(t, e, tn.ID)
	// A retry with the same id but another model is refused.
	if _, err := e.p.Create(t.Context(), Request{ID: tn.ID, Slug: "retry-me", Model: tenant.ModelDatabase}); !errors.Is(err, tenant.ErrSlugTaken) {
		t.Errorf("Create with the same id and another model: %v, want ErrSlugTaken", err)
	}
}

// TestResumeHalfWay: the process died after creating some objects; Resume
// adopts them instead of failing with "already exists".
func TestResumeHalfWay(t *testing.T) {
	t.Parallel()
	for _, m := range []tenant.Model{tenant.ModelSchema, tenant.ModelDatabase} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			e := setup(t, 0)
			ctx := t.Context()
			tn := intent(t, e, "halfway", m)
			_, err := e.pool.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s NOLOGIN`, ident.Quote(tn.ID.RoleName())))
			must(t, err)
			if m == tenant.ModelDatabase {
				// Created, but neither locked down nor migrated.
				_, err = e.pool.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s OWNER landlord_owner TEMPLATE template0`, ident.Quote(tn.Database)))
				must(t, err)
				t.Cleanup(func() {
					// Should the test fail before Resume marks it.
					e.pool.Exec(context.Background(), fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, ident.Quote(tn.Database)))
				})
			}
			t.Cleanup(func() {
				e.pool.Exec(context.Background(), fmt.Sprintf(`DROP ROLE IF EXISTS %s`, ident.Quote(tn.ID.RoleName())))
			})
			if _, err := e.p.Resume(ctx, tn.ID); err != nil {
				t.Fatalf("resume: %v", err)
			}
			checkLive(t, e, tn.ID)
			if m == tenant.ModelDatabase {
				// The adopted role got its login and password.
				conn := connectAs(t, e, tn.Database, tn.ID.RoleName())
				must(t, conn.Ping(ctx))
			}
		})
	}
}

func TestResumeRefusesDeleting(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	tn := create(t, e, "going", tenant.ModelSchema)
	_, err := e.p.Directory().SetState(t.Context(), tn.ID, tenant.StateDeleting)
	must(t, err)
	_, err = e.p.Resume(t.Context(), tn.ID)
	var se *tenant.StateError
	if !errors.As(err, &se) || se.State != tenant.StateDeleting || !errors.Is(err, tenant.ErrNotReady) {
		t.Errorf("Resume of a deleting tenant: %v, want a StateError (deleting)", err)
	}
	if _, err := e.p.Resume(t.Context(), tenant.NewID()); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("Resume of an unknown id: %v, want ErrNotFound", err)
	}
}

// TestReconcileFinishes: Reconcile resumes interrupted provisioning and
// finishes interrupted deletion, in every model.
func TestReconcileFinishes(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	keep := create(t, e, "keeper", tenant.ModelSchema)
	var resumed, deleted []tenant.ID
	for _, m := range []tenant.Model{tenant.ModelSchema, tenant.ModelDatabase} {
		resumed = append(resumed, intent(t, e, "new-"+string(m), m).ID)
	}
	for _, m := range tenant.Models {
		tn := create(t, e, "old-"+string(m), m)
		// The process died after writing the delete intent.
		_, err := e.p.Directory().SetState(ctx, tn.ID, tenant.StateDeleting)
		must(t, err)
		deleted = append(deleted, tn.ID)
	}
	rowTenant := deleted[0]
	seedRows(t, e, rowTenant, 2)

	rep, err := e.p.Reconcile(ctx)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if len(rep.Failures) > 0 || len(rep.Skipped) > 0 || len(rep.Orphans) > 0 {
		t.Errorf("report %+v, want no failures, skips or orphans", rep)
	}
	if !sameIDs(rep.Resumed, resumed) || !sameIDs(rep.Deleted, deleted) {
		t.Errorf("resumed %v, deleted %v; want %v and %v", rep.Resumed, rep.Deleted, resumed, deleted)
	}
	for _, id := range deleted {
		if _, err := e.p.Directory().Get(ctx, id); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("deleted tenant %s: %v, want ErrNotFound", id, err)
		}
	}
	if p, i := countRows(t, e, rowTenant); p != 0 || i != 0 {
		t.Errorf("rows of the deleted row tenant: %d parents, %d items", p, i)
	}
	want := tenantObjects(keep.ID, tenant.ModelSchema)
	for _, id := range resumed {
		tn, err := e.p.Directory().Get(ctx, id)
		must(t, err)
		if tn.State != tenant.StateActive {
			t.Errorf("resumed tenant %s is %s", id, tn.State)
		}
		want = append(want, tenantObjects(id, tn.Model)...)
	}
	if got := objects(t, e); !sameSet(got, want) {
		t.Errorf("objects after reconcile: %v, want %v", got, want)
	}

	// Nothing left to do.
	rep, err = e.p.Reconcile(ctx)
	if err != nil || len(rep.Resumed)+len(rep.Deleted)+len(rep.Skipped)+len(rep.Orphans)+len(rep.Failures) != 0 {
		t.Errorf("second reconcile: %+v, %v; want an empty report", rep, err)
	}
}

// TestReconcileOrphans: objects marked by this installation whose directory
// row is gone are dropped; objects of another installation, or unmarked, are
// not.
func TestReconcileOrphans(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	keep := create(t, e, "keeper", tenant.ModelDatabase)
	lostS := create(t, e, "lost-schema", tenant.ModelSchema)
	lostD := create(t, e, "lost-database", tenant.ModelDatabase)
	// A session on the lost database must not stop its cleanup.
	open := connectAs(t, e, lostD.Database, lostD.ID.RoleName())
	must(t, open.Ping(ctx))
	_, err := e.pool.Exec(ctx, `DELETE FROM landlord.tenants WHERE id = ANY($1)`, []tenant.ID{lostS.ID, lostD.ID})
	must(t, err)

	// Look-alikes: the marker of another installation, and no marker.
	foreign, unmarked := tenant.NewID(), tenant.NewID()
	otherInstallation := tenant.NewID()
	foreignMark := "landlord tenant " + foreign.String() + " installation " + otherInstallation.String()
	var stmts []string
	for _, id := range []tenant.ID{foreign, unmarked} {
		stmts = append(stmts,
			fmt.Sprintf(`CREATE ROLE %s NOLOGIN`, ident.Quote(id.RoleName())),
			fmt.Sprintf(`CREATE SCHEMA %s`, ident.Quote(id.SchemaName())),
			fmt.Sprintf(`CREATE DATABASE %s TEMPLATE template0`, ident.Quote(id.DatabaseName())))
	}
	stmts = append(stmts,
		fmt.Sprintf(`COMMENT ON ROLE %s IS %s`, ident.Quote(foreign.RoleName()), ident.Literal(foreignMark)),
		fmt.Sprintf(`COMMENT ON SCHEMA %s IS %s`, ident.Quote(foreign.SchemaName()), ident.Literal(foreignMark)),
		fmt.Sprintf(`COMMENT ON DATABASE %s IS %s`, ident.Quote(foreign.DatabaseName()), ident.Literal(foreignMark)))
	t.Cleanup(func() {
		for _, id := range []tenant.ID{foreign, unmarked} {
			e.pool.Exec(context.Background(), fmt.Sprintf(`DROP DATABASE IF EXISTS %s`, ident.Quote(id.DatabaseName())))
			e.pool.Exec(context.Background(), fmt.Sprintf(`DROP ROLE IF EXISTS %s`, ident.Quote(id.RoleName())))
		}
	})
	for _, s := range stmts {
		_, err := e.pool.Exec(ctx, s)
		must(t, err)
	}

	rep, err := e.p.Reconcile(ctx)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if len(rep.Failures) > 0 {
		t.Errorf("failures: %v", rep.Failures)
	}
	want := []string{
		"database " + lostD.Database, "role " + lostD.ID.RoleName(),
		"role " + lostS.ID.RoleName(), "schema " + lostS.Schema,
	}
	if !sameSet(rep.Orphans, want) {
		t.Errorf("orphans %v, want %v", rep.Orphans, want)
	}
	if databaseExists(t, e, lostD.Database) || roleExists(t, e, lostD.ID.RoleName()) ||
		schemaExists(t, e, lostS.Schema) || roleExists(t, e, lostS.ID.RoleName()) {
		t.Errorf("orphans still exist after reconcile")
	}
	for _, id := range []tenant.ID{foreign, unmarked} {
		if !databaseExists(t, e, id.DatabaseName()) || !roleExists(t, e, id.RoleName()) || !schemaExists(t, e, id.SchemaName()) {
			t.Errorf("reconcile dropped objects of %s, which this installation did not mark", id)
		}
	}
	if got, want := objects(t, e), tenantObjects(keep.ID, tenant.ModelDatabase); !sameSet(got, want) {
		t.Errorf("objects after reconcile: %v, want the live tenant's only: %v", got, want)
	}
	checkLive(t, e, keep.ID)
}

// TestReconcileSkipsLocked: Reconcile does not wait for, nor touch, a tenant
// another session is working on.
func TestReconcileSkipsLocked(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	busy := intent(t, e, "busy", tenant.ModelSchema)
	k1, k2 := lockKeys(busy.ID)
	holder := connectAs(t, e, e.db.Name, "")
	_, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, k1, k2)
	must(t, err)

	rep, err := e.p.Reconcile(ctx)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if !slices.Equal(rep.Skipped, []tenant.ID{busy.ID}) || len(rep.Resumed) != 0 || len(rep.Failures) != 0 {
		t.Errorf("report %+v, want only %s skipped", rep, busy.ID)
	}
	if tn, err := e.p.Directory().Get(ctx, busy.ID); err != nil || tn.State != tenant.StateProvisioning {
		t.Errorf("busy tenant after reconcile: %+v, %v; want it untouched", tn, err)
	}
	if got := objects(t, e); len(got) != 0 {
		t.Errorf("reconcile created %v for a locked tenant", got)
	}

	_, err = holder.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, k1, k2)
	must(t, err)
	rep, err = e.p.Reconcile(ctx)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if !slices.Equal(rep.Resumed, []tenant.ID{busy.ID}) || len(rep.Skipped) != 0 {
		t.Errorf("report %+v, want %s resumed", rep, busy.ID)
	}
	checkLive(t, e, busy.ID)
}

func sameIDs(a, b []tenant.ID) bool {
	as, bs := make([]string, len(a)), make([]string, len(b))
	for i, id := range a {
		as[i] = id.String()
	}
	for i, id := range b {
		bs[i] = id.String()
	}
	return sameSet(as, bs)
}
