package migration

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
)

// TenantPredicate is the row-level security predicate on every tenant table
// (ARCHITECTURE.md, idea 2): tenant_id equals the tenant of a signed context
// that verifies (ContextView; SECURITY.md, I31). An unset, empty, forged or
// expired context is NULL and matches no row and allows no write
// (SECURITY.md, I05). The scalar subquery is an init plan, run once per
// statement; it is written the way PostgreSQL prints the policy back, so
// that the audit can compare the two.
const TenantPredicate = `tenant_id = (SELECT verified.tenant_id FROM ` + ContextView + `)`

// TenantDefault fills tenant_id from the context on INSERT (SECURITY.md, I14).
const TenantDefault = ContextFunc

// Policy names Landlord installs. The restrictive one is the guard: it is
// ANDed with every other policy, so a later permissive policy cannot widen
// access across tenants (SECURITY.md, I04). PostgreSQL grants nothing without
// at least one permissive policy, hence the second, with the same predicate.
const (
	PolicyRestrictive = "landlord_tenant"
	PolicyPermissive  = "landlord_tenant_access"
)

// policyState is what tablesSQL finds of one of Landlord's policies on a
// table.
type policyState int

const (
	policyMissing  policyState = 0 // no policy of that name (NULL)
	policyUnsigned policyState = 1 // one that does not verify the context's signature
	policyCurrent  policyState = 2 // one that reads ContextView
)

// Scan reads a policy state from tablesSQL's nullable integer column.
func (s *policyState) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*s = policyMissing
	case int32:
		*s = policyState(v)
	case int64:
		*s = policyState(v)
	default:
		return fmt.Errorf("policy state: unexpected %T", src)
	}
	return nil
}

// tablesSQL lists the tables of a schema with what Secure needs to know.
// Whether a policy is signed, and whether tenant_id's default is the
// context's, is read from pg_depend (a policy depends on the relations its
// expressions name, a default on the functions it calls) rather than by
// deparsing them: pg_get_expr of a policy over the verifier view cost
// about 0.4 ms per table, most of a migration step's catalog work in a
// database of a few hundred tenant schemas (fleet-migrate benchmark). A
// default that is not the context's is deparsed, for Secure to tell the
// unsigned one of earlier versions from the application's own.
const tablesSQL = `
SELECT c.relname,
       a.attnum IS NOT NULL AND a.atttypid = 'uuid'::regtype AS has_tenant_id,
       c.relrowsecurity, c.relforcerowsecurity,
       (SELECT CASE WHEN ` + policySignedSQL + ` THEN 2 ELSE 1 END
        FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = $2) AS restrictive,
       (SELECT CASE WHEN ` + policySignedSQL + ` THEN 2 ELSE 1 END
        FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = $3) AS permissive,
       CASE WHEN d.oid IS NULL THEN ''
            WHEN ` + contextDefaultSQL + ` THEN '` + ContextFunc + `'
            ELSE pg_get_expr(d.adbin, d.adrelid) END AS tenant_default
FROM (` + schemaRelsSQL + `) r
JOIN pg_class c ON c.oid = r.oid
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p')
ORDER BY c.relname`

// policySignedSQL is true when policy p names the verifier view (ContextView,
// $4) in its expressions.
//
// OFFSET 0 keeps each of these lookups an index probe per policy or
// default: without it the planner may turn the EXISTS into a hashed
// subplan over every policy's (or default's) dependencies. It chose that
// after many tenants had just been created, while the catalogs'
// statistics still counted a few hundred rows: with 1,000 schema tenants
// that hash of 40,000 dependencies cost 190 ms per migration step
// (fleet-migrate benchmark, first round).
const policySignedSQL = `EXISTS (SELECT FROM pg_depend dp WHERE dp.classid = 'pg_policy'::regclass AND dp.objid = p.oid
	AND dp.refclassid = 'pg_class'::regclass AND dp.refobjid = to_regclass($4) OFFSET 0)`

// contextDefaultSQL is true when column default d calls the context's
// tenant function (ContextFunc). OFFSET 0: see policySignedSQL.
const contextDefaultSQL = `EXISTS (SELECT FROM pg_depend dd WHERE dd.classid = 'pg_attrdef'::regclass AND dd.objid = d.oid
	AND dd.refclassid = 'pg_proc'::regclass AND dd.refobjid = to_regprocedure('` + ContextFunc + `') OFFSET 0)`

