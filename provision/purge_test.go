package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
	"github.com/landlordhq/landlord/tenantjob"
)

// withFault returns ctx carrying a purge fault that stops the purge after
// step n, as a crash there would.
func withFault(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, purgeFaultKey{}, func(step int, name string) error {
		if step == n {
			return fmt.Errorf("crash after step %d (%s)", step, name)
		}
		return nil
	})
}

// purgeSteps is the number of steps of a purge (purgeTenant).
const purgeSteps = 6

// appTable is a table of the application's own beside Landlord's, with a
// tenant_id column and no row-level security, owned by the administrator:
// a purge must empty it of the tenant too.
const appTable = `CREATE SCHEMA IF NOT EXISTS app;
	CREATE TABLE IF NOT EXISTS app.notes (tenant_id uuid NOT NULL, note text NOT NULL)`

// plantUsual gives tenant tn what a tenant leaves behind it outside its own
// objects: rows in the application's table, a River job, call
// statistics, a publication named after it, and rows in the shared tables
// (a row tenant's data).
func plantUsual(t *testing.T, e *env, tn tenant.Tenant) {
	t.Helper()
	ctx := t.Context()
	_, err := e.pool.Exec(ctx, appTable)
	must(t, err)
	_, err = e.pool.Exec(ctx, `INSERT INTO app.notes VALUES ($1, 'hello')`, tn.ID)
	must(t, err)
	must(t, tenantjob.Migrate(ctx, e.pool))
	_, err = e.pool.Exec(ctx, `INSERT INTO river.river_job (args, kind, max_attempts, metadata, priority, queue, state, scheduled_at)
		VALUES ('{}', 'purge_test', 1, jsonb_build_object($1::text, $2::text), 1, 'default', 'available', now())`,
		tenantjob.MetadataTenant, tn.ID.String())
	must(t, err)
	_, err = e.pool.Exec(ctx, `INSERT INTO landlord.tenant_stats (window_end, process, tenant_id, window_ms, calls, errors, total_us, wait_us, buckets)
		VALUES (now(), 'purge-test', $1, 1000, 1, 0, 10, 0, '{1}')`, tn.ID)
	must(t, err)
	_, err = e.pool.Exec(ctx, "CREATE PUBLICATION "+ident.Quote("move_"+tn.ID.Hex()))
	must(t, err)
	if tn.Model == tenant.ModelRow {
		seedRows(t, e, tn.ID, 2)
	}
}

// leftovers lists the checks of rep that found something or could not
// run, for messages.
func leftovers(rep PurgeReport) []string {
	var out []string
	for _, c := range rep.Checks {
		if c.Leftover() || c.Err != "" {
			out = append(out, fmt.Sprintf("%s %s on %s/%s: found %d (%s) %s", c.What, c.Object, c.Server, c.Database, c.Found, c.Detail, c.Err))
		}
	}
	return out
}

// verifyClean runs the verifier on id and fails the test unless it finds
// nothing left; it also checks that it looked at what it should have.
func verifyClean(t *testing.T, e *env, id tenant.ID) PurgeReport {
	t.Helper()
	rep, err := e.p.VerifyPurge(t.Context(), id)
	if err != nil {
		t.Fatalf("verify purge of %s: %v", id, err)
	}
	if !rep.Clean() {
		t.Errorf("verify purge of %s: not clean: %v", id, leftovers(rep))
	}
	for _, what := range []string{"database", "role", "schema", "replication slots", "publications", "rows", "River jobs", "directory", "kept"} {
		if !slices.ContainsFunc(rep.Checks, func(c PurgeCheck) bool { return c.What == what }) {
			t.Errorf("verify purge of %s: no %q check in %d checks", id, what, len(rep.Checks))
		}
	}
	return rep
}

