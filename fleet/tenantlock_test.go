package fleet_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/fleet"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// TestRunWaitsForTheTenantsLock: a tenant's target is migrated only under
// the tenant's provisioning lock, which creates, purges and moves hold, so
// a run waits while one of them works on the tenant; and a tenant that the
// holder took elsewhere (here: into deletion) is not migrated where the run
// found it, but fails with ErrTenantChanged.
func TestRunWaitsForTheTenantsLock(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	free := e.create(t, "free-shop", tenant.ModelSchema)
	busy := e.create(t, "busy-shop", tenant.ModelSchema)
	gone := e.create(t, "gone-shop", tenant.ModelDatabase)

	// hold holds tn's lock until release is closed, running then before
	// it lets go.
	release := make(chan struct{})
	held := make(chan error, 2)
	hold := func(tn tenant.Tenant, then func(*pgx.Conn) error) {
		go func() {
			held <- e.prov.WithTenantLock(ctx, tn.ID, func(conn *pgx.Conn) error {
				<-release
				return then(conn)
			})
		}()
	}
	hold(busy, func(*pgx.Conn) error { return nil })
	hold(gone, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `UPDATE landlord.tenants SET state = 'deleting' WHERE id = $1`, gone.ID)
		return err
	})
	// Both holders have their locks before the run starts.
	keys := func(tn tenant.Tenant) int32 { _, k := provision.TenantLockKeys(tn.ID); return k }
	waitFor(t, "the holders do not hold their locks", func() bool {
		return e.count(t, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid::int4 = ANY($1)`,
			[]int32{keys(busy), keys(gone)}) == 2
	})

	up := startUp(t, e.fleet(t, files(2), fleet.Config{}))
	waitFor(t, "the run does not wait for both tenants", func() bool {
		return e.count(t, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid::int4 = ANY($1)`,
			[]int32{keys(busy), keys(gone)}) == 2
	})
	e.waitLedger(t, free.Schema, []int{1, 2}, "the free tenant was not migrated while the others waited")
	for _, tn := range []tenant.Tenant{busy, gone} {
		d, s := e.where(tn)
		if got := e.ledger(t, d, s); !slices.Equal(got, []int{1}) {
			t.Fatalf("%s migrated to %v while another session held its lock", tn.Slug, got)
		}
	}
	close(release)
	for range 2 {
		if err := <-held; err != nil {
			t.Fatal(err)
		}
	}
	<-up.done
	if !errors.Is(up.err, fleet.ErrTargetsFailed) {
		t.Fatalf("run: %v, want ErrTargetsFailed (the deleted tenant)", up.err)
	}
	for _, r := range up.rep.Targets {
		switch r.Tenant {
		case busy.ID:
			if r.Status != fleet.StateDone || r.To != 2 {
				t.Errorf("busy tenant: %+v, want done at 2 once its lock was free", r)
			}
		case gone.ID:
			if r.Status != fleet.StateFailed || !strings.Contains(r.Error, fleet.ErrTenantChanged.Error()) || !strings.Contains(r.Error, "deleting") {
				t.Errorf("tenant deleted meanwhile: %+v, want failed with ErrTenantChanged", r)
			}
		}
	}
	if v := e.schemaVersion(t, busy); v != 2 {
		t.Errorf("directory: busy tenant at %d, want 2", v)
	}
	d, s := e.where(gone)
	if got := e.ledger(t, d, s); !slices.Equal(got, []int{1}) {
		t.Errorf("the tenant deleted meanwhile was migrated: %v", got)
	}
	if v := e.schemaVersion(t, gone); v != 1 {
		t.Errorf("directory: the tenant deleted meanwhile at %d, want 1", v)
	}
	if n := e.count(t, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid::int4 = ANY($1)`,
		[]int32{keys(busy), keys(gone)}); n != 0 {
		t.Errorf("%d tenant locks still held after the run", n)
	}
}
