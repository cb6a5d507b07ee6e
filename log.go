package landlord

import (
	"context"
	"log/slog"
)

// LogHandler wraps next so that every record logged with a context that
// carries a tenant (see WithTenant) gets a "tenant" attribute, so that an
// application's request logs can be read per tenant without passing the
// tenant around:
//
//	slog.SetDefault(slog.New(landlord.LogHandler(slog.NewJSONHandler(os.Stderr, nil))))
//	slog.InfoContext(ctx, "order placed", "order", id) // … tenant=<id>
//
// It adds nothing else: parameters and row values never reach logs through
// Landlord (THREATS I29).
func LogHandler(next slog.Handler) slog.Handler { return tenantHandler{next} }

type tenantHandler struct{ next slog.Handler }

func (h tenantHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h tenantHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := TenantFrom(ctx); ok {
		r = r.Clone()
		r.AddAttrs(slog.String("tenant", id.String()))
	}
	return h.next.Handle(ctx, r)
}

func (h tenantHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return tenantHandler{h.next.WithAttrs(attrs)}
}

func (h tenantHandler) WithGroup(name string) slog.Handler {
	return tenantHandler{h.next.WithGroup(name)}
}
