package migration_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
)

const productsSQL = `CREATE TABLE products (
	tenant_id uuid   NOT NULL,
	id        bigint NOT NULL,
	sku       text   NOT NULL,
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, sku)
);`

func TestApplyRefusesShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		sql   string   // migration 2, applied after products
		table string   // the table that must not survive
		want  []string // parts of the message
	}{
		{
			name:  "no tenant_id",
			sql:   `CREATE TABLE notes (id bigint PRIMARY KEY, body text);`,
			table: "notes",
			want:  []string{"notes: has no tenant_id column"},
		},
		{
			name:  "materialized view",
			sql:   `CREATE MATERIALIZED VIEW notes AS SELECT tenant_id, count(*) AS n FROM products GROUP BY tenant_id;`,
			table: "notes",
			want:  []string{"notes: is a materialized view"},
		},
		{
			name:  "nullable tenant_id",
			sql:   `CREATE TABLE notes (tenant_id uuid, id bigint NOT NULL, UNIQUE (tenant_id, id));`,
			table: "notes",
			want:  []string{"notes: tenant_id must be NOT NULL"},
		},
		{
			name:  "text tenant_id",
			sql:   `CREATE TABLE notes (tenant_id text NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));`,
			table: "notes",
			want:  []string{"notes: tenant_id must be of type uuid"},
		},
		{
			name:  "bigint tenant_id",
			sql:   `CREATE TABLE notes (tenant_id bigint NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));`,
			table: "notes",
			want:  []string{"notes: tenant_id must be of type uuid"},
		},
		{
			name:  "primary key not led by tenant_id",
			sql:   `CREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (id, tenant_id));`,
			table: "notes",
			want:  []string{"notes: primary key notes_pkey does not lead with tenant_id"},
		},
		{
			name:  "unique without tenant_id",
			sql:   `CREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL, sku text NOT NULL, PRIMARY KEY (tenant_id, id), UNIQUE (sku));`,
			table: "notes",
			want:  []string{"notes: unique constraint notes_sku_key does not lead with tenant_id"},
		},
		{
			name: "unique index not led by tenant_id",
			sql: `CREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL, sku text NOT NULL, PRIMARY KEY (tenant_id, id));
				CREATE UNIQUE INDEX notes_sku_idx ON notes (sku, tenant_id);`,
			table: "notes",
			want:  []string{"notes: unique index notes_sku_idx does not lead with tenant_id"},
		},
		{
			name: "unique expression index",
			sql: `CREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL, sku text NOT NULL, PRIMARY KEY (tenant_id, id));
				CREATE UNIQUE INDEX notes_lower_sku_idx ON notes (lower(sku));`,
			table: "notes",
			want:  []string{"notes: unique index notes_lower_sku_idx does not lead with tenant_id"},
		},
		{
			name: "foreign key not led by tenant_id",
			sql: `CREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL, product_id bigint NOT NULL, PRIMARY KEY (tenant_id, id),
				CONSTRAINT notes_product_fk FOREIGN KEY (product_id, tenant_id) REFERENCES products (id, tenant_id));`,
			table: "notes",
			want:  []string{"notes: foreign key notes_product_fk does not lead with tenant_id on both sides"},
		},
		{
			name: "foreign key led by another uuid",
			sql: `CREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL, other uuid NOT NULL, product_id bigint NOT NULL, PRIMARY KEY (tenant_id, id),
				CONSTRAINT notes_product_fk FOREIGN KEY (other, product_id) REFERENCES products (tenant_id, id));`,
			table: "notes",
			want:  []string{"notes: foreign key notes_product_fk does not lead with tenant_id on both sides"},
		},
		{
			name: "foreign key to a table without tenant_id",
			sql: `CREATE TABLE kinds (id bigint PRIMARY KEY);
				CREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL, kind bigint NOT NULL, PRIMARY KEY (tenant_id, id),
				CONSTRAINT notes_kind_fk FOREIGN KEY (kind) REFERENCES kinds (id));`,
			table: "notes",
			want:  []string{"kinds: has no tenant_id column", "notes: foreign key notes_kind_fk does not lead with tenant_id on both sides"},
		},
		{
			name:  "default other than the context",
			sql:   `CREATE TABLE notes (tenant_id uuid NOT NULL DEFAULT gen_random_uuid(), id bigint NOT NULL, PRIMARY KEY (tenant_id, id));`,
			table: "notes",
			want:  []string{"notes: tenant_id has a default other than the tenant context"},
		},
		{
			name:  "no primary key",
			sql:   `CREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL);`,
			table: "notes",
			want:  []string{"notes: has no primary key"},
		},
		{
			name:  "existing table broken by a later migration",
			sql:   `CREATE TABLE notes (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id)); ALTER TABLE products ADD CONSTRAINT products_sku_only UNIQUE (sku);`,
			table: "notes",
			want:  []string{"products: unique constraint products_sku_only does not lead with tenant_id"},
		},
		{
			name: "several problems",
			sql: `CREATE TABLE notes (tenant_id uuid, sku text, UNIQUE (sku));
				CREATE TABLE extra (id int);`,
			table: "notes",
			want: []string{
				"notes: tenant_id must be NOT NULL",
				"notes: has no primary key",
				"notes: unique constraint notes_sku_key does not lead with tenant_id",
				"extra: has no tenant_id column",
			},
		},
	}
	e := setup(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			schema := "s" + strings.Repeat("x", i%3) + string(rune('a'+i))
			e.createSchema(t, schema)
			ctx := t.Context()
			target := e.target(schema)
			if _, err := e.migrator(t, files("001_products.up.sql", productsSQL), migration.Config{}).Apply(ctx, e.conn, target); err != nil {
				t.Fatalf("apply 1: %v", err)
			}
			m := e.migrator(t, files(
				"001_products.up.sql", productsSQL,
				"002_bad.up.sql", tt.sql,
				"003_after.up.sql", `CREATE TABLE after (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));`,
			), migration.Config{})
			res, err := m.Apply(ctx, e.conn, target)
			if err == nil {
				t.Fatalf("Apply = %+v, want a shape error", res)
			}
			if !errors.Is(err, migration.ErrShape) {
				t.Fatalf("error %v does not wrap ErrShape", err)
			}
			for _, w := range append([]string{schema, "002_bad.up.sql"}, tt.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if res.From != 1 || res.To != 1 || len(res.Applied) != 0 {
				t.Errorf("Apply = %+v, want to stay at version 1", res)
			}
			// The failing migration left nothing behind; the earlier one stays.
			if got := e.tables(t, schema); strings.Join(got, ",") != "products" {
				t.Errorf("tables = %v, want [products]", got)
			}
			if got := e.ledger(t, schema); !equalInts(got, []int{1}) {
				t.Errorf("ledger = %v, want [1]", got)
			}
			if v, err := m.Version(ctx, e.conn, target); err != nil || v != 1 {
				t.Errorf("Version = %d, %v, want 1", v, err)
			}
			var constraints int
			if err := e.conn.QueryRow(ctx, `SELECT count(*) FROM pg_constraint WHERE conrelid = format('%I.products', $1::text)::regclass`, schema).Scan(&constraints); err != nil {
				t.Fatal(err)
			}
			if constraints != 2 {
				t.Errorf("products has %d constraints, want its 2", constraints)
			}
			// The same check run on its own agrees that the target is fine.
			if err := migration.CheckShape(ctx, e.conn, schema); err != nil {
				t.Errorf("CheckShape after the refusal: %v", err)
			}
		})
	}
}

