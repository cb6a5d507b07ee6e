package landlord

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/fleet"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// globalV1 is the platform's reference data: two global tables, one
// referencing the other, seeded by the migration.
func globalV1() fstest.MapFS {
	return fstest.MapFS{"001_reference.up.sql": {Data: []byte(`
CREATE TABLE currencies (code text PRIMARY KEY, name text NOT NULL, digits int NOT NULL DEFAULT 2);
INSERT INTO currencies VALUES ('EUR', 'Euro', 2), ('USD', 'US Dollar', 2), ('JPY', 'Yen', 0);
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL, currency text NOT NULL REFERENCES currencies (code));
INSERT INTO countries VALUES ('DE', 'Germany', 'EUR'), ('JP', 'Japan', 'JPY');`)}}
}

// globalV2 adds a table of plans.
func globalV2() fstest.MapFS {
	fsys := globalV1()
	fsys["002_plans.up.sql"] = &fstest.MapFile{Data: []byte(`
CREATE TABLE plans (code text PRIMARY KEY, seats int NOT NULL);
INSERT INTO plans VALUES ('free', 1), ('team', 10);`)}
	return fsys
}

// ordersV1 are tenant tables that reference a global table.
func ordersV1() fstest.MapFS {
	return fstest.MapFS{"001_orders.up.sql": {Data: []byte(`
CREATE TABLE orders (
	tenant_id uuid   NOT NULL,
	id        bigint NOT NULL,
	currency  text   NOT NULL REFERENCES global.currencies (code),
	PRIMARY KEY (tenant_id, id)
);`)}}
}

// ordersV2 adds a tenant table that references the global table of
// globalV2.
func ordersV2() fstest.MapFS {
	fsys := ordersV1()
	fsys["002_subscriptions.up.sql"] = &fstest.MapFile{Data: []byte(`
CREATE TABLE subscriptions (
	tenant_id uuid NOT NULL,
	plan      text NOT NULL REFERENCES global.plans (code),
	PRIMARY KEY (tenant_id, plan)
);`)}
	return fsys
}

func setHash(fsys fs.FS) string {
	set, err := migration.Load(fsys)
	if err != nil {
		panic(err)
	}
	return set.Hash()[:12]
}

