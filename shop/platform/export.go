package platform

import (
	"context"
	"fmt"
	"io"

	"github.com/landlordhq/landlord/archive"
	"github.com/landlordhq/landlord/tenant"
)

// Export writes all of a store's data to w as a Landlord archive (see
// landlord.Admin.ExportTenant): one consistent snapshot of every table of
// the store, which keeps selling meanwhile. The export is recorded in
// shop.admin_access with the operator's reason before any data is read, so
// no export goes unrecorded; the reason is required and an unknown tenant
// is store.ErrNotFound. w gets a partial archive when Export fails, which
// an import refuses as truncated.
func (p *Platform) Export(ctx context.Context, op Operator, id tenant.ID, reason string, w io.Writer) (archive.Manifest, error) {
	reason, err := checkAction(op, reason)
	if err != nil {
		return archive.Manifest{}, err
	}
	if _, err := p.tenant(ctx, id); err != nil {
		return archive.Manifest{}, err
	}
	admin, err := p.ll.Admin(ctx, fmt.Sprintf("operator %s: export: %s", op.Email, reason))
	if err != nil {
		return archive.Manifest{}, err
	}
	if err := p.recordAccess(ctx, op, id, "export", "", reason); err != nil {
		return archive.Manifest{}, err
	}
	m, err := admin.ExportTenant(ctx, id, w, archive.ExportOptions{})
	if err != nil {
		return m, fmt.Errorf("export store %s: %w", id, err)
	}
	return m, nil
}

// PurgeKeep is the platform's audit trail that outlives a purged store
// (landlord.Config.PurgeKeep): who looked into it, changed its state,
// exported it or acted as one of its users, and why. The store's own
// record in shop.stores goes with it.
func PurgeKeep() map[string]string {
	return map[string]string{
		"shop.admin_access":   "the operators' access log: who looked into, changed or exported the store, and why",
		"shop.impersonations": "the operators' impersonation log: who acted as one of the store's users, and why",
	}
}
