package landlord

import (
	"context"
	"io"
	"log/slog"

	"github.com/landlordhq/landlord/archive"
	"github.com/landlordhq/landlord/tenant"
)

// ExportTenant writes tenant id to w as an archive, one consistent
// snapshot of every tenant table, and returns its manifest (see
// archive.Export). The tenant keeps serving meanwhile.
func (a *Admin) ExportTenant(ctx context.Context, id tenant.ID, w io.Writer, opt archive.ExportOptions) (archive.Manifest, error) {
	a.log(ctx, "export tenant", slog.String("tenant", id.String()))
	return archive.Export(ctx, a.l.prov, id, w, opt)
}

// ImportTenant reads an archive into a new tenant, or over the tenant
// opt.Replace, in any model (see archive.Import). A bad or unfitting
// archive creates and changes nothing. A new tenant serves once all of its
// rows are in.
func (a *Admin) ImportTenant(ctx context.Context, r io.Reader, opt archive.ImportOptions) (tenant.Tenant, archive.Manifest, error) {
	a.log(ctx, "import tenant", slog.String("slug", opt.Slug), slog.String("replace", replaceAttr(opt.Replace)))
	return archive.Import(ctx, a.l.prov, r, opt)
}

// CloneTenant copies tenant id into a new tenant opt.Slug, in any model,
// with no file between (see archive.Clone).
func (a *Admin) CloneTenant(ctx context.Context, id tenant.ID, opt archive.ImportOptions) (tenant.Tenant, archive.Manifest, error) {
	a.log(ctx, "clone tenant", slog.String("tenant", id.String()), slog.String("slug", opt.Slug))
	return archive.Clone(ctx, a.l.prov, id, opt)
}

func replaceAttr(id tenant.ID) string {
	if id.IsZero() {
		return ""
	}
	return id.String()
}
