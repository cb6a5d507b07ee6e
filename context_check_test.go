package landlord

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// TestContextCheckSetting: the installation-wide context check reaches every
// database with tenant tables, new ones included, and decides whether SQL
// inside one tenant's transaction can take on another's id: not when
// signed (the default), yes when unsigned, which is what that setting
// trades for its lower cost.
func TestContextCheckSetting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := setup(t, Config{})
	admin, err := l.Admin(ctx, "context check test")
	must(t, err)
	a := createTenant(t, l, "check-a", tenant.ModelRow)
	b := createTenant(t, l, "check-b", tenant.ModelRow)
	s := createTenant(t, l, "check-s", tenant.ModelSchema)
	d := createTenant(t, l, "check-d", tenant.ModelDatabase)
	h := l.Handle()
	for _, tn := range []tenant.Tenant{a, b, s, d} {
		_, err := h.Exec(WithTenant(ctx, tn.ID), `INSERT INTO parents (id, name) VALUES (1, $1)`, tn.Slug)
		must(t, err)
	}

	// forged is what a's transaction reads after it sets b's id itself.
	forged := func() int {
		t.Helper()
		var n int
		must(t, pgx.BeginFunc(WithTenant(ctx, a.ID), h, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true)`, b.ID.String()); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `SELECT count(*) FROM parents WHERE name = 'check-b'`).Scan(&n)
		}))
		return n
	}
	// checks reads the verifier of the control database, the template and
	// each tenant database.
	checks := func(dbs ...tenant.Tenant) map[string]migration.ContextCheck {
		t.Helper()
		out := map[string]migration.ContextCheck{}
		read := func(name string, c *pgx.Conn) {
			got, ok, err := migration.ReadContextCheck(ctx, c)
			must(t, err)
			if !ok {
				t.Fatalf("%s holds no tenant context", name)
			}
			out[name] = got
		}
		c, err := pgx.Connect(ctx, db.URL)
		must(t, err)
		read("control", c)
		c.Close(ctx)
		must(t, l.prov.WithTemplateDatabase(ctx, func(ctx context.Context, c *pgx.Conn) error {
			read("template", c)
			return nil
		}))
		for _, tn := range dbs {
			cfg, err := l.prov.ConnConfig(ctx, tn.Server, tn.Database, "")
			must(t, err)
			c, err := pgx.ConnectConfig(ctx, cfg)
			must(t, err)
			read(tn.Slug, c)
			c.Close(ctx)
		}
		return out
	}
	expect := func(want migration.ContextCheck, dbs ...tenant.Tenant) {
		t.Helper()
		if got, err := l.ContextCheck(ctx); err != nil || got != want {
			t.Errorf("recorded check %q, %v; want %q", got, err, want)
		}
		for name, got := range checks(dbs...) {
			if got != want {
				t.Errorf("%s: check %q, want %q", name, got, want)
			}
		}
	}

	expect(ContextSigned, d)
	if n := forged(); n != 0 {
		t.Fatalf("signed: a's transaction with b's id set by hand reads %d of b's rows", n)
	}

	var calls, lastDone, lastTotal int
	rep, err := admin.SetContextCheck(ctx, ContextUnsigned, func(done, total int) { calls, lastDone, lastTotal = calls+1, done, total })
	must(t, err)
	if calls == 0 || lastDone != lastTotal || lastTotal != len(rep.Targets) {
		t.Errorf("progress: %d calls, last %d of %d; %d targets", calls, lastDone, lastTotal, len(rep.Targets))
	}
	kinds := map[string]provision.ContextCheckStatus{}
	for _, tg := range rep.Targets {
		kinds[tg.Kind+" "+tg.Database] = tg.Status
	}
	for _, k := range []string{"control " + db.Name, "template " + l.prov.TemplateDatabase(), "tenant " + d.Database} {
		if kinds[k] != provision.ContextCheckChanged {
			t.Errorf("%s: %q, want changed (report %v)", k, kinds[k], kinds)
		}
	}
	d2 := createTenant(t, l, "check-d2", tenant.ModelDatabase)
	expect(ContextUnsigned, d, d2)
	if n := forged(); n != 1 {
		t.Errorf("unsigned: a's transaction with b's id set by hand reads %d of b's rows, want 1 (what the setting gives up)", n)
	}
	// The tenants' own traffic is unchanged.
	for _, tn := range []tenant.Tenant{a, b, s, d} {
		var name string
		must(t, h.QueryRow(WithTenant(ctx, tn.ID), `SELECT name FROM parents`).Scan(&name))
		if name != tn.Slug {
			t.Errorf("unsigned: %s reads %q", tn.Slug, name)
		}
	}

	// A process that opens the installation keeps the recorded check.
	l2, err := Open(ctx, db.URL, testMigrations(), Config{})
	must(t, err)
	l2.Close()
	expect(ContextUnsigned, d, d2)

	// Again: nothing to do. A bad value changes nothing.
	rep, err = admin.SetContextCheck(ctx, ContextUnsigned, nil)
	must(t, err)
	if n := rep.Count(provision.ContextCheckCurrent); n != len(rep.Targets) {
		t.Errorf("the same check again: %d of %d current", n, len(rep.Targets))
	}
	if _, err := admin.SetContextCheck(ctx, "lax", nil); err == nil {
		t.Error(`SetContextCheck("lax") succeeded`)
	}
	expect(ContextUnsigned, d, d2)

	_, err = admin.SetContextCheck(ctx, ContextSigned, nil)
	must(t, err)
	expect(ContextSigned, d, d2)
	if n := forged(); n != 0 {
		t.Errorf("signed again: a's transaction with b's id set by hand reads %d of b's rows", n)
	}
	if !errors.Is(ErrContextCheckIncomplete, provision.ErrContextCheckIncomplete) {
		t.Fatal("ErrContextCheckIncomplete is not provision's")
	}
}
