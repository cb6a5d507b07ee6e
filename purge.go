package landlord

import (
	"context"
	"log/slog"
	"time"

	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// DeleteTenant deletes tenant id as Landlord.DeleteTenant does, with grace
// instead of Config.PurgeGrace: the tenant is deleting at once, and is
// purged before DeleteTenant returns when grace is 0, or once grace has
// passed otherwise (see provision.Provisioner.DeleteAfter).
func (a *Admin) DeleteTenant(ctx context.Context, id tenant.ID, grace time.Duration) error {
	a.log(ctx, "delete tenant", slog.String("tenant", id.String()), slog.Duration("grace", grace))
	err := a.l.prov.DeleteAfter(ctx, id, grace)
	a.l.traffic.Invalidate(id)
	return err
}

// RestoreTenant takes back a tenant deleted with a grace period that has
// not ended, to the state it had before (see
// provision.Provisioner.Restore).
func (a *Admin) RestoreTenant(ctx context.Context, id tenant.ID) (tenant.Tenant, error) {
	a.log(ctx, "restore tenant", slog.String("tenant", id.String()))
	t, err := a.l.prov.Restore(ctx, id)
	a.l.traffic.Invalidate(id)
	return t, err
}

// PurgeTenant removes everything tenant id had, on every server, and
// returns what the verifier then found (see
// provision.Provisioner.Purge): the tenant must be deleting with its
// grace period over, or, with now, in any state. An error wraps
// provision.ErrNotPurged when something is left, with the report that
// says what.
func (a *Admin) PurgeTenant(ctx context.Context, id tenant.ID, now bool) (provision.PurgeReport, error) {
	a.log(ctx, "purge tenant", slog.String("tenant", id.String()), slog.Bool("now", now))
	a.flushStats(ctx)
	rep, err := a.l.prov.Purge(ctx, id, now)
	a.l.traffic.Invalidate(id)
	return rep, err
}

// PurgeDue purges every tenant whose purge is due and verifies each (see
// provision.Provisioner.PurgeDue). progress, when set, is called after
// each tenant.
func (a *Admin) PurgeDue(ctx context.Context, progress func(done, total int)) ([]provision.PurgeResult, error) {
	a.log(ctx, "purge due tenants")
	a.flushStats(ctx)
	res, err := a.l.prov.PurgeDue(ctx, progress)
	for _, r := range res {
		a.l.traffic.Invalidate(r.Tenant)
	}
	return res, err
}

// VerifyPurge looks on every server for anything left of tenant id and
// reports every check (see provision.Provisioner.VerifyPurge).
func (a *Admin) VerifyPurge(ctx context.Context, id tenant.ID) (provision.PurgeReport, error) {
	a.log(ctx, "verify purge", slog.String("tenant", id.String()))
	return a.l.prov.VerifyPurge(ctx, id)
}

// flushStats writes what this process counted of its tenants' calls now,
// so that a purge removes it rather than the next flush writing it after
// the purge. Other processes flush on their own; a row one of them writes
// after a purge is what the verifier reports, and purging again removes.
func (a *Admin) flushStats(ctx context.Context) {
	if a.l.stats == nil {
		return
	}
	if err := a.l.stats.Flush(ctx, a.l.admin); err != nil {
		a.l.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "tenant statistics not recorded before a purge", slog.Any("error", err))
	}
}