// TestApplyAcceptsShape covers shapes the rule allows, so that the checks
// above are not passing because everything is refused.
func TestApplyAcceptsShape(t *testing.T) {
	t.Parallel()
	e := setup(t)
	m := e.migrator(t, files(
		"001_products.up.sql", productsSQL,
		"002_variety.up.sql", `
			CREATE TABLE notes (
				tenant_id uuid NOT NULL,
				id        bigint NOT NULL,
				product   bigint,
				sku       text,
				PRIMARY KEY (tenant_id, id),
				CONSTRAINT notes_product_fk FOREIGN KEY (tenant_id, product) REFERENCES products (tenant_id, id)
			);
			CREATE UNIQUE INDEX notes_sku_idx ON notes (tenant_id, lower(sku)) WHERE sku IS NOT NULL;
			CREATE INDEX notes_plain_idx ON notes (sku);
			CREATE TABLE events (
				tenant_id uuid NOT NULL DEFAULT (NULLIF(current_setting('landlord.tenant_id', true), ''))::uuid,
				at        timestamptz NOT NULL,
				PRIMARY KEY (tenant_id, at)
			) PARTITION BY RANGE (at);
			CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');`,
	), migration.Config{})
	res, err := m.Apply(t.Context(), e.conn, e.target("app"))
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if !equalInts(res.Applied, []int{1, 2}) {
		t.Fatalf("Applied = %v, want [1 2]", res.Applied)
	}
	// Partitions are tables too: reading one directly must not skip the
	// policy (SECURITY.md, I15).
	var rls, force bool
	if err := e.conn.QueryRow(t.Context(), `SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'app.events_2025'::regclass`).Scan(&rls, &force); err != nil {
		t.Fatal(err)
	}
	if !rls || !force {
		t.Errorf("partition events_2025: row level security enabled=%v forced=%v", rls, force)
	}
}

