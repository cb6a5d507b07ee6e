package audit_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/audit"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/demo"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

const (
	sev = audit.SeverityError
	wrn = audit.SeverityWarning
)

// TestChecks seeds one mistake per case into a clean installation, as the
// superuser, and expects exactly the findings it opens: the audit finds the
// mistake, names the right threat, and reports nothing else. Each case runs
// in a transaction that is rolled back, so one installation serves them all.
func TestChecks(t *testing.T) {
	t.Parallel()
	pred := migration.TenantPredicate
	cases := []struct {
		name string
		seed string // {s} is the schema tenant's schema, {r} its role
		want []key
	}{
		{"rls disabled", `ALTER TABLE shared.products DISABLE ROW LEVEL SECURITY`,
			[]key{{"rls_disabled", "shared.products", "I03", sev}}},
		{"rls not forced", `ALTER TABLE {s}.products NO FORCE ROW LEVEL SECURITY`,
			[]key{{"rls_not_forced", "{s}.products", "I01", sev}}},
		{"restrictive policy dropped", `DROP POLICY landlord_tenant ON shared.products`,
			[]key{{"tenant_policy_missing", "shared.products", "I04", sev}}},
		{"restrictive policy made permissive", `DROP POLICY landlord_tenant ON {s}.products;
			CREATE POLICY landlord_tenant ON {s}.products USING (` + pred + `)`,
			[]key{{"tenant_policy_missing", "{s}.products", "I04", sev}}},
		{"restrictive policy for one role only", `DROP POLICY landlord_tenant ON shared.products;
			CREATE POLICY landlord_tenant ON shared.products AS RESTRICTIVE TO landlord_app USING (` + pred + `)`,
			[]key{{"tenant_policy_missing", "shared.products", "I04", sev}}},
		{"restrictive policy checks nothing on write", `ALTER POLICY landlord_tenant ON shared.products WITH CHECK (true)`,
			[]key{{"tenant_policy_check", "shared.products", "I14", sev}}},
		{"permissive USING true", `CREATE POLICY open ON shared.products USING (true)`,
			[]key{{"always_true_policy", "open on shared.products", "I04", sev}}},
		{"permissive constant WITH CHECK", `CREATE POLICY open ON {s}.products FOR INSERT WITH CHECK (1 = 1)`,
			[]key{{"always_true_policy", "open on {s}.products", "I04", sev}}},
		{"NULL branch with OR", `CREATE POLICY nb ON shared.products
			USING (current_setting('landlord.tenant_id', true) IS NULL OR ` + pred + `)`,
			[]key{{"null_branch_policy", "nb on shared.products", "I05", sev}}},
		{"NULL branch with CASE", `CREATE POLICY nb ON shared.products FOR SELECT
			USING (CASE WHEN current_setting('landlord.tenant_id', true) IS NULL THEN true ELSE ` + pred + ` END)`,
			[]key{{"null_branch_policy", "nb on shared.products", "I05", sev}}},
		{"NULL branch with coalesce", `DROP POLICY landlord_tenant ON shared.products;
			CREATE POLICY landlord_tenant ON shared.products AS RESTRICTIVE USING (` + pred + `)
			WITH CHECK (coalesce(` + pred + `, true))`,
			[]key{{"null_branch_policy", "landlord_tenant on shared.products", "I05", sev},
				{"tenant_policy_check", "shared.products", "I14", sev}}},
		{"table without tenant_id", `SET ROLE landlord_owner; CREATE TABLE {s}.notes (id bigint PRIMARY KEY)`,
			[]key{{"no_tenant_id", "{s}.notes", "I03", sev}}},
		// tenant_id cannot be NULL in a primary key, so the table has none.
		{"nullable tenant_id", `SET ROLE landlord_owner;
			CREATE TABLE shared.notes (tenant_id uuid, id bigint NOT NULL, UNIQUE (tenant_id, id));` + secureSQL("shared", "notes"),
			[]key{{"tenant_id_nullable", "shared.notes", "I03", sev}, {"no_primary_key", "shared.notes", "I12", wrn}}},
		// A text tenant_id cannot carry the uuid predicate either.
		{"tenant_id of type text", `SET ROLE landlord_owner;
			CREATE TABLE shared.tags (tenant_id text NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));
			ALTER TABLE shared.tags ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY`,
			[]key{{"tenant_id_type", "shared.tags", "I03", sev}, {"tenant_policy_missing", "shared.tags", "I04", sev}}},
		{"tenant_id default from elsewhere", `ALTER TABLE shared.products ALTER COLUMN tenant_id SET DEFAULT gen_random_uuid()`,
			[]key{{"tenant_id_default", "shared.products", "I14", wrn}}},
		{"unique index without tenant_id", `CREATE UNIQUE INDEX products_name_key ON shared.products (name)`,
			[]key{{"unique_index_without_tenant_id", "shared.products_name_key", "I12", sev}}},
		{"unique constraint without tenant_id", `ALTER TABLE {s}.products ADD CONSTRAINT products_name_uniq UNIQUE (name)`,
			[]key{{"key_without_tenant_id", "products_name_uniq on {s}.products", "I12", sev}}},
		{"foreign key not leading with tenant_id", `ALTER TABLE shared.products
			ADD CONSTRAINT self_fk FOREIGN KEY (id, tenant_id) REFERENCES shared.products (id, tenant_id)`,
			[]key{{"foreign_key_without_tenant_id", "self_fk on shared.products", "I12", sev}}},
		// A key into the platform-wide tables is allowed only when it cannot
		// change the tenant's rows.
		{"foreign key to a global table that cascades", `CREATE SCHEMA global; CREATE TABLE global.codes (code text PRIMARY KEY);
			ALTER TABLE shared.products ADD COLUMN code text,
			ADD CONSTRAINT code_fk FOREIGN KEY (code) REFERENCES global.codes ON DELETE CASCADE`,
			[]key{{"foreign_key_without_tenant_id", "code_fk on shared.products", "I12", sev},
				{"foreign_key_outside_schema", "code_fk on shared.products", "I12", wrn}}},
		{"TRUNCATE for the app role", `GRANT TRUNCATE ON shared.products TO landlord_app`,
			[]key{{"rls_bypass_privilege", "shared.products", "I13", sev}}},
		{"column REFERENCES for PUBLIC", `GRANT REFERENCES (id) ON {s}.products TO PUBLIC`,
			[]key{{"rls_bypass_privilege", "{s}.products", "I13", sev}}},
		{"TRIGGER for the tenant role", `GRANT TRIGGER ON {s}.products TO {r}`,
			[]key{{"rls_bypass_privilege", "{s}.products", "I13", sev}}},
		{"CREATE on the tenant schema", `GRANT CREATE ON SCHEMA {s} TO {r}`,
			[]key{{"tenant_schema_create", "{s}", "I18", sev}}},
		{"CREATE on public for PUBLIC", `GRANT CREATE ON SCHEMA public TO PUBLIC`,
			[]key{{"public_create", "public", "I18", sev}}},
		{"SECURITY DEFINER without search_path", `CREATE FUNCTION public.answer() RETURNS int
			LANGUAGE sql SECURITY DEFINER AS 'SELECT 42'`,
			[]key{{"security_definer_search_path", "public.answer()", "I09", sev}}},
		{"SECURITY DEFINER over tenant tables for PUBLIC", `CREATE FUNCTION public.count_products() RETURNS bigint
			LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS 'SELECT count(*) FROM shared.products'`,
			[]key{{"security_definer_public", "public.count_products()", "I09", sev}}},
		{"trigger function without search_path", `CREATE FUNCTION public.touch() RETURNS trigger
			LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
			CREATE TRIGGER touch BEFORE INSERT ON shared.products FOR EACH ROW EXECUTE FUNCTION public.touch()`,
			[]key{{"trigger_search_path", "touch on shared.products", "I24", sev}}},
		{"function setting a session-level value", `CREATE FUNCTION public.remember(text) RETURNS void
			LANGUAGE sql AS $$ SELECT set_config('app.last_customer', $1, false) $$`,
			[]key{{"session_setting_function", "public.remember(text)", "I06", sev}}},
		{"plpgsql SET without LOCAL", `CREATE FUNCTION public.widen() RETURNS void
			LANGUAGE plpgsql AS $$ BEGIN SET work_mem = '1GB'; END $$`,
			[]key{{"session_setting_function", "public.widen()", "I06", sev}}},
		{"LEAKPROOF function", `CREATE FUNCTION public.peek(bigint) RETURNS boolean
			LANGUAGE sql IMMUTABLE LEAKPROOF AS 'SELECT $1 > 0'`,
			[]key{{"leakproof_function", "public.peek(bigint)", "I10", sev}}},
		{"view without security_invoker", `SET ROLE landlord_owner;
			CREATE VIEW shared.product_names AS SELECT tenant_id, name FROM shared.products`,
			[]key{{"view_security_invoker", "shared.product_names", "I08", sev}}},
		{"owner-rights view over an invoker view", `
			CREATE VIEW public.v1 WITH (security_invoker = true) AS SELECT * FROM {s}.products;
			CREATE VIEW public.v2 AS SELECT name FROM public.v1`,
			[]key{{"view_security_invoker", "public.v2", "I08", sev}}},
		{"materialized view", `CREATE MATERIALIZED VIEW public.product_counts AS
			SELECT tenant_id, count(*) FROM shared.products GROUP BY tenant_id`,
			[]key{{"materialized_view", "public.product_counts", "I16", sev}}},
		{"partition without row-level security", `SET ROLE landlord_owner;
			CREATE TABLE shared.events (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id))
			PARTITION BY HASH (tenant_id);` + secureSQL("shared", "events") + `
			CREATE TABLE shared.events_0 PARTITION OF shared.events FOR VALUES WITH (MODULUS 2, REMAINDER 0);
			CREATE TABLE shared.events_1 PARTITION OF shared.events FOR VALUES WITH (MODULUS 2, REMAINDER 1);
			GRANT SELECT ON shared.events_1 TO landlord_app`,
			[]key{{"partition_rls", "shared.events_1", "I15", sev}}},
		{"identity ids in a shared table", `SET ROLE landlord_owner;
			CREATE TABLE shared.orders (tenant_id uuid NOT NULL, id bigint GENERATED ALWAYS AS IDENTITY,
			PRIMARY KEY (tenant_id, id));` + secureSQL("shared", "orders"),
			[]key{{"sequence_id", "shared.orders.id", "I17", wrn}}},
		// What bootstrap revokes on a server that is Landlord's alone
		// (closed), opened again one at a time.
		{"closed server", closedServer, nil},
		{"PL/pgSQL for PUBLIC", closedServer + `GRANT USAGE ON LANGUAGE plpgsql TO PUBLIC`,
			[]key{{"plpgsql_public", "language plpgsql", "I32", wrn}}},
		{"a large-object function for PUBLIC", closedServer + `GRANT EXECUTE ON FUNCTION lo_get(oid) TO PUBLIC`,
			[]key{{"large_object_functions_public", "large-object functions", "I35", wrn}}},
		{"query text for PUBLIC", closedServer + `GRANT EXECUTE ON FUNCTION pg_stat_get_backend_activity(integer) TO PUBLIC`,
			[]key{{"stat_activity_public", "pg_catalog.pg_stat_activity", "I35", wrn}}},
		{"backend signals for PUBLIC", closedServer + `GRANT EXECUTE ON FUNCTION pg_terminate_backend(integer, bigint) TO PUBLIC`,
			[]key{{"signal_functions_public", "pg_catalog.pg_terminate_backend", "I37", wrn}}},
		{"two-key advisory locks for PUBLIC", closedServer + `GRANT EXECUTE ON FUNCTION pg_try_advisory_xact_lock(integer, integer) TO PUBLIC`,
			[]key{{"advisory_locks_public", "advisory-lock functions of two keys", "I39", wrn}}},
		{"temporary files without a limit", closedServer + `SET LOCAL temp_file_limit = -1`,
			[]key{{"temp_file_unlimited", "setting temp_file_limit", "I40", wrn}}},
		{"maintenance database for PUBLIC", closedServer + `GRANT TEMPORARY ON DATABASE template1 TO PUBLIC`,
			[]key{{"maintenance_database_access", "template1", "I36", wrn}}},
		{"all open on a server not Landlord's alone", closedServer + `SET LOCAL landlord.own_server = off;
			GRANT USAGE ON LANGUAGE plpgsql TO PUBLIC; GRANT EXECUTE ON FUNCTION lo_get(oid) TO PUBLIC;
			GRANT SELECT ON pg_stat_activity TO PUBLIC; GRANT CONNECT ON DATABASE postgres TO PUBLIC;
			GRANT EXECUTE ON FUNCTION pg_cancel_backend(integer) TO PUBLIC; SET LOCAL temp_file_limit = -1`, nil},
		// What the audit must not flag.
		{"invoker view", `SET ROLE landlord_owner;
			CREATE VIEW shared.product_names WITH (security_invoker = on) AS SELECT tenant_id, name FROM shared.products`, nil},
		{"foreign key to a global table", `CREATE SCHEMA global; CREATE TABLE global.codes (code text PRIMARY KEY);
			ALTER TABLE shared.products ADD COLUMN code text,
			ADD CONSTRAINT code_fk FOREIGN KEY (code) REFERENCES global.codes`, nil},
		{"restrictive deny-all policy", `CREATE POLICY shut ON shared.products AS RESTRICTIVE FOR DELETE USING (false)`, nil},
		{"SECURITY DEFINER pinned, not for PUBLIC", `CREATE FUNCTION public.count_products() RETURNS bigint
			LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS 'SELECT count(*) FROM shared.products';
			REVOKE EXECUTE ON FUNCTION public.count_products() FROM PUBLIC`, nil},
		{"TRUNCATE for an unrelated role", `CREATE ROLE audit_maintenance NOLOGIN;
			GRANT TRUNCATE ON shared.products TO audit_maintenance`, nil},
		{"partition with no grants", `SET ROLE landlord_owner;
			CREATE TABLE shared.events (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id))
			PARTITION BY HASH (tenant_id);` + secureSQL("shared", "events") + `
			CREATE TABLE shared.events_0 PARTITION OF shared.events FOR VALUES WITH (MODULUS 1, REMAINDER 0)`, nil},
	}
	in := setup(t)
	s, r := in.schema.Schema, in.schema.ID.RoleName()
	expand := strings.NewReplacer("{s}", s, "{r}", r).Replace
	super := superConn(t, in.db.Server.AdminURL(in.db.Name))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := make([]key, len(c.want))
			for i, k := range c.want {
				k.Object = expand(k.Object)
				want[i] = k
			}
			got := seeded(t, super, expand(c.seed), audit.Config{})
			wantFindings(t, got, want...)
			if err := audit.AsError(got); (err != nil) != slicesHasError(c.want) || (err != nil && !errors.Is(err, audit.ErrFindings)) {
				t.Errorf("AsError = %v", err)
			}
		})
	}
}

