package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/fleet"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// fleetOf creates a row, two schema and one database tenants at version 1.
func fleetOf(t *testing.T, e *env) (row, s1, s2, d1 tenant.Tenant) {
	t.Helper()
	return e.create(t, "row-one", tenant.ModelRow), e.create(t, "schema-one", tenant.ModelSchema),
		e.create(t, "schema-two", tenant.ModelSchema), e.create(t, "db-one", tenant.ModelDatabase)
}

// templateKeys returns the keys of the provisioning templates that exist:
// provisioning builds them on first need.
func (e *env) templateKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	if e.count(t, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, provision.TemplateSchema) == 1 {
		keys = append(keys, "main/"+e.db.Name+"/"+provision.TemplateSchema)
	}
	if e.count(t, `SELECT count(*) FROM pg_database WHERE datname = $1`, e.prov.TemplateDatabase()) == 1 {
		keys = append(keys, "main/"+e.prov.TemplateDatabase()+"/"+provision.TemplateSchema)
	}
	return keys
}

// templateLedger reads the template database's ledger through the
// provisioner, which keeps the database closed to connections otherwise.
func (e *env) templateLedger(t *testing.T, prov *provision.Provisioner) []int {
	t.Helper()
	var vs []int
	err := prov.WithTemplateDatabase(t.Context(), func(ctx context.Context, conn *pgx.Conn) error {
		rows, _ := conn.Query(ctx, `SELECT version FROM landlord.target_migrations WHERE target = $1 ORDER BY version`, provision.TemplateSchema)
		var err error
		vs, err = pgx.CollectRows(rows, pgx.RowTo[int])
		return err
	})
	if err != nil {
		t.Fatalf("read the template database's ledger: %v", err)
	}
	return vs
}

func TestUpMigratesEveryTarget(t *testing.T) {
	t.Parallel()
	e := setup(t)
	row, s1, s2, d1 := fleetOf(t, e)
	if err := e.prov.PrepareTemplates(t.Context()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	var started fleet.Run
	f := e.fleet(t, files(5), fleet.Config{
		OnRun: func(r fleet.Run) { started = r },
		OnTarget: func(r fleet.TargetResult) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, r.Key)
		},
	})
	rep, err := f.Up(t.Context())
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	tplSchemaKey := "main/" + e.db.Name + "/" + provision.TemplateSchema
	tplDBKey := "main/" + e.prov.TemplateDatabase() + "/" + provision.TemplateSchema
	wantOrder := []string{e.key(d1), e.key(s1), e.key(s2), e.sharedKey(), tplSchemaKey, tplDBKey}
	var order []string
	for _, r := range rep.Targets {
		order = append(order, r.Key)
		if r.Status != fleet.StateDone || r.From != 1 || r.To != 5 || !slices.Equal(r.Applied, []int{2, 3, 4, 5}) {
			t.Errorf("%s: %+v, want done 1→5 applying 2-5", r.Key, r)
		}
	}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("run order %v, want %v", order, wantOrder)
	}
	if started.ID != rep.Run.ID || started.Targets != 6 {
		t.Errorf("OnRun got %+v, want run %d with 6 targets", started, rep.Run.ID)
	}
	if len(seen) != 6 {
		t.Errorf("OnTarget called for %v, want each of the 6 targets", seen)
	}
	if rep.Run.Status != fleet.RunDone || rep.Run.Done != 6 || rep.Run.Failed != 0 {
		t.Errorf("run %+v, want done with 6 done", rep.Run)
	}
	ps := append(e.places([]tenant.Tenant{s1, s2, d1}), place{"schema template", e.db.Name, provision.TemplateSchema})
	for name, v := range e.checkConsistent(t, ps, steps) {
		if v != 5 {
			t.Errorf("%s at version %d, want 5", name, v)
		}
	}
	prov5, err := provision.New(t.Context(), e.pool, load(t, files(5)), provision.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.templateLedger(t, prov5); !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
		t.Errorf("template database ledger %v, want 1-5", got)
	}
	for _, tn := range []tenant.Tenant{row, s1, s2, d1} {
		if v := e.schemaVersion(t, tn); v != 5 {
			t.Errorf("directory: %s at schema_version %d, want 5", tn.Slug, v)
		}
	}
	// Grants follow the target: the tenant's own role, the app role on
	// shared tables, nobody on templates.
	for _, c := range []struct {
		db, schema, role string
		want             bool
	}{
		{e.db.Name, s1.Schema, s1.ID.RoleName(), true},
		{e.db.Name, s1.Schema, s2.ID.RoleName(), false},
		{e.db.Name, provision.SharedSchema, "landlord_app", true},
		{d1.Database, d1.Schema, d1.ID.RoleName(), true},
		{e.db.Name, provision.TemplateSchema, "landlord_app", false},
	} {
		var ok bool
		conn := e.connect(t, c.db)
		if err := conn.QueryRow(t.Context(), `SELECT has_table_privilege($1, format('%I.returns', $2::text), 'SELECT')`, c.role, c.schema).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if ok != c.want {
			t.Errorf("%s may read %s.returns: %t, want %t", c.role, c.schema, ok, c.want)
		}
	}

	st, err := f.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Summary != (fleet.Summary{Targets: 6, AtHead: 6}) || len(st.Behind()) != 0 {
		t.Errorf("status summary %+v, behind %v", st.Summary, st.Behind())
	}
	if st.LastRun == nil || st.LastRun.ID != rep.Run.ID || st.LastRun.Status != fleet.RunDone || st.LastRun.Done != 6 {
		t.Errorf("status last run %+v, want run %d done", st.LastRun, rep.Run.ID)
	}
	for _, ts := range st.Targets {
		if ts.Last == nil || ts.Last.Status != fleet.StateDone || ts.Last.Version != 5 || ts.Last.Attempts != 1 {
			t.Errorf("status of %s: last %+v", ts.Key, ts.Last)
		}
	}

	// Nothing pending: a second Up records nothing and touches nothing.
	runs := e.count(t, `SELECT count(*) FROM landlord.migration_runs`)
	rep, err = f.Up(t.Context())
	if err != nil || rep.Run.ID != 0 || rep.AtHead != 6 || len(rep.Targets) != 0 {
		t.Fatalf("second Up: %+v, %v; want nothing to do", rep, err)
	}
	if n := e.count(t, `SELECT count(*) FROM landlord.migration_runs`); n != runs {
		t.Errorf("a no-op Up recorded a run: %d runs, was %d", n, runs)
	}
}