// A step that finds its schema already granted leaves the schema's
// pg_namespace row alone: rewriting it makes every backend of the database
// drop all its cached plans, so each migration step would re-plan the
// statements of all tenant traffic. The tables get their grants by name,
// sequences included.
func TestSecureLeavesGrantedSchemaAlone(t *testing.T) {
	t.Parallel()
	e := setup(t)
	m := e.migrator(t, files(
		"001_products.up.sql", productsSQL,
		"002_notes.up.sql", `CREATE TABLE notes (tenant_id uuid NOT NULL, id bigserial, PRIMARY KEY (tenant_id, id));`,
	), migration.Config{})
	xmin := func() string {
		var x string
		if err := e.conn.QueryRow(t.Context(), `SELECT xmin::text FROM pg_namespace WHERE nspname = 'app'`).Scan(&x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	m1 := e.migrator(t, files("001_products.up.sql", productsSQL), migration.Config{})
	if _, err := m1.Apply(t.Context(), e.conn, e.target("app")); err != nil {
		t.Fatalf("apply 1: %v", err)
	}
	before := xmin()
	if _, err := m.Apply(t.Context(), e.conn, e.target("app")); err != nil {
		t.Fatalf("apply 2: %v", err)
	}
	if after := xmin(); after != before {
		t.Errorf("pg_namespace row of app rewritten by the second step (xmin %s, then %s)", before, after)
	}
	var tables, seq bool
	if err := e.conn.QueryRow(t.Context(), `SELECT has_table_privilege($1, 'app.notes', 'INSERT'),
		has_sequence_privilege($1, 'app.notes_id_seq', 'USAGE')`, e.grantee).Scan(&tables, &seq); err != nil {
		t.Fatal(err)
	}
	if !tables || !seq {
		t.Errorf("grantee: INSERT on app.notes %v, USAGE on app.notes_id_seq %v; want both", tables, seq)
	}
}

// Secure runs its catalog queries under a search path of its own (so that
// their cached plans serve every target) and leaves the caller's path as it
// found it, also when the shape check refuses a table.
func TestSecureKeepsTheSearchPath(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name, ddl string
		refused   bool
	}{
		{"good", productsSQL, false},
		{"refused", `CREATE TABLE notes (id bigint PRIMARY KEY);`, true},
	} {
		tx, err := e.conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		const path = `app, pg_catalog, pg_temp`
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(e.owner)+"; SET LOCAL search_path = "+path+"; "+tc.ddl); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		err = migration.Secure(ctx, tx, e.target("app"))
		if tc.refused != errors.Is(err, migration.ErrShape) {
			t.Fatalf("%s: Secure: %v, want refused %v", tc.name, err, tc.refused)
		}
		var got string
		if err := tx.QueryRow(ctx, `SELECT current_setting('search_path')`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != path {
			t.Errorf("%s: search_path after Secure %q, want %q", tc.name, got, path)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