// schemaRelsSQL lists the oids of the relations of schema $1 through the
// dependency each has on its schema, which pg_depend indexes, instead of
// filtering pg_class by relnamespace, which no catalog index leads with: on
// a server with a thousand tenant schemas that scan of every relation made
// the shape check cost about 11 ms per migration step, most of a fleet
// migration's server time (fleet-migrate benchmark). Every table, view,
// materialized view and sequence depends on its schema, and ALTER ... SET
// SCHEMA moves the dependency with it.
const schemaRelsSQL = `SELECT DISTINCT d.objid AS oid FROM pg_depend d
	WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjsubid = 0
	  AND d.refobjid = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = $1)
	  AND d.classid = 'pg_class'::regclass`

// shapeSQL lists every way the tables of a schema break the one table shape
// (ARCHITECTURE.md, idea 1): each tenant table has tenant_id uuid NOT NULL
// leading its primary key, every unique constraint or index and every foreign
// key (on both sides), and foreign keys stay inside the schema. The one
// exception: a foreign key may reference a table of the global schema
// (GlobalSchema), whose keys have no tenant_id, as long as it neither
// cascades nor sets anything when a global row changes. Materialized
// views are refused too: they have no row-level security (SECURITY.md, I16).
const shapeSQL = `
WITH r AS MATERIALIZED (` + schemaRelsSQL + `), t AS (
	SELECT c.oid, c.relname, a.attnum AS tid, a.attnotnull, a.atttypid, c.relnamespace
	FROM r JOIN pg_class c ON c.oid = r.oid
	LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
	WHERE c.relkind IN ('r', 'p')
), g AS (
	-- the global tables: the one place outside the schema a foreign key
	-- may reference (their keys are not led by tenant_id)
	-- (through pg_depend, for the reason schemaRelsSQL gives)
	SELECT c.oid FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
	WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjsubid = 0
	  AND d.refobjid = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = '` + GlobalSchema + `')
	  AND d.classid = 'pg_class'::regclass AND c.relkind = 'r'
)
SELECT relname, problem FROM (
	SELECT relname, 'has no tenant_id column (every table here is a tenant table)' AS problem FROM t WHERE tid IS NULL
	UNION ALL
	SELECT relname, 'tenant_id must be of type uuid' FROM t WHERE tid IS NOT NULL AND atttypid <> 'uuid'::regtype
	UNION ALL
	SELECT relname, 'tenant_id must be NOT NULL' FROM t WHERE tid IS NOT NULL AND NOT attnotnull
	UNION ALL
	-- pg_get_expr locks the table it deparses for: the OFFSET 0 fence keeps
	-- the planner from calling it on defaults of other schemas' tables,
	-- which concurrent migrations of other tenants hold locked.
	SELECT relname, 'tenant_id has a default other than the tenant context' FROM (
		SELECT t.relname, d.adbin, d.adrelid, ` + contextDefaultSQL + ` AS context FROM t
		JOIN pg_attrdef d ON d.adrelid = t.oid AND d.adnum = t.tid
		OFFSET 0
	) td WHERE CASE WHEN td.context THEN false
		ELSE pg_get_expr(td.adbin, td.adrelid) NOT LIKE '%' || '` + ContextFunc + `' || '%' END
	UNION ALL
	SELECT relname, 'has no primary key; it must be (tenant_id, ...)' FROM t
	WHERE tid IS NOT NULL AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = t.oid AND k.contype = 'p')
	UNION ALL
	SELECT t.relname, format('%s %s does not lead with tenant_id',
		CASE k.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique constraint' ELSE 'exclusion constraint' END, k.conname)
	FROM t JOIN pg_constraint k ON k.conrelid = t.oid
	WHERE t.tid IS NOT NULL AND k.contype IN ('p', 'u', 'x') AND k.conkey[1] IS DISTINCT FROM t.tid
	UNION ALL
	SELECT t.relname, format('unique index %s does not lead with tenant_id', (SELECT quote_ident(ic.relname) FROM pg_class ic WHERE ic.oid = i.indexrelid))
	FROM t JOIN pg_index i ON i.indrelid = t.oid
	WHERE t.tid IS NOT NULL AND i.indisunique AND i.indkey[0] IS DISTINCT FROM t.tid
	  AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = t.oid)
	UNION ALL
	SELECT t.relname, format('foreign key %s does not lead with tenant_id on both sides', k.conname)
	FROM t JOIN pg_constraint k ON k.conrelid = t.oid
	WHERE t.tid IS NOT NULL AND k.contype = 'f' AND k.confrelid NOT IN (SELECT oid FROM g) AND (
		k.conkey[1] IS DISTINCT FROM t.tid OR
		k.confkey[1] IS DISTINCT FROM (SELECT r.attnum FROM pg_attribute r
			WHERE r.attrelid = k.confrelid AND r.attname = 'tenant_id' AND NOT r.attisdropped))
	UNION ALL
	SELECT t.relname, format('foreign key %s to global table %s must be ON UPDATE and ON DELETE NO ACTION or RESTRICT: a change of platform data must not change or remove tenants'' rows', k.conname, k.confrelid::regclass::text)
	FROM t JOIN pg_constraint k ON k.conrelid = t.oid
	WHERE k.contype = 'f' AND k.confrelid IN (SELECT oid FROM g) AND (k.confupdtype NOT IN ('a', 'r') OR k.confdeltype NOT IN ('a', 'r'))
	UNION ALL
	SELECT c.relname, 'is a materialized view: it stores a copy of rows that row-level security does not guard, which every role with SELECT reads (keep per-tenant results in tenant tables)'
	FROM r JOIN pg_class c ON c.oid = r.oid WHERE c.relkind = 'm'
	UNION ALL
	SELECT t.relname, format('foreign key %s references %s outside the schema', k.conname, k.confrelid::regclass::text)
	FROM t JOIN pg_constraint k ON k.conrelid = t.oid JOIN pg_class rc ON rc.oid = k.confrelid
	WHERE k.contype = 'f' AND rc.relnamespace <> t.relnamespace AND k.confrelid NOT IN (SELECT oid FROM g)
) v
ORDER BY relname, problem`

