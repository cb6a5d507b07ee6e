package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/audit"
	"github.com/landlordhq/landlord/internal/demo"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pgtest"
)

// runAuditCmd runs "landlord audit args..." and returns stdout, stderr and the
// exit code main would use.
func runAuditCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	root := newRoot()
	var stdout, stderr bytes.Buffer
	root.SetArgs(append([]string{"audit"}, args...))
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	code := 0
	if err := root.ExecuteContext(context.Background()); err != nil {
		code = exitCode(err)
		stderr.WriteString(err.Error())
	}
	return stdout.String(), stderr.String(), code
}

// demoInstallation runs the demo on a fresh database: an installation with
// a tenant in each model.
func demoInstallation(t *testing.T) *pgtest.DB {
	t.Helper()
	db := server.NewDB(t, nil)
	var out bytes.Buffer
	if err := demo.Run(t.Context(), db.URL, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	return db
}

// superExec runs sql at url; it also serves in t.Cleanup, when the test's
// own context is already cancelled.
func superExec(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// TestAudit runs the command on the demo's installation: clean; with bad
// input; with one mistake in the schema tenant's tables, whole and per
// tenant, as a table and as NDJSON; then with each mistake of the audit's
// brief in turn, seeded as the superuser and reverted; warnings alone; and
// clean again at the end.
func TestAudit(t *testing.T) {
	t.Parallel()
	db := demoInstallation(t)
	ctx := t.Context()
	url := "--database-url=" + db.URL

	out, errOut, code := runAuditCmd(t, url)
	if code != 0 || !strings.Contains(out, "No findings") {
		t.Fatalf("clean installation: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runAuditCmd(t, url, "--json")
	if code != 0 || out != "" {
		t.Fatalf("clean installation, --json: exit %d, %q%s", code, out, errOut)
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		// A tenant that is not there fails the operation, as everywhere.
		{[]string{"--tenant", "no-such-shop"}, exitError},
		{[]string{"--tenant", "01a20915-aec6-7380-9488-7d104b64977b"}, exitError},
		{[]string{"--app-role", "no_such_role"}, exitUsage},
	} {
		_, errOut, code := runAuditCmd(t, append([]string{url}, c.args...)...)
		if code != c.want || errOut == "" {
			t.Errorf("%v: exit %d, want %d: %q", c.args, code, c.want, errOut)
		}
	}

	var schema, tdb string
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	err = conn.QueryRow(ctx, `SELECT (SELECT schema_name FROM landlord.tenants WHERE slug = 'demo-book-store'),
		(SELECT database_name FROM landlord.tenants WHERE slug = 'demo-big-market')`).Scan(&schema, &tdb)
	conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	superExec(t, db.AdminURL, "ALTER TABLE "+schema+".products NO FORCE ROW LEVEL SECURITY")
	out, errOut, code = runAuditCmd(t, url)
	if code != exitError {
		t.Fatalf("exit %d with an error finding, want %d\n%s%s", code, exitError, out, errOut)
	}
	// Messages and fixes are wrapped: compare with the line breaks and
	// indentation as single spaces.
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"ERROR", "fix:", "I01", "rls_not_forced", schema + ".products", "FORCE ROW LEVEL SECURITY", "1 error(s)"} {
		if !strings.Contains(flat, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	// It fits a terminal: no line wider than 100 characters (the table
	// it replaced ran to about 230).
	for _, l := range strings.Split(out, "\n") {
		if len(l) > 100 {
			t.Errorf("line of %d characters:\n%s", len(l), l)
		}
	}
	if !strings.Contains(errOut, "isolation audit failed") {
		t.Errorf("stderr: %q", errOut)
	}
	for _, c := range []struct {
		tenant string
		want   int
	}{{"demo-book-store", 1}, {"DEMO-Book-Store", 1}, {"demo-corner-shop", 0}, {"demo-big-market", 0}} {
		out, errOut, code := runAuditCmd(t, url, "--json", "--tenant", c.tenant)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if out == "" {
			lines = nil
		}
		if len(lines) != c.want || (c.want > 0) != (code == exitError) || (c.want == 0 && code != 0) {
			t.Fatalf("--tenant %s: exit %d, %d finding(s), want %d\n%s%s", c.tenant, code, len(lines), c.want, out, errOut)
		}
		for _, l := range lines {
			var f audit.Finding
			if err := json.Unmarshal([]byte(l), &f); err != nil {
				t.Fatalf("--json line %q: %v", l, err)
			}
			if f.Check != "rls_not_forced" || f.Threat != "I01" || f.Severity != audit.SeverityError || f.Object != schema+".products" || f.Fix == "" {
				t.Errorf("finding %+v", f)
			}
		}
	}
	superExec(t, db.AdminURL, "ALTER TABLE "+schema+".products FORCE ROW LEVEL SECURITY")

	// A dedicated app role for the role attribute: roles are cluster-wide.
	app := "audit_cli_app_" + strings.ReplaceAll(db.Name, "pgtest_", "")
	l, err := landlord.Open(ctx, db.URL, demo.Migrations(), landlord.Config{AppRole: app})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	t.Cleanup(func() { superExec(t, db.AdminURL, "ALTER ROLE "+app+" NOBYPASSRLS") })

	control, tenantDB := db.AdminURL, db.Server.AdminURL(tdb)
	pred := migration.TenantPredicate
	for _, c := range []struct {
		name, url, seed, revert, check, threat string
		args                                   []string
		code                                   int
	}{
		{"rls disabled", control, "ALTER TABLE shared.products DISABLE ROW LEVEL SECURITY",
			"ALTER TABLE shared.products ENABLE ROW LEVEL SECURITY", "rls_disabled", "I03", nil, exitError},
		{"permissive USING true", control, "CREATE POLICY open ON shared.products USING (true)",
			"DROP POLICY open ON shared.products", "always_true_policy", "I04", nil, exitError},
		{"restrictive policy dropped", control, "DROP POLICY landlord_tenant ON shared.products",
			"CREATE POLICY landlord_tenant ON shared.products AS RESTRICTIVE USING (" + pred + ") WITH CHECK (" + pred + ")",
			"tenant_policy_missing", "I04", nil, exitError},
		{"nullable tenant_id", control,
			"SET ROLE landlord_owner; CREATE TABLE shared.notes (tenant_id uuid, id bigint NOT NULL, UNIQUE (tenant_id, id))",
			"DROP TABLE shared.notes", "tenant_id_nullable", "I03", nil, exitError},
		{"unique index without tenant_id", control, "CREATE UNIQUE INDEX products_name_key ON shared.products (name)",
			"DROP INDEX shared.products_name_key", "unique_index_without_tenant_id", "I12", nil, exitError},
		{"TRUNCATE for the app role", control, "GRANT TRUNCATE ON shared.products TO landlord_app",
			"REVOKE TRUNCATE ON shared.products FROM landlord_app", "rls_bypass_privilege", "I13", nil, exitError},
		{"BYPASSRLS app role", control, "ALTER ROLE " + app + " BYPASSRLS", "ALTER ROLE " + app + " NOBYPASSRLS",
			"role_bypassrls", "I02", []string{"--app-role", app}, exitError},
		{"SECURITY DEFINER without search_path", control,
			"CREATE FUNCTION public.answer() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 42'",
			"DROP FUNCTION public.answer()", "security_definer_search_path", "I09", nil, exitError},
		{"view without security_invoker", control, "CREATE VIEW public.names AS SELECT name FROM shared.products",
			"DROP VIEW public.names", "view_security_invoker", "I08", nil, exitError},
		{"materialized view", control, "CREATE MATERIALIZED VIEW public.names AS SELECT name FROM {s}.products",
			"DROP MATERIALIZED VIEW public.names", "materialized_view", "I16", nil, exitError},
		{"LEAKPROOF function", control,
			"CREATE FUNCTION public.peek(bigint) RETURNS boolean LANGUAGE sql IMMUTABLE LEAKPROOF AS 'SELECT $1 > 0'",
			"DROP FUNCTION public.peek(bigint)", "leakproof_function", "I10", nil, exitError},
		{"CONNECT on a tenant database for PUBLIC", tenantDB, "GRANT CONNECT ON DATABASE {d} TO PUBLIC",
			"REVOKE CONNECT ON DATABASE {d} FROM PUBLIC", "tenant_database_access", "I21", nil, exitError},
		{"CREATE on public for PUBLIC", control, "GRANT CREATE ON SCHEMA public TO PUBLIC",
			"REVOKE CREATE ON SCHEMA public FROM PUBLIC", "public_create", "I18", nil, exitError},
		// Warnings alone pass.
		{"a warning", control, "ALTER TABLE shared.products ALTER COLUMN tenant_id SET DEFAULT gen_random_uuid()",
			"ALTER TABLE shared.products ALTER COLUMN tenant_id SET DEFAULT " + migration.TenantDefault,
			"tenant_id_default", "I14", nil, 0},
	} {
		expand := strings.NewReplacer("{s}", schema, "{d}", tdb).Replace
		superExec(t, c.url, expand(c.seed))
		out, errOut, code := runAuditCmd(t, append([]string{url}, c.args...)...)
		if code != c.code || !strings.Contains(out, c.check) || !strings.Contains(out, c.threat) {
			t.Errorf("%s: exit %d, want %d with %s (%s)\n%s%s", c.name, code, c.code, c.check, c.threat, out, errOut)
		}
		superExec(t, c.url, expand(c.revert))
	}
	if out, errOut, code := runAuditCmd(t, url); code != 0 || !strings.Contains(out, "No findings") {
		t.Fatalf("after the reverts: exit %d\n%s%s", code, out, errOut)
	}
}

// TestAuditUsageErrors: bad command lines exit 2 before any connection is
// tried (the URL leads nowhere), and a database without an installation is
// a failure with a clear message.
func TestAuditUsageErrors(t *testing.T) {
	t.Parallel()
	nowhere := "--database-url=postgres://u:hunter2@nowhere.invalid:1/x?connect_timeout=1"
	for _, args := range [][]string{
		{nowhere, "extra-argument"},
		{nowhere, "--no-such-flag"},
		{nowhere, "--tenant", "no such slug!"},
		{nowhere, "--app-role", "Bad Role"},
		{nowhere, "--owner-role", "pg_owner"},
	} {
		_, errOut, code := runAuditCmd(t, args...)
		if code != exitUsage || errOut == "" || strings.Contains(errOut, "hunter2") {
			t.Errorf("%v: exit %d, want %d: %q", args[1:], code, exitUsage, errOut)
		}
	}
	_, errOut, code := runAuditCmd(t, nowhere)
	if code != exitError || strings.Contains(errOut, "hunter2") {
		t.Errorf("unreachable database: exit %d: %q", code, errOut)
	}
	_, errOut, code = runAuditCmd(t, "--database-url", server.NewDB(t, nil).URL)
	if code != exitError || !strings.Contains(errOut, "no Landlord installation") {
		t.Errorf("empty database: exit %d: %q", code, errOut)
	}
}

func TestAuditHelp(t *testing.T) {
	t.Parallel()
	out, _, code := runAuditCmd(t, "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"Examples:", "--tenant", "--json", "--app-role", "Exit codes", "130", "migrations"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
}
