package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
)

// cloneScript recreates a template schema in another schema: the DDL the
// template's catalog describes, replayed in one batch, instead of every
// migration one by one. It is generated once per migration set and stored in
// landlord.template_scripts.
//
// Names in the DDL are unqualified and resolve through the search_path the
// replay sets to the new schema; the few places where PostgreSQL's own
// definitions always qualify a name (indexes, triggers, function headers) are
// split there, and the new schema's quoted name joins the parts.
type cloneScript struct {
	Version   int      `json:"version"`   // the migration set's head
	Parts     []string `json:"parts"`     // the DDL, split where the schema's quoted name goes
	Relations []string `json:"relations"` // quoted tables and views: the tenant role gets the data privileges
	Sequences []string `json:"sequences"` // quoted sequences: the tenant role gets USAGE and SELECT
	Ledger    []ledgerRow
}

// ledgerRow is one row of landlord.target_migrations the clone records.
type ledgerRow struct {
	Version  int    `json:"version"`
	Name     string `json:"name"`
	Checksum string `json:"checksum"`
}

// errNotClonable wraps the reasons a template cannot be cloned by script;
// such a set is migrated tenant by tenant instead.
var errNotClonable = errors.New("template cannot be cloned by script")

func (s *cloneScript) encode() (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

func decodeCloneScript(text string) (cloneScript, error) {
	var s cloneScript
	if err := json.Unmarshal([]byte(text), &s); err != nil {
		return s, fmt.Errorf("decode template script: %w", err)
	}
	if len(s.Parts) == 0 || s.Version <= 0 {
		return s, errors.New("decode template script: empty")
	}
	return s, nil
}

// ddl returns the statements that create the template's objects in schema.
// The caller has set the search_path to schema.
func (s *cloneScript) ddl(schema string) string {
	return strings.Join(s.Parts, ident.Quote(schema))
}

// grants returns the statements that give role what migration.Secure gives
// a target's grantee, on the objects by name: GRANT ... ON ALL TABLES IN
// SCHEMA scans all of pg_class, which grows with the fleet.
func (s *cloneScript) grants(schema, role string) string {
	r, q := ident.Quote(role), ident.Quote(schema)
	qualified := func(names []string) string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = q + "." + n
		}
		return strings.Join(out, ", ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "GRANT USAGE ON SCHEMA %s TO %s;\n", q, r)
	if len(s.Relations) > 0 {
		fmt.Fprintf(&b, "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO %s;\n", qualified(s.Relations), r)
	}
	if len(s.Sequences) > 0 {
		fmt.Fprintf(&b, "GRANT USAGE, SELECT ON SEQUENCE %s TO %s;\n", qualified(s.Sequences), r)
	}
	return b.String()
}

// ledger returns the INSERT that records the set's migrations for target.
func (s *cloneScript) ledger(target string) string {
	var b strings.Builder
	b.WriteString("INSERT INTO landlord.target_migrations (target, version, name, checksum) VALUES ")
	for i, r := range s.Ledger {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%s, %d, %s, %s)", ident.Literal(target), r.Version, ident.Literal(r.Name), ident.Literal(r.Checksum))
	}
	b.WriteString(";\n")
	return b.String()
}