// Secure installs Landlord's row-level security on every tenant table of
// t.Schema (ENABLE and FORCE, the two policies, the tenant_id default), grants
// t.Grantee the four data privileges and nothing else, and then checks the
// shape of every table. It is idempotent and runs inside the caller's
// transaction, so a migration that fails the check leaves nothing behind.
func Secure(ctx context.Context, tx pgx.Tx, t Target) error {
	// What Secure must know, in one round trip under the catalog path
	// (catalogPathSQL); the second round trip writes, the third checks
	// the shape and sets the path back.
	type table struct {
		name                    string
		hasTenantID, rls, force bool
		restrict, permits       policyState
		def                     string
	}
	var (
		was, rels, seqs string
		hasUsage        bool
		tables          []table
	)
	read := &pgx.Batch{}
	read.Queue(catalogPathSQL).QueryRow(func(r pgx.Row) error {
		if err := r.Scan(&was, nil); err != nil {
			return fmt.Errorf("set the search path for the catalog checks: %w", err)
		}
		return nil
	})
	read.Queue(tablesSQL, t.Schema, PolicyRestrictive, PolicyPermissive, ContextView).Query(func(rows pgx.Rows) error {
		var err error
		tables, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
			var x table
			err := r.Scan(&x.name, &x.hasTenantID, &x.rls, &x.force, &x.restrict, &x.permits, &x.def)
			return x, err
		})
		if err != nil {
			return fmt.Errorf("list tables: %w", err)
		}
		return nil
	})
	// The grants name the objects: GRANT ... ON ALL TABLES IN SCHEMA scans
	// all of pg_class, which grows with the fleet (with 11,000 tenant
	// schemas on the server, the three statements cost about 25 ms per
	// migration step).
	read.Queue(grantsSQL, t.Schema, t.Grantee).QueryRow(func(r pgx.Row) error {
		if err := r.Scan(&rels, &seqs, &hasUsage); err != nil {
			return fmt.Errorf("list relations: %w", err)
		}
		return nil
	})
	if err := tx.SendBatch(ctx, read).Close(); err != nil {
		return err
	}

	var b strings.Builder
	for _, tb := range tables {
		if !tb.hasTenantID {
			// No uuid tenant_id: the policies would not even compile; the
			// shape check below reports the table.
			continue
		}
		q := ident.Quote(t.Schema, tb.name)
		if !tb.rls {
			fmt.Fprintf(&b, "ALTER TABLE %s ENABLE ROW LEVEL SECURITY;\n", q)
		}
		if !tb.force {
			fmt.Fprintf(&b, "ALTER TABLE %s FORCE ROW LEVEL SECURITY;\n", q)
		}
		for _, pol := range []struct {
			name, kind string
			state      policyState
		}{{PolicyRestrictive, "RESTRICTIVE", tb.restrict}, {PolicyPermissive, "PERMISSIVE", tb.permits}} {
			switch pol.state {
			case policyMissing:
				fmt.Fprintf(&b, "CREATE POLICY %s ON %s AS %s FOR ALL TO PUBLIC USING (%s) WITH CHECK (%s);\n",
					ident.Quote(pol.name), q, pol.kind, TenantPredicate, TenantPredicate)
			case policyUnsigned:
				// Made before the context was signed: anyone could forge it.
				fmt.Fprintf(&b, "ALTER POLICY %s ON %s USING (%s) WITH CHECK (%s);\n",
					ident.Quote(pol.name), q, TenantPredicate, TenantPredicate)
			}
		}
		// No default, or the unsigned one of earlier versions; any other
		// is the shape check's to report.
		if tb.def == "" || strings.Contains(tb.def, "current_setting('"+TenantSetting+"'") {
			fmt.Fprintf(&b, "ALTER TABLE %s ALTER COLUMN tenant_id SET DEFAULT %s;\n", q, TenantDefault)
		}
	}
	s := ident.Quote(t.Schema)
	// Nothing for PUBLIC; TRUNCATE, REFERENCES and TRIGGER are never granted
	// because they ignore row-level security (SECURITY.md, I13).
	if rels != "" {
		fmt.Fprintf(&b, "REVOKE ALL ON TABLE %s FROM PUBLIC;\n", rels)
	}
	if t.Grantee != "" {
		g := ident.Quote(t.Grantee)
		// Granting on a schema rewrites its pg_namespace row even when the
		// grant is there already, and any change to pg_namespace makes
		// every backend of the database drop all its cached plans
		// (PlanCacheSysCallback): each migration step re-planned the
		// prepared statements of all tenant traffic, and its own checks.
		if !hasUsage {
			fmt.Fprintf(&b, "GRANT USAGE ON SCHEMA %s TO %s;\n", s, g)
		}
		if rels != "" {
			fmt.Fprintf(&b, "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO %s;\n", rels, g)
		}
		if seqs != "" {
			fmt.Fprintf(&b, "GRANT USAGE, SELECT ON SEQUENCE %s TO %s;\n", seqs, g)
		}
	}
	if b.Len() > 0 {
		if _, err := tx.Exec(ctx, b.String()); err != nil {
			return fmt.Errorf("secure tables: %w", err)
		}
	}
	check := &pgx.Batch{}
	var shapeErr error
	check.Queue(shapeSQL, t.Schema).Query(func(rows pgx.Rows) error {
		shapeErr = shapeProblems(rows)
		return nil
	})
	check.Queue(restorePathSQL, was)
	if err := tx.SendBatch(ctx, check).Close(); err != nil {
		return fmt.Errorf("check table shape: %w", err)
	}
	return shapeErr
}

