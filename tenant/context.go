package tenant

import (
	"context"
	"errors"
	"log/slog"
)

// ErrNoTenant is returned by every tenant-traffic call made with a context
// that carries no tenant (see WithContext). No SQL is sent. There is no
// default tenant.
var ErrNoTenant = errors.New("no tenant in context")

type contextKey struct{}

// WithContext returns a context that carries tenant id. Every handle call
// made with it runs as that tenant. The zero id is no tenant.
func WithContext(ctx context.Context, id ID) context.Context {
	return context.WithValue(ctx, contextKey{}, id)
}

// FromContext returns the tenant ctx carries, if any.
func FromContext(ctx context.Context) (ID, bool) {
	id, ok := ctx.Value(contextKey{}).(ID)
	return id, ok && !id.IsZero()
}

// LogHandler wraps next so that every record logged with a context that
// carries a tenant gets a "tenant" attribute, so that an application's
// request logs can be read per tenant without passing the tenant around:
//
//	slog.SetDefault(slog.New(tenant.LogHandler(slog.NewJSONHandler(os.Stderr, nil))))
//	slog.InfoContext(ctx, "order placed", "order", id) // … tenant=<id>
//
// It adds nothing else: parameters and row values never reach logs through
// Landlord (SECURITY.md, I29).
func LogHandler(next slog.Handler) slog.Handler { return logHandler{next} }

type logHandler struct{ next slog.Handler }

func (h logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := FromContext(ctx); ok {
		r = r.Clone()
		r.AddAttrs(slog.String("tenant", id.String()))
	}
	return h.next.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.next.WithAttrs(attrs)}
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h.next.WithGroup(name)}
}
