package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/tenant"
)

// TestTenantsMove runs a move end to end through the command line, as an
// administrator that is not a superuser (so offline), lists it, and checks
// the refusals: exit 2 and nothing changed.
func TestTenantsMove(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	src := createTenant(t, db, "acme", tenant.ModelSchema)
	adminExec(t, db, `INSERT INTO `+src.Schema+`.products (tenant_id, id, name, price_cents)
		SELECT $1, i, 'product ' || i, i FROM generate_series(1, 300) i`, src.ID)
	db_ := dbFlag(db)

	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"tenants", "move", "acme", "--model", "database"}, "--reason"},
		{[]string{"tenants", "move", "acme", "--reason", "r"}, "--model"},
		{[]string{"tenants", "move", "acme", "--model", "cluster", "--reason", "r"}, "cluster"},
		{[]string{"tenants", "move", "acme", "--model", "schema", "--reason", "r"}, "there already"},
		{[]string{"tenants", "move", "acme", "--model", "database", "--online", "--reason", "r"}, "superuser"},
		{[]string{"tenants", "move", "acme", "--model", "database", "--server", "nowhere", "--reason", "r"}, "nowhere"},
		{[]string{"tenants", "move", "acme", "--resume", "--reason", "r"}, "no move"},
		{[]string{"tenants", "move", "acme", "--model", "database", "--verify", "some", "--reason", "r"}, "want changed or all"},
		{[]string{"servers", "drain", "main", "--verify", "none", "--reason", "r"}, "want changed or all"},
		{[]string{"servers", "drain", "main", "--reason", "r"}, "no other server"},
		{[]string{"servers", "drain", "nowhere", "--reason", "r"}, "nowhere"},
	} {
		if _, errOut, code := cli(t, "", append(c.args, db_...)...); code != exitUsage || !strings.Contains(errOut, c.says) {
			t.Errorf("%v: exit %d, want %d saying %q: %s", c.args, code, exitUsage, c.says, errOut)
		}
	}
	if out := mustRun(t, append([]string{"tenants", "moves", "--json"}, db_...)...); out != "" {
		t.Errorf("refused moves were recorded:\n%s", out)
	}

	var res moveResult
	m := decode(t, mustRun(t, append([]string{"tenants", "move", "acme", "--model", "database", "--reason", "bigger plan", "--json"}, db_...)...), &res)
	if got := strings.Join(keys(m), ","); got != "aborted,compared,copy_ms,move,tenant" {
		t.Errorf("move --json fields: %s", got)
	}
	if res.Compared != "all" { // offline: every row
		t.Errorf("an offline move compared %q", res.Compared)
	}
	if res.Tenant == nil || res.Tenant.Model != "database" || res.Tenant.State != "active" || res.Move.Phase != "done" ||
		res.Move.Mode != "offline" || res.Move.Rows != 300 || res.Aborted {
		t.Fatalf("move: %+v, tenant %+v", res.Move, res.Tenant)
	}
	moves := ndjson[moveView](t, mustRun(t, append([]string{"tenants", "moves", "acme", "--json"}, db_...)...))
	if len(moves) != 1 || moves[0].From.Model != "schema" || moves[0].To.Model != "database" || moves[0].Phase != "done" {
		t.Errorf("moves: %+v", moves)
	}
	out := mustRun(t, append([]string{"tenants", "moves"}, db_...)...)
	if !strings.Contains(out, "schema/main") || !strings.Contains(out, "database/main") || !strings.Contains(out, "done") {
		t.Errorf("moves table:\n%s", out)
	}
	// Back into the schema model, as people read it.
	out = mustRun(t, append([]string{"tenants", "move", "acme", "--model", "schema", "--reason", "smaller plan"}, db_...)...)
	if !strings.Contains(out, "Moved tenant acme") || !strings.Contains(out, "300 rows copied") {
		t.Errorf("move:\n%s", out)
	}
	if n := adminCount(t, db, `SELECT count(*) FROM `+src.Schema+`.products WHERE tenant_id = $1`, src.ID); n != 300 {
		t.Errorf("after two moves the tenant has %d products", n)
	}
}

// adminCount runs a count on the test database as the server's administrator.
func adminCount(t *testing.T, db *pgtest.DB, sql string, args ...any) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}