// unsupportedSQL lists what the generator does not reproduce. A template
// with any of it is migrated tenant by tenant, never cloned by script.
const unsupportedSQL = `
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = $1), own AS (SELECT oid FROM pg_roles WHERE rolname = $2)
SELECT reason FROM (
	SELECT format('relation %s is of kind %s', c.relname, c.relkind) AS reason
	FROM pg_class c, ns WHERE c.relnamespace = ns.oid AND c.relkind NOT IN ('r', 'i', 'S', 'v')
	UNION ALL
	SELECT format('relation %s is owned by %s, not the owner role', c.relname, c.relowner::regrole)
	FROM pg_class c, ns, own WHERE c.relnamespace = ns.oid AND c.relowner <> own.oid
	UNION ALL
	SELECT format('table %s takes part in inheritance', c.relname)
	FROM pg_class c, ns WHERE c.relnamespace = ns.oid
	  AND EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = c.oid OR i.inhparent = c.oid)
	UNION ALL
	SELECT format('table %s holds rows', c.relname)
	FROM pg_class c, ns WHERE c.relnamespace = ns.oid AND c.relkind = 'r' AND pg_relation_size(c.oid) > 0
	UNION ALL
	SELECT format('table %s has replica identity %s', c.relname, c.relreplident)
	FROM pg_class c, ns WHERE c.relnamespace = ns.oid AND c.relkind = 'r' AND c.relreplident <> 'd'
	UNION ALL
	SELECT format('column %s.%s has storage settings', c.relname, a.attname)
	FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_type t ON t.oid = a.atttypid, ns
	WHERE c.relnamespace = ns.oid AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'i')
	  AND (a.attstattarget <> -1 OR (c.relkind = 'r' AND a.attstorage <> t.typstorage) OR a.attcompression <> ''
	       OR a.attoptions IS NOT NULL OR a.attfdwoptions IS NOT NULL)
	UNION ALL
	SELECT format('view %s has a column default', c.relname)
	FROM pg_attrdef d JOIN pg_class c ON c.oid = d.adrelid, ns WHERE c.relnamespace = ns.oid AND c.relkind = 'v'
	UNION ALL
	SELECT format('index %s is clustered, invalid or has options of its own', c.relname)
	FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid, ns
	WHERE c.relnamespace = ns.oid AND (i.indisclustered OR NOT i.indisvalid OR NOT i.indisready OR i.indisreplident)
	UNION ALL
	SELECT format('type %s is of kind %s', t.typname, t.typtype)
	FROM pg_type t, ns WHERE t.typnamespace = ns.oid
	  AND NOT (t.typtype = 'e'
	        OR (t.typtype = 'c' AND EXISTS (SELECT FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind IN ('r', 'v', 'S')))
	        OR (t.typcategory = 'A' AND t.typelem <> 0))
	UNION ALL
	SELECT format('type %s is owned by %s, not the owner role', t.typname, t.typowner::regrole)
	FROM pg_type t, ns, own WHERE t.typnamespace = ns.oid AND t.typowner <> own.oid
	UNION ALL
	SELECT format('function %s is of kind %s, has a SQL-standard body or another owner', p.oid::regprocedure, p.prokind)
	FROM pg_proc p, ns, own WHERE p.pronamespace = ns.oid
	  AND (p.prokind NOT IN ('f', 'p') OR p.prosqlbody IS NOT NULL OR p.proowner <> own.oid)
	UNION ALL
	SELECT format('rule %s on %s', r.rulename, c.relname)
	FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class, ns
	WHERE c.relnamespace = ns.oid AND NOT (c.relkind = 'v' AND r.rulename = '_RETURN')
	UNION ALL
	SELECT format('trigger %s on %s is disabled or a constraint trigger', t.tgname, c.relname)
	FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid, ns
	WHERE c.relnamespace = ns.oid AND NOT t.tgisinternal AND (t.tgenabled <> 'O' OR t.tgconstraint <> 0)
	UNION ALL
	SELECT 'default privileges are set on the schema' FROM pg_default_acl d, ns WHERE d.defaclnamespace = ns.oid
	UNION ALL
	SELECT format('%s %s lives in the schema', k.kind, k.name) FROM (
		SELECT 'collation' AS kind, collname::text AS name, collnamespace AS nsp FROM pg_collation
		UNION ALL SELECT 'conversion', conname::text, connamespace FROM pg_conversion
		UNION ALL SELECT 'operator', oprname::text, oprnamespace FROM pg_operator
		UNION ALL SELECT 'operator class', opcname::text, opcnamespace FROM pg_opclass
		UNION ALL SELECT 'operator family', opfname::text, opfnamespace FROM pg_opfamily
		UNION ALL SELECT 'statistics object', stxname::text, stxnamespace FROM pg_statistic_ext
		UNION ALL SELECT 'text search configuration', cfgname::text, cfgnamespace FROM pg_ts_config
		UNION ALL SELECT 'text search dictionary', dictname::text, dictnamespace FROM pg_ts_dict
		UNION ALL SELECT 'text search parser', prsname::text, prsnamespace FROM pg_ts_parser
		UNION ALL SELECT 'text search template', tmplname::text, tmplnamespace FROM pg_ts_template
	) k, ns WHERE k.nsp = ns.oid
	UNION ALL
	SELECT format('an extension owns %s', pg_describe_object(d.classid, d.objid, d.objsubid))
	FROM pg_depend d JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid, ns
	WHERE d.deptype = 'e' AND c.relnamespace = ns.oid
	UNION ALL
	SELECT format('sequence %s is owned by a column of another schema', c.relname)
	FROM pg_class c JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
	JOIN pg_class r ON r.oid = d.refobjid, ns
	WHERE c.relnamespace = ns.oid AND c.relkind = 'S' AND d.deptype IN ('a', 'i') AND r.relnamespace <> ns.oid
) r ORDER BY 1`

