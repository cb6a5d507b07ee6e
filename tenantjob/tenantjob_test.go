package tenantjob_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/audit"
	"github.com/landlordhq/landlord/internal/itemschema"
	"github.com/landlordhq/landlord/landlordtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
	"github.com/landlordhq/landlord/tenantjob"
)

// noteArgs is a tenant job: its worker writes a parents row as the tenant
// in its context.
type noteArgs struct {
	Name string `json:"name" river:"unique"`
}

func (noteArgs) Kind() string { return "test_note" }

// fanOutArgs is a platform job.
type fanOutArgs struct {
	N int `json:"n"`
}

func (fanOutArgs) Kind() string { return "test_fan_out" }
func (fanOutArgs) PlatformJob() {}

// seen is what a worker found in its context.
type seen struct {
	tenant    tenant.ID
	hasTenant bool
}

type recorder struct {
	mu   sync.Mutex
	jobs map[int64]seen
}

func (r *recorder) record(ctx context.Context, jobID int64) {
	id, ok := tenant.FromContext(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jobs[jobID] = seen{id, ok}
}

func (r *recorder) get(jobID int64) (seen, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.jobs[jobID]
	return s, ok
}

type noteWorker struct {
	river.WorkerDefaults[noteArgs]
	rec *recorder
	h   *landlord.Handle
}

func (w *noteWorker) Work(ctx context.Context, job *river.Job[noteArgs]) error {
	w.rec.record(ctx, job.ID)
	_, err := w.h.Exec(ctx, `INSERT INTO parents (id, name) VALUES ($1, $2)`, job.ID, job.Args.Name)
	return err
}

type fanOutWorker struct {
	river.WorkerDefaults[fanOutArgs]
	rec *recorder
}

func (w *fanOutWorker) Work(ctx context.Context, job *river.Job[fanOutArgs]) error {
	w.rec.record(ctx, job.ID)
	return nil
}

// fixture is one installation with River migrated, three tenants (one per
// model) and a started client; the subtests share it.
type fixture struct {
	ll      *landlord.Landlord
	pool    *pgxpool.Pool
	client  *river.Client[pgx.Tx]
	bare    *river.Client[pgx.Tx] // inserts without the middleware
	rec     *recorder
	tenants map[string]tenant.Tenant
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	ll := landlordtest.PgtestKit(srv, itemschema.FS(), nil).Open(t, landlord.Config{})
	admin := ll.Provisioner().Admin()
	for range 2 { // idempotent
		if err := tenantjob.Migrate(ctx, admin); err != nil {
			t.Fatal(err)
		}
	}
	pcfg := admin.Config()
	pcfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	f := &fixture{ll: ll, pool: pool, rec: &recorder{jobs: map[int64]seen{}}, tenants: map[string]tenant.Tenant{}}
	for slug, m := range map[string]tenant.Model{"row-a": tenant.ModelRow, "schema-b": tenant.ModelSchema, "db-c": tenant.ModelDatabase} {
		tn, err := ll.CreateTenant(ctx, provision.Request{Slug: slug, Model: m})
		if err != nil {
			t.Fatal(err)
		}
		f.tenants[slug] = tn
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &noteWorker{rec: f.rec, h: ll.Handle()})
	river.AddWorker(workers, &fanOutWorker{rec: f.rec})
	rc := &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}},
		Workers:           workers,
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		MaxAttempts:       5,
	}
	if err := (tenantjob.Config{}).Configure(rc); err != nil {
		t.Fatal(err)
	}
	if !rc.PollOnly || rc.Schema != tenantjob.Schema {
		t.Fatalf("Configure left PollOnly %v, Schema %q", rc.PollOnly, rc.Schema)
	}
	f.client, err = river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		t.Fatal(err)
	}
	f.bare, err = river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: tenantjob.Schema, MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	// The client runs with a context that carries a tenant of its own: no
	// job may run as it.
	startCtx := tenant.WithContext(context.Background(), tenant.NewID())
	if err := f.client.Start(startCtx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f.client.Stop(ctx); err != nil {
			t.Errorf("stop River: %v", err)
		}
	})
	return f
}

