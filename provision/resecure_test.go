package provision

import (
	"fmt"
	"testing"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

// unsignedPredicate is the tenant predicate before the context was signed.
const unsignedPredicate = `tenant_id = (NULLIF(current_setting('landlord.tenant_id', true), ''))::uuid`

// TestResecureUnsignedInstallation: an installation whose shared tables and
// template schema still carry the unsigned policies of an earlier version
// (SECURITY.md, I31) gets signed ones at the next bootstrap, and schema
// tenants created afterwards get signed policies, not a copy of the old
// template's.
func TestResecureUnsignedInstallation(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	create(t, e, "before-upgrade", tenant.ModelSchema) // builds the template schema
	unsign := func(schema string) {
		t.Helper()
		rows, err := e.pool.Query(ctx, `SELECT c.relname, po.polname FROM pg_policy po JOIN pg_class c ON c.oid = po.polrelid
			WHERE c.relnamespace = $1::regnamespace`, schema)
		must(t, err)
		var sql string
		for rows.Next() {
			var table, pol string
			must(t, rows.Scan(&table, &pol))
			sql += fmt.Sprintf("ALTER POLICY %s ON %s USING (%s) WITH CHECK (%s);\n",
				ident.Quote(pol), ident.Quote(schema, table), unsignedPredicate, unsignedPredicate)
		}
		must(t, rows.Err())
		if sql == "" {
			t.Fatalf("no policies in %s", schema)
		}
		_, err = e.pool.Exec(ctx, sql)
		must(t, err)
	}
	unsign(SharedSchema)
	unsign(TemplateSchema)
	_, err := e.pool.Exec(ctx, `DELETE FROM landlord.template_scripts`)
	must(t, err)

	unsigned := func(schema string) int {
		t.Helper()
		var n int
		must(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM pg_policy po JOIN pg_class c ON c.oid = po.polrelid
			WHERE c.relnamespace = $1::regnamespace AND pg_get_expr(po.polqual, po.polrelid) NOT LIKE '%' || $2 || '%'`,
			schema, migration.ContextView).Scan(&n))
		return n
	}
	if unsigned(SharedSchema) == 0 || unsigned(TemplateSchema) == 0 {
		t.Fatal("the policies were not made unsigned")
	}
	p, err := New(ctx, e.pool, testMigrations(), Config{Install: InstallExisting})
	must(t, err)
	if n := unsigned(SharedSchema); n != 0 {
		t.Errorf("%d unsigned policies on the shared tables after bootstrap", n)
	}
	tn, err := p.Create(ctx, Request{Slug: "after-upgrade", Model: tenant.ModelSchema})
	must(t, err)
	if n := unsigned(tn.Schema); n != 0 {
		t.Errorf("%d unsigned policies in a schema tenant created after the upgrade", n)
	}
	if n := unsigned(TemplateSchema); n != 0 {
		t.Errorf("%d unsigned policies left in the template schema", n)
	}
}