// globalTemplate is a control database installed with globalV1 and
// ordersV1.
var globalTemplate = &pgtest.Template{
	Name: "landlord-global-" + setHash(globalV1()) + "-" + setHash(ordersV1()) + "-" + directory.Migrations().Hash()[:12],
	Setup: func(ctx context.Context, db *pgtest.DB) error {
		l, err := Open(ctx, db.URL, ordersV1(), Config{Global: globalV1()})
		if err != nil {
			return err
		}
		l.Close()
		return nil
	},
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// TestGlobalTables: the same SQL reads the global tables in all three
// models; no tenant writes them; tenant tables reference them by foreign
// key; writes reach database tenants through SyncGlobal, and new database
// tenants are born with the current rows; a sync that would delete a row a
// tenant references fails that tenant's database alone; fleet migrations
// bring new global tables to every tenant database.
func TestGlobalTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := server.NewDB(t, globalTemplate)
	ll, err := Open(ctx, db.URL, ordersV1(), Config{Global: globalV1()})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(ll.Close)
	h := ll.Handle()
	create := func(slug string, m tenant.Model) tenant.Tenant {
		t.Helper()
		tn, err := ll.CreateTenant(ctx, provision.Request{Slug: slug, Model: m})
		if err != nil {
			t.Fatalf("create %s tenant: %v", m, err)
		}
		return tn
	}
	tenants := []tenant.Tenant{
		create("row-a", tenant.ModelRow), create("schema-a", tenant.ModelSchema),
		create("db-a", tenant.ModelDatabase), create("db-b", tenant.ModelDatabase),
	}
	codes := func(tn tenant.Tenant) string {
		t.Helper()
		var s string
		if err := h.QueryRow(WithTenant(ctx, tn.ID), `SELECT string_agg(code, ',' ORDER BY code) FROM global.currencies`).Scan(&s); err != nil {
			t.Fatalf("%s (%s): read global.currencies: %v", tn.Slug, tn.Model, err)
		}
		return s
	}

	t.Run("read in every model", func(t *testing.T) {
		for _, tn := range tenants {
			if got := codes(tn); got != "EUR,JPY,USD" {
				t.Errorf("%s (%s): currencies %q, want EUR,JPY,USD", tn.Slug, tn.Model, got)
			}
			var name string
			err := h.QueryRow(WithTenant(ctx, tn.ID), `SELECT u.name FROM global.countries c JOIN global.currencies u ON u.code = c.currency
				WHERE c.code = $1`, "JP").Scan(&name)
			if err != nil || name != "Yen" {
				t.Errorf("%s (%s): join of global tables: %q, %v", tn.Slug, tn.Model, name, err)
			}
		}
	})

	t.Run("tenants cannot write", func(t *testing.T) {
		for _, tn := range tenants {
			tctx := WithTenant(ctx, tn.ID)
			for _, sql := range []string{
				`INSERT INTO global.currencies VALUES ('XTS', 'Test', 2)`,
				`UPDATE global.currencies SET digits = 4`,
				`DELETE FROM global.countries`,
				`TRUNCATE global.countries`,
				`CREATE TABLE global.mine (id int)`,
			} {
				if _, err := h.Exec(tctx, sql); pgCode(err) != pgerrcode.InsufficientPrivilege {
					t.Errorf("%s (%s): %s: %v, want permission denied", tn.Slug, tn.Model, sql, err)
				}
			}
		}
		if got := codes(tenants[2]); got != "EUR,JPY,USD" {
			t.Errorf("currencies after the refused writes: %q", got)
		}
	})

	t.Run("foreign key to a global table", func(t *testing.T) {
		for _, tn := range tenants {
			tctx := WithTenant(ctx, tn.ID)
			if _, err := h.Exec(tctx, `INSERT INTO orders (id, currency) VALUES (1, 'EUR')`); err != nil {
				t.Errorf("%s (%s): order in a known currency: %v", tn.Slug, tn.Model, err)
			}
			if _, err := h.Exec(tctx, `INSERT INTO orders (id, currency) VALUES (2, 'XXX')`); pgCode(err) != pgerrcode.ForeignKeyViolation {
				t.Errorf("%s (%s): order in an unknown currency: %v, want a foreign key violation", tn.Slug, tn.Model, err)
			}
		}
	})

	w, err := ll.GlobalAdmin(ctx, "test: new currencies")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ll.GlobalAdmin(ctx, " "); !errors.Is(err, ErrNoReason) {
		t.Errorf("GlobalAdmin without a reason: %v, want ErrNoReason", err)
	}

	t.Run("sync", func(t *testing.T) {
		if _, err := w.Exec(ctx, `INSERT INTO currencies VALUES ('CHF', 'Swiss Franc', 2)`); err != nil {
			t.Fatalf("write: %v", err)
		}
		for _, tn := range tenants[:2] {
			if got := codes(tn); got != "CHF,EUR,JPY,USD" {
				t.Errorf("%s (%s) reads the control database: %q right after the write", tn.Slug, tn.Model, got)
			}
		}
		if got := codes(tenants[2]); got != "EUR,JPY,USD" {
			t.Errorf("database tenant before the sync: %q, want its old copy", got)
		}
		rep, err := ll.SyncGlobal(ctx)
		if err != nil {
			t.Fatalf("SyncGlobal: %v", err)
		}
		// Both tenant databases and the template database.
		if rep.Synced != 3 || rep.Failed != 0 || len(rep.Copies) != 3 {
			t.Errorf("SyncGlobal report: %+v, want 3 copies synced", rep)
		}
		for _, tn := range tenants[2:] {
			if got := codes(tn); got != "CHF,EUR,JPY,USD" {
				t.Errorf("%s after the sync: %q", tn.Slug, got)
			}
		}
		again, err := ll.SyncGlobal(ctx)
		if err != nil || again.Synced != 0 || again.Current != 3 || again.Version != rep.Version {
			t.Errorf("second SyncGlobal: %+v, %v; want every copy current at %s", again, err, rep.Version)
		}
	})

	t.Run("new database tenant has the current rows", func(t *testing.T) {
		// Written and not synced: the template database is behind.
		if _, err := w.Exec(ctx, `INSERT INTO currencies VALUES ('GBP', 'Pound', 2)`); err != nil {
			t.Fatal(err)
		}
		tn := create("db-c", tenant.ModelDatabase)
		tenants = append(tenants, tn)
		if got := codes(tn); got != "CHF,EUR,GBP,JPY,USD" {
			t.Errorf("new database tenant: %q, want the control database's rows", got)
		}
		if _, err := ll.SyncGlobal(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("delete of a referenced row fails that database only", func(t *testing.T) {
		dbA, dbB := tenants[2], tenants[3]
		if _, err := h.Exec(WithTenant(ctx, dbA.ID), `INSERT INTO orders (id, currency) VALUES (3, 'CHF')`); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Exec(ctx, `DELETE FROM currencies WHERE code = 'CHF'`); err != nil {
			t.Fatal(err)
		}
		rep, err := ll.SyncGlobal(ctx)
		if !errors.Is(err, ErrSyncFailed) || !errors.Is(err, ErrGlobalRowInUse) {
			t.Fatalf("SyncGlobal: %v, want ErrSyncFailed and ErrGlobalRowInUse", err)
		}
		if rep.Failed != 1 || rep.Copies[0].Tenant != dbA.ID || !strings.Contains(rep.Copies[0].Error, "(code)=(CHF)") ||
			!strings.Contains(rep.Copies[0].Error, `"orders"`) {
			t.Errorf("report: %+v; want one failure, db-a's, naming the row and the table", rep)
		}
		if got := codes(dbA); got != "CHF,EUR,GBP,JPY,USD" {
			t.Errorf("db-a after the failed sync: %q, want its old copy whole", got)
		}
		if got := codes(dbB); got != "EUR,GBP,JPY,USD" {
			t.Errorf("db-b after the sync: %q", got)
		}
		// Once the tenant's row goes, so does the global one.
		if _, err := h.Exec(WithTenant(ctx, dbA.ID), `DELETE FROM orders WHERE id = 3`); err != nil {
			t.Fatal(err)
		}
		if rep, err := ll.SyncGlobal(ctx); err != nil || rep.Synced != 1 {
			t.Errorf("SyncGlobal after the tenant let go: %+v, %v; want db-a synced", rep, err)
		}
		if got := codes(dbA); got != "EUR,GBP,JPY,USD" {
			t.Errorf("db-a: %q", got)
		}
	})

	t.Run("edited global migration refused", func(t *testing.T) {
		edited := maps.Clone(globalV1())
		edited["001_reference.up.sql"] = &fstest.MapFile{Data: append(edited["001_reference.up.sql"].Data, "\n-- edited"...)}
		l2, err := Open(ctx, db.URL, ordersV1(), Config{Global: edited})
		if err == nil {
			l2.Close()
			t.Fatal("Open accepted an edited global migration")
		}
		if !errors.Is(err, migration.ErrChecksumMismatch) {
			t.Errorf("Open: %v, want ErrChecksumMismatch", err)
		}
	})

	t.Run("fleet brings new global tables to tenant databases", func(t *testing.T) {
		l2, err := Open(ctx, db.URL, ordersV2(), Config{Global: globalV2()})
		if err != nil {
			t.Fatalf("open with new global and tenant migrations: %v", err)
		}
		defer l2.Close()
		f, err := l2.Fleet(fleet.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Up(ctx); err != nil {
			t.Fatalf("fleet up: %v", err)
		}
		st, err := f.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Summary.AtHead != st.Summary.Targets {
			t.Errorf("after the run: %+v", st.Summary)
		}
		h2 := l2.Handle()
		for _, tn := range tenants {
			tctx := WithTenant(ctx, tn.ID)
			var seats int
			if err := h2.QueryRow(tctx, `SELECT seats FROM global.plans WHERE code = 'team'`).Scan(&seats); err != nil || seats != 10 {
				t.Errorf("%s (%s): global.plans: %d, %v", tn.Slug, tn.Model, seats, err)
			}
			if _, err := h2.Exec(tctx, `INSERT INTO subscriptions (plan) VALUES ('team')`); err != nil {
				t.Errorf("%s (%s): subscription to a known plan: %v", tn.Slug, tn.Model, err)
			}
			if _, err := h2.Exec(tctx, `INSERT INTO subscriptions (plan) VALUES ('gold')`); pgCode(err) != pgerrcode.ForeignKeyViolation {
				t.Errorf("%s (%s): subscription to an unknown plan: %v", tn.Slug, tn.Model, err)
			}
		}
		// A second run finds nothing to do.
		rep, err := f.Up(ctx)
		if err != nil || rep.Run.ID != 0 {
			t.Errorf("second fleet up: run %d, %v; want nothing to do", rep.Run.ID, err)
		}
		if rep, err := l2.SyncGlobal(ctx); err != nil || rep.Failed != 0 {
			t.Errorf("SyncGlobal after the fleet run: %+v, %v", rep, err)
		}
	})
}

// TestGlobalNotConfigured: without Config.Global there is nothing to write
// or sync.
func TestGlobalNotConfigured(t *testing.T) {
	t.Parallel()
	ll, _ := setup(t, Config{})
	if _, err := ll.GlobalAdmin(context.Background(), "test"); !errors.Is(err, ErrNoGlobal) {
		t.Errorf("GlobalAdmin: %v, want ErrNoGlobal", err)
	}
	if _, err := ll.SyncGlobal(context.Background()); !errors.Is(err, ErrNoGlobal) {
		t.Errorf("SyncGlobal: %v, want ErrNoGlobal", err)
	}
}