// TestPurgeVerifierFindsNothing: deleting a tenant of each model (no grace)
// removes everything it had, its own objects and what it left elsewhere,
// and the verifier finds nothing of it; a tenant beside it keeps all of its
// own.
func TestPurgeVerifierFindsNothing(t *testing.T) {
	t.Parallel()
	for _, m := range tenant.Models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			e := setup(t, 0)
			ctx := t.Context()
			tn := create(t, e, "doomed", m)
			keep := create(t, e, "keeper", tenant.ModelRow)
			plantUsual(t, e, tn)
			plantUsual(t, e, keep)
			must(t, e.p.Delete(ctx, tn.ID))

			rep := verifyClean(t, e, tn.ID)
			rec, err := e.p.Directory().GetPurge(ctx, tn.ID)
			must(t, err)
			if rec.State != directory.PurgePurged || rec.PurgedAt.IsZero() || rec.Slug != "doomed" || rec.Model != m {
				t.Errorf("purge record %+v, want purged, with the tenant's slug and model", rec)
			}
			if rec.VerifiedAt.IsZero() || !rec.Clean || len(rec.Verification) == 0 {
				t.Errorf("purge record after the verifier: verified %v, clean %v, %d bytes of report; want the verifier's answer", rec.VerifiedAt, rec.Clean, len(rec.Verification))
			}
			// The ledger is kept, and says so.
			kept := slices.IndexFunc(rep.Checks, func(c PurgeCheck) bool { return c.Kept && strings.HasSuffix(c.Object, "provisioning_ledger") })
			if kept < 0 || rep.Checks[kept].Found == 0 {
				t.Errorf("the verifier does not report the ledger kept: %+v", rep.Checks)
			}
			// The keeper keeps its rows, job, statistics and publication.
			var notes, jobs, stats, pubs int
			must(t, e.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM app.notes WHERE tenant_id = $1),
				(SELECT count(*) FROM river.river_job WHERE metadata ->> 'landlord_tenant' = $1::text),
				(SELECT count(*) FROM landlord.tenant_stats WHERE tenant_id = $1),
				(SELECT count(*) FROM pg_publication WHERE pubname = 'move_' || $2)`, keep.ID, keep.ID.Hex()).Scan(&notes, &jobs, &stats, &pubs))
			if notes != 1 || jobs != 1 || stats != 1 || pubs != 1 {
				t.Errorf("the keeper lost some of its own: %d notes, %d jobs, %d stats rows, %d publications; want 1 each", notes, jobs, stats, pubs)
			}
			if p, i := countRows(t, e, keep.ID); p != 2 || i != 3 {
				t.Errorf("the keeper has %d parents and %d items, want 2 and 3", p, i)
			}
			// The verifier of a tenant that is there finds it: it can fail.
			rep, err = e.p.VerifyPurge(ctx, keep.ID)
			must(t, err)
			if rep.Clean() {
				t.Errorf("the verifier finds nothing of a live tenant")
			}
		})
	}
}

// TestPurgeCrashAtEveryStep (SECURITY.md, F09): a purge stopped after any
// of its steps, begun by Purge with now during the grace period, is
// finished by running Purge again or by Reconcile (which otherwise leaves a
// tenant in its grace period alone), and the verifier then finds nothing.
func TestPurgeCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	for _, m := range tenant.Models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			e := setup(t, 0)
			ctx := t.Context()
			for n := range purgeSteps {
				tn := create(t, e, fmt.Sprintf("crash-%d", n), m)
				plantUsual(t, e, tn)
				must(t, e.p.DeleteAfter(ctx, tn.ID, time.Hour))
				_, err := e.p.Purge(withFault(ctx, n), tn.ID, true)
				if err == nil || !strings.Contains(err.Error(), "crash after step") {
					t.Fatalf("step %d: purge with a crash: %v", n, err)
				}
				if n%2 == 0 {
					rep, err := e.p.Reconcile(ctx)
					must(t, err)
					if len(rep.Failures) > 0 {
						t.Errorf("step %d: reconcile: %v", n, rep.Failures)
					}
					if _, err := e.p.Directory().Get(ctx, tn.ID); !errors.Is(err, tenant.ErrNotFound) {
						t.Errorf("step %d: after reconcile the tenant is still in the directory: %v", n, err)
					}
				} else {
					rep, err := e.p.Purge(ctx, tn.ID, false)
					if err != nil {
						t.Errorf("step %d: purge again: %v (%v)", n, err, leftovers(rep))
					}
				}
				verifyClean(t, e, tn.ID)
			}
		})
	}
}

// TestPurgeGrace: with a grace period, Delete only marks the tenant (its
// objects stay, routers refuse it); nothing purges it early but Purge with
// now; Restore gives back the state it had; once the grace period is over
// PurgeDue purges it.
func TestPurgeGrace(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	tn := create(t, e, "graceful", tenant.ModelSchema)
	_, err := e.p.Directory().SetState(ctx, tn.ID, tenant.StateReadOnly)
	must(t, err)
	must(t, e.p.DeleteAfter(ctx, tn.ID, time.Hour))

	got, err := e.p.Directory().Get(ctx, tn.ID)
	must(t, err)
	if got.State != tenant.StateDeleting || !schemaExists(t, e, tn.Schema) {
		t.Fatalf("after a delete with a grace period: state %s, schema there %v; want deleting, there", got.State, schemaExists(t, e, tn.Schema))
	}
	if _, err := e.p.Purge(ctx, tn.ID, false); !errors.Is(err, ErrPurgeNotDue) {
		t.Errorf("purge in the grace period: %v, want ErrPurgeNotDue", err)
	}
	rep, err := e.p.Reconcile(ctx)
	must(t, err)
	res, err := e.p.PurgeDue(ctx, nil)
	must(t, err)
	if len(rep.Deleted)+len(rep.Failures) != 0 || len(res) != 0 || !schemaExists(t, e, tn.Schema) {
		t.Errorf("in the grace period reconcile deleted %v (failures %v), PurgeDue did %v; want nothing", rep.Deleted, rep.Failures, res)
	}
	// Deleting again never postpones the purge.
	must(t, e.p.DeleteAfter(ctx, tn.ID, 2*time.Hour))
	rec, err := e.p.Directory().GetPurge(ctx, tn.ID)
	must(t, err)
	if rec.State != directory.PurgeScheduled || rec.Due || !rec.PurgeAfter.Equal(rec.DeletedAt.Add(time.Hour)) {
		t.Errorf("record after a second delete: %+v, want scheduled an hour after the first", rec)
	}

	back, err := e.p.Restore(ctx, tn.ID)
	must(t, err)
	if back.State != tenant.StateReadOnly {
		t.Errorf("restored to %s, want read_only, the state before the delete", back.State)
	}
	if _, err := e.p.Directory().GetPurge(ctx, tn.ID); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("purge record after restore: %v, want none", err)
	}
	if _, err := e.p.Restore(ctx, tn.ID); !errors.Is(err, ErrNotDeleted) {
		t.Errorf("restore of a tenant that is not deleted: %v, want ErrNotDeleted", err)
	}

	// Deleted again; the grace period ends (the clock is the database's).
	must(t, e.p.DeleteAfter(ctx, tn.ID, time.Hour))
	_, err = e.pool.Exec(ctx, `UPDATE landlord.purges SET purge_after = now() - interval '1 second' WHERE tenant_id = $1`, tn.ID)
	must(t, err)
	var calls []int
	res, err = e.p.PurgeDue(ctx, func(done, total int) { calls = append(calls, done, total) })
	must(t, err)
	if len(res) != 1 || res[0].Tenant != tn.ID || res[0].Err != nil || !res[0].Report.Clean() {
		t.Fatalf("PurgeDue: %+v, want the one tenant purged and verified", res)
	}
	if !slices.Equal(calls, []int{1, 1}) {
		t.Errorf("progress calls %v, want [1 1]", calls)
	}
	verifyClean(t, e, tn.ID)
}

// TestRestoreAfterPurgeBegan: a tenant whose purge has begun cannot be
// restored: part of it may be gone.
func TestRestoreAfterPurgeBegan(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	tn := create(t, e, "halfway", tenant.ModelDatabase)
	must(t, e.p.DeleteAfter(ctx, tn.ID, time.Hour))
	if _, err := e.p.Purge(withFault(ctx, 1), tn.ID, true); err == nil {
		t.Fatal("purge with a crash succeeded")
	}
	if _, err := e.p.Restore(ctx, tn.ID); !errors.Is(err, ErrPurgeStarted) {
		t.Errorf("restore after the purge began: %v, want ErrPurgeStarted", err)
	}
	got, err := e.p.Directory().Get(ctx, tn.ID)
	must(t, err)
	if got.State != tenant.StateDeleting {
		t.Errorf("state after a refused restore: %s, want deleting", got.State)
	}
}

// TestPurgeBadInput: purging what may not be purged changes nothing.
func TestPurgeBadInput(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	tn := create(t, e, "alive", tenant.ModelSchema)
	before := takeSnapshot(t, e)
	if _, err := e.p.Purge(ctx, tn.ID, false); !errors.Is(err, ErrNotDeleted) {
		t.Errorf("purge of an active tenant without now: %v, want ErrNotDeleted", err)
	}
	if _, err := e.p.Purge(ctx, tenant.NewID(), true); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("purge of an unknown id: %v, want ErrNotFound", err)
	}
	if _, err := e.p.Restore(ctx, tenant.NewID()); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("restore of an unknown id: %v, want ErrNotFound", err)
	}
	if _, err := e.p.VerifyPurge(ctx, tenant.ID{}); !errors.Is(err, tenant.ErrBadID) {
		t.Errorf("verify of the zero id: %v, want ErrBadID", err)
	}
	if after := takeSnapshot(t, e); after != before {
		t.Errorf("refused requests changed the installation: %v, was %v", after, before)
	}
	got, err := e.p.Directory().Get(ctx, tn.ID)
	must(t, err)
	if got.State != tenant.StateActive {
		t.Errorf("state after refused requests: %s", got.State)
	}
}

// TestVerifyPurgeFindsLeftovers: everything the verifier looks for, planted
// after a purge, is found, each by its own check; purging again removes
// what a purge can, and the verifier then finds nothing.
func TestVerifyPurgeFindsLeftovers(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	tn := create(t, e, "haunted", tenant.ModelDatabase)
	must(t, e.p.PrepareTemplates(ctx))
	must(t, e.p.Delete(ctx, tn.ID))
	verifyClean(t, e, tn.ID)

	// Leftovers, planted by the installation's administrator, and by the
	// server's where only it may (the template database, a slot).
	super, err := pgx.Connect(ctx, e.db.AdminURL)
	must(t, err)
	defer super.Close(context.Background())
	hex := tn.ID.Hex()
	plantUsual(t, e, tn)
	seedRows(t, e, tn.ID, 1)
	for _, sql := range []string{
		"CREATE SCHEMA " + ident.Quote(tn.ID.SchemaName()),
		"CREATE ROLE " + ident.Quote(tn.ID.RoleName()),
		"CREATE DATABASE " + ident.Quote(tn.ID.DatabaseName()),
	} {
		_, err := e.pool.Exec(ctx, sql)
		must(t, err)
	}
	_, err = e.pool.Exec(ctx, `INSERT INTO landlord.global_copies (server_id, database_name, data_version) VALUES ('main', $1, 'x')`, tn.ID.DatabaseName())
	must(t, err)
	tpl := e.p.TemplateDatabase()
	_, err = super.Exec(ctx, "ALTER DATABASE "+ident.Quote(tpl)+" ALLOW_CONNECTIONS true")
	must(t, err)
	cfg := super.Config().Copy()
	cfg.Database = tpl
	tc, err := pgx.ConnectConfig(ctx, cfg)
	must(t, err)
	_, err = tc.Exec(ctx, "CREATE SCHEMA "+ident.Quote(tn.ID.SchemaName())+" AUTHORIZATION landlord_owner")
	must(t, err)
	tc.Close(ctx)
	_, err = super.Exec(ctx, "ALTER DATABASE "+ident.Quote(tpl)+" ALLOW_CONNECTIONS false")
	must(t, err)
	slot := "slot_" + hex
	_, slotErr := super.Exec(ctx, `SELECT pg_create_physical_replication_slot($1)`, slot)
	if slotErr != nil {
		t.Logf("no replication slot planted: %v", slotErr)
	}
	t.Cleanup(func() {
		_, _ = super.Exec(context.Background(), `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
	})

	rep, err := e.p.VerifyPurge(ctx, tn.ID)
	must(t, err)
	if rep.Clean() {
		t.Fatal("the verifier finds nothing of the planted leftovers")
	}
	found := func(what, where, object string) {
		t.Helper()
		if !slices.ContainsFunc(rep.Checks, func(c PurgeCheck) bool {
			return c.What == what && c.Database == where && strings.Contains(c.Object+" "+c.Detail, object) && c.Leftover()
		}) {
			t.Errorf("the verifier does not find %s %s in %q: %v", what, object, where, leftovers(rep))
		}
	}
	db := e.db.Name
	found("rows", db, "app.notes")
	found("rows", db, "shared.items")
	found("River jobs", db, "river.river_job")
	found("schema", db, tn.ID.SchemaName())
	found("schema", tpl, tn.ID.SchemaName())
	found("role", "", tn.ID.RoleName())
	found("database", "", tn.ID.DatabaseName())
	found("publications", db, "move_"+hex)
	found("directory", db, "landlord.global_copies")
	found("rows", db, "landlord.tenant_stats")
	if slotErr == nil {
		found("replication slots", "", slot)
		// The test's administrator may not drop slots; a purge's
		// would need REPLICATION. Leave it out of the second purge.
		_, err := super.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot)
		must(t, err)
	}

	// Purging again removes them, the template's schema included.
	rep, err = e.p.Purge(ctx, tn.ID, true)
	if err != nil {
		t.Fatalf("purge again: %v", err)
	}
	if !rep.Clean() {
		t.Errorf("after purging again: %v", leftovers(rep))
	}
	verifyClean(t, e, tn.ID)
}

