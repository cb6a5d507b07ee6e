package audit_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/audit"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/demo"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

var server *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &server)) }

// template is an installation of the demo's tables with one row tenant and
// one schema tenant: both live in the control database, so every clone
// carries them. Database tenants live in databases of their own and are
// created by the tests that need them.
var template = func() *pgtest.Template {
	set, err := migration.Load(demo.Migrations())
	if err != nil {
		panic(err)
	}
	return &pgtest.Template{
		Name: "audit-" + set.Hash()[:12] + "-" + directory.Migrations().Hash()[:12],
		Setup: func(ctx context.Context, db *pgtest.DB) error {
			l, err := landlord.Open(ctx, db.URL, demo.Migrations(), landlord.Config{})
			if err != nil {
				return err
			}
			defer l.Close()
			for _, r := range []provision.Request{
				{Slug: "acme-row", Model: tenant.ModelRow},
				{Slug: "acme-schema", Model: tenant.ModelSchema},
			} {
				if _, err := l.CreateTenant(ctx, r); err != nil {
					return err
				}
			}
			return nil
		},
	}
}()

// install is one installation under test.
type install struct {
	db     *pgtest.DB
	admin  *pgxpool.Pool // the installation's administrator (pgtest_owner)
	schema tenant.Tenant // the schema tenant of the template
}

// setup returns a clone of the template installation.
func setup(t *testing.T) install {
	t.Helper()
	db := server.NewDB(t, template)
	admin := pool(t, db.URL)
	st, err := directory.New(admin).GetBySlug(t.Context(), "acme-schema")
	if err != nil {
		t.Fatal(err)
	}
	return install{db: db, admin: admin, schema: st}
}

func pool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// superExec runs sql as the server's superuser in database name of the
// installation's server.
func superExec(t *testing.T, db *pgtest.DB, database, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.Server.AdminURL(database))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("seed %q: %v", sql, err)
	}
}

func superConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// seeded runs seed in a transaction on conn, audits the database inside
// that transaction, where the seed is visible, and rolls back, whatever
// happened: nothing of the seed, not even a role attribute, is ever
// committed.
func seeded(t *testing.T, conn *pgx.Conn, seed string, cfg audit.Config) []audit.Finding {
	t.Helper()
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(t.Context(), seed); err != nil {
		t.Fatalf("seed %q: %v", seed, err)
	}
	if _, err := tx.Exec(t.Context(), "RESET ROLE"); err != nil {
		t.Fatal(err)
	}
	got, err := audit.Run(t.Context(), tx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// secureSQL makes schema.table a tenant table the way migration.Secure
// does, for tables a test creates with a deliberate flaw that Secure would
// refuse.
func secureSQL(schema, table string) string {
	return fmt.Sprintf(`ALTER TABLE %[1]s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY %[2]s ON %[1]s AS RESTRICTIVE FOR ALL TO PUBLIC USING (%[4]s) WITH CHECK (%[4]s);
CREATE POLICY %[3]s ON %[1]s AS PERMISSIVE FOR ALL TO PUBLIC USING (%[4]s) WITH CHECK (%[4]s);
ALTER TABLE %[1]s ALTER COLUMN tenant_id SET DEFAULT %[5]s;`,
		ident.Quote(schema, table), ident.Quote(migration.PolicyRestrictive), ident.Quote(migration.PolicyPermissive),
		migration.TenantPredicate, migration.TenantDefault)
}

// key is what a test expects of a finding.
type key struct {
	Check, Object, Threat string
	Severity              audit.Severity
}

func keys(fs []audit.Finding) []key {
	out := make([]key, 0, len(fs))
	for _, f := range fs {
		out = append(out, key{f.Check, f.Object, f.Threat, f.Severity})
	}
	slices.SortFunc(out, func(a, b key) int { return strings.Compare(a.Check+a.Object, b.Check+b.Object) })
	return out
}

func describe(fs []audit.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s %s %s %s [%s]: %s | fix: %s\n", f.Severity, f.Threat, f.Check, f.Object, f.Database, f.Message, f.Fix)
	}
	if b.Len() == 0 {
		return "  (none)\n"
	}
	return b.String()
}

// wantFindings fails the test unless got holds exactly want.
func wantFindings(t *testing.T, got []audit.Finding, want ...key) {
	t.Helper()
	w := slices.Clone(want)
	slices.SortFunc(w, func(a, b key) int { return strings.Compare(a.Check+a.Object, b.Check+b.Object) })
	if !slices.Equal(keys(got), w) {
		t.Fatalf("findings:\n%swant exactly: %+v", describe(got), w)
	}
	for _, f := range got {
		if f.Message == "" || f.Fix == "" || f.Database == "" {
			t.Errorf("finding %s %s lacks a message, fix or database: %+v", f.Check, f.Object, f)
		}
	}
}
