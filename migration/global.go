package migration

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
)

// GlobalSchema holds the platform-wide tables: reference data such as
// currencies, countries, tax rates or plans that belongs to no tenant and
// that every tenant reads. Its migrations are a set of their own, applied
// to a Target with Global set, and tenant tables may reference its tables
// by foreign key (see CheckShape).
const GlobalSchema = "global"

// globalShapeSQL lists every way the relations of schema $1 break the rules
// of global tables: plain tables (copies hold them row for row), each with
// a primary key (copies are kept equal row by row, by key), no tenant_id
// column and no row-level security (they hold no tenant's rows), foreign
// keys only to other global tables (a copy in a tenant database has
// nothing else to point at), and no privilege but SELECT for anyone other
// than the owner.
const globalShapeSQL = `
WITH r AS MATERIALIZED (` + schemaRelsSQL + `), c AS (
	SELECT c.oid, c.relname, c.relkind, c.relrowsecurity, c.relispartition, c.relnamespace, c.relacl, c.relowner
	FROM r JOIN pg_class c ON c.oid = r.oid
)
SELECT relname, problem FROM (
	SELECT relname, 'has a tenant_id column: global tables hold the platform''s rows, not a tenant''s (tenant tables belong in the tenant migrations)' AS problem
	FROM c WHERE relkind IN ('r', 'p')
	  AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
	UNION ALL
	SELECT relname, 'has no primary key: the copies in tenant databases are kept equal row by row, by primary key'
	FROM c WHERE relkind = 'r' AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p')
	UNION ALL
	SELECT relname, 'has row-level security enabled: global tables are read alike by every tenant'
	FROM c WHERE relkind IN ('r', 'p') AND relrowsecurity
	UNION ALL
	SELECT relname, format('is a %s: global tables must be plain tables, which the copies in tenant databases hold row for row',
		CASE relkind WHEN 'p' THEN 'partitioned table' WHEN 'm' THEN 'materialized view' ELSE 'foreign table' END)
	FROM c WHERE relkind IN ('p', 'm', 'f')
	UNION ALL
	SELECT relname, 'takes part in inheritance or partitioning: global tables must be plain tables'
	FROM c WHERE relkind = 'r' AND (relispartition OR EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = c.oid OR i.inhparent = c.oid))
	UNION ALL
	SELECT c.relname, format('foreign key %s references %s outside the global schema: the copies in tenant databases have only the global tables to point at',
		k.conname, k.confrelid::regclass::text)
	FROM c JOIN pg_constraint k ON k.conrelid = c.oid AND k.contype = 'f' JOIN pg_class rc ON rc.oid = k.confrelid
	WHERE rc.relnamespace <> c.relnamespace
	UNION ALL
	SELECT DISTINCT c.relname, format('grants %s to %s: global tables are written by their owner alone, and read by every role with SELECT',
		a.privilege_type, CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END)
	FROM c CROSS JOIN LATERAL aclexplode(c.relacl) a
	WHERE a.grantee <> c.relowner AND a.privilege_type <> 'SELECT'
	UNION ALL
	SELECT DISTINCT c.relname, format('grants %s on column %s to %s: global tables are written by their owner alone',
		a.privilege_type, att.attname, CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END)
	FROM c JOIN pg_attribute att ON att.attrelid = c.oid AND att.attacl IS NOT NULL CROSS JOIN LATERAL aclexplode(att.attacl) a
	WHERE a.grantee <> c.relowner AND a.privilege_type <> 'SELECT'
) v
ORDER BY relname, problem`

// CheckGlobalShape returns an error wrapping ErrShape that lists every
// relation of schema that breaks the rules of global tables, or nil: plain
// tables with a primary key, no tenant_id column, no row-level security,
// foreign keys only to tables of the same schema, and no privilege but
// SELECT granted to a role other than the owner.
func CheckGlobalShape(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, schema string) error {
	rows, err := q.Query(ctx, globalShapeSQL, schema)
	if err != nil {
		return fmt.Errorf("check global table shape: %w", err)
	}
	problems, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var table, problem string
		err := r.Scan(&table, &problem)
		return table + ": " + problem, err
	})
	if err != nil {
		return fmt.Errorf("check global table shape: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: global schema %s: %s", ErrShape, schema, strings.Join(problems, "; "))
	}
	return nil
}

// globalGrantsSQL returns, for schema $1, the qualified names of its tables
// and views, of its sequences, and whether PUBLIC holds USAGE on it.
const globalGrantsSQL = `SELECT
	coalesce(string_agg(format('%I.%I', $1::text, c.relname), ', ' ORDER BY c.relname) FILTER (WHERE c.relkind <> 'S'), ''),
	coalesce(string_agg(format('%I.%I', $1::text, c.relname), ', ' ORDER BY c.relname) FILTER (WHERE c.relkind = 'S'), ''),
	EXISTS (SELECT FROM pg_namespace n, aclexplode(n.nspacl) a
		WHERE n.nspname = $1 AND a.privilege_type = 'USAGE' AND a.grantee = 0)
FROM (` + schemaRelsSQL + `) r JOIN pg_class c ON c.oid = r.oid
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')`

// SecureGlobal makes the global tables of t.Schema readable and nothing
// more: USAGE on the schema and SELECT on every table and view for PUBLIC,
// every other privilege revoked from PUBLIC (sequences included), so that
// only their owner (and superusers) may write them. It then checks their
// shape (CheckGlobalShape). It is idempotent and runs inside the caller's
// transaction.
//
// PUBLIC, not a list of roles: the databases that hold a global schema let
// only the roles that run tenant traffic connect (the control database:
// the app role, through which every row and schema tenant's role is
// reached; a tenant database: its tenant's role; SECURITY.md, I21), so
// PUBLIC is exactly those roles there, including the tenant roles created
// later, and a new tenant needs no grant of its own.
func SecureGlobal(ctx context.Context, tx pgx.Tx, t Target) error {
	var was, rels, seqs string
	var hasUsage bool
	if err := tx.QueryRow(ctx, catalogPathSQL).Scan(&was, nil); err != nil {
		return fmt.Errorf("set the search path for the catalog checks: %w", err)
	}
	if err := tx.QueryRow(ctx, globalGrantsSQL, t.Schema).Scan(&rels, &seqs, &hasUsage); err != nil {
		return fmt.Errorf("list global relations: %w", err)
	}
	var b strings.Builder
	if !hasUsage {
		fmt.Fprintf(&b, "GRANT USAGE ON SCHEMA %s TO PUBLIC;\n", ident.Quote(t.Schema))
	}
	if rels != "" {
		fmt.Fprintf(&b, "REVOKE ALL ON TABLE %s FROM PUBLIC;\nGRANT SELECT ON TABLE %s TO PUBLIC;\n", rels, rels)
	}
	if seqs != "" {
		fmt.Fprintf(&b, "REVOKE ALL ON SEQUENCE %s FROM PUBLIC;\n", seqs)
	}
	if b.Len() > 0 {
		if _, err := tx.Exec(ctx, b.String()); err != nil {
			return fmt.Errorf("secure global tables: %w", err)
		}
	}
	if err := CheckGlobalShape(ctx, tx, t.Schema); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, restorePathSQL, was); err != nil {
		return fmt.Errorf("restore the search path: %w", err)
	}
	return nil
}

// GlobalTarget is the target of the global set: schema GlobalSchema with
// Global set.
func GlobalTarget() Target { return Target{Schema: GlobalSchema, Global: true} }