// catalogPathSQL sets the transaction's search path to pg_catalog alone
// for the catalog queries of Secure and SecureGlobal and returns the path
// it replaced, which restorePathSQL sets back. PostgreSQL re-plans a
// prepared statement whenever the search path differs from the one it was
// planned under, and a migration step runs under its target's schema: with
// every target's path in turn, each of those queries was planned again on
// every step (2.7 ms of planning for the shape check alone, half of a
// fleet migration's time per schema tenant; fleet-migrate benchmark).
// Everything Secure writes names its schema.
const (
	catalogPathSQL = `SELECT current_setting('search_path'), set_config('search_path', 'pg_catalog, pg_temp', true)`
	restorePathSQL = `SELECT set_config('search_path', $1, true)`
)

// grantsSQL returns, for schema $1 and grantee $2, the qualified names
// (comma-separated) of the relations that GRANT ... ON ALL TABLES IN SCHEMA
// covers (tables, partitioned tables, views, materialized views, foreign
// tables), those of its sequences, and whether $2 holds USAGE on the schema.
const grantsSQL = `SELECT
	coalesce(string_agg(format('%I.%I', $1::text, c.relname), ', ' ORDER BY c.relname) FILTER (WHERE c.relkind <> 'S'), ''),
	coalesce(string_agg(format('%I.%I', $1::text, c.relname), ', ' ORDER BY c.relname) FILTER (WHERE c.relkind = 'S'), ''),
	EXISTS (SELECT FROM pg_namespace n, aclexplode(n.nspacl) a
		WHERE n.nspname = $1 AND a.privilege_type = 'USAGE' AND a.grantee = (SELECT r.oid FROM pg_roles r WHERE r.rolname = $2))
FROM (` + schemaRelsSQL + `) r JOIN pg_class c ON c.oid = r.oid
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')`

// CheckShape returns an error wrapping ErrShape that lists every table of
// schema that breaks the one-shape rule, or nil.
func CheckShape(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, schema string) error {
	rows, err := q.Query(ctx, shapeSQL, schema)
	if err != nil {
		return fmt.Errorf("check table shape: %w", err)
	}
	return shapeProblems(rows)
}

// shapeProblems reads shapeSQL's rows into CheckShape's error.
func shapeProblems(rows pgx.Rows) error {
	problems, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var table, problem string
		err := r.Scan(&table, &problem)
		return table + ": " + problem, err
	})
	if err != nil {
		return fmt.Errorf("check table shape: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrShape, strings.Join(problems, "; "))
	}
	return nil
}