// closedServer makes the seed's transaction see a server that is
// Landlord's alone (provision.OwnServerSetting) with what bootstrap revokes
// there revoked, as a superuser administrator leaves it; the test
// installations' administrator is not one.
const closedServer = `SET LOCAL landlord.own_server = on;
SET LOCAL temp_file_limit = '4GB';
REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC;
DO $$ DECLARE f regprocedure; BEGIN
	FOR f IN SELECT oid FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace
		AND (proname LIKE 'lo\_%' OR proname IN ('loread', 'lowrite')) LOOP
		EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
END $$;
REVOKE SELECT ON pg_stat_activity FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_stat_get_activity(integer), pg_stat_get_backend_activity(integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_cancel_backend(integer), pg_terminate_backend(integer, bigint) FROM PUBLIC;
DO $$ DECLARE f regprocedure; BEGIN
	FOR f IN SELECT oid FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace
		AND proname LIKE 'pg\_%advisory%' AND proargtypes = '23 23'::oidvector LOOP
		EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
END $$;
REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1 FROM PUBLIC;
`

func slicesHasError(ks []key) bool {
	for _, k := range ks {
		if k.Severity == audit.SeverityError {
			return true
		}
	}
	return false
}

// TestRoleAttributes makes a dedicated app role unsafe in each way. Roles
// are cluster-wide: the shared landlord_app is never touched, and each
// change is rolled back, so no other session ever sees it.
func TestRoleAttributes(t *testing.T) {
	t.Parallel()
	in := setup(t)
	app := "audit_app_" + tenant.NewID().Hex()[20:]
	l, err := landlord.Open(t.Context(), in.db.URL, demo.Migrations(), landlord.Config{AppRole: app})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	super := superConn(t, in.db.Server.AdminURL(in.db.Name))
	for _, c := range []struct {
		name, seed string
		want       []key
	}{
		{"superuser", "ALTER ROLE {a} SUPERUSER", []key{{"role_superuser", "{a}", "I02", sev}}},
		{"bypassrls", "ALTER ROLE {a} BYPASSRLS", []key{{"role_bypassrls", "{a}", "I02", sev}}},
		// Membership in the owner: it may act as the owner of every tenant
		// table and schema.
		{"member of the owner", "GRANT landlord_owner TO {a}", []key{{"role_is_owner", "{a}", "I01", sev}}},
		{"owner of a table", "ALTER TABLE shared.products OWNER TO {a}", []key{{"role_is_owner", "{a}", "I01", sev}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			expand := strings.NewReplacer("{a}", app).Replace
			want := make([]key, len(c.want))
			for i, k := range c.want {
				k.Object = expand(k.Object)
				want[i] = k
			}
			wantFindings(t, seeded(t, super, expand(c.seed), audit.Config{AppRole: app}), want...)
			// The shared landlord_app is not affected.
			if got, err := audit.Run(t.Context(), in.admin, audit.Config{}); err != nil || len(got) != 0 {
				t.Fatalf("landlord_app: %v\n%s", err, describe(got))
			}
		})
	}
	// Nothing was committed.
	if got, err := audit.Run(t.Context(), in.admin, audit.Config{AppRole: app}); err != nil || len(got) != 0 {
		t.Fatalf("after the rollbacks: %v\n%s", err, describe(got))
	}
}

