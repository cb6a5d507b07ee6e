package landlord

import (
	"context"
	"log/slog"
	"time"

	"github.com/landlordhq/landlord/tenant"
)

// WithTenant returns a context that carries tenant id. Every Handle call
// made with it runs as that tenant. The zero id is no tenant. It is
// tenant.WithContext, for code that needs no more of Landlord.
func WithTenant(ctx context.Context, id tenant.ID) context.Context {
	return tenant.WithContext(ctx, id)
}

// TenantFrom returns the tenant ctx carries, if any (tenant.FromContext).
func TenantFrom(ctx context.Context) (tenant.ID, bool) { return tenant.FromContext(ctx) }

// LogHandler wraps next so that every record logged with a context that
// carries a tenant gets a "tenant" attribute (tenant.LogHandler):
//
//	slog.SetDefault(slog.New(landlord.LogHandler(slog.NewJSONHandler(os.Stderr, nil))))
//	slog.InfoContext(ctx, "order placed", "order", id) // … tenant=<id>
func LogHandler(next slog.Handler) slog.Handler { return tenant.LogHandler(next) }

// Tracer observes tenant traffic: every handle call, and every connection
// closed for leftover session state. Package metrics implements it for
// Prometheus. It is called on the hot path: every method must be cheap and
// safe for concurrent use.
type Tracer interface {
	// TenantCalls is called once per routing entry of tenant t (when the
	// tenant is first used, and again whenever the directory changes its
	// entry). The function it returns is called when each handle call of
	// t ends (Exec returned, rows or batch results closed, transaction
	// committed or rolled back, or the call failed), with the time the
	// call started and its outcome; nil observes nothing.
	TenantCalls(t tenant.Tenant) func(start time.Time, err error)
	// ConnReplaced is called when a connection is closed because tenant
	// SQL may have left session state on it.
	ConnReplaced()
}

// ConnWaitTracer is a Tracer that also wants to know how long each call of
// a tenant waited for its connection, which is part of the call's
// duration. The handle asks for it once per routing entry, as for
// TenantCalls; package tenantstats implements it.
type ConnWaitTracer interface {
	TenantConnWaits(t tenant.Tenant) func(wait time.Duration)
}
