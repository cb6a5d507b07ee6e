package fleet_test

import (
	"strings"
	"testing"

	"github.com/landlordhq/landlord/fleet"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// TestUpOnTwoServers: a run migrates the tenants of a second server and its
// shared tables, also while it holds no row tenant yet, so that a row
// tenant placed there later is at the head.
func TestUpOnTwoServers(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	srv2 := pgtest.StartExtra(t)
	db := srv2.Database
	if _, err := e.prov.AddServer(ctx, provision.ServerSpec{ID: "second", Host: srv2.Host, Port: srv2.Port, Database: db}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []tenant.Model{tenant.ModelSchema, tenant.ModelDatabase} {
		if _, err := e.prov.Create(ctx, provision.Request{Slug: "far-" + string(m), Model: m, Server: "second"}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := e.fleet(t, files(3), fleet.Config{}).Up(ctx)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	var onSecond []string
	for _, r := range rep.Targets {
		if r.Status != fleet.StateDone || r.To != 3 {
			t.Errorf("%s: %+v", r.Key, r)
		}
		if strings.HasPrefix(r.Key, "second/") {
			onSecond = append(onSecond, r.Key)
		}
	}
	if len(onSecond) != 3 || !strings.HasSuffix(strings.Join(onSecond, " "), "second/"+db+"/"+provision.SharedSchema) {
		t.Errorf("targets on the second server: %v, want its two tenants and its shared tables", onSecond)
	}
	prov3, err := provision.New(ctx, e.pool, load(t, files(3)), provision.Config{})
	if err != nil {
		t.Fatal(err)
	}
	row, err := prov3.Create(ctx, provision.Request{Slug: "far-row", Model: tenant.ModelRow, Server: "second"})
	if err != nil {
		t.Fatal(err)
	}
	if row.SchemaVersion != 3 {
		t.Errorf("row tenant on the second server at version %d, want 3", row.SchemaVersion)
	}
}
