package landlord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/move"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// Admin is the scope for cross-tenant work: platform administration,
// analytics, maintenance. It is a different type from Handle so that request
// code holding a Handle cannot reach other tenants by accident, and every
// scope carries a reason that is logged with each use (ARCHITECTURE.md, "Fail closed").
type Admin struct {
	l      *Landlord
	reason string
}

// Admin opens an admin scope. reason says why, for the log; it is required.
func (l *Landlord) Admin(ctx context.Context, reason string) (*Admin, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, ErrNoReason
	}
	l.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "admin scope opened", slog.String("reason", reason))
	return &Admin{l: l, reason: reason}, nil
}

func (a *Admin) log(ctx context.Context, what string, attrs ...slog.Attr) {
	a.l.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "admin: "+what, append(attrs, slog.String("reason", a.reason))...)
}

// Tenant returns a Handle fixed to tenant id, whatever tenant the context
// carries. Unlike a request's Handle it also reaches a suspended tenant;
// read-only tenants stay read-only.
func (a *Admin) Tenant(ctx context.Context, id tenant.ID) *Handle {
	a.log(ctx, "tenant scope", slog.String("tenant", id.String()))
	return &Handle{a.l.traffic.AdminHandle(id)}
}

// Tenants lists the tenants that match f.
func (a *Admin) Tenants(ctx context.Context, f directory.Filter) ([]tenant.Tenant, error) {
	a.log(ctx, "list tenants")
	return a.l.dir.List(ctx, f)
}

// Each calls fn for every active, read-only or suspended tenant that matches
// f, one at a time, with a Querier fixed to that tenant. It stops at the first
// error.
func (a *Admin) Each(ctx context.Context, f directory.Filter, fn func(ctx context.Context, t tenant.Tenant, q Querier) error) error {
	ts, err := a.l.dir.List(ctx, f)
	if err != nil {
		return err
	}
	a.log(ctx, "each tenant", slog.Int("tenants", len(ts)))
	for _, t := range ts {
		switch t.State {
		case tenant.StateActive, tenant.StateReadOnly, tenant.StateSuspended:
		default:
			continue
		}
		if err := fn(ctx, t, &Handle{a.l.traffic.AdminHandle(t.ID)}); err != nil {
			return fmt.Errorf("tenant %s (%s): %w", t.Slug, t.ID, err)
		}
	}
	return nil
}

// DefaultFanoutConcurrency is how many tenants Fanout works on at once when
// FanoutOptions.Concurrency is zero.
const DefaultFanoutConcurrency = 8

// FanoutOptions are the settings of Admin.Fanout.
type FanoutOptions struct {
	// Concurrency is how many tenants fn runs for at once. Default
	// DefaultFanoutConcurrency; it is capped at Config.MaxConns, the
	// tenant-traffic connections a server has, so a fan-out never waits
	// on a connection budget it could exhaust by itself. Negative is an
	// error.
	Concurrency int
	// Progress, when set, is called after each tenant's fn returned, with
	// the number of tenants done so far and the total. Calls are
	// serialized, and done counts up by one each time.
	Progress func(done, total int)
}

// Fanout calls fn for every active, read-only or suspended tenant that
// matches f, with a Querier fixed to that tenant (as Each does), running up to
// opt.Concurrency of them at once. A tenant's error does not stop the others:
// Fanout returns every error joined (errors.Join), each naming its tenant's
// slug and id. When ctx is cancelled no further tenant is started, the ones
// running finish (their fn sees the cancelled ctx), and ctx's error is part
// of the result. The scope's reason is logged once, with the tenant count.
func (a *Admin) Fanout(ctx context.Context, f directory.Filter, opt FanoutOptions, fn func(ctx context.Context, t tenant.Tenant, q Querier) error) error {
	if opt.Concurrency < 0 {
		return fmt.Errorf("fanout: Concurrency must not be negative (got %d)", opt.Concurrency)
	}
	if fn == nil {
		return errors.New("fanout: fn is nil")
	}
	workers := opt.Concurrency
	if workers == 0 {
		workers = DefaultFanoutConcurrency
	}
	workers = min(workers, a.l.cfg.MaxConns)
	all, err := a.l.dir.List(ctx, f)
	if err != nil {
		return err
	}
	var ts []tenant.Tenant
	for _, t := range all {
		switch t.State {
		case tenant.StateActive, tenant.StateReadOnly, tenant.StateSuspended:
			ts = append(ts, t)
		}
	}
	a.log(ctx, "fanout", slog.Int("tenants", len(ts)), slog.Int("concurrency", workers))

	var (
		errs = make([]error, len(ts)) // by tenant, so the result is in slug order
		mu   sync.Mutex               // guards done and the Progress calls
		done int
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, workers)
	started := 0
start:
	for i, t := range ts {
		// A cancelled context wins over a free slot: select picks at
		// random among ready cases, so ctx is checked on both sides.
		if ctx.Err() != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break start
		}
		if ctx.Err() != nil {
			<-sem
			break
		}
		started++
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, t, &Handle{a.l.traffic.AdminHandle(t.ID)}); err != nil {
				errs[i] = fmt.Errorf("tenant %s (%s): %w", t.Slug, t.ID, err)
			}
			mu.Lock()
			defer mu.Unlock()
			done++
			if opt.Progress != nil {
				opt.Progress(done, len(ts))
			}
		})
	}
	wg.Wait()
	if started < len(ts) {
		errs = append(errs, fmt.Errorf("fanout stopped after %d of %d tenants: %w", started, len(ts), ctx.Err()))
	}
	return errors.Join(errs...)
}