// The queries below run with the search_path set to the template schema
// first, so names inside it come out unqualified. They return the statements
// ready to replay; format() does the quoting.

const enumsSQL = `
SELECT format('CREATE TYPE %I AS ENUM (%s);', t.typname,
	(SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid))
FROM pg_type t WHERE t.typnamespace = $1::regnamespace AND t.typtype = 'e' ORDER BY t.oid`

const functionsSQL = `
SELECT p.oid::regprocedure::text, p.prokind = 'p', pg_get_functiondef(p.oid),
	coalesce((SELECT substr(c, 13) FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%'), '')
FROM pg_proc p WHERE p.pronamespace = $1::regnamespace ORDER BY p.oid`

// seqOptions renders the options of sequence s (a pg_sequence row).
const seqOptions = `format('INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s %s',
	s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache, CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END)`

const sequencesSQL = `
SELECT format('CREATE SEQUENCE %I AS %s %s;', c.relname, format_type(s.seqtypid, NULL), ` + seqOptions + `),
	coalesce((SELECT format('ALTER SEQUENCE %I OWNED BY %I.%I;', c.relname, r.relname, a.attname)
		FROM pg_depend d JOIN pg_class r ON r.oid = d.refobjid
		JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum = d.refobjsubid
		WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'), '')
FROM pg_class c JOIN pg_sequence s ON s.seqrelid = c.oid
WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'S'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i')
ORDER BY c.oid`

const tablesDDLSQL = `
SELECT c.oid::int8, format('%I', c.relname), c.relpersistence = 'u',
	coalesce(' WITH (' || array_to_string(c.reloptions, ', ') || ')', ''),
	c.relrowsecurity, c.relforcerowsecurity,
	coalesce((SELECT array_agg(format('%I %s%s%s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
			CASE WHEN a.attcollation <> t.typcollation THEN ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END,
			CASE WHEN a.attgenerated = 's' THEN ' GENERATED ALWAYS AS (' || pg_get_expr(d.adbin, d.adrelid) || ') STORED'
			     WHEN d.adbin IS NOT NULL THEN ' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid) ELSE '' END,
			CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
			CASE WHEN a.attidentity IN ('a', 'd') THEN
				format(' GENERATED %s AS IDENTITY (SEQUENCE NAME %I %s)', CASE a.attidentity WHEN 'a' THEN 'ALWAYS' ELSE 'BY DEFAULT' END,
					sc.relname, (SELECT ` + seqOptions + ` FROM pg_sequence s WHERE s.seqrelid = sc.oid))
			ELSE '' END) ORDER BY a.attnum)
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		LEFT JOIN pg_depend dep ON dep.refclassid = 'pg_class'::regclass AND dep.refobjid = a.attrelid
			AND dep.refobjsubid = a.attnum AND dep.deptype = 'i' AND dep.classid = 'pg_class'::regclass
		LEFT JOIN pg_class sc ON sc.oid = dep.objid
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}')
FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r' ORDER BY c.oid`

const constraintsSQL = `
SELECT k.conrelid::int8, format('CONSTRAINT %I %s', k.conname, pg_get_constraintdef(k.oid)), k.contype = 'f',
	k.confrelid::int8, k.convalidated
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r' AND k.contype IN ('p', 'u', 'c', 'x', 'f')
ORDER BY k.conrelid, k.oid`

const indexesSQL = `
SELECT pg_get_indexdef(i.indexrelid),
	format('CREATE %sINDEX %I ON %s.', CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END, ci.relname, quote_ident($2))
FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
WHERE c.relnamespace = $1::regnamespace AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
ORDER BY i.indexrelid`

const viewsSQL = `
SELECT format('CREATE VIEW %I%s AS %s', c.relname, coalesce(' WITH (' || array_to_string(c.reloptions, ', ') || ')', ''), pg_get_viewdef(c.oid))
FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'v' ORDER BY c.oid`

