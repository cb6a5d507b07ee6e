package landlord

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/tenant"
)

// TestAdminLogsEveryUse: every use of an admin scope is logged with the
// scope's reason, and the uses that reach one tenant name it
// (ARCHITECTURE.md, "Fail closed"): cross-tenant work leaves a trail.
func TestAdminLogsEveryUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var logs syncBuffer
	l, _ := setup(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	tn := createTenant(t, l, "admin-log", tenant.ModelRow)
	const reason = "ticket 4711: reconcile an order"
	a, err := l.Admin(ctx, reason)
	must(t, err)
	uses := []struct {
		what   string // the log message
		tenant bool   // the line names the tenant
		use    func() error
	}{
		{"admin scope opened", false, func() error { return nil }},
		{"admin: tenant scope", true, func() error {
			var n int
			return a.Tenant(ctx, tn.ID).QueryRow(ctx, `SELECT count(*) FROM parents`).Scan(&n)
		}},
		{"admin: list tenants", false, func() error { _, err := a.Tenants(ctx, directory.Filter{}); return err }},
		{"admin: each tenant", false, func() error {
			return a.Each(ctx, directory.Filter{}, func(context.Context, tenant.Tenant, Querier) error { return nil })
		}},
		{"admin: set state", true, func() error { _, err := a.SetState(ctx, tn.ID, tenant.StateActive); return err }},
		{"admin: set settings", true, func() error { _, err := a.SetSettings(ctx, tn.ID, tenant.Settings{}); return err }},
		{"admin: list incompatible tenants", false, func() error { _, err := a.Incompatible(ctx); return err }},
		{"admin: reconcile", false, func() error { _, err := a.Reconcile(ctx); return err }},
	}
	for _, u := range uses {
		must(t, u.use())
	}
	lines := strings.Split(logs.String(), "\n")
	for _, u := range uses {
		found := false
		for _, line := range lines {
			if !strings.Contains(line, "msg=\""+u.what+"\"") {
				continue
			}
			found = true
			if !strings.Contains(line, `reason="`+reason+`"`) {
				t.Errorf("%q logged without the scope's reason: %s", u.what, line)
			}
			if u.tenant && !strings.Contains(line, "tenant="+tn.ID.String()) {
				t.Errorf("%q logged without the tenant: %s", u.what, line)
			}
		}
		if !found {
			t.Errorf("no log line %q for a use of the admin scope; the log:\n%s", u.what, logs.String())
		}
	}
}
