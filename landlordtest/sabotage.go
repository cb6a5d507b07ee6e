package landlordtest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/audit"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// attackI33RoleSabotage (SECURITY.md, I33): SQL in A's tenant transaction
// changes the settings of the login role its traffic runs as (the app role
// in the row and schema models, A's own login in the database model), which
// PostgreSQL allows a role to do to itself, and so makes every later
// session of that role read-only. The audit must report it and a repair
// must restore service: the provisioner's, and the one a Landlord runs on
// its schedule. The step runs on installations of its own, with an app
// role of their own, so the sabotage reaches no other step or model.
func (f *fx) attackI33RoleSabotage(t *testing.T) {
	g := newFx(t, f.k, f.m, landlord.Config{AppRole: randomName("landlordtest_app"), MaxConns: 1, RoleRepairInterval: -1})
	target := g.roles.App
	if g.m == tenant.ModelDatabase {
		target = g.a.ID.RoleName()
	}
	t.Cleanup(func() { g.exec(t, g.a, `ALTER ROLE `+ident(target)+` RESET ALL`) })
	t.Run("defense-off", func(t *testing.T) {
		g.sabotage(t, target)
		if got := g.readOnly(t); got != "on" {
			t.Fatalf("after the sabotage A's transactions have default_transaction_read_only %q, want on", got)
		}
		findings, err := g.l.Audit(context.Background(), audit.FleetConfig{})
		must(t, err)
		if !slices.ContainsFunc(findings, func(x audit.Finding) bool { return x.Check == "role_setting" && x.Object == target }) {
			t.Fatalf("the audit did not report the setting of %s: %+v", target, findings)
		}
	})
	t.Run("repair", func(t *testing.T) {
		repaired, err := g.l.Provisioner().RepairRoles(context.Background())
		must(t, err)
		if len(repaired) == 0 {
			t.Fatal("the repair found nothing to repair")
		}
		if got := g.readOnly(t); got != "off" {
			t.Fatalf("after the repair A's transactions have default_transaction_read_only %q, want off", got)
		}
	})
	t.Run("scheduled-repair", func(t *testing.T) {
		// A second process of the installation, repairing often.
		l, err := landlord.Open(context.Background(), g.l.Provisioner().Admin().Config().ConnString(), g.k.Migrations,
			landlord.Config{AppRole: g.roles.App, RoleRepairInterval: 50 * time.Millisecond, Install: provision.InstallExisting})
		must(t, err)
		defer l.Close()
		g.sabotage(t, target)
		deadline := time.Now().Add(30 * time.Second)
		for g.readOnly(t) != "off" {
			if time.Now().After(deadline) {
				t.Fatal("the scheduled repair did not undo the sabotage")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// sabotage runs, as A through the handle, ALTER ROLE … SET on target. In
// the schema model A's transaction first leaves its tenant role for the app
// role, which any tenant SQL can (SECURITY.md, I31).
func (f *fx) sabotage(t *testing.T, target string) {
	t.Helper()
	err := pgx.BeginFunc(f.ctxA, f.h, func(tx pgx.Tx) error {
		if f.m == tenant.ModelSchema {
			if _, err := tx.Exec(f.ctxA, `SELECT set_config('role', 'none', true)`); err != nil {
				return err
			}
		}
		_, err := tx.Exec(f.ctxA, `ALTER ROLE `+ident(target)+` SET default_transaction_read_only = on`)
		return err
	})
	must(t, err)
}

// readOnly returns A's default_transaction_read_only on a new connection:
// the role's settings apply when a session starts. The first call costs
// its connection (a session-level set_config), so the second gets a new
// one.
func (f *fx) readOnly(t *testing.T) string {
	t.Helper()
	if _, err := f.h.Exec(f.ctxA, `SELECT set_config('landlordtest.i33', '1', false)`); err != nil && !errors.Is(err, landlord.ErrSessionState) {
		t.Fatal(err)
	}
	var v string
	must(t, f.h.QueryRow(f.ctxA, `SELECT current_setting('default_transaction_read_only')`).Scan(&v))
	return v
}
