package landlord

import (
	"context"

	"github.com/landlordhq/landlord/tenant"
)

type tenantKey struct{}

// WithTenant returns a context that carries tenant id. Every Handle call made
// with it runs as that tenant. The zero id is no tenant.
func WithTenant(ctx context.Context, id tenant.ID) context.Context {
	return context.WithValue(ctx, tenantKey{}, id)
}

// TenantFrom returns the tenant ctx carries, if any.
func TenantFrom(ctx context.Context) (tenant.ID, bool) {
	id, ok := ctx.Value(tenantKey{}).(tenant.ID)
	return id, ok && !id.IsZero()
}