// TestBadDataFailsAlone: a tenant whose rows violate a new constraint fails
// alone, the error shows in the status, and after the data is fixed a rerun
// migrates that tenant and touches no other.
func TestBadDataFailsAlone(t *testing.T) {
	t.Parallel()
	for _, model := range []tenant.Model{tenant.ModelSchema, tenant.ModelDatabase} {
		t.Run(string(model), func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			_, s1, s2, d1 := fleetOf(t, e)
			bad := e.create(t, "bad-"+string(model), model)
			e.insertItem(t, s1, 1, 5)
			e.insertItem(t, bad, 1, -3)
			set := filesOf(steps[0], checkStep)
			f := e.fleet(t, set, fleet.Config{ContinueOnError: true})
			rep, err := f.Up(t.Context())
			if !errors.Is(err, fleet.ErrTargetsFailed) {
				t.Fatalf("Up: %v, want ErrTargetsFailed", err)
			}
			failed := rep.Failed()
			if len(failed) != 1 || failed[0].Tenant != bad.ID || !strings.Contains(failed[0].Error, "items_qty_nonneg") || failed[0].To != 1 {
				t.Fatalf("failed targets %+v, want only %s at version 1 with the constraint named", failed, bad.Slug)
			}
			if rep.Run.Done != len(rep.Targets)-1 || rep.Run.Failed != 1 || rep.Run.Status != fleet.RunFailed {
				t.Errorf("run %+v, want all but one done and 1 failed", rep.Run)
			}
			st, err := f.Status(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if st.Summary.Failed != 1 || st.Summary.Behind != 1 || st.Summary.AtHead != st.Summary.Targets-1 {
				t.Errorf("status summary %+v", st.Summary)
			}
			behind := st.Behind()
			if len(behind) != 1 || behind[0].Tenant != bad.ID || behind[0].Last == nil ||
				!strings.Contains(behind[0].Last.Error, "items_qty_nonneg") || !slices.Equal(behind[0].Pending, []int{2}) {
				t.Fatalf("behind %+v, want %s with its error and version 2 pending", behind, bad.Slug)
			}
			if v := e.schemaVersion(t, bad); v != 1 {
				t.Errorf("directory: failed tenant at %d, want 1", v)
			}

			before := e.records(t)
			applied := e.count(t, `SELECT count(*) FROM landlord.target_migrations WHERE applied_at > now() - interval '1 hour'`)
			e.fixItems(t, bad)
			rep, err = f.Up(t.Context())
			if err != nil {
				t.Fatalf("rerun: %v", err)
			}
			if len(rep.Targets) != 1 || rep.Targets[0].Tenant != bad.ID || !slices.Equal(rep.Targets[0].Applied, []int{2}) || rep.Targets[0].Attempts != 2 {
				t.Fatalf("rerun touched %+v, want only %s applying 2 on its second attempt", rep.Targets, bad.Slug)
			}
			after := e.records(t)
			for key, rec := range before {
				if key == e.key(bad) {
					continue
				}
				if after[key] != rec {
					t.Errorf("rerun changed the record of %s: %+v → %+v", key, rec, after[key])
				}
			}
			if got := after[e.key(bad)]; got.status != "done" || got.version != 2 || got.run != rep.Run.ID || got.err != "" {
				t.Errorf("record of the fixed tenant: %+v", got)
			}
			if n := e.count(t, `SELECT count(*) FROM landlord.target_migrations WHERE applied_at > now() - interval '1 hour'`); n != applied+boolInt(model == tenant.ModelSchema) {
				t.Errorf("control database ledger grew from %d to %d rows", applied, n)
			}
			for _, tn := range []tenant.Tenant{s1, s2, d1, bad} {
				if v := e.schemaVersion(t, tn); v != 2 {
					t.Errorf("directory: %s at %d, want 2", tn.Slug, v)
				}
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestStopOnFirstError: by default no target starts after one failed; a
// rerun after the fix finishes all of them.
func TestStopOnFirstError(t *testing.T) {
	t.Parallel()
	e := setup(t)
	bad := e.create(t, "aaa-bad", tenant.ModelSchema) // first in run order
	var others []tenant.Tenant
	for i := range 4 {
		others = append(others, e.create(t, fmt.Sprintf("shop-%d", i), tenant.ModelSchema))
	}
	e.insertItem(t, bad, 1, -1)
	f := e.fleet(t, filesOf(steps[0], checkStep), fleet.Config{Parallel: 1})
	rep, err := f.Up(t.Context())
	if !errors.Is(err, fleet.ErrTargetsFailed) {
		t.Fatalf("Up: %v, want ErrTargetsFailed", err)
	}
	states := map[fleet.State]int{}
	for _, r := range rep.Targets {
		states[r.Status]++
	}
	if states[fleet.StateFailed] != 1 || states[fleet.StatePending] != len(rep.Targets)-1 || rep.Targets[0].Tenant != bad.ID {
		t.Fatalf("states %v (first %s), want the bad tenant failed and all others pending", states, rep.Targets[0].Slug)
	}
	for _, tn := range others {
		if got := e.ledger(t, e.db.Name, tn.Schema); !slices.Equal(got, []int{1}) {
			t.Errorf("%s migrated after the first failure: ledger %v", tn.Slug, got)
		}
	}
	e.fixItems(t, bad)
	n := len(rep.Targets)
	rep, err = f.Up(t.Context())
	if err != nil || rep.Run.Done != n {
		t.Fatalf("rerun: %+v, %v; want all %d done", rep.Run, err, n)
	}
}

func TestCanary(t *testing.T) {
	t.Parallel()
	e := setup(t)
	good := e.create(t, "aaa-good", tenant.ModelSchema)
	bad := e.create(t, "aab-bad", tenant.ModelSchema)
	rest := []tenant.Tenant{e.create(t, "shop-one", tenant.ModelSchema), e.create(t, "shop-two", tenant.ModelDatabase)}
	e.insertItem(t, bad, 1, -1)
	f := e.fleet(t, filesOf(steps[0], checkStep), fleet.Config{Canary: 2, ContinueOnError: true})
	rep, err := f.Up(t.Context())
	if !errors.Is(err, fleet.ErrCanaryFailed) {
		t.Fatalf("Up: %v, want ErrCanaryFailed", err)
	}
	for _, r := range rep.Targets {
		want := fleet.StatePending
		switch r.Tenant {
		case good.ID:
			want = fleet.StateDone
		case bad.ID:
			want = fleet.StateFailed
		}
		if r.Status != want || r.Canary != (r.Tenant == good.ID || r.Tenant == bad.ID) {
			t.Errorf("%s: %s canary=%t, want %s", r.Key, r.Status, r.Canary, want)
		}
	}
	for _, tn := range rest {
		d, s := e.where(tn)
		if got := e.ledger(t, d, s); !slices.Equal(got, []int{1}) {
			t.Errorf("%s migrated after the canary failed: %v", tn.Slug, got)
		}
	}
	if got := e.ledger(t, e.db.Name, provision.SharedSchema); !slices.Equal(got, []int{1}) {
		t.Errorf("shared migrated after the canary failed: %v", got)
	}
	recs := e.records(t)
	if r := recs[e.key(rest[0])]; r.status != "pending" || r.attempts != 0 {
		t.Errorf("record of a target behind the canary: %+v, want pending, never attempted", r)
	}
}

// TestPlanChangesNothing: plan lists the pending versions per target and
// leaves the ledgers and the directory as they were.
func TestPlanChangesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, s1, _, d1 := fleetOf(t, e)
	// s1 ahead of the others: migrated to 3 alone.
	f3 := e.fleet(t, files(3), fleet.Config{Tenants: []string{s1.Slug}})
	if _, err := f3.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
		return fmt.Sprint(e.count(t, `SELECT count(*) FROM landlord.migration_runs`), e.records(t),
			e.ledger(t, e.db.Name, s1.Schema), e.ledger(t, d1.Database, d1.Schema), e.ledger(t, e.db.Name, provision.SharedSchema),
			e.count(t, `SELECT sum(schema_version) FROM landlord.tenants`))
	}
	before := snapshot()
	f := e.fleet(t, files(5), fleet.Config{})
	plan, err := f.Plan(t.Context())
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	want := map[string][]int{
		e.key(s1): {4, 5}, e.sharedKey(): {2, 3, 4, 5}, e.key(d1): {2, 3, 4, 5},
	}
	for _, ts := range plan.Targets {
		if w, ok := want[ts.Key]; ok && !slices.Equal(ts.Pending, w) {
			t.Errorf("plan for %s: %v, want %v", ts.Key, ts.Pending, w)
		}
	}
	if want := 4 + len(e.templateKeys(t)); len(plan.Targets) != want || plan.Head != 5 {
		t.Errorf("plan has %d targets at head %d, want %d at 5", len(plan.Targets), plan.Head, want)
	}
	if after := snapshot(); after != before {
		t.Errorf("plan changed something:\n before %s\n after  %s", before, after)
	}
}

func TestFilters(t *testing.T) {
	t.Parallel()
	e := setup(t)
	row, s1, s2, d1 := fleetOf(t, e)
	if err := e.prov.PrepareTemplates(t.Context()); err != nil {
		t.Fatal(err)
	}
	tplSchema := "main/" + e.db.Name + "/" + provision.TemplateSchema
	tplDB := "main/" + e.prov.TemplateDatabase() + "/" + provision.TemplateSchema
	for _, c := range []struct {
		name string
		cfg  fleet.Config
		want []string
	}{
		{"all", fleet.Config{}, []string{e.key(d1), e.key(s1), e.key(s2), e.sharedKey(), tplSchema, tplDB}},
		{"model schema", fleet.Config{Models: []tenant.Model{tenant.ModelSchema}}, []string{e.key(s1), e.key(s2), tplSchema}},
		{"model database", fleet.Config{Models: []tenant.Model{tenant.ModelDatabase}}, []string{e.key(d1), tplDB}},
		{"model row", fleet.Config{Models: []tenant.Model{tenant.ModelRow}}, []string{e.sharedKey()}},
		{"tenant by slug and id", fleet.Config{Tenants: []string{"SCHEMA-TWO", d1.ID.String()}}, []string{e.key(d1), e.key(s2)}},
		{"row tenant selects shared", fleet.Config{Tenants: []string{row.Slug}}, []string{e.sharedKey()}},
		{"tenant and model", fleet.Config{Tenants: []string{s1.Slug, d1.Slug}, Models: []tenant.Model{tenant.ModelDatabase}}, []string{e.key(d1)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := e.fleet(t, files(2), c.cfg)
			plan, err := f.Plan(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ts := range plan.Targets {
				got = append(got, ts.Key)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("targets %v, want %v", got, c.want)
			}
		})
	}
	// Up with a filter migrates only the selected targets.
	f := e.fleet(t, files(2), fleet.Config{Tenants: []string{s2.Slug}})
	if _, err := f.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := e.ledger(t, e.db.Name, s2.Schema); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("selected tenant: ledger %v", got)
	}
	if got := e.ledger(t, e.db.Name, s1.Schema); !slices.Equal(got, []int{1}) {
		t.Errorf("tenant outside the filter migrated: ledger %v", got)
	}
}

// TestBadInput: bad filters and a set that disagrees with what was applied
// are clear errors that record and apply nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, s1, s2, _ := fleetOf(t, e)
	if _, err := e.fleet(t, files(2), fleet.Config{Tenants: []string{s1.Slug}}).Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	runs := e.count(t, `SELECT count(*) FROM landlord.migration_runs`)
	records := fmt.Sprint(e.records(t))

	// Malformed filters are refused by New.
	prov, err := provision.New(t.Context(), e.pool, load(t, files(2)), provision.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg  fleet.Config
		want error
	}{
		{fleet.Config{Tenants: []string{"'; DROP TABLE x; --"}}, tenant.ErrBadSlug},
		{fleet.Config{Tenants: []string{""}}, tenant.ErrBadSlug},
		{fleet.Config{Models: []tenant.Model{"rows"}}, tenant.ErrBadModel},
		{fleet.Config{Parallel: -1}, fleet.ErrBadConfig},
		{fleet.Config{Parallel: 1000}, fleet.ErrBadConfig},
		{fleet.Config{Canary: -1}, fleet.ErrBadConfig},
		{fleet.Config{LockTimeout: -time.Second}, fleet.ErrBadConfig},
	} {
		if _, err := fleet.New(prov, c.cfg); !errors.Is(err, c.want) {
			t.Errorf("New(%+v): %v, want %v", c.cfg, err, c.want)
		}
	}

	// An unknown tenant fails before anything is recorded.
	f, err := fleet.New(prov, fleet.Config{Tenants: []string{s2.Slug, "no-such-shop"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func(context.Context) error{
		"Up":     func(ctx context.Context) error { _, err := f.Up(ctx); return err },
		"Plan":   func(ctx context.Context) error { _, err := f.Plan(ctx); return err },
		"Status": func(ctx context.Context) error { _, err := f.Status(ctx); return err },
	} {
		err := call(t.Context())
		if !isErr(err, tenant.ErrNotFound) || !strings.Contains(err.Error(), "no-such-shop") {
			t.Errorf("%s with an unknown tenant: %v", name, err)
		}
	}

	// 002 changed after s1 applied it: refused, for every target, before
	// anything runs; the other targets, which lack 002, are not migrated.
	changed := files(3)
	changed["002_orders.up.sql"].Data = []byte(steps[1].sql + "\n-- changed\n")
	f = e.fleet(t, changed, fleet.Config{})
	_, err = f.Up(t.Context())
	if !isErr(err, fleet.ErrSetMismatch, migration.ErrChecksumMismatch) || !strings.Contains(err.Error(), "002_orders.up.sql") || !strings.Contains(err.Error(), s1.Schema) {
		t.Errorf("Up with a changed file: %v", err)
	}
	if _, err := f.Plan(t.Context()); !isErr(err, fleet.ErrSetMismatch, migration.ErrChecksumMismatch) {
		t.Errorf("Plan with a changed file: %v", err)
	}
	st, err := f.Status(t.Context())
	if err != nil {
		t.Fatalf("Status with a changed file: %v", err)
	}
	for _, ts := range st.Targets {
		if changed := ts.Tenant == s1.ID; changed != strings.Contains(ts.Problem, "changed after it was applied") {
			t.Errorf("Status with a changed file: %s has problem %q", ts.Key, ts.Problem)
		}
	}

	// A file removed after it was applied.
	f = e.fleet(t, filesOf(steps[0], steps[2]), fleet.Config{})
	if _, err := f.Up(t.Context()); !isErr(err, fleet.ErrSetMismatch, migration.ErrUnknownVersion) {
		t.Errorf("Up with an applied file missing: %v", err)
	}

	if got := e.ledger(t, e.db.Name, s2.Schema); !slices.Equal(got, []int{1}) {
		t.Errorf("bad input migrated a target: ledger %v", got)
	}
	if got := e.ledger(t, e.db.Name, s1.Schema); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("bad input migrated a target: ledger %v", got)
	}
	if n := e.count(t, `SELECT count(*) FROM landlord.migration_runs`); n != runs {
		t.Errorf("bad input recorded %d runs", n-runs)
	}
	if got := fmt.Sprint(e.records(t)); got != records {
		t.Errorf("bad input changed target records:\n%s\n%s", records, got)
	}
}

// TestConcurrentRuns: two runs at once converge, each step applied once,
// each target recorded done by exactly one of them.
func TestConcurrentRuns(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var tenants []tenant.Tenant
	for i := range 6 {
		tenants = append(tenants, e.create(t, fmt.Sprintf("shop-%d", i), tenant.ModelSchema))
	}
	tenants = append(tenants, e.create(t, "big-shop", tenant.ModelDatabase))
	fs := []*fleet.Fleet{e.fleet(t, files(5), fleet.Config{Parallel: 2}), e.fleet(t, files(5), fleet.Config{Parallel: 2})}
	var wg sync.WaitGroup
	reps := make([]*fleet.Report, 2)
	errs := make([]error, 2)
	start := make(chan struct{})
	for i := range fs {
		wg.Go(func() {
			<-start
			reps[i], errs[i] = fs[i].Up(t.Context())
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("run %d: %v", i, err)
			if reps[i] != nil {
				for _, r := range reps[i].Targets {
					t.Errorf("run %d: %s: %s %s", i, r.Key, r.Status, r.Error)
				}
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for name, v := range e.checkConsistent(t, e.places(tenants), steps) {
		if v != 5 {
			t.Errorf("%s at %d, want 5", name, v)
		}
	}
	// Each target's steps were applied by one run or the other, never both.
	for _, tn := range append(tenants, tenant.Tenant{}) {
		key := e.sharedKey()
		if !tn.ID.IsZero() {
			key = e.key(tn)
		}
		var applied []int
		for _, rep := range reps {
			for _, r := range rep.Targets {
				if r.Key == key {
					applied = append(applied, r.Applied...)
					if r.Status != fleet.StateDone {
						t.Errorf("%s: %s in run %d", key, r.Status, rep.Run.ID)
					}
				}
			}
		}
		slices.Sort(applied)
		if !slices.Equal(applied, []int{2, 3, 4, 5}) {
			t.Errorf("%s: the runs applied %v together, want 2-5 once", key, applied)
		}
	}
	for key, r := range e.records(t) {
		if r.status != "done" || r.version != 5 {
			t.Errorf("record of %s: %+v", key, r)
		}
	}
}

// TestStoppedRunTakenOver: a run whose owner is gone (its lock released)
// is marked interrupted and its targets taken over; one whose owner is
// alive is waited for.
func TestStoppedRunTakenOver(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s1 := e.create(t, "shop-one", tenant.ModelSchema)
	s2 := e.create(t, "shop-two", tenant.ModelSchema)
	f := e.fleet(t, files(3), fleet.Config{})
	// A run that holds s1 as running, owned by a live connection.
	owner, runID := e.liveRun(t)
	if _, err := owner.Exec(t.Context(), `INSERT INTO landlord.migration_targets (target, kind, tenant_id, server_id, database_name, schema_name, run_id, status, from_version, to_version, version, attempts)
		VALUES ($1, 'schema', $2, 'main', $3, $4, $5, 'running', 1, 3, 1, 1)`, e.key(s1), s1.ID, e.db.Name, s1.Schema, runID); err != nil {
		t.Fatal(err)
	}
	st, err := f.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Summary.Running != 1 {
		t.Errorf("status with a live run holding a target: %+v", st.Summary)
	}
	up := startUp(t, f)
	// The live run's target is waited for, the other migrated.
	e.waitLedger(t, s2.Schema, []int{1, 2, 3}, "the free target was not migrated while another run held one")
	select {
	case <-up.done:
		t.Fatalf("Up returned while another live run held a target: %+v, %v", up.rep, up.err)
	case <-time.After(300 * time.Millisecond):
	}
	if got := e.ledger(t, e.db.Name, s1.Schema); !slices.Equal(got, []int{1}) {
		t.Fatalf("a target held by a live run was migrated: %v", got)
	}
	// The owner dies: its run is interrupted, its target taken over.
	owner.Close(t.Context())
	rep := up.wait(t)
	if got := e.ledger(t, e.db.Name, s1.Schema); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("taken-over target: ledger %v", got)
	}
	var status, msg string
	if err := e.pool.QueryRow(t.Context(), `SELECT status, error FROM landlord.migration_runs WHERE id = $1`, runID).Scan(&status, &msg); err != nil {
		t.Fatal(err)
	}
	if status != "interrupted" || msg == "" {
		t.Errorf("stopped run recorded as %q (%q), want interrupted", status, msg)
	}
	if r := e.records(t)[e.key(s1)]; r.status != "done" || r.run != rep.Run.ID || r.attempts != 2 {
		t.Errorf("record of the taken-over target: %+v", r)
	}
}

// TestIntentSeesRunStartedDuringIt: a run whose record committed after
// another run's intent statement began (so the statement's snapshot cannot
// see it) still holds the targets it recorded. The intent is made to wait
// on the first key until the other run has started and recorded the second.
func TestIntentSeesRunStartedDuringIt(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s1 := e.create(t, "shop-one", tenant.ModelSchema)
	s2 := e.create(t, "shop-two", tenant.ModelSchema)
	first, second := s1, s2
	if e.key(s2) < e.key(s1) {
		first, second = s2, s1
	}
	f := e.fleet(t, files(3), fleet.Config{})
	// An uncommitted record of the first key makes the intent wait there.
	blocker := e.connect(t, "")
	var oldRun int
	if err := blocker.QueryRow(t.Context(), `INSERT INTO landlord.migration_runs (status, set_hash, head) VALUES ('failed', 'x', 3) RETURNING id`).Scan(&oldRun); err != nil {
		t.Fatal(err)
	}
	const record = `INSERT INTO landlord.migration_targets (target, kind, tenant_id, server_id, database_name, schema_name, run_id, status, from_version, to_version, version)
		VALUES ($1, 'schema', $2, 'main', $3, $4, $5, $6, 1, 3, 1)`
	tx, err := blocker.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), record, e.key(first), first.ID, e.db.Name, first.Schema, oldRun, "failed"); err != nil {
		t.Fatal(err)
	}
	up := startUp(t, f)
	for deadline := time.Now().Add(30 * time.Second); ; {
		var waiting bool
		if err := e.pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE query LIKE 'INSERT INTO landlord.migration_targets AS t%' AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run's intent never waited on the first key")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Another run starts now, live, and records the second key.
	owner, runID := e.liveRun(t)
	if _, err := owner.Exec(t.Context(), record, e.key(second), second.ID, e.db.Name, second.Schema, runID, "pending"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The intent goes on: it takes the first key, not the live run's.
	e.waitLedger(t, first.Schema, []int{1, 2, 3}, "the free target was not migrated")
	if r := e.records(t)[e.key(second)]; r.run != runID || r.status != "pending" {
		t.Fatalf("a target recorded by a live run was taken: %+v", r)
	}
	if got := e.ledger(t, e.db.Name, second.Schema); !slices.Equal(got, []int{1}) {
		t.Fatalf("a target held by a live run was migrated: %v", got)
	}
	// The other run stops: its target is taken over.
	owner.Close(t.Context())
	rep := up.wait(t)
	if r := e.records(t)[e.key(second)]; r.run != rep.Run.ID || r.status != "done" {
		t.Errorf("record of the taken-over target: %+v", r)
	}
}

// liveRun records a running fleet run whose owner, the connection it
// returns, holds the run's lock: a run of another process, alive.
func (e *env) liveRun(t *testing.T) (owner *pgx.Conn, id int) {
	t.Helper()
	owner = e.connect(t, "")
	if err := owner.QueryRow(t.Context(), `INSERT INTO landlord.migration_runs (status, set_hash, head) VALUES ('running', 'x', 3) RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec(t.Context(), `SELECT pg_advisory_lock(x'4c4c4652'::int, $1)`, id); err != nil {
		t.Fatal(err)
	}
	return owner, id
}

// waitLedger waits until the ledger of schema lists want, and fails
// saying what otherwise.
func (e *env) waitLedger(t *testing.T, schema string, want []int, what string) {
	t.Helper()
	waitFor(t, what, func() bool { return slices.Equal(e.ledger(t, e.db.Name, schema), want) })
}

// upRun is an Up running on its own goroutine.
type upRun struct {
	done chan struct{}
	rep  *fleet.Report
	err  error
}

func startUp(t *testing.T, f *fleet.Fleet) *upRun {
	up := &upRun{done: make(chan struct{})}
	go func() {
		defer close(up.done)
		up.rep, up.err = f.Up(t.Context())
	}()
	return up
}

// wait waits for the Up to end and fails the test if it failed.
func (up *upRun) wait(t *testing.T) *fleet.Report {
	t.Helper()
	<-up.done
	if up.err != nil {
		t.Fatalf("Up: %v", up.err)
	}
	return up.rep
}

// TestLockTimeout: a migration that waits for a lock held by live traffic
// gives up after LockTimeout and its retries instead of queueing the
// traffic behind it, and a rerun finishes once the lock is gone.
func TestLockTimeout(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s1 := e.create(t, "shop-one", tenant.ModelSchema)
	busy := e.connect(t, "")
	tx, err := busy.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), fmt.Sprintf(`LOCK TABLE %s IN ACCESS SHARE MODE`, ident.Quote(s1.Schema, "items"))); err != nil {
		t.Fatal(err)
	}
	f := e.fleet(t, files(3), fleet.Config{LockTimeout: 50 * time.Millisecond, LockRetries: 1, Tenants: []string{s1.Slug}})
	rep, err := f.Up(t.Context())
	if !errors.Is(err, fleet.ErrTargetsFailed) || len(rep.Failed()) != 1 || !strings.Contains(rep.Failed()[0].Error, "lock") {
		t.Fatalf("Up against a held lock: %+v, %v", rep, err)
	}
	if r := rep.Failed()[0]; r.To != 2 || !slices.Equal(r.Applied, []int{2}) {
		t.Errorf("failed target %+v, want version 2 reached (003 needs the lock)", r)
	}
	if v := e.schemaVersion(t, s1); v != 2 {
		t.Errorf("directory: %d, want the version reached (2)", v)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rep, err = f.Up(t.Context()); err != nil || !slices.Equal(rep.Targets[0].Applied, []int{3}) {
		t.Fatalf("rerun: %+v, %v", rep, err)
	}
}

// TestDirectoryVersionRepaired: a tenant whose schema_version disagrees with
// its ledger (a migrator stopped between a step and its directory update)
// is corrected by the next Up, which applies nothing to it.
func TestDirectoryVersionRepaired(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s1 := e.create(t, "shop-one", tenant.ModelSchema)
	s2 := e.create(t, "shop-two", tenant.ModelSchema)
	f := e.fleet(t, files(2), fleet.Config{})
	if _, err := f.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(t.Context(), `UPDATE landlord.tenants SET schema_version = 1 WHERE id = $1`, s1.ID); err != nil {
		t.Fatal(err)
	}
	rep, err := f.Up(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Targets) != 1 || rep.Targets[0].Tenant != s1.ID || len(rep.Targets[0].Applied) != 0 || rep.Targets[0].To != 2 {
		t.Fatalf("repair run touched %+v, want only %s, applying nothing", rep.Targets, s1.Slug)
	}
	for _, tn := range []tenant.Tenant{s1, s2} {
		if v := e.schemaVersion(t, tn); v != 2 {
			t.Errorf("%s: schema_version %d, want 2", tn.Slug, v)
		}
	}
	if rep, err := f.Up(t.Context()); err != nil || rep.Run.ID != 0 {
		t.Errorf("after the repair: %+v, %v; want nothing to do", rep.Run, err)
	}
}

// TestRowTenantVersions: the shared schema's version is every row tenant's
// version on its server, also for a row tenant created while it was behind.
func TestRowTenantVersions(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r1 := e.create(t, "row-one", tenant.ModelRow)
	// Created by code that already knows version 3: the directory says 3
	// while the shared tables are at 1.
	prov3, err := provision.New(t.Context(), e.pool, load(t, files(3)), provision.Config{})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := prov3.Create(t.Context(), provision.Request{Slug: "row-two", Model: tenant.ModelRow})
	if err != nil {
		t.Fatal(err)
	}
	f := e.fleet(t, files(2), fleet.Config{Models: []tenant.Model{tenant.ModelRow}})
	if _, err := f.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []tenant.Tenant{r1, r2} {
		if v := e.schemaVersion(t, tn); v != 2 {
			t.Errorf("%s: schema_version %d, want 2 (the shared schema's)", tn.Slug, v)
		}
	}
}