const policiesSQL = `
SELECT format('CREATE POLICY %I ON %I AS %s FOR %s TO %s%s%s;', p.polname, c.relname,
	CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
	CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
	CASE WHEN p.polroles = '{0}' THEN 'PUBLIC'
	     ELSE (SELECT string_agg(quote_ident(r.rolname), ', ' ORDER BY r.rolname) FROM pg_roles r WHERE r.oid = ANY (p.polroles)) END,
	coalesce(' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', ''),
	coalesce(' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', ''))
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
WHERE c.relnamespace = $1::regnamespace ORDER BY p.polrelid, p.oid`

const triggersSQL = `
SELECT pg_get_triggerdef(t.oid), format(' ON %s.%I ', quote_ident($2), c.relname), format('%I ', c.relname)
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal ORDER BY t.oid`

const commentsSQL = `
SELECT format('COMMENT ON %s IS %L;', o.target, d.description) FROM pg_description d JOIN (
	SELECT 'pg_class'::regclass AS classoid, c.oid, 0 AS subid,
		CASE c.relkind WHEN 'r' THEN 'TABLE ' WHEN 'v' THEN 'VIEW ' WHEN 'S' THEN 'SEQUENCE ' ELSE 'INDEX ' END || quote_ident(c.relname) AS target
	FROM pg_class c WHERE c.relnamespace = $1::regnamespace
	UNION ALL
	SELECT 'pg_class'::regclass, c.oid, a.attnum, 'COLUMN ' || quote_ident(c.relname) || '.' || quote_ident(a.attname)
	FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	WHERE c.relnamespace = $1::regnamespace
	UNION ALL
	SELECT 'pg_constraint'::regclass, k.oid, 0, 'CONSTRAINT ' || quote_ident(k.conname) || ' ON ' || quote_ident(c.relname)
	FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE c.relnamespace = $1::regnamespace
	UNION ALL
	SELECT 'pg_type'::regclass, t.oid, 0, 'TYPE ' || quote_ident(t.typname) FROM pg_type t WHERE t.typnamespace = $1::regnamespace
	UNION ALL
	SELECT 'pg_proc'::regclass, p.oid, 0, CASE p.prokind WHEN 'p' THEN 'PROCEDURE ' ELSE 'FUNCTION ' END || p.oid::regprocedure::text
	FROM pg_proc p WHERE p.pronamespace = $1::regnamespace
	UNION ALL
	SELECT 'pg_policy'::regclass, p.oid, 0, 'POLICY ' || quote_ident(p.polname) || ' ON ' || quote_ident(c.relname)
	FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = $1::regnamespace
	UNION ALL
	SELECT 'pg_trigger'::regclass, t.oid, 0, 'TRIGGER ' || quote_ident(t.tgname) || ' ON ' || quote_ident(c.relname)
	FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal
) o ON o.classoid = d.classoid AND o.oid = d.objoid AND o.subid = d.objsubid
ORDER BY d.classoid, d.objoid, d.objsubid`

// aclSQL lists the explicit privileges of the schema's objects, with the
// privileges their owner has by default, so that only differences are
// replayed.
const aclSQL = `
WITH objs AS (
	SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || quote_ident(c.relname) AS target, '' AS col,
		c.relacl AS acl, c.relowner AS owner, CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END AS kind
	FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'v', 'S') AND c.relacl IS NOT NULL
	UNION ALL
	SELECT 'TABLE ' || quote_ident(c.relname), quote_ident(a.attname), a.attacl, c.relowner, 'c'
	FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	WHERE c.relnamespace = $1::regnamespace AND a.attacl IS NOT NULL
	UNION ALL
	SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE ' ELSE 'FUNCTION ' END || p.oid::regprocedure::text, '', p.proacl, p.proowner, 'f'
	FROM pg_proc p WHERE p.pronamespace = $1::regnamespace AND p.proacl IS NOT NULL
	UNION ALL
	SELECT 'TYPE ' || quote_ident(t.typname), '', t.typacl, t.typowner, 'T'
	FROM pg_type t WHERE t.typnamespace = $1::regnamespace AND t.typacl IS NOT NULL
)
SELECT o.target, o.col, o.owner::regrole::text,
	(SELECT coalesce(array_agg(format('%s %s %s %s', x.grantor::regrole::text,
		CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(x.grantee::regrole::text) END, x.privilege_type, x.is_grantable)
		ORDER BY x.grantee, x.privilege_type), '{}') FROM aclexplode(o.acl) x),
	(SELECT coalesce(array_agg(format('%s %s %s %s', x.grantor::regrole::text,
		CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(x.grantee::regrole::text) END, x.privilege_type, x.is_grantable)
		ORDER BY x.grantee, x.privilege_type), '{}')
	 FROM aclexplode(CASE WHEN o.kind = 'c' THEN '{}'::aclitem[] ELSE acldefault(o.kind::"char", o.owner) END) x)
FROM objs o ORDER BY 1, 2`

