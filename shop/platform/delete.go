package platform

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// MaxDeleteGrace bounds how long a deleted store waits for its purge.
const MaxDeleteGrace = 90 * 24 * time.Hour

// DeleteStore deletes a store for an operator: its traffic stops at once
// (its pages answer that it is gone), and its data is purged once grace
// has passed (Landlord's PurgeDue or Reconcile), or before DeleteStore
// returns when grace is 0. Until then RestoreStore takes it back. The
// deletion is recorded in shop.admin_access with the reason first; the
// operators' records outlive the store's purge (PurgeKeep). grace is 0 to
// MaxDeleteGrace.
func (p *Platform) DeleteStore(ctx context.Context, op Operator, id tenant.ID, reason string, grace time.Duration) error {
	reason, err := checkAction(op, reason)
	if err != nil {
		return err
	}
	if grace < 0 || grace > MaxDeleteGrace {
		return fmt.Errorf("delete store: keep it 0 to %d days", int(MaxDeleteGrace.Hours()/24))
	}
	if _, err := p.tenant(ctx, id); err != nil {
		return err
	}
	admin, err := p.ll.Admin(ctx, fmt.Sprintf("operator %s: delete: %s", op.Email, reason))
	if err != nil {
		return err
	}
	if err := p.recordAccess(ctx, op, id, "delete", grace.String(), reason); err != nil {
		return err
	}
	if err := admin.DeleteTenant(ctx, id, grace); err != nil {
		return fmt.Errorf("delete store %s: %w", id, err)
	}
	return nil
}

// RestoreStore takes back a store deleted with a grace period that has not
// ended, to the state it had; recorded with the reason.
func (p *Platform) RestoreStore(ctx context.Context, op Operator, id tenant.ID, reason string) (tenant.Tenant, error) {
	reason, err := checkAction(op, reason)
	if err != nil {
		return tenant.Tenant{}, err
	}
	if _, err := p.tenant(ctx, id); err != nil {
		return tenant.Tenant{}, err
	}
	admin, err := p.ll.Admin(ctx, fmt.Sprintf("operator %s: restore: %s", op.Email, reason))
	if err != nil {
		return tenant.Tenant{}, err
	}
	if err := p.recordAccess(ctx, op, id, "restore", "", reason); err != nil {
		return tenant.Tenant{}, err
	}
	t, err := admin.RestoreTenant(ctx, id)
	if err != nil {
		return t, fmt.Errorf("restore store %s: %w", id, err)
	}
	return t, nil
}

// PurgeStore purges a deleted store now, before its grace period ends,
// and returns what the verifier found; recorded with the reason. A store
// that is not deleted is refused: deleting comes first.
func (p *Platform) PurgeStore(ctx context.Context, op Operator, id tenant.ID, reason string) (provision.PurgeReport, error) {
	reason, err := checkAction(op, reason)
	if err != nil {
		return provision.PurgeReport{}, err
	}
	t, err := p.tenant(ctx, id)
	if err != nil {
		return provision.PurgeReport{}, err
	}
	if t.State != tenant.StateDeleting {
		return provision.PurgeReport{}, fmt.Errorf("purge store %s: %w", t.Slug, ErrNotDeleted)
	}
	admin, err := p.ll.Admin(ctx, fmt.Sprintf("operator %s: purge: %s", op.Email, reason))
	if err != nil {
		return provision.PurgeReport{}, err
	}
	if err := p.recordAccess(ctx, op, id, "purge", "", reason); err != nil {
		return provision.PurgeReport{}, err
	}
	rep, err := admin.PurgeTenant(ctx, id, true)
	if err != nil {
		return rep, fmt.Errorf("purge store %s: %w", t.Slug, err)
	}
	return rep, nil
}

// PurgeAfter says when a deleted store's purge is due; ok is false for a
// store that is not waiting for one.
func (p *Platform) PurgeAfter(ctx context.Context, id tenant.ID) (at time.Time, ok bool, err error) {
	rec, err := p.ll.Directory().GetPurge(ctx, id)
	if errors.Is(err, tenant.ErrNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	return rec.PurgeAfter, rec.State == directory.PurgeScheduled, nil
}

// ErrNotDeleted is returned by PurgeStore for a store that is not deleted.
var ErrNotDeleted = errors.New("the store is not deleted: delete it first")