// TestCleanInstallation: a fresh installation with a tenant in each model
// has no findings at all, fleet-wide and database by database.
func TestCleanInstallation(t *testing.T) {
	t.Parallel()
	db := server.NewDB(t, nil)
	ctx := t.Context()
	l, err := landlord.Open(ctx, db.URL, demo.Migrations(), landlord.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var dbTenant tenant.Tenant
	for _, m := range tenant.Models {
		tt, err := l.CreateTenant(ctx, provision.Request{Slug: "clean-" + string(m), Model: m})
		if err != nil {
			t.Fatal(err)
		}
		if m == tenant.ModelDatabase {
			dbTenant = tt
		}
	}
	admin := pool(t, db.URL)
	got, err := audit.Fleet(ctx, admin, audit.FleetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	wantFindings(t, got)
	if got, err := audit.Run(ctx, admin, audit.Config{}); err != nil || len(got) != 0 {
		t.Fatalf("control database: %v\n%s", err, describe(got))
	}
	tconn := pool(t, db.Server.AdminURL(dbTenant.Database))
	if got, err := audit.Run(ctx, tconn, audit.Config{TenantDatabase: true}); err != nil || len(got) != 0 {
		t.Fatalf("tenant database: %v\n%s", err, describe(got))
	}
}

// TestTenantDatabase seeds mistakes into a database tenant's own database:
// Fleet finds them there, names that database, and --tenant style audits
// see them only for that tenant.
func TestTenantDatabase(t *testing.T) {
	t.Parallel()
	in := setup(t)
	ctx := t.Context()
	l, err := landlord.Open(ctx, in.db.URL, demo.Migrations(), landlord.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dt, err := l.CreateTenant(ctx, provision.Request{Slug: "acme-database", Model: tenant.ModelDatabase})
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	d, s := dt.Database, dt.Schema
	for _, c := range []struct {
		name, seed, restore string
		want                []key
	}{
		{"PUBLIC may connect", "GRANT CONNECT ON DATABASE {d} TO PUBLIC", "REVOKE CONNECT ON DATABASE {d} FROM PUBLIC",
			[]key{{"tenant_database_access", "{d}", "I21", sev}}},
		{"PUBLIC may create temporary tables", "GRANT TEMPORARY ON DATABASE {d} TO PUBLIC", "REVOKE TEMPORARY ON DATABASE {d} FROM PUBLIC",
			[]key{{"tenant_database_access", "{d}", "I21", sev}}},
		{"the app role may connect", "GRANT CONNECT ON DATABASE {d} TO landlord_app", "REVOKE CONNECT ON DATABASE {d} FROM landlord_app",
			[]key{{"tenant_database_access", "{d}", "I21", sev}}},
		{"rls not forced", "ALTER TABLE {s}.products NO FORCE ROW LEVEL SECURITY", "ALTER TABLE {s}.products FORCE ROW LEVEL SECURITY",
			[]key{{"rls_not_forced", "{s}.products", "I01", sev}}},
		{"TRUNCATE for the tenant role", "GRANT TRUNCATE ON {s}.products TO r_{h}", "REVOKE TRUNCATE ON {s}.products FROM r_{h}",
			[]key{{"rls_bypass_privilege", "{s}.products", "I13", sev}}},
	} {
		expand := strings.NewReplacer("{d}", d, "{s}", s, "{h}", dt.ID.Hex()).Replace
		superExec(t, in.db, d, expand(c.seed))
		got, err := audit.Fleet(ctx, in.admin, audit.FleetConfig{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := make([]key, len(c.want))
		for i, k := range c.want {
			k.Object = expand(k.Object)
			want[i] = k
		}
		wantFindings(t, got, want...)
		for _, f := range got {
			if f.Database != d {
				t.Errorf("%s: finding in database %q, want %q", c.name, f.Database, d)
			}
		}
		only, err := audit.Fleet(ctx, in.admin, audit.FleetConfig{Tenant: dt.ID})
		if err != nil {
			t.Fatal(err)
		}
		wantFindings(t, only, want...)
		other, err := audit.Fleet(ctx, in.admin, audit.FleetConfig{Tenant: in.schema.ID})
		if err != nil || len(other) != 0 {
			t.Fatalf("%s: the schema tenant's audit: %v\n%s", c.name, err, describe(other))
		}
		superExec(t, in.db, d, expand(c.restore))
	}
	if got, err := audit.Fleet(ctx, in.admin, audit.FleetConfig{}); err != nil || len(got) != 0 {
		t.Fatalf("after restoring: %v\n%s", err, describe(got))
	}
}

// TestSchemasLimit: Config.Schemas limits the table checks to a tenant.
func TestSchemasLimit(t *testing.T) {
	t.Parallel()
	in := setup(t)
	superExec(t, in.db, in.db.Name, `ALTER TABLE shared.products NO FORCE ROW LEVEL SECURITY`)
	for _, c := range []struct {
		schemas []string
		want    int
	}{{nil, 1}, {[]string{"shared"}, 1}, {[]string{in.schema.Schema}, 0}} {
		got, err := audit.Run(t.Context(), in.admin, audit.Config{Schemas: c.schemas})
		if err != nil || len(got) != c.want {
			t.Errorf("Schemas %v: %v, %d finding(s), want %d\n%s", c.schemas, err, len(got), c.want, describe(got))
		}
	}
	row, err := directory.New(in.admin).GetBySlug(t.Context(), "acme-row")
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[tenant.ID]int{row.ID: 1, in.schema.ID: 0} {
		got, err := audit.Fleet(t.Context(), in.admin, audit.FleetConfig{Tenant: id})
		if err != nil || len(got) != want {
			t.Errorf("Fleet for tenant %s: %v, %d finding(s), want %d\n%s", id, err, len(got), want, describe(got))
		}
	}
}

// TestRunErrors: what stops an audit is an error, never a clean result.
func TestRunErrors(t *testing.T) {
	t.Parallel()
	in := setup(t)
	ctx := t.Context()
	if _, err := audit.Run(ctx, in.admin, audit.Config{AppRole: "no_such_app_role"}); !errors.Is(err, audit.ErrUnknownRole) {
		t.Errorf("unknown app role: %v", err)
	}
	if _, err := audit.Run(ctx, in.admin, audit.Config{TenantDatabase: true}); !errors.Is(err, audit.ErrNotTenantDatabase) {
		t.Errorf("control database as a tenant database: %v", err)
	}
	for _, cfg := range []audit.Config{{AppRole: "Bad Role"}, {SharedSchema: "pg_shared"}, {Schemas: []string{"a;b"}}} {
		if _, err := audit.Run(ctx, in.admin, cfg); err == nil || !strings.Contains(err.Error(), "audit config") {
			t.Errorf("config %+v: %v", cfg, err)
		}
	}
	empty := pool(t, server.NewDB(t, nil).URL)
	if _, err := audit.Fleet(ctx, empty, audit.FleetConfig{}); !errors.Is(err, audit.ErrNoInstallation) {
		t.Errorf("empty database: %v", err)
	}
	if _, err := audit.Fleet(ctx, in.admin, audit.FleetConfig{Tenant: tenant.NewID()}); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("unknown tenant: %v", err)
	}
	if _, err := audit.Fleet(ctx, in.admin, audit.FleetConfig{Concurrency: -1}); err == nil {
		t.Error("negative concurrency accepted")
	}
}

// TestFleetUnreachable: a database Fleet cannot reach is an error that
// names it, and the other databases are still audited.
func TestFleetUnreachable(t *testing.T) {
	t.Parallel()
	in := setup(t)
	ctx := context.Background()
	// An active database tenant whose database is gone.
	id := tenant.NewID()
	if _, err := in.admin.Exec(ctx, `INSERT INTO landlord.tenants
		(id, slug, model, server_id, schema_name, database_name, state, schema_version)
		VALUES ($1, 'gone-database', 'database', 'main', $2, $2, 'active', 1)`, id, id.DatabaseName()); err != nil {
		t.Fatal(err)
	}
	superExec(t, in.db, in.db.Name, `ALTER TABLE shared.products NO FORCE ROW LEVEL SECURITY`)
	got, err := audit.Fleet(ctx, in.admin, audit.FleetConfig{})
	if err == nil || !strings.Contains(err.Error(), id.DatabaseName()) {
		t.Fatalf("error %v does not name %s", err, id.DatabaseName())
	}
	wantFindings(t, got, key{"rls_not_forced", "shared.products", "I01", sev})
}