// generateCloneScript reads the catalog of schema and returns the script
// that recreates it. tx must have set the search_path to schema, pg_catalog,
// pg_temp. owner is the role that owns the schema's objects. A schema with
// something the generator does not reproduce gets an error wrapping
// errNotClonable.
func generateCloneScript(ctx context.Context, tx pgx.Tx, schema, owner string) (cloneScript, error) {
	var s cloneScript
	reasons, err := collectStrings(ctx, tx, unsupportedSQL, schema, owner)
	if err != nil {
		return s, fmt.Errorf("check template: %w", err)
	}
	if len(reasons) > 0 {
		return s, fmt.Errorf("%w: %s", errNotClonable, strings.Join(reasons, "; "))
	}
	var qschema string
	if err := tx.QueryRow(ctx, `SELECT quote_ident($1)`, schema).Scan(&qschema); err != nil {
		return s, err
	}
	var b partsBuilder

	// Types first: tables and functions use them.
	enums, err := collectStrings(ctx, tx, enumsSQL, schema)
	if err != nil {
		return s, fmt.Errorf("read types: %w", err)
	}
	b.lines(enums...)

	// Functions before tables: defaults, checks and triggers call them.
	// check_function_bodies is off during the replay, as in pg_dump, so a
	// body may name tables that come later.
	rows, err := tx.Query(ctx, functionsSQL, schema)
	if err != nil {
		return s, fmt.Errorf("read functions: %w", err)
	}
	type function struct {
		sig       string
		procedure bool
		def, path string
	}
	funcs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (function, error) {
		var f function
		err := r.Scan(&f.sig, &f.procedure, &f.def, &f.path)
		return f, err
	})
	if err != nil {
		return s, fmt.Errorf("read functions: %w", err)
	}
	for _, f := range funcs {
		kind := "FUNCTION"
		if f.procedure {
			kind = "PROCEDURE"
		}
		head := "CREATE OR REPLACE " + kind + " " + qschema + "."
		rest, ok := strings.CutPrefix(f.def, head)
		if !ok {
			return s, fmt.Errorf("%w: definition of %s does not start with %q", errNotClonable, f.sig, head)
		}
		b.text("CREATE " + kind + " ")
		b.schema()
		b.text("." + strings.TrimRight(rest, "\n") + ";\n")
		if f.path != "" {
			// A search_path captured with SET ... FROM CURRENT names the
			// template; the migrated function would name its own schema.
			elems := strings.Split(f.path, ", ")
			if slices.Contains(elems, qschema) {
				b.text("ALTER " + kind + " " + f.sig + " SET search_path = ")
				for i, e := range elems {
					if i > 0 {
						b.text(", ")
					}
					if e == qschema {
						b.schema()
					} else {
						b.text(e)
					}
				}
				b.text(";\n")
			}
		}
	}

	rows, err = tx.Query(ctx, sequencesSQL, schema)
	if err != nil {
		return s, fmt.Errorf("read sequences: %w", err)
	}
	var ownedBy []string
	for rows.Next() {
		var create, owned string
		if err := rows.Scan(&create, &owned); err != nil {
			rows.Close()
			return s, fmt.Errorf("read sequences: %w", err)
		}
		b.lines(create)
		if owned != "" {
			ownedBy = append(ownedBy, owned)
		}
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("read sequences: %w", err)
	}
	// Identity columns' sequences too: the grantee gets all of them.
	if s.Sequences, err = collectStrings(ctx, tx, `SELECT quote_ident(relname) FROM pg_class
		WHERE relnamespace = $1::regnamespace AND relkind = 'S' ORDER BY oid`, schema); err != nil {
		return s, fmt.Errorf("read sequences: %w", err)
	}

	if err := tableDDL(ctx, tx, schema, &b, &s); err != nil {
		return s, err
	}
	b.lines(ownedBy...)

	rows, err = tx.Query(ctx, indexesSQL, schema, schema)
	if err != nil {
		return s, fmt.Errorf("read indexes: %w", err)
	}
	for rows.Next() {
		var def, head string
		if err := rows.Scan(&def, &head); err != nil {
			rows.Close()
			return s, fmt.Errorf("read indexes: %w", err)
		}
		rest, ok := strings.CutPrefix(def, head)
		if !ok {
			rows.Close()
			return s, fmt.Errorf("%w: index definition %q does not start with %q", errNotClonable, def, head)
		}
		b.text(strings.TrimSuffix(head, qschema+"."))
		b.schema()
		b.text("." + rest + ";\n")
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("read indexes: %w", err)
	}

	views, err := collectStrings(ctx, tx, viewsSQL, schema)
	if err != nil {
		return s, fmt.Errorf("read views: %w", err)
	}
	b.lines(views...)
	viewNames, err := collectStrings(ctx, tx, `SELECT quote_ident(relname) FROM pg_class WHERE relnamespace = $1::regnamespace AND relkind = 'v' ORDER BY oid`, schema)
	if err != nil {
		return s, fmt.Errorf("read views: %w", err)
	}
	s.Relations = append(s.Relations, viewNames...)

	policies, err := collectStrings(ctx, tx, policiesSQL, schema)
	if err != nil {
		return s, fmt.Errorf("read policies: %w", err)
	}
	b.lines(policies...)

	rows, err = tx.Query(ctx, triggersSQL, schema, schema)
	if err != nil {
		return s, fmt.Errorf("read triggers: %w", err)
	}
	for rows.Next() {
		var def, on, table string
		if err := rows.Scan(&def, &on, &table); err != nil {
			rows.Close()
			return s, fmt.Errorf("read triggers: %w", err)
		}
		before, after, ok := strings.Cut(def, on)
		if !ok {
			rows.Close()
			return s, fmt.Errorf("%w: trigger definition %q does not name its table as %q", errNotClonable, def, on)
		}
		b.text(before + " ON ")
		b.schema()
		b.text("." + table + after + ";\n")
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("read triggers: %w", err)
	}

	comments, err := collectStrings(ctx, tx, commentsSQL, schema)
	if err != nil {
		return s, fmt.Errorf("read comments: %w", err)
	}
	b.lines(comments...)

	if err := aclDDL(ctx, tx, schema, &b); err != nil {
		return s, err
	}
	s.Parts = b.done()
	return s, nil
}

