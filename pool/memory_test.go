package pool

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

// The catalog memory a backend keeps per schema tenant it served, measured
// with pg_backend_memory_contexts from the backend itself. It decides
// DefaultMaxTenantsPerConn (see there).

// catalogBudget is the per-backend catalog memory DefaultMaxTenantsPerConn
// aims to stay under.
const catalogBudget = 128 << 20

const memTables = 10

// tenantDDL creates a tenant schema of memTables tables in the shape every
// Landlord tenant table has: tenant_id leading a composite primary key, a
// unique key and a foreign key, row-level security forced with a
// restrictive and a permissive policy on the tenant setting.
func tenantDDL(schema string) string {
	var b strings.Builder
	s := ident.Quote(schema)
	fmt.Fprintf(&b, "CREATE SCHEMA %s;\n", s)
	const pred = `tenant_id = nullif(current_setting('landlord.tenant_id', true), '')::uuid`
	for i := range memTables {
		fk := ""
		if i > 0 {
			fk = fmt.Sprintf(", FOREIGN KEY (tenant_id, parent_id) REFERENCES %s.t0 (tenant_id, id)", s)
		}
		fmt.Fprintf(&b, `CREATE TABLE %[1]s.t%[2]d (
			tenant_id uuid NOT NULL, id bigint NOT NULL, parent_id bigint, name text NOT NULL,
			note text, amount numeric(12, 2), created_at timestamptz NOT NULL DEFAULT now(), data jsonb,
			PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, name)%[3]s);
			ALTER TABLE %[1]s.t%[2]d ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
			CREATE POLICY r ON %[1]s.t%[2]d AS RESTRICTIVE USING (%[4]s) WITH CHECK (%[4]s);
			CREATE POLICY p ON %[1]s.t%[2]d AS PERMISSIVE USING (%[4]s) WITH CHECK (%[4]s);
			`, s, i, fk, pred)
	}
	return b.String()
}

