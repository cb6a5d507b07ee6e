package landlord

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// TestPurgeTenant: with Config.PurgeGrace, DeleteTenant stops a tenant's
// traffic at once and keeps its data; RestoreTenant serves it again with
// its data; PurgeTenant with now removes it, and the verifier, also run on
// its own later, finds nothing of it.
func TestPurgeTenant(t *testing.T) {
	for _, m := range tenant.Models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l, _ := setup(t, Config{PurgeGrace: 24 * time.Hour})
			tn := createTenant(t, l, "leaving", m)
			tctx := WithTenant(ctx, tn.ID)
			h := l.Handle()
			_, err := h.Exec(tctx, `INSERT INTO parents (id, name) VALUES (1, 'p')`)
			must(t, err)
			admin, err := l.Admin(ctx, "test purges")
			must(t, err)

			must(t, l.DeleteTenant(ctx, tn.ID))
			if _, err := h.Exec(tctx, `SELECT 1`); err == nil {
				t.Fatalf("a tenant deleted with a grace period still serves traffic")
			}
			if _, err := admin.PurgeTenant(ctx, tn.ID, false); !errors.Is(err, provision.ErrPurgeNotDue) {
				t.Errorf("purge in the grace period: %v, want ErrPurgeNotDue", err)
			}
			back, err := admin.RestoreTenant(ctx, tn.ID)
			must(t, err)
			if back.State != tenant.StateActive {
				t.Errorf("restored tenant is %s, want active", back.State)
			}
			var n int
			must(t, h.QueryRow(tctx, `SELECT count(*) FROM parents`).Scan(&n))
			if n != 1 {
				t.Errorf("restored tenant has %d rows, want its 1", n)
			}

			must(t, admin.DeleteTenant(ctx, tn.ID, time.Hour))
			rep, err := admin.PurgeTenant(ctx, tn.ID, true)
			if err != nil || !rep.Clean() {
				t.Fatalf("purge now: %v; %s", err, rep.Summary())
			}
			if _, err := h.Exec(tctx, `SELECT 1`); !errors.Is(err, tenant.ErrNotFound) {
				t.Errorf("a purged tenant's call: %v, want not found", err)
			}
			again, err := admin.VerifyPurge(ctx, tn.ID)
			must(t, err)
			if !again.Clean() || again.Record == nil || again.Record.Slug != "leaving" {
				t.Errorf("verify later: clean %v, record %+v; want clean, with the purged tenant's record", again.Clean(), again.Record)
			}
		})
	}
}

// TestPurgeGraceRefused: a negative grace period is refused by Open.
func TestPurgeGraceRefused(t *testing.T) {
	t.Parallel()
	_, err := Open(context.Background(), "postgres://localhost/x", testMigrations(), Config{PurgeGrace: -time.Second})
	if err == nil || err.Error() != "landlord config: PurgeGrace must not be negative" {
		t.Errorf("open with a negative PurgeGrace: %v", err)
	}
}
