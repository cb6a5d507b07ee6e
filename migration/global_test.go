package migration_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

const currenciesSQL = `CREATE TABLE currencies (code text PRIMARY KEY, name text NOT NULL, digits int NOT NULL DEFAULT 2);
INSERT INTO currencies VALUES ('EUR', 'Euro', 2), ('JPY', 'Yen', 0);`

var globalTarget = migration.Target{Schema: migration.GlobalSchema, Global: true}

// TestGlobalTarget: the global schema is created by Apply, its tables are
// readable and not writable by other roles, and a tenant table may
// reference them by foreign key.
func TestGlobalTarget(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	g := e.migrator(t, files("001_currencies.up.sql", currenciesSQL), migration.Config{})
	res, err := g.Apply(ctx, e.conn, globalTarget)
	if err != nil {
		t.Fatalf("apply global: %v", err)
	}
	if !equalInts(res.Applied, []int{1}) {
		t.Fatalf("Applied = %v, want [1]", res.Applied)
	}
	var owner string
	var read, write, truncate, usage, create bool
	if err := e.conn.QueryRow(ctx, `SELECT nspowner::regrole::text,
		has_table_privilege($1, 'global.currencies', 'SELECT'),
		has_table_privilege($1, 'global.currencies', 'INSERT, UPDATE, DELETE'),
		has_table_privilege($1, 'global.currencies', 'TRUNCATE, REFERENCES, TRIGGER'),
		has_schema_privilege($1, 'global', 'USAGE'), has_schema_privilege($1, 'global', 'CREATE')
		FROM pg_namespace WHERE nspname = 'global'`, e.grantee).Scan(&owner, &read, &write, &truncate, &usage, &create); err != nil {
		t.Fatal(err)
	}
	if owner != e.owner || !read || !usage || write || truncate || create {
		t.Errorf("global schema owned by %s; grantee: SELECT %v USAGE %v, writes %v, TRUNCATE/REFERENCES/TRIGGER %v, CREATE %v",
			owner, read, usage, write, truncate, create)
	}

	m := e.migrator(t, files(
		"001_products.up.sql", productsSQL,
		"002_prices.up.sql", `CREATE TABLE prices (tenant_id uuid NOT NULL, id bigint NOT NULL, currency text NOT NULL REFERENCES global.currencies (code),
			PRIMARY KEY (tenant_id, id));`,
	), migration.Config{})
	if _, err := m.Apply(ctx, e.conn, e.target("app")); err != nil {
		t.Fatalf("foreign key from a tenant table to a global table refused: %v", err)
	}
	// The key binds for the tenant: a known code goes in, an unknown one
	// does not; the global table is read, never written.
	id := tenant.NewID()
	err = asTenant(ctx, e.conn, e.grantee, &id, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO app.prices (id, currency) VALUES (1, 'EUR')`)
		return err
	})
	if err != nil {
		t.Errorf("insert with a known currency: %v", err)
	}
	err = asTenant(ctx, e.conn, e.grantee, &id, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO app.prices (id, currency) VALUES (2, 'XXX')`)
		return err
	})
	if !isCode(err, pgerrcode.ForeignKeyViolation) {
		t.Errorf("insert with an unknown currency: %v, want a foreign key violation", err)
	}
	err = asTenant(ctx, e.conn, e.grantee, &id, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE global.currencies SET digits = 3`)
		return err
	})
	if !isCode(err, pgerrcode.InsufficientPrivilege) {
		t.Errorf("tenant update of a global table: %v, want permission denied", err)
	}

	// A global migration edited after it was applied is refused.
	edited := e.migrator(t, files("001_currencies.up.sql", currenciesSQL+"\n-- edited"), migration.Config{})
	if _, err := edited.Apply(ctx, e.conn, globalTarget); !errors.Is(err, migration.ErrChecksumMismatch) {
		t.Errorf("edited global migration: %v, want ErrChecksumMismatch", err)
	}
}

// TestGlobalShapeRefused: what the global schema refuses, and what the
// tenant shape check still refuses next to the foreign keys to global
// tables it now accepts.
func TestGlobalShapeRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	if _, err := e.migrator(t, files("001_currencies.up.sql", currenciesSQL), migration.Config{}).Apply(ctx, e.conn, globalTarget); err != nil {
		t.Fatalf("apply global: %v", err)
	}
	if _, err := e.migrator(t, files("001_products.up.sql", productsSQL), migration.Config{}).Apply(ctx, e.conn, e.target("app")); err != nil {
		t.Fatalf("apply tenant: %v", err)
	}
	e.createSchema(t, "elsewhere")
	e.exec(t, `SET ROLE `+e.owner+`; CREATE TABLE elsewhere.kinds (id bigint PRIMARY KEY); RESET ROLE`)

	globalCases := []struct{ name, sql, want string }{
		{"reference to a tenant table", `CREATE TABLE picks (id bigint PRIMARY KEY, tenant uuid, product bigint,
			FOREIGN KEY (tenant, product) REFERENCES app.products (tenant_id, id));`,
			"picks: foreign key picks_tenant_product_fkey references app.products outside the global schema"},
		{"tenant_id column", `CREATE TABLE picks (tenant_id uuid NOT NULL, id bigint, PRIMARY KEY (tenant_id, id));`, "picks: has a tenant_id column"},
		{"no primary key", `CREATE TABLE picks (code text UNIQUE);`, "picks: has no primary key"},
		{"row-level security", `CREATE TABLE picks (code text PRIMARY KEY); ALTER TABLE picks ENABLE ROW LEVEL SECURITY;`, "picks: has row-level security enabled"},
		{"partitioned", `CREATE TABLE picks (code text PRIMARY KEY) PARTITION BY LIST (code);`, "picks: is a partitioned table"},
		{"write grant", `CREATE TABLE picks (code text PRIMARY KEY); GRANT INSERT ON picks TO ` + e.grantee + `;`, "picks: grants INSERT to " + e.grantee},
	}
	for _, c := range globalCases {
		t.Run("global/"+c.name, func(t *testing.T) {
			m := e.migrator(t, files("001_currencies.up.sql", currenciesSQL, "002_bad.up.sql", c.sql), migration.Config{})
			_, err := m.Apply(ctx, e.conn, globalTarget)
			if !errors.Is(err, migration.ErrShape) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Apply = %v, want a shape error containing %q", err, c.want)
			}
		})
	}

	tenantCases := []struct{ name, sql, want string }{
		{"reference to a table of another schema without tenant_id", `CREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL, kind bigint,
			PRIMARY KEY (tenant_id, id), CONSTRAINT notes_kind_fk FOREIGN KEY (kind) REFERENCES elsewhere.kinds (id));`,
			"notes: foreign key notes_kind_fk does not lead with tenant_id on both sides; notes: foreign key notes_kind_fk references elsewhere.kinds outside the schema"},
		{"reference to a global table that cascades", `CREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL, currency text,
			PRIMARY KEY (tenant_id, id), CONSTRAINT notes_currency_fk FOREIGN KEY (currency) REFERENCES global.currencies (code) ON DELETE CASCADE);`,
			"notes: foreign key notes_currency_fk to global table global.currencies must be ON UPDATE and ON DELETE NO ACTION or RESTRICT"},
	}
	for _, c := range tenantCases {
		t.Run("tenant/"+c.name, func(t *testing.T) {
			m := e.migrator(t, files("001_products.up.sql", productsSQL, "002_bad.up.sql", c.sql), migration.Config{})
			_, err := m.Apply(ctx, e.conn, e.target("app"))
			if !errors.Is(err, migration.ErrShape) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Apply = %v, want a shape error containing %q", err, c.want)
			}
		})
	}

	for _, bad := range []migration.Target{
		{Schema: "app", Global: true},
		{Schema: migration.GlobalSchema, Global: true, Grantee: e.grantee},
		{Schema: migration.GlobalSchema},
	} {
		m := e.migrator(t, files("001_currencies.up.sql", currenciesSQL), migration.Config{})
		if _, err := m.Apply(ctx, e.conn, bad); err == nil {
			t.Errorf("Apply(%+v) accepted", bad)
		}
	}
}
