// Package tenantjob runs River jobs on behalf of tenants: the tenant in the
// context of the code that inserts a job rides with the job, and the worker
// that works it gets exactly that tenant in its context, so that everything
// it does through a landlord handle runs as that tenant and no other.
//
// The tenant is recorded in the job's metadata (key MetadataTenant), not in
// its args: every job type gets it without a field of its own, the args stay
// the business data of the job, and a worker cannot pick a tenant by
// decoding args that happen to hold an id. The insert middleware writes the
// key; the worker middleware reads it, and a job without a valid tenant is
// cancelled at once (river.JobCancel) with an error that says why: it never
// runs with some default tenant. Jobs about no single tenant (a periodic
// job that fans out one job per tenant) opt out in their args type by
// implementing PlatformJob; they are marked in the metadata (key
// MetadataPlatform) and run with no tenant in their context.
//
// Unique jobs are unique per tenant: the insert middleware folds the tenant
// into River's unique key, so one tenant's unique job never blocks or
// absorbs another tenant's job with the same args.
//
// River's tables live in their own schema (Schema) of the control database,
// created by Migrate, and no role but their owner (the administrator that
// migrated them) has any right on them: tenant SQL cannot read jobs, or
// insert one that would run as another tenant. River's clients run in poll
// only mode (river.Config.PollOnly, set by Config.Configure): any role may
// send a NOTIFY, so a tenant could otherwise forge River's control
// notifications (pause every queue, cancel a running job by its id); with
// no LISTEN, River learns everything from its own tables.
//
// Wiring it into a River client:
//
//	if err := tenantjob.Migrate(ctx, ll.Provisioner().Admin()); err != nil {
//		return err
//	}
//	workers := river.NewWorkers()
//	river.AddWorker(workers, &ReportWorker{})
//	rc := &river.Config{
//		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
//		Workers: workers,
//	}
//	if err := (tenantjob.Config{Logger: logger}).Configure(rc); err != nil {
//		return err
//	}
//	client, err := river.NewClient(riverpgxv5.New(pool), rc)
//	...
//	ctx = landlord.WithTenant(ctx, t.ID)
//	_, err = client.Insert(ctx, ReportArgs{Month: "2026-11"}, nil) // runs as t
package tenantjob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/landlordhq/landlord/tenant"
)

// Metadata keys the middleware owns in every job's metadata. Values an
// inserter put there itself are replaced.
const (
	// MetadataTenant holds the job's tenant id (a uuid string).
	MetadataTenant = "landlord_tenant"
	// MetadataPlatform is true for a platform job (see PlatformJob).
	MetadataPlatform = "landlord_platform"
)

// PlatformJob is implemented by the args of jobs that are about no single
// tenant. Only they are inserted without a tenant, and they are worked with
// no tenant in the context, even when the inserting code had one:
//
//	type FanOutArgs struct{}
//
//	func (FanOutArgs) Kind() string { return "fan_out" }
//	func (FanOutArgs) PlatformJob() {}
type PlatformJob interface {
	PlatformJob()
}

// ErrJobTenant is wrapped by the error of a job whose metadata has no valid
// tenant: none (it also wraps tenant.ErrNoTenant), one that is not a tenant
// id, or a tenant beside the platform mark. Such a job is cancelled on its
// first attempt.
var ErrJobTenant = errors.New("job has no valid tenant")

// Config configures the middleware. The zero value is usable.
type Config struct {
	// Logger receives a line for every job cancelled for want of a valid
	// tenant, and for every job cancelled because its tenant no longer
	// exists. Default: discard.
	Logger *slog.Logger
}

// Middleware returns the middleware for river.Config.Middleware. Put it
// first in that list, so that the middleware after it, and the worker,
// see the job's tenant in their context. Configure does that and more.
func (c Config) Middleware() []rivertype.Middleware {
	return []rivertype.Middleware{New(c)}
}

