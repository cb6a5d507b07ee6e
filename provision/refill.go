package provision

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/tenant"
)

// Refill runs fill over the rows of an existing tenant: an import over it.
// fill runs under the tenant's provisioning lock, so no delete, resume or
// other refill of the tenant runs meanwhile, and only while the tenant is
// active, read-only or suspended; any other state is a *tenant.StateError
// and fill does not run. The tenant keeps serving: fill must make its
// change in one transaction of its own, so that readers see the old rows or
// the new ones and a failure or crash leaves the old ones. The ledger
// records the refill and its outcome.
func (p *Provisioner) Refill(ctx context.Context, id tenant.ID, fill func(context.Context, tenant.Tenant) error) (tenant.Tenant, error) {
	start := time.Now()
	var t tenant.Tenant
	err := p.withTenantLock(ctx, id, func(*pgx.Conn) (err error) {
		if t, err = p.dir.Get(ctx, id); err != nil {
			return err
		}
		switch t.State {
		case tenant.StateActive, tenant.StateReadOnly, tenant.StateSuspended:
		default:
			return &tenant.StateError{ID: id, State: t.State}
		}
		if err := p.dir.Log(ctx, id, "refill", "intent", ""); err != nil {
			return err
		}
		if err := fill(ctx, t); err != nil {
			_ = p.dir.Log(context.WithoutCancel(ctx), id, "refill", "failed", err.Error())
			return err
		}
		return p.dir.Log(ctx, id, "refill", "done", "")
	})
	if err != nil {
		return t, fmt.Errorf("refill tenant %s: %w", id, err)
	}
	p.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "tenant refilled", slog.String("tenant", id.String()), slog.Duration("took", time.Since(start)))
	return t, nil
}
