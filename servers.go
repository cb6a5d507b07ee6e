package landlord

import (
	"context"
	"log/slog"

	"github.com/landlordhq/landlord/provision"
)

// AddServer makes another PostgreSQL server hold tenants: it checks the
// server and installs what Landlord needs there (see
// provision.Provisioner.AddServer), then records it in the directory.
// Tenants are placed on it by provision.Request.Server, or by
// PlaceLeastLoaded; routing, the connection budget (one per server),
// fleet migrations, the audit and purges cover it from then on.
func (a *Admin) AddServer(ctx context.Context, spec provision.ServerSpec) (provision.ServerReport, error) {
	a.log(ctx, "add server", slog.String("server", spec.ID), slog.String("host", spec.Host))
	return a.l.prov.AddServer(ctx, spec)
}

// ServerLoads returns every server's tenants and load, least loaded first
// (provision.Provisioner.Loads).
func (a *Admin) ServerLoads(ctx context.Context) ([]provision.ServerLoad, error) {
	return a.l.prov.Loads(ctx)
}