// Configure sets in rc what tenant jobs need: Schema (River's tables, see
// Migrate), PollOnly (see the package documentation), and the middleware
// first in rc.Middleware. It refuses a config that names another schema,
// or that uses River's older JobInsertMiddleware and WorkerMiddleware
// fields, which River does not combine with Middleware.
func (c Config) Configure(rc *river.Config) error {
	switch {
	case rc == nil:
		return errors.New("tenantjob: configure: no River config")
	case rc.Schema != "" && rc.Schema != Schema:
		return fmt.Errorf("tenantjob: configure: River's tables are in schema %q, the config names %q", Schema, rc.Schema)
	case len(rc.JobInsertMiddleware) > 0 || len(rc.WorkerMiddleware) > 0:
		return errors.New("tenantjob: configure: move JobInsertMiddleware and WorkerMiddleware into Middleware, after tenantjob's")
	}
	for _, m := range rc.Middleware {
		if _, ok := m.(*Middleware); ok {
			return errors.New("tenantjob: configure: the config has tenantjob's middleware already")
		}
	}
	rc.Schema = Schema
	rc.PollOnly = true
	rc.Middleware = append(c.Middleware(), rc.Middleware...)
	return nil
}

// Middleware is River middleware that carries the tenant of a context into
// the jobs inserted with it, and back into the context of the worker that
// works them. It implements rivertype.JobInsertMiddleware and
// rivertype.WorkerMiddleware. It is safe for concurrent use.
type Middleware struct {
	river.MiddlewareDefaults
	logger *slog.Logger
}

var (
	_ rivertype.JobInsertMiddleware = (*Middleware)(nil)
	_ rivertype.WorkerMiddleware    = (*Middleware)(nil)
)

// New returns the middleware (see Config.Middleware for the list River
// takes).
func New(c Config) *Middleware {
	l := c.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Middleware{logger: l}
}

// InsertMany records in each job the tenant of ctx, or the platform mark
// when the job's args implement PlatformJob. A job that is not a platform
// job, inserted with a context that carries no tenant, fails the whole
// batch with an error wrapping tenant.ErrNoTenant; nothing is inserted.
func (m *Middleware) InsertMany(ctx context.Context, manyParams []*rivertype.JobInsertParams, doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	id, hasTenant := tenant.FromContext(ctx)
	for _, p := range manyParams {
		meta, err := metadataObject(p.Metadata)
		if err != nil {
			return nil, fmt.Errorf("tenantjob: insert %s job: %w", p.Kind, err)
		}
		delete(meta, MetadataTenant)
		delete(meta, MetadataPlatform)
		if _, ok := p.Args.(PlatformJob); ok {
			meta[MetadataPlatform] = json.RawMessage("true")
		} else {
			if !hasTenant {
				return nil, fmt.Errorf("tenantjob: insert %s job: it is not a platform job and the context carries no tenant: %w", p.Kind, tenant.ErrNoTenant)
			}
			meta[MetadataTenant], _ = json.Marshal(id.String())
			if p.UniqueKey != nil {
				p.UniqueKey = tenantUniqueKey(id, p.UniqueKey)
			}
		}
		if p.Metadata, err = json.Marshal(meta); err != nil {
			return nil, fmt.Errorf("tenantjob: insert %s job: encode metadata: %w", p.Kind, err)
		}
	}
	return doInner(ctx)
}

// tenantUniqueKey folds the tenant into River's unique key (a hash), so
// that uniqueness holds per tenant.
func tenantUniqueKey(id tenant.ID, key []byte) []byte {
	h := sha256.New()
	h.Write([]byte("landlord tenant\x00"))
	h.Write(id[:])
	h.Write(key)
	return h.Sum(nil)
}

