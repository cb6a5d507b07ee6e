package provision

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
)

// catalogSQL describes every object of schema $1 as text lines, one per
// object or column, without oids or anything else that differs between two
// schemas made the same way. $2 is the role whose name stands for "the
// grantee"; column order is the rank among live columns, since a migrated
// table keeps the slots of dropped columns. It runs with the search_path set
// to the schema, so names inside it come out unqualified.
const catalogSQL = `
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = $1),
acl AS (
	SELECT e.classid, e.objid, e.subid, string_agg(e.item, ',' ORDER BY e.item) AS acl
	FROM (SELECT o.classid, o.objid, o.subid, format('%s>%s:%s%s', x.grantor::regrole,
		CASE WHEN x.grantee = 0 THEN 'PUBLIC' WHEN x.grantee::regrole::text = $2 THEN '<grantee>' ELSE x.grantee::regrole::text END,
		x.privilege_type, CASE WHEN x.is_grantable THEN '*' ELSE '' END) AS item
	FROM (
		SELECT 'pg_class'::regclass AS classid, c.oid AS objid, 0 AS subid,
			coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner)) AS a
		FROM pg_class c, ns WHERE c.relnamespace = ns.oid
		UNION ALL
		SELECT 'pg_class'::regclass, a.attrelid, a.attnum, a.attacl FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid, ns
		WHERE c.relnamespace = ns.oid AND a.attacl IS NOT NULL
		UNION ALL
		SELECT 'pg_proc'::regclass, p.oid, 0, coalesce(p.proacl, acldefault('f', p.proowner)) FROM pg_proc p, ns WHERE p.pronamespace = ns.oid
		UNION ALL
		SELECT 'pg_type'::regclass, t.oid, 0, coalesce(t.typacl, acldefault('T', t.typowner)) FROM pg_type t, ns WHERE t.typnamespace = ns.oid
	) o, aclexplode(o.a) x) e
	GROUP BY 1, 2, 3
)
SELECT line FROM (
	SELECT format('relation %s kind=%s persistence=%s rls=%s force=%s options=%s owner=%s replident=%s acl=%s comment=%s',
		c.relname, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity, c.reloptions, c.relowner::regrole,
		c.relreplident, acl.acl, obj_description(c.oid, 'pg_class')) AS line
	FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
	LEFT JOIN acl ON acl.classid = 'pg_class'::regclass AND acl.objid = c.oid AND acl.subid = 0
	UNION ALL
	SELECT format('column %s.%s #%s type=%s notnull=%s default=%s identity=%s generated=%s collation=%s stats=%s storage=%s compression=%s options=%s acl=%s comment=%s',
		c.relname, a.attname, rank() OVER (PARTITION BY c.oid ORDER BY a.attnum), format_type(a.atttypid, a.atttypmod), a.attnotnull,
		pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, a.attcollation::regcollation, a.attstattarget, a.attstorage,
		a.attcompression, a.attoptions, acl.acl, col_description(c.oid, a.attnum))
	FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON c.relnamespace = ns.oid
	LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	LEFT JOIN acl ON acl.classid = 'pg_class'::regclass AND acl.objid = c.oid AND acl.subid = a.attnum
	WHERE a.attnum > 0 AND NOT a.attisdropped
	UNION ALL
	SELECT format('constraint %s.%s type=%s def=%s deferrable=%s deferred=%s validated=%s index=%s comment=%s',
		c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid), k.condeferrable, k.condeferred, k.convalidated,
		k.conindid::regclass, obj_description(k.oid, 'pg_constraint'))
	FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN ns ON c.relnamespace = ns.oid
	UNION ALL
	SELECT format('index %s def=%s primary=%s unique=%s clustered=%s valid=%s',
		ci.relname, pg_get_indexdef(i.indexrelid), i.indisprimary, i.indisunique, i.indisclustered, i.indisvalid)
	FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid JOIN ns ON ci.relnamespace = ns.oid
	UNION ALL
	SELECT format('sequence %s type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s owned_by=%s',
		c.relname, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
		(SELECT string_agg(r.relname || '.' || a.attname || ':' || d.deptype::text, ',') FROM pg_depend d
		 JOIN pg_class r ON r.oid = d.refobjid JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum = d.refobjsubid
		 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
	FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN ns ON c.relnamespace = ns.oid
	UNION ALL
	SELECT format('policy %s.%s permissive=%s cmd=%s roles=%s using=%s check=%s comment=%s',
		c.relname, p.polname, p.polpermissive, p.polcmd,
		(SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE r::regrole::text END, ',' ORDER BY 1) FROM unnest(p.polroles) r),
		pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid), obj_description(p.oid, 'pg_policy'))
	FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN ns ON c.relnamespace = ns.oid
	UNION ALL
	SELECT format('trigger %s.%s def=%s enabled=%s comment=%s', c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled,
		obj_description(t.oid, 'pg_trigger'))
	FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ns ON c.relnamespace = ns.oid
	WHERE NOT t.tgisinternal
	UNION ALL
	SELECT format('internal trigger on %s: %s', c.relname, count(*))
	FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ns ON c.relnamespace = ns.oid
	WHERE t.tgisinternal GROUP BY c.relname
	UNION ALL
	SELECT format('rule %s.%s def=%s', c.relname, r.rulename, pg_get_ruledef(r.oid))
	FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN ns ON c.relnamespace = ns.oid
	UNION ALL
	SELECT format('type %s kind=%s owner=%s labels=%s acl=%s comment=%s', t.typname, t.typtype, t.typowner::regrole,
		(SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid),
		acl.acl, obj_description(t.oid, 'pg_type'))
	FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
	LEFT JOIN acl ON acl.classid = 'pg_type'::regclass AND acl.objid = t.oid
	UNION ALL
	SELECT format('function %s kind=%s owner=%s def=%s config=%s acl=%s comment=%s', p.oid::regprocedure, p.prokind, p.proowner::regrole,
		CASE WHEN p.prokind IN ('f', 'p') THEN md5(replace(pg_get_functiondef(p.oid), quote_ident($1) || '.', '<schema>.')) END, p.proconfig, acl.acl, obj_description(p.oid, 'pg_proc'))
	FROM pg_proc p JOIN ns ON p.pronamespace = ns.oid
	LEFT JOIN acl ON acl.classid = 'pg_proc'::regclass AND acl.objid = p.oid
	UNION ALL
	SELECT format('inherits %s from %s', c.relname, i.inhparent::regclass)
	FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN ns ON c.relnamespace = ns.oid
	UNION ALL
	SELECT format('default privileges %s', d.defaclacl) FROM pg_default_acl d JOIN ns ON d.defaclnamespace = ns.oid
	UNION ALL
	SELECT format('%s %s', k.kind, k.name) FROM (
		SELECT 'collation' AS kind, collname::text AS name, collnamespace AS nsp FROM pg_collation
		UNION ALL SELECT 'conversion', conname::text, connamespace FROM pg_conversion
		UNION ALL SELECT 'operator', oprname::text, oprnamespace FROM pg_operator
		UNION ALL SELECT 'operator class', opcname::text, opcnamespace FROM pg_opclass
		UNION ALL SELECT 'operator family', opfname::text, opfnamespace FROM pg_opfamily
		UNION ALL SELECT 'statistics', stxname::text, stxnamespace FROM pg_statistic_ext
		UNION ALL SELECT 'text search configuration', cfgname::text, cfgnamespace FROM pg_ts_config
		UNION ALL SELECT 'text search dictionary', dictname::text, dictnamespace FROM pg_ts_dict
	) k JOIN ns ON k.nsp = ns.oid
) lines ORDER BY 1`