// SetState moves a tenant between active, read_only and suspended, and
// records the new state in the tenant's ledger with the scope's reason, the
// time and the database role.
func (a *Admin) SetState(ctx context.Context, id tenant.ID, s tenant.State) (tenant.Tenant, error) {
	switch s {
	case tenant.StateActive, tenant.StateReadOnly, tenant.StateSuspended:
	default:
		return tenant.Tenant{}, fmt.Errorf("set state %q: only active, read_only and suspended can be set by hand", s)
	}
	a.log(ctx, "set state", slog.String("tenant", id.String()), slog.String("state", string(s)))
	t, err := a.l.dir.SetState(ctx, id, s, tenant.StateActive, tenant.StateReadOnly, tenant.StateSuspended)
	a.l.traffic.Invalidate(id)
	if err != nil {
		return t, err
	}
	// Who set a state, when and why stays with the tenant (tenants show).
	return t, a.l.dir.LogState(ctx, id, s, a.reason)
}

// SetSettings replaces a tenant's settings (tenant.Settings: the
// PostgreSQL settings of its transactions and its connection cap) and
// records them in its ledger with the scope's reason. Every handle applies
// them from its next call on: this process's at once, others' once the
// directory's notification or their cache's MaxAge reaches them.
func (a *Admin) SetSettings(ctx context.Context, id tenant.ID, s tenant.Settings) (tenant.Tenant, error) {
	a.log(ctx, "set settings", slog.String("tenant", id.String()), slog.String("settings", s.String()))
	t, err := a.l.dir.SetSettings(ctx, id, s, a.reason)
	a.l.traffic.Invalidate(id)
	return t, err
}

// ReconcileReport is what Reconcile did: provision's report, whose
// Skipped and Failures count moves too, and the moves it took over.
type ReconcileReport struct {
	provision.Report
	MovesFinished []tenant.ID // moves past their fence, finished
	MovesUndone   []tenant.ID // moves stopped before their fence, undone
}

// Reconcile finishes interrupted provisioning and deletion, removes
// orphaned objects (see provision.Provisioner.Reconcile), and takes over
// the moves whose mover is gone (move.ResumeIdle): one stopped before its
// fence is undone, which frees its replication slot, one past it is
// finished, which ends the tenant's wait. Tenants another session works
// on are skipped; fences of finished moves that have settled are removed.
func (a *Admin) Reconcile(ctx context.Context) (ReconcileReport, error) {
	a.log(ctx, "reconcile")
	var rep ReconcileReport
	var err error
	if rep.Report, err = a.l.prov.Reconcile(ctx); err != nil {
		return rep, err
	}
	moves, err := a.l.dir.Moves(ctx, tenant.ID{}, true, math.MaxInt32)
	if err != nil {
		return rep, err
	}
	// A finished move's old fence is left to settle, for the Sweep below
	// or a later one: Reconcile does not wait for it.
	cfg := move.Config{Settle: -1, Logger: a.l.cfg.Logger}
	for _, m := range moves {
		_, aborted, busy, err := a.ResumeStoppedMove(ctx, m.Tenant, cfg)
		switch {
		case err != nil:
			rep.Failures = append(rep.Failures, fmt.Errorf("move %d of tenant %s (%s): %w", m.ID, m.Tenant, m.From.Slug, err))
		case busy:
			rep.Skipped = append(rep.Skipped, m.Tenant)
		case aborted:
			rep.MovesUndone = append(rep.MovesUndone, m.Tenant)
		default:
			rep.MovesFinished = append(rep.MovesFinished, m.Tenant)
		}
	}
	if err := move.Sweep(ctx, a.l.prov, 0, false); err != nil {
		rep.Failures = append(rep.Failures, fmt.Errorf("remove settled fences: %w", err))
	}
	return rep, nil
}

// ResumeTenant finishes the provisioning of a tenant.
func (a *Admin) ResumeTenant(ctx context.Context, id tenant.ID) (tenant.Tenant, error) {
	a.log(ctx, "resume tenant", slog.String("tenant", id.String()))
	return a.l.prov.Resume(ctx, id)
}

// Incompatible lists the tenants whose tables are at a migration version
// outside the range this installation was opened with (Config.MinSchemaVersion
// and MaxSchemaVersion): the tenants that block a deploy of this code until
// fleet migrations move them.
func (a *Admin) Incompatible(ctx context.Context) ([]tenant.Tenant, error) {
	a.log(ctx, "list incompatible tenants")
	ts, err := a.l.dir.List(ctx, directory.Filter{})
	if err != nil {
		return nil, err
	}
	var out []tenant.Tenant
	for _, t := range ts {
		if !a.l.traffic.Compatible(t.SchemaVersion) {
			out = append(out, t)
		}
	}
	return out, nil
}