// Work puts the job's tenant into the worker's context, replacing any
// tenant the context carried, and calls the rest of the chain. A platform
// job runs with no tenant in its context. A job with no valid tenant is
// cancelled (river.JobCancel) without running, with an error wrapping
// ErrJobTenant. A job whose work fails with tenant.ErrNotFound (its tenant
// was deleted) is cancelled too: no retry could succeed.
func (m *Middleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	id, platform, err := jobTenant(job)
	if err != nil {
		err = fmt.Errorf("tenantjob: job %d (%s) cancelled: %w", job.ID, job.Kind, err)
		m.logger.LogAttrs(ctx, slog.LevelError, "job without a valid tenant cancelled",
			slog.Int64("job_id", job.ID), slog.String("kind", job.Kind), slog.String("error", err.Error()))
		return river.JobCancel(err)
	}
	if platform {
		return doInner(tenant.WithContext(ctx, tenant.ID{}))
	}
	ctx = tenant.WithContext(ctx, id)
	err = doInner(ctx)
	var cancel *river.JobCancelError
	if errors.Is(err, tenant.ErrNotFound) && !errors.As(err, &cancel) {
		m.logger.LogAttrs(ctx, slog.LevelWarn, "job of a tenant that no longer exists cancelled",
			slog.Int64("job_id", job.ID), slog.String("kind", job.Kind), slog.String("tenant", id.String()))
		return river.JobCancel(fmt.Errorf("tenantjob: job %d (%s) of tenant %s cancelled, the tenant no longer exists: %w", job.ID, job.Kind, id, err))
	}
	return err
}

// TenantOf returns the tenant a job was inserted for. platform is true for
// a platform job (and id is then zero). A job with neither, or with a
// malformed tenant, is an error wrapping ErrJobTenant.
func TenantOf(job *rivertype.JobRow) (id tenant.ID, platform bool, err error) {
	return jobTenant(job)
}

func jobTenant(job *rivertype.JobRow) (tenant.ID, bool, error) {
	meta, err := metadataObject(job.Metadata)
	if err != nil {
		return tenant.ID{}, false, fmt.Errorf("%w: %w", ErrJobTenant, err)
	}
	rawTenant, hasTenant := meta[MetadataTenant]
	rawPlatform, hasPlatform := meta[MetadataPlatform]
	if hasPlatform {
		if !bytes.Equal(bytes.TrimSpace(rawPlatform), []byte("true")) {
			return tenant.ID{}, false, fmt.Errorf("%w: metadata %s is %s, not true", ErrJobTenant, MetadataPlatform, rawPlatform)
		}
		if hasTenant {
			return tenant.ID{}, false, fmt.Errorf("%w: metadata marks a platform job and names a tenant too", ErrJobTenant)
		}
		return tenant.ID{}, true, nil
	}
	if !hasTenant {
		return tenant.ID{}, false, fmt.Errorf("%w: metadata has no %s (was it inserted without the tenantjob middleware?): %w", ErrJobTenant, MetadataTenant, tenant.ErrNoTenant)
	}
	var s string
	if err := json.Unmarshal(rawTenant, &s); err != nil {
		return tenant.ID{}, false, fmt.Errorf("%w: metadata %s is %s, not a string", ErrJobTenant, MetadataTenant, rawTenant)
	}
	id, err := tenant.ParseID(s)
	if err != nil {
		return tenant.ID{}, false, fmt.Errorf("%w: metadata %s: %w", ErrJobTenant, MetadataTenant, err)
	}
	if id.IsZero() {
		return tenant.ID{}, false, fmt.Errorf("%w: metadata %s is the zero id: %w", ErrJobTenant, MetadataTenant, tenant.ErrNoTenant)
	}
	return id, false, nil
}

// metadataObject decodes job metadata, which River keeps as a JSON object
// ("{}" when empty).
func metadataObject(b []byte) (map[string]json.RawMessage, error) {
	meta := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(b)) == 0 {
		return meta, nil
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return nil, fmt.Errorf("metadata is not a JSON object: %w", err)
	}
	if meta == nil { // "null"
		meta = map[string]json.RawMessage{}
	}
	return meta, nil
}