// catalogLines returns a normalized description of everything in schema
// (see catalogSQL): two schemas hold the same objects, defined the same way,
// exactly when their lines are equal. grantee's name is replaced by
// "<grantee>" and the schema's own name by "<schema>", where PostgreSQL
// qualifies names regardless of the search_path. It sets the search_path
// for the rest of tx.
func catalogLines(ctx context.Context, tx pgx.Tx, schema, grantee string) ([]string, error) {
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL search_path = %s, pg_catalog, pg_temp", ident.Quote(schema))); err != nil {
		return nil, err
	}
	lines, err := collectStrings(ctx, tx, catalogSQL, schema, grantee)
	if err != nil {
		return nil, fmt.Errorf("describe schema %s: %w", schema, err)
	}
	var qschema string
	if err := tx.QueryRow(ctx, `SELECT quote_ident($1)`, schema).Scan(&qschema); err != nil {
		return nil, err
	}
	for i, l := range lines {
		lines[i] = strings.ReplaceAll(l, " "+qschema+".", " <schema>.")
	}
	slices.Sort(lines)
	return lines, nil
}

// diffLines lists the lines only a has ("- ") and only b has ("+ ").
func diffLines(a, b []string) []string {
	count := map[string]int{}
	for _, l := range a {
		count[l]++
	}
	for _, l := range b {
		count[l]--
	}
	var out []string
	for l, n := range count {
		for ; n > 0; n-- {
			out = append(out, "- "+l)
		}
		for ; n < 0; n++ {
			out = append(out, "+ "+l)
		}
	}
	slices.Sort(out)
	return out
}