// tableDDL appends the tables: one CREATE TABLE each with its columns and
// constraints, in an order where a table comes after the tables its foreign
// keys reference, so that those keys are created inline too (no separate
// ALTER TABLE, which would also validate them). Keys in a cycle, and
// constraints not yet validated in the template, follow as ALTER TABLE.
func tableDDL(ctx context.Context, tx pgx.Tx, schema string, b *partsBuilder, s *cloneScript) error {
	type constraint struct {
		def       string
		fk        bool
		ref       int64
		validated bool
	}
	type table struct {
		oid         int64
		name        string // quoted by format('%I')
		unlogged    bool
		with        string
		rls, force  bool
		columns     []string
		constraints []constraint
		refs        map[int64]bool
	}
	rows, err := tx.Query(ctx, tablesDDLSQL, schema)
	if err != nil {
		return fmt.Errorf("read tables: %w", err)
	}
	var tables []*table
	byOID := map[int64]*table{}
	for rows.Next() {
		t := &table{refs: map[int64]bool{}}
		if err := rows.Scan(&t.oid, &t.name, &t.unlogged, &t.with, &t.rls, &t.force, &t.columns); err != nil {
			rows.Close()
			return fmt.Errorf("read tables: %w", err)
		}
		tables = append(tables, t)
		byOID[t.oid] = t
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read tables: %w", err)
	}
	rows, err = tx.Query(ctx, constraintsSQL, schema)
	if err != nil {
		return fmt.Errorf("read constraints: %w", err)
	}
	for rows.Next() {
		var rel int64
		var c constraint
		if err := rows.Scan(&rel, &c.def, &c.fk, &c.ref, &c.validated); err != nil {
			rows.Close()
			return fmt.Errorf("read constraints: %w", err)
		}
		t := byOID[rel]
		t.constraints = append(t.constraints, c)
		if c.fk && c.ref != rel && byOID[c.ref] != nil {
			t.refs[c.ref] = true
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read constraints: %w", err)
	}

	// Kahn's algorithm, oldest table first among the ready ones; what is
	// left in a cycle goes in creation order.
	var order []*table
	done := map[int64]bool{}
	for len(order) < len(tables) {
		progressed := false
		for _, t := range tables {
			if done[t.oid] {
				continue
			}
			ready := true
			for r := range t.refs {
				if !done[r] {
					ready = false
					break
				}
			}
			if ready {
				order = append(order, t)
				done[t.oid] = true
				progressed = true
			}
		}
		if !progressed {
			for _, t := range tables {
				if !done[t.oid] {
					order = append(order, t)
					done[t.oid] = true
					break
				}
			}
		}
	}

	var later []string
	created := map[int64]bool{}
	for _, t := range order {
		items := slices.Clone(t.columns)
		for _, c := range t.constraints {
			inline := c.validated && (!c.fk || c.ref == t.oid || created[c.ref] || byOID[c.ref] == nil)
			if inline {
				items = append(items, c.def)
			} else {
				later = append(later, fmt.Sprintf("ALTER TABLE %s ADD %s;", t.name, c.def))
			}
		}
		kind := "TABLE"
		if t.unlogged {
			kind = "UNLOGGED TABLE"
		}
		b.lines(fmt.Sprintf("CREATE %s %s (\n\t%s\n)%s;", kind, t.name, strings.Join(items, ",\n\t"), t.with))
		created[t.oid] = true
		s.Relations = append(s.Relations, t.name)
		switch {
		case t.rls && t.force:
			b.lines(fmt.Sprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;", t.name))
		case t.rls:
			b.lines(fmt.Sprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY;", t.name))
		case t.force:
			b.lines(fmt.Sprintf("ALTER TABLE %s FORCE ROW LEVEL SECURITY;", t.name))
		}
	}
	b.lines(later...)
	return nil
}

// aclDDL appends what makes each object's privileges equal the template's,
// where they differ from what the object has when it is created. Tables,
// views and sequences whose only entry is their owner's are left alone:
// the tenant's grants materialize the same entry.
func aclDDL(ctx context.Context, tx pgx.Tx, schema string, b *partsBuilder) error {
	rows, err := tx.Query(ctx, aclSQL, schema)
	if err != nil {
		return fmt.Errorf("read privileges: %w", err)
	}
	type acl struct {
		target, col, owner string // target and col quoted by quote_ident
		items, defaults    []string
	}
	acls, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (acl, error) {
		var a acl
		err := r.Scan(&a.target, &a.col, &a.owner, &a.items, &a.defaults)
		return a, err
	})
	if err != nil {
		return fmt.Errorf("read privileges: %w", err)
	}
	for _, a := range acls {
		if slices.Equal(a.items, a.defaults) {
			continue
		}
		on := "ON " + a.target
		if a.col != "" {
			on = "(" + a.col + ") ON " + a.target
		} else {
			b.lines(fmt.Sprintf("REVOKE ALL ON %s FROM PUBLIC, %s;", a.target, ident.Quote(a.owner)))
		}
		for _, item := range a.items {
			f := strings.Fields(item)
			if len(f) != 4 || f[0] != a.owner {
				return fmt.Errorf("%w: privilege %q on %s was granted by a role other than the owner", errNotClonable, item, a.target)
			}
			stmt := fmt.Sprintf("GRANT %s %s TO %s", f[2], on, f[1])
			if f[3] == "true" {
				stmt += " WITH GRANT OPTION"
			}
			b.lines(stmt + ";")
		}
	}
	return nil
}

func collectStrings(ctx context.Context, tx pgx.Tx, sql string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// partsBuilder assembles a cloneScript's parts.
type partsBuilder struct {
	parts []string
	cur   strings.Builder
}

func (b *partsBuilder) text(s string) { b.cur.WriteString(s) }

func (b *partsBuilder) lines(stmts ...string) {
	for _, s := range stmts {
		b.cur.WriteString(s)
		b.cur.WriteString("\n")
	}
}

// schema marks where the target schema's quoted name goes.
func (b *partsBuilder) schema() {
	b.parts = append(b.parts, b.cur.String())
	b.cur.Reset()
}

func (b *partsBuilder) done() []string { return append(b.parts, b.cur.String()) }
