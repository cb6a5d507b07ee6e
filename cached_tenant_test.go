package landlord

import (
	"context"
	"errors"
	"testing"

	"github.com/landlordhq/landlord/tenant"
)

// TestCachedTenant: the routing cache's entry follows a state set through
// the Landlord at once, and an unknown id is not found.
func TestCachedTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := setup(t, Config{})
	a := createTenant(t, l, "alpha", tenant.ModelRow)
	got, err := l.CachedTenant(ctx, a.ID)
	if err != nil || got.ID != a.ID || got.Slug != "alpha" || got.State != tenant.StateActive {
		t.Fatalf("CachedTenant = %+v, %v", got, err)
	}
	adm, err := l.Admin(ctx, "test the routing cache")
	must(t, err)
	for _, s := range []tenant.State{tenant.StateSuspended, tenant.StateReadOnly, tenant.StateActive} {
		if _, err := adm.SetState(ctx, a.ID, s); err != nil {
			t.Fatal(err)
		}
		if got, err := l.CachedTenant(ctx, a.ID); err != nil || got.State != s {
			t.Fatalf("after SetState(%s): CachedTenant = %s, %v", s, got.State, err)
		}
	}
	if _, err := l.CachedTenant(ctx, tenant.NewID()); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("CachedTenant of an unknown id = %v, want tenant.ErrNotFound", err)
	}
}