// wait polls job id until it reaches a final state, for up to 30 s.
func (f *fixture) wait(t *testing.T, id int64) *rivertype.JobRow {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		job, err := f.client.JobGet(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		switch job.State {
		case rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
			return job
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d (%s) still %s after 30 s; errors: %v", id, job.Kind, job.State, job.Errors)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func metadata(t *testing.T, job *rivertype.JobRow) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(job.Metadata, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTenantJobs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	t.Run("tenant carried to its worker only", func(t *testing.T) {
		ids := map[string]int64{}
		for slug, tn := range f.tenants {
			res, err := f.client.Insert(landlord.WithTenant(ctx, tn.ID), noteArgs{Name: "note of " + slug}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ids[slug] = res.Job.ID
		}
		for slug, tn := range f.tenants {
			job := f.wait(t, ids[slug])
			if job.State != rivertype.JobStateCompleted {
				t.Fatalf("%s: job %s: %v", slug, job.State, job.Errors)
			}
			if got := metadata(t, job)[tenantjob.MetadataTenant]; got != tn.ID.String() {
				t.Errorf("%s: metadata tenant %v, want %s", slug, got, tn.ID)
			}
			s, ok := f.rec.get(job.ID)
			if !ok || !s.hasTenant || s.tenant != tn.ID {
				t.Errorf("%s: worker saw %+v (ran %v), want tenant %s", slug, s, ok, tn.ID)
			}
			got, _, err := tenantjob.TenantOf(job)
			if err != nil || got != tn.ID {
				t.Errorf("%s: TenantOf = %s, %v", slug, got, err)
			}
		}
		// Each row landed in its own tenant, and only there.
		for slug, tn := range f.tenants {
			var names []string
			rows, err := f.ll.Handle().Query(landlord.WithTenant(ctx, tn.ID), `SELECT name FROM parents ORDER BY name`)
			if err != nil {
				t.Fatal(err)
			}
			names, err = pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if len(names) != 1 || names[0] != "note of "+slug {
				t.Errorf("%s holds %q, want only its own note", slug, names)
			}
		}
	})

	t.Run("insert without tenant refused", func(t *testing.T) {
		before := countJobs(t, f, noteArgs{}.Kind())
		_, err := f.client.Insert(ctx, noteArgs{Name: "orphan"}, nil)
		if !errors.Is(err, tenant.ErrNoTenant) {
			t.Fatalf("insert without tenant: %v, want tenant.ErrNoTenant", err)
		}
		// One tenant job without a tenant fails the whole batch.
		_, err = f.client.InsertMany(landlord.WithTenant(ctx, tenant.ID{}), []river.InsertManyParams{{Args: fanOutArgs{}}, {Args: noteArgs{Name: "orphan 2"}}})
		if !errors.Is(err, tenant.ErrNoTenant) {
			t.Fatalf("batch without tenant: %v, want tenant.ErrNoTenant", err)
		}
		if after := countJobs(t, f, noteArgs{}.Kind()); after != before {
			t.Errorf("%d note jobs before, %d after refused inserts", before, after)
		}
		if n := countJobs(t, f, fanOutArgs{}.Kind()); n != 0 {
			t.Errorf("%d fan-out jobs after a refused batch", n)
		}
	})

	t.Run("platform job runs without tenant", func(t *testing.T) {
		// Inserted from a tenant's context, it still runs as nobody.
		a := f.tenants["row-a"]
		res, err := f.client.Insert(landlord.WithTenant(ctx, a.ID), fanOutArgs{N: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		job := f.wait(t, res.Job.ID)
		if job.State != rivertype.JobStateCompleted {
			t.Fatalf("job %s: %v", job.State, job.Errors)
		}
		s, ok := f.rec.get(job.ID)
		if !ok || s.hasTenant {
			t.Errorf("platform worker saw %+v (ran %v), want no tenant", s, ok)
		}
		m := metadata(t, job)
		if _, has := m[tenantjob.MetadataTenant]; has || m[tenantjob.MetadataPlatform] != true {
			t.Errorf("platform job metadata %v", m)
		}
	})

	t.Run("job without valid tenant cancelled after one attempt", func(t *testing.T) {
		a := f.tenants["row-a"]
		cases := map[string]string{
			"none":           `{}`,
			"malformed":      `{"landlord_tenant": "not-a-tenant"}`,
			"not a string":   `{"landlord_tenant": 42}`,
			"zero":           `{"landlord_tenant": "00000000-0000-0000-0000-000000000000"}`,
			"tenant+platorm": fmt.Sprintf(`{"landlord_tenant": %q, "landlord_platform": true}`, a.ID),
			"platform false": `{"landlord_platform": false}`,
		}
		ids := map[string]int64{}
		for name, meta := range cases {
			// A client without the middleware: the way a job without a
			// tenant could reach the table.
			res, err := f.bare.Insert(landlord.WithTenant(ctx, a.ID), noteArgs{Name: "forged " + name}, &river.InsertOpts{Metadata: []byte(meta)})
			if err != nil {
				t.Fatal(err)
			}
			ids[name] = res.Job.ID
		}
		for name, id := range ids {
			job := f.wait(t, id)
			if job.State != rivertype.JobStateCancelled || job.Attempt != 1 {
				t.Errorf("%s: job %s after %d attempts, want cancelled after 1", name, job.State, job.Attempt)
			}
			if len(job.Errors) != 1 || !strings.Contains(job.Errors[0].Error, tenantjob.ErrJobTenant.Error()) {
				t.Errorf("%s: recorded errors %+v, want one naming %q", name, job.Errors, tenantjob.ErrJobTenant)
			}
			if s, ran := f.rec.get(id); ran {
				t.Errorf("%s: the worker ran, with %+v", name, s)
			}
		}
		var n int
		if err := f.ll.Handle().QueryRow(landlord.WithTenant(ctx, a.ID), `SELECT count(*) FROM parents WHERE name LIKE 'forged %'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d rows written by jobs that should not have run", n)
		}
	})

	t.Run("unique per tenant", func(t *testing.T) {
		opts := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
		a, b := f.tenants["row-a"], f.tenants["schema-b"]
		ra, err := f.client.Insert(landlord.WithTenant(ctx, a.ID), noteArgs{Name: "unique"}, opts)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := f.client.Insert(landlord.WithTenant(ctx, b.ID), noteArgs{Name: "unique"}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if ra.UniqueSkippedAsDuplicate || rb.UniqueSkippedAsDuplicate || ra.Job.ID == rb.Job.ID {
			t.Fatalf("the same unique args of two tenants collided: %d %v, %d %v", ra.Job.ID, ra.UniqueSkippedAsDuplicate, rb.Job.ID, rb.UniqueSkippedAsDuplicate)
		}
		again, err := f.client.Insert(landlord.WithTenant(ctx, a.ID), noteArgs{Name: "unique"}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !again.UniqueSkippedAsDuplicate || again.Job.ID != ra.Job.ID {
			t.Errorf("the same unique job of one tenant inserted twice: %d, skipped %v", again.Job.ID, again.UniqueSkippedAsDuplicate)
		}
		f.wait(t, ra.Job.ID)
		f.wait(t, rb.Job.ID)
	})

	t.Run("deleted tenant's job cancelled", func(t *testing.T) {
		gone, err := f.ll.CreateTenant(ctx, provision.Request{Slug: "gone", Model: tenant.ModelRow})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.ll.DeleteTenant(ctx, gone.ID); err != nil {
			t.Fatal(err)
		}
		res, err := f.client.Insert(landlord.WithTenant(ctx, gone.ID), noteArgs{Name: "too late"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		job := f.wait(t, res.Job.ID)
		if job.State != rivertype.JobStateCancelled || job.Attempt != 1 {
			t.Errorf("job %s after %d attempts, want cancelled after 1; errors %+v", job.State, job.Attempt, job.Errors)
		}
	})

	t.Run("tenant traffic denied on River's tables", func(t *testing.T) {
		for _, slug := range []string{"row-a", "schema-b"} {
			tctx := landlord.WithTenant(ctx, f.tenants[slug].ID)
			for _, sql := range []string{
				`SELECT count(*) FROM river.river_job`,
				`INSERT INTO river.river_job (args, kind, max_attempts, metadata, priority, queue, state)
				 VALUES ('{}', 'test_note', 1, '{"landlord_tenant": "` + f.tenants["db-c"].ID.String() + `"}', 1, 'default', 'available')`,
				`UPDATE river.river_job SET state = 'cancelled'`,
				`DELETE FROM river.river_queue`,
			} {
				_, err := f.ll.Handle().Exec(tctx, sql)
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
					t.Errorf("%s: %s: %v, want permission denied (42501)", slug, strings.Fields(sql)[0], err)
				}
			}
		}
		// The app role and PUBLIC hold no right on the schema or any of
		// its tables.
		for _, role := range []string{f.ll.Provisioner().Roles().App, "public"} {
			var usage, any bool
			err := f.pool.QueryRow(ctx, `
				SELECT has_schema_privilege($1, 'river', 'USAGE'),
				       coalesce(bool_or(has_table_privilege($1, c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')), false)
				FROM pg_class c WHERE c.relnamespace = 'river'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')`, role).Scan(&usage, &any)
			if err != nil {
				t.Fatal(err)
			}
			if usage || any {
				t.Errorf("%s: schema usage %v, a table right %v; want neither", role, usage, any)
			}
		}
		// Landlord's isolation audit finds nothing wrong with River's schema.
		findings, err := f.ll.Audit(ctx, audit.FleetConfig{})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range findings {
			t.Errorf("audit finding: %+v", x)
		}
	})
}

func countJobs(t *testing.T, f *fixture, kind string) int {
	t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM river.river_job WHERE kind = $1`, kind).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConfigure(t *testing.T) {
	rc := &river.Config{Schema: "elsewhere"}
	if err := (tenantjob.Config{}).Configure(rc); err == nil {
		t.Error("Configure accepted another schema")
	}
	rc = &river.Config{WorkerMiddleware: []rivertype.WorkerMiddleware{&river.WorkerMiddlewareDefaults{}}}
	if err := (tenantjob.Config{}).Configure(rc); err == nil {
		t.Error("Configure accepted the older middleware fields")
	}
	other := river.WorkerMiddlewareFunc(func(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
		return doInner(ctx)
	})
	rc = &river.Config{Middleware: []rivertype.Middleware{other}}
	if err := (tenantjob.Config{}).Configure(rc); err != nil {
		t.Fatal(err)
	}
	if len(rc.Middleware) != 2 {
		t.Fatalf("%d middleware, want 2", len(rc.Middleware))
	}
	if _, ok := rc.Middleware[0].(*tenantjob.Middleware); !ok {
		t.Errorf("first middleware is %T, want tenantjob's", rc.Middleware[0])
	}
	if err := (tenantjob.Config{}).Configure(rc); err == nil {
		t.Error("Configure added its middleware twice")
	}
}