// makeSchemas creates n tenant schemas in the test's database and returns
// their names.
func makeSchemas(t testing.TB, e *env, n int) []string {
	t.Helper()
	conn, err := pgx.ConnectConfig(t.Context(), e.base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var names []string
	for range n {
		name := "t_" + strings.ReplaceAll(tenant.NewID().String(), "-", "")
		if _, err := conn.Exec(t.Context(), tenantDDL(name)); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

// touchSchema runs, as a tenant of schema switched to role for the
// transaction (as the schema model does), what a request does: a primary
// key lookup in each table and, when write is set, an insert into each (in
// a transaction rolled back: the catalog cache stays).
func touchSchema(ctx context.Context, conn *pgx.Conn, schema, role string, write bool) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	id := tenant.NewID().String()
	if _, err := tx.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, true), set_config('role', $2, true),
		set_config('search_path', $3, true)`, id, role, ident.Quote(schema)+", pg_temp"); err != nil {
		return err
	}
	for i := range memTables {
		var n int
		sql := fmt.Sprintf("SELECT count(*) FROM t%d WHERE tenant_id = $1 AND id = $2", i)
		if err := tx.QueryRow(ctx, sql, pgx.QueryExecModeExec, id, 1).Scan(&n); err != nil {
			return err
		}
		if write {
			parent := "NULL"
			if i > 0 {
				parent = "1"
			}
			sql := fmt.Sprintf("INSERT INTO t%d (tenant_id, id, parent_id, name) VALUES ($1, 1, %s, 'x')", i, parent)
			if _, err := tx.Exec(ctx, sql, pgx.QueryExecModeExec, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// memory is what pg_backend_memory_contexts says of one backend, in bytes:
// allocated (total) and in use (used), for CacheMemoryContext with all its
// children and for the whole backend.
type memory struct {
	catalogTotal, catalogUsed, total, used float64
}

// backendMemory reads conn's own memory contexts. The function lists them
// depth first, so a context's descendants are the rows after it down to
// the next row at its level or above.
func backendMemory(ctx context.Context, conn *pgx.Conn) (memory, error) {
	var m memory
	err := conn.QueryRow(ctx, `
		WITH c AS (
			SELECT row_number() OVER () AS i, name, level, total_bytes, used_bytes
			FROM pg_get_backend_memory_contexts()
		), cache AS (
			SELECT i AS first, level FROM c WHERE name = 'CacheMemoryContext'
		), sub AS (
			SELECT c.* FROM c, cache WHERE c.i >= cache.first AND c.i < coalesce(
				(SELECT min(d.i) FROM c d WHERE d.i > cache.first AND d.level <= cache.level), 1e18)
		)
		SELECT (SELECT sum(total_bytes) FROM sub)::float8, (SELECT sum(used_bytes) FROM sub)::float8,
			(SELECT sum(total_bytes) FROM c)::float8, (SELECT sum(used_bytes) FROM c)::float8`,
		pgx.QueryExecModeSimpleProtocol).Scan(&m.catalogTotal, &m.catalogUsed, &m.total, &m.used)
	return m, err
}

// schemaCost is the memory one backend gains per schema tenant it serves.
type schemaCost struct {
	// catalog and backend are the bytes allocated per schema: the growth of
	// the bytes in use, scaled by the allocator's overhead (allocated over
	// used) at the end. Allocated bytes alone grow in blocks of up to 8 MB,
	// too coarse to divide by a few dozen schemas.
	catalog, backend float64
	// base is the backend's allocation after its first tenant.
	base float64
}

// schemaMemory measures a backend serving each of schemas in turn (the first
// one warms the caches every tenant shares). conn is a superuser's, the only
// kind that may read its memory contexts; the tenant work runs as role.
func schemaMemory(ctx context.Context, conn *pgx.Conn, schemas []string, role string, write bool) (schemaCost, error) {
	if err := touchSchema(ctx, conn, schemas[0], role, write); err != nil {
		return schemaCost{}, err
	}
	m0, err := backendMemory(ctx, conn)
	if err != nil {
		return schemaCost{}, err
	}
	for _, s := range schemas[1:] {
		if err := touchSchema(ctx, conn, s, role, write); err != nil {
			return schemaCost{}, err
		}
	}
	m1, err := backendMemory(ctx, conn)
	if err != nil {
		return schemaCost{}, err
	}
	n := float64(len(schemas) - 1)
	return schemaCost{
		catalog: (m1.catalogUsed - m0.catalogUsed) / n * m1.catalogTotal / m1.catalogUsed,
		backend: (m1.used - m0.used) / n * m1.total / m1.used,
		base:    m0.total,
	}, nil
}

// stmtAllowance is the memory of the statements a connection keeps prepared
// for schema tenants: the root package caps them at 512 per connection, and
// a prepared primary key lookup with its cached generic plan takes about
// 25 KB (BenchmarkCatalogMemoryPerSchema reports it).
const stmtAllowance = 512 * 25 << 10

func TestCatalogMemoryPerSchema(t *testing.T) {
	t.Parallel()
	e := setup(t)
	schemas := makeSchemas(t, e, 21)
	for _, write := range []bool{false, true} {
		conn, err := pgx.Connect(t.Context(), e.adminURL)
		if err != nil {
			t.Fatal(err)
		}
		cost, err := schemaMemory(t.Context(), conn, schemas, e.base.User, write)
		conn.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("write %t: per schema of %d tables: CacheMemoryContext %.0f KB, backend %.0f KB; base %.1f MB",
			write, memTables, cost.catalog/1024, cost.backend/1024, cost.base/(1<<20))
		if cost.catalog < 10<<10*memTables {
			t.Errorf("catalog growth %.0f B per schema of %d tables: implausibly small, the measurement is broken",
				cost.catalog, memTables)
		}
		worst := cost.base + max(cost.catalog, cost.backend)*DefaultMaxTenantsPerConn + stmtAllowance
		if worst > catalogBudget {
			t.Errorf("a backend at DefaultMaxTenantsPerConn (%d) schema tenants of %.0f KB would hold %.0f MB, over %d MB",
				DefaultMaxTenantsPerConn, cost.backend/1024, worst/(1<<20), catalogBudget>>20)
		}
	}
}