// TestPurgeConstantsMatchTenantJob: the purge finds River jobs where
// tenantjob puts them.
func TestPurgeConstantsMatchTenantJob(t *testing.T) {
	t.Parallel()
	if riverJobTable != tenantjob.Schema+".river_job" || riverTenantKeyArg != tenantjob.MetadataTenant {
		t.Errorf("purge looks for jobs in %s by %q; tenantjob keeps them in schema %s by %q",
			riverJobTable, riverTenantKeyArg, tenantjob.Schema, tenantjob.MetadataTenant)
	}
}

// TestPurgeKeep: a table the application keeps (Config.PurgeKeep) keeps
// the purged tenant's rows, and the verifier lists it as kept, with its
// count and reason, and is clean; a table named badly, or a shared table,
// is refused.
func TestPurgeKeep(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	p, err := New(ctx, e.pool, testMigrations(), Config{PurgeKeep: map[string]string{"app.notes": "the support desk's notes"}})
	must(t, err)
	tn := create(t, e, "noted", tenant.ModelSchema)
	_, err = e.pool.Exec(ctx, appTable)
	must(t, err)
	_, err = e.pool.Exec(ctx, `INSERT INTO app.notes VALUES ($1, 'kept'), ($1, 'kept too')`, tn.ID)
	must(t, err)
	must(t, p.Delete(ctx, tn.ID))
	rep, err := p.VerifyPurge(ctx, tn.ID)
	must(t, err)
	if !rep.Clean() {
		t.Errorf("not clean: %v", leftovers(rep))
	}
	i := slices.IndexFunc(rep.Checks, func(c PurgeCheck) bool { return c.Kept && c.Object == "app.notes" })
	if i < 0 || rep.Checks[i].Found != 2 || rep.Checks[i].Detail != "the support desk's notes" {
		t.Errorf("app.notes is not reported kept with its 2 rows: %+v", rep.Checks)
	}
	var n int
	must(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM app.notes WHERE tenant_id = $1`, tn.ID).Scan(&n))
	if n != 2 {
		t.Errorf("%d of the 2 kept rows are left", n)
	}
	for _, keep := range []map[string]string{{"notes": "why"}, {"app.notes": " "}, {SharedSchema + ".items": "why"}} {
		if _, err := New(ctx, e.pool, testMigrations(), Config{PurgeKeep: keep}); err == nil {
			t.Errorf("PurgeKeep %v accepted", keep)
		}
	}
}
