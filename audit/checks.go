package audit

import (
	"strings"

	"github.com/landlordhq/landlord/internal/ident"
)

// check is one catalog check: an SQL query over the CTEs of checksPrelude
// that returns one row (object, message, fix) per problem.
type check struct {
	id       string
	threat   string // SECURITY.md id
	severity Severity
	sql      string
}

// checksPrelude names what every check looks at. Parameters: $1 shared
// schema, $2 schemas to limit the table checks to (empty: all), $3 app role
// ("" in a tenant database), $4 owner role, $5 tenant predicate, $6 name of
// the restrictive policy, $7 whether this is a tenant database, $8 the
// tenant_id default, $9 the installation's context check. All of them are referenced here, so that every
// parameter has a type whichever checks run.
//
// Expressions are compared after PostgreSQL has deparsed them, with casts to
// text, white space and parentheses removed: pg_get_expr adds all three to
// what migration.Secure wrote.
const checksPrelude = `WITH RECURSIVE
params AS (
	SELECT $1::text AS shared, $2::text[] AS only_schemas, $3::text AS app, $4::text AS owner,
	       $5::text AS pred_sql, regexp_replace($5::text, '::text|\s|[()]', '', 'g') AS pred,
	       $6::text AS restrictive, $7::boolean AS tenant_db, $8::text AS tenant_default,
	       $9::text AS context_check
),
-- the shared schema and the tenant schemas
schemas AS (
	SELECT n.oid, n.nspname, n.nspowner, n.nspacl
	FROM pg_namespace n, params p
	WHERE (n.nspname = p.shared OR n.nspname ~ '^t_[0-9a-f]{32}$')
	  AND (cardinality(p.only_schemas) = 0 OR n.nspname = ANY (p.only_schemas))
),
-- every table of those schemas, with its tenant_id column if it has one
tables AS (
	SELECT c.oid, c.relname, c.relnamespace, c.relispartition, c.relowner, c.relrowsecurity, c.relforcerowsecurity,
	       s.nspname, format('%I.%I', s.nspname, c.relname) AS qname,
	       a.attnum AS tid, a.atttypid, a.attnotnull
	FROM pg_class c
	JOIN schemas s ON s.oid = c.relnamespace
	-- one index lookup per table: as a plain join, a low estimate of the
	-- schemas makes the planner compare every table with every tenant_id
	-- column of the database
	LEFT JOIN LATERAL (
		SELECT a.attnum, a.atttypid, a.attnotnull FROM pg_attribute a
		WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped LIMIT 1
	) a ON true
	WHERE c.relkind IN ('r', 'p')
),
-- tenant tables; their partitions are checked apart (partition_rls)
tenant AS (
	SELECT * FROM tables WHERE tid IS NOT NULL AND NOT relispartition
),
-- partitions and inheritance children of tenant tables, wherever they live
parts AS (
	SELECT i.inhrelid AS oid, t.qname AS root FROM pg_inherits i JOIN tenant t ON t.oid = i.inhparent
	UNION
	SELECT i.inhrelid, p.root FROM pg_inherits i JOIN parts p ON p.oid = i.inhparent
),
-- every relation whose rows are tenant rows
guarded AS (
	SELECT oid, qname FROM tenant
	UNION
	SELECT c.oid, format('%I.%I', n.nspname, c.relname)
	FROM parts p JOIN pg_class c ON c.oid = p.oid JOIN pg_namespace n ON n.oid = c.relnamespace
),
-- the roles that run tenant traffic here: the app role and the tenant roles
-- of these schemas (or of this tenant database)
roles AS (
	SELECT r.oid, r.rolname, r.rolsuper, r.rolbypassrls
	FROM pg_roles r, params p
	WHERE r.rolname = p.app
	   OR r.rolname IN (SELECT 'r_' || substr(nspname, 3) FROM schemas WHERE nspname ~ '^t_')
	   OR (p.tenant_db AND r.rolname = 'r_' || substr(current_database(), 3))
),
-- the roles whose settings, attributes and memberships tenant SQL or a hand
-- may have changed (SECURITY.md, I33): the roles above, and the owner where
-- the app role is checked (once per server, not in every tenant database)
watched AS (
	SELECT r.oid, r.rolname, r.rolcanlogin, r.rolinherit, r.rolcreatedb, r.rolcreaterole, r.rolreplication, r.rolsuper, r.rolbypassrls,
	       CASE WHEN r.rolname = p.owner THEN 'owner' WHEN r.rolname = p.app THEN 'app'
	            WHEN p.tenant_db THEN 'tenant_login' ELSE 'tenant' END AS kind
	FROM pg_roles r, params p
	WHERE r.oid IN (SELECT oid FROM roles) OR (r.rolname = p.owner AND p.app <> '')
),
-- the restrictive tenant policy of each tenant table: is there one whose
-- USING, and one whose WITH CHECK, is the tenant predicate
tpol AS (
	SELECT t.oid,
	       coalesce(bool_or(regexp_replace(pg_get_expr(po.polqual, po.polrelid), '::text|\s|[()]', '', 'g') = p.pred), false) AS using_ok,
	       coalesce(bool_or(regexp_replace(pg_get_expr(coalesce(po.polwithcheck, po.polqual), po.polrelid), '::text|\s|[()]', '', 'g') = p.pred), false) AS check_ok
	FROM tenant t CROSS JOIN params p
	LEFT JOIN pg_policy po ON po.polrelid = t.oid AND NOT po.polpermissive AND po.polcmd = '*' AND po.polroles = '{0}'
	GROUP BY t.oid
),
-- policies on tenant rows, with their roles spelled out
policies AS (
	SELECT po.*, g.qname, format('%I on %s', po.polname, g.qname) AS object,
	       CASE WHEN po.polroles = '{0}' THEN 'PUBLIC'
	            ELSE (SELECT string_agg(quote_ident(r.rolname), ', ' ORDER BY r.rolname) FROM pg_roles r WHERE r.oid = ANY (po.polroles)) END AS applies_to
	FROM guarded g JOIN pg_policy po ON po.polrelid = g.oid
),
-- TRUNCATE, REFERENCES and TRIGGER on tenant rows, granted to a role other
-- than the owner (REFERENCES also per column)
risky AS (
	SELECT g.oid, g.qname, a.grantee, a.privilege_type
	FROM guarded g JOIN pg_class c ON c.oid = g.oid CROSS JOIN LATERAL aclexplode(c.relacl) a
	WHERE a.privilege_type IN ('TRUNCATE', 'REFERENCES', 'TRIGGER') AND a.grantee <> c.relowner
	UNION
	SELECT g.oid, g.qname, a.grantee, a.privilege_type
	FROM guarded g JOIN pg_attribute att ON att.attrelid = g.oid AND att.attacl IS NOT NULL
	CROSS JOIN LATERAL aclexplode(att.attacl) a
	WHERE a.privilege_type = 'REFERENCES'
),
-- CREATE on the tenant schemas, granted to a role other than the owner
-- (ownership is role_is_owner's, PUBLIC is public_create's)
screate AS (
	SELECT s.nspname, a.grantee
	FROM schemas s CROSS JOIN LATERAL aclexplode(s.nspacl) a
	WHERE a.privilege_type = 'CREATE' AND a.grantee NOT IN (0, s.nspowner)
),
-- of the grantees above, those whose rights the app or a tenant role has or
-- can take with SET ROLE (superusers are reported on their own); distinct
-- grantees first, so that the membership test runs a few times, not once
-- per table and role
actors AS (
	SELECT k.grantee FROM (SELECT grantee FROM risky UNION SELECT grantee FROM screate) k
	WHERE CASE WHEN k.grantee = 0 THEN true
	           ELSE EXISTS (SELECT FROM roles r WHERE NOT r.rolsuper AND pg_has_role(r.oid, k.grantee, 'MEMBER')) END
),
-- user functions: not PostgreSQL's own, not an extension's
funcs AS (
	SELECT f.oid, f.prosecdef, f.proleakproof, f.proconfig, f.prosrc, f.proowner, f.pronamespace, f.prolang, f.proacl,
	       format('%I.%I(%s)', n.nspname, f.proname, pg_get_function_identity_arguments(f.oid)) AS fname,
	       EXISTS (SELECT FROM unnest(f.proconfig) c WHERE c LIKE 'search\_path=%')
	       -- the tenant context's enter names everything with pg_catalog
	       -- instead: a pinned path would undo the settings it makes
	       -- (migration/context.go)
	       OR (n.nspname = 'landlord_context' AND f.proname = 'enter' AND pg_get_userbyid(f.proowner) = (SELECT owner FROM params)) AS pinned
	FROM pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace
	WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
	  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = f.oid AND d.deptype = 'e')
),
-- which relations each view or materialized view reads
deps AS (
	SELECT DISTINCT rw.ev_class AS view, d.refobjid AS base
	FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid
	WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> rw.ev_class
),
-- views and materialized views over tenant rows, also through other views
over AS (
	SELECT d.view, g.qname AS base FROM deps d JOIN guarded g ON g.oid = d.base
	UNION
	SELECT d.view, o.base FROM deps d JOIN over o ON o.view = d.base
)
`

// catalog returns every check, grouped by the idea of ARCHITECTURE.md or
// the threat of SECURITY.md it guards.
func catalog() []check {
	return []check{
		// Row-level security on every tenant table (ARCHITECTURE.md, idea 2).
		{"rls_disabled", "I03", SeverityError, `
SELECT qname, 'row-level security is not enabled: every role with a grant on the table sees and changes every tenant''s rows',
       format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', qname)
FROM tenant WHERE NOT relrowsecurity`},
		{"rls_not_forced", "I01", SeverityError, `
SELECT qname, 'row-level security is not forced: the table''s owner, and every role that can act as it, skips the tenant policies',
       format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', qname)
FROM tenant WHERE NOT relforcerowsecurity`},
		{"tenant_policy_missing", "I04", SeverityError, `
SELECT t.qname,
       format('has no RESTRICTIVE policy FOR ALL TO PUBLIC with USING (%s): the permissive policies alone decide what is visible, and any one of them can open other tenants'' rows', p.pred_sql),
       format('DROP POLICY IF EXISTS %1$I ON %2$s; CREATE POLICY %1$I ON %2$s AS RESTRICTIVE FOR ALL TO PUBLIC USING (%3$s) WITH CHECK (%3$s)', p.restrictive, t.qname, p.pred_sql)
FROM tenant t JOIN tpol USING (oid), params p
WHERE NOT tpol.using_ok`},
		{"tenant_policy_check", "I14", SeverityError, `
SELECT t.qname,
       format('its restrictive tenant policy does not check written rows with %s: a tenant can insert rows for another tenant, or move its rows to one', p.pred_sql),
       format('DROP POLICY IF EXISTS %1$I ON %2$s; CREATE POLICY %1$I ON %2$s AS RESTRICTIVE FOR ALL TO PUBLIC USING (%3$s) WITH CHECK (%3$s)', p.restrictive, t.qname, p.pred_sql)
FROM tenant t JOIN tpol USING (oid), params p
WHERE tpol.using_ok AND NOT tpol.check_ok`},
		{"always_true_policy", "I04", SeverityError, `
SELECT po.object,
       format('permissive policy TO %s whose %s (%s) does not depend on the row: it opens every tenant''s rows wherever a restrictive policy does not stop it',
              po.applies_to, e.clause, pg_get_expr(e.node, po.polrelid)),
       format('DROP POLICY %I ON %s', po.polname, po.qname)
FROM policies po
CROSS JOIN LATERAL (VALUES ('USING', po.polqual), ('WITH CHECK', po.polwithcheck)) AS e(clause, node)
WHERE po.polpermissive AND e.node IS NOT NULL
  AND CASE WHEN e.node::text ~ '\{(VAR|PARAM|FUNCEXPR|SUBLINK|SQLVALUEFUNCTION|NEXTVALUEEXPR|CURRENTOFEXPR|XMLEXPR)\M' THEN false
           ELSE pg_get_expr(e.node, po.polrelid) <> 'false' END`},
		{"null_branch_policy", "I05", SeverityError, `
SELECT po.object,
       format('%s policy TO %s whose %s (%s) has a branch for a NULL tenant setting: with no tenant in the context it %s',
              CASE WHEN po.polpermissive THEN 'permissive' ELSE 'restrictive' END, po.applies_to, e.clause, e.expr,
              CASE WHEN po.polpermissive THEN 'lets every tenant''s rows through' ELSE 'stops guarding the table' END),
       format('DROP POLICY %I ON %s; the tenant predicate is already false for an unset context and needs no NULL branch', po.polname, po.qname)
FROM policies po
CROSS JOIN LATERAL (VALUES ('USING', po.polqual), ('WITH CHECK', po.polwithcheck)) AS n(clause, node)
-- deparse only expressions with an IS NULL, a CASE or a COALESCE in them
CROSS JOIN LATERAL (SELECT n.clause, pg_get_expr(n.node, po.polrelid) AS expr
                    WHERE n.node::text ~ '\{(NULLTEST|CASEEXPR|COALESCEEXPR)\M' OFFSET 0) AS e
WHERE e.expr ~ '(current_setting|tenant_id)'
  AND ((e.expr ~ '\mIS NULL\M' AND e.expr ~ '\mOR\M')
       OR e.expr ~* '\mCASE\M.*\mIS NULL\M.*\mTHEN true\M'
       OR e.expr ~* '\mCOALESCE\(.*,\s*true\)')`},

		// One table shape everywhere (ARCHITECTURE.md, idea 1).
		{"no_tenant_id", "I03", SeverityError, `
SELECT qname,
       format('has no tenant_id column, in schema %s where every table is a tenant table: row-level security cannot guard it', nspname),
       format('add tenant_id uuid NOT NULL leading its keys (a migration does, and Landlord secures it), or move it out: ALTER TABLE %s SET SCHEMA <a schema without tenant rows>', qname)
FROM tables WHERE tid IS NULL AND NOT relispartition`},
		{"tenant_id_type", "I03", SeverityError, `
SELECT qname, format('tenant_id is of type %s, not uuid: the tenant policies compare it with a uuid', format_type(atttypid, NULL)),
       format('ALTER TABLE %s ALTER COLUMN tenant_id TYPE uuid USING tenant_id::uuid', qname)
FROM tenant WHERE atttypid <> 'uuid'::regtype`},
		{"tenant_id_nullable", "I03", SeverityError, `
SELECT qname, 'tenant_id may be NULL: such rows belong to no tenant, and a NULL-tolerant policy or query shows them to all',
       format('ALTER TABLE %s ALTER COLUMN tenant_id SET NOT NULL', qname)
FROM tenant WHERE NOT attnotnull`},
		{"tenant_id_default", "I14", SeverityWarning, `
SELECT t.qname, format('tenant_id defaults to %s instead of the tenant context: a row written without a tenant_id gets a wrong one', pg_get_expr(d.adbin, d.adrelid)),
       format('ALTER TABLE %s ALTER COLUMN tenant_id SET DEFAULT %s', t.qname, p.tenant_default)
FROM tenant t JOIN pg_attrdef d ON d.adrelid = t.oid AND d.adnum = t.tid, params p
WHERE pg_get_expr(d.adbin, d.adrelid) NOT LIKE '%' || p.tenant_default || '%'`},
		{"no_primary_key", "I12", SeverityWarning, `
SELECT qname, 'has no primary key; it should be (tenant_id, ...), the shape every tenant table shares so that moving a tenant is a copy of rows',
       format('ALTER TABLE %s ADD PRIMARY KEY (tenant_id, ...)', qname)
FROM tenant t WHERE NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = t.oid AND k.contype = 'p')`},
		{"key_without_tenant_id", "I12", SeverityError, `
SELECT format('%I on %s', k.conname, t.qname),
       format('%s %s does not lead with tenant_id: a write that collides with another tenant''s key fails, and so reveals that the key exists',
              CASE k.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique constraint' ELSE 'exclusion constraint' END, pg_get_constraintdef(k.oid)),
       format('ALTER TABLE %s DROP CONSTRAINT %I, ADD the constraint again with tenant_id as its first column', t.qname, k.conname)
FROM tables t JOIN pg_constraint k ON k.conrelid = t.oid
WHERE t.tid IS NOT NULL AND k.contype IN ('p', 'u', 'x') AND k.conparentid = 0 AND k.conkey[1] IS DISTINCT FROM t.tid`},
		{"unique_index_without_tenant_id", "I12", SeverityError, `
SELECT format('%I.%I', t.nspname, ic.relname),
       format('unique index does not lead with tenant_id (%s): a write that collides with another tenant''s value fails, and so reveals that it exists', pg_get_indexdef(i.indexrelid)),
       format('DROP INDEX %I.%I, and create it again with tenant_id as its first column', t.nspname, ic.relname)
FROM tables t JOIN pg_index i ON i.indrelid = t.oid JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE t.tid IS NOT NULL AND i.indisunique AND i.indkey[0] IS DISTINCT FROM t.tid
  AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = t.oid)
  AND NOT EXISTS (SELECT FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)`},
		{"foreign_key_without_tenant_id", "I12", SeverityError, `
SELECT format('%I on %s', k.conname, t.qname),
       format('foreign key %s does not lead with tenant_id on both sides: a row can point at another tenant''s row, and the check reveals whether it exists', pg_get_constraintdef(k.oid)),
       format('ALTER TABLE %s DROP CONSTRAINT %I, ADD FOREIGN KEY (tenant_id, ...) REFERENCES %I.%I (tenant_id, ...)', t.qname, k.conname, rn.nspname, rc.relname)
FROM tables t JOIN pg_constraint k ON k.conrelid = t.oid AND k.contype = 'f' AND k.conparentid = 0
JOIN pg_class rc ON rc.oid = k.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
LEFT JOIN pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attname = 'tenant_id' AND NOT ra.attisdropped
WHERE t.tid IS NOT NULL AND (k.conkey[1] IS DISTINCT FROM t.tid OR k.confkey[1] IS DISTINCT FROM ra.attnum)
  AND NOT ` + globalReference + ``},
		{"foreign_key_outside_schema", "I12", SeverityWarning, `
SELECT format('%I on %s', k.conname, t.qname),
       format('foreign key references %I.%I, outside schema %s: a tenant''s rows should point only at rows that move with it', rn.nspname, rc.relname, t.nspname),
       format('ALTER TABLE %s DROP CONSTRAINT %I, and keep the referenced rows in schema %I', t.qname, k.conname, t.nspname)
FROM tables t JOIN pg_constraint k ON k.conrelid = t.oid AND k.contype = 'f' AND k.conparentid = 0
JOIN pg_class rc ON rc.oid = k.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE t.tid IS NOT NULL AND rc.relnamespace <> t.relnamespace AND NOT ` + globalReference + ``},

		// The roles that run tenant traffic (ARCHITECTURE.md, idea 2).
		{"role_superuser", "I02", SeverityError, `
SELECT rolname, 'is a superuser: neither row-level security nor privileges apply to it, so it sees every tenant''s rows',
       format('ALTER ROLE %I NOSUPERUSER', rolname)
FROM roles WHERE rolsuper`},
		{"role_bypassrls", "I02", SeverityError, `
SELECT rolname, 'has BYPASSRLS: row-level security does not apply to it, so it sees every tenant''s rows',
       format('ALTER ROLE %I NOBYPASSRLS', rolname)
FROM roles WHERE rolbypassrls`},
		{"role_is_owner", "I01", SeverityError, `
SELECT r.rolname,
       CASE WHEN r.oid = o.owner
            THEN format('owns %s tenant table(s) or schema(s) (%s): an owner can switch a table''s row-level security off, rewrite its policies and create objects beside it', o.n, o.names)
            ELSE format('is a member of %I, which owns %s tenant table(s) or schema(s) (%s): it can act as the owner, which can switch row-level security off, rewrite the policies and create objects beside the tables',
                        pg_get_userbyid(o.owner), o.n, o.names) END,
       CASE WHEN r.oid = o.owner
            THEN format('ALTER TABLE <each of them> OWNER TO %1$I; ALTER SCHEMA <each of them> OWNER TO %1$I', p.owner)
            ELSE format('REVOKE %I FROM %I', pg_get_userbyid(o.owner), r.rolname) END
FROM (SELECT owner, count(*) AS n,
             array_to_string((array_agg(name ORDER BY name))[1:5], ', ') || CASE WHEN count(*) > 5 THEN ', ...' ELSE '' END AS names
      FROM (SELECT c.relowner AS owner, g.qname AS name FROM guarded g JOIN pg_class c ON c.oid = g.oid
            UNION ALL
            SELECT nspowner, quote_ident(nspname) FROM schemas) x
      GROUP BY owner) o
JOIN roles r ON NOT r.rolsuper AND pg_has_role(r.oid, o.owner, 'MEMBER'), params p`},
		// What tenant SQL can do to the roles themselves (SECURITY.md, I33).
		{"role_setting", "I33", SeverityError, `
SELECT w.rolname,
       format('has settings of its own %s (%s): they apply to every session the role starts, so SQL that ran ALTER ROLE … SET as it (a tenant transaction can) makes Landlord''s connections fail (statement_timeout), every write fail (default_transaction_read_only) or changes what later sessions see',
              CASE WHEN s.setdatabase = 0 THEN 'in every database' ELSE format('in database %I', d.datname) END, array_to_string(s.setconfig, ', ')),
       format('ALTER ROLE %I%s RESET ALL (Landlord does it at Open and every Config.RoleRepairInterval)',
              w.rolname, CASE WHEN s.setdatabase = 0 THEN '' ELSE format(' IN DATABASE %I', d.datname) END)
FROM watched w JOIN pg_db_role_setting s ON s.setrole = w.oid
LEFT JOIN pg_database d ON d.oid = s.setdatabase
WHERE s.setdatabase = 0 OR d.oid IS NOT NULL`},
		{"role_attributes", "I33", SeverityError, `
SELECT w.rolname,
       format('has %s, not the attributes Landlord created it with (%s): %s', x.have, x.want,
              CASE w.kind WHEN 'owner' THEN 'the owner of every tenant table must not log in, and nothing more may act as it'
                          ELSE 'a role that runs tenant traffic must gain nothing but what its grants give it' END),
       format('ALTER ROLE %I %s (Landlord restores LOGIN, INHERIT, CREATEDB and CREATEROLE at Open and every Config.RoleRepairInterval)', w.rolname, x.want)
FROM watched w
CROSS JOIN LATERAL (
	SELECT string_agg(CASE WHEN a.have THEN a.attr ELSE 'NO' || a.attr END, ' ') FILTER (WHERE a.have IS DISTINCT FROM a.want) AS have,
	       string_agg(CASE WHEN a.want THEN a.attr ELSE 'NO' || a.attr END, ' ') FILTER (WHERE a.have IS DISTINCT FROM a.want) AS want
	FROM (VALUES ('LOGIN', w.rolcanlogin, CASE w.kind WHEN 'owner' THEN false WHEN 'tenant' THEN false ELSE true END),
	             ('INHERIT', w.rolinherit, w.kind = 'owner'),
	             ('CREATEDB', w.rolcreatedb, false),
	             ('CREATEROLE', w.rolcreaterole, false),
	             ('REPLICATION', w.rolreplication, false),
	             -- the app and tenant roles' are role_superuser's and role_bypassrls'
	             ('SUPERUSER', CASE WHEN w.kind = 'owner' THEN w.rolsuper ELSE false END, false),
	             ('BYPASSRLS', CASE WHEN w.kind = 'owner' THEN w.rolbypassrls ELSE false END, false)) AS a(attr, have, want)
) x
WHERE x.have IS NOT NULL`},
		{"role_membership", "I33", SeverityError, `
SELECT w.rolname,
       format('is a member of %I, which Landlord never grants it: it can use, or switch to, that role''s rights in every tenant transaction', g.rolname),
       format('REVOKE %I FROM %I', g.rolname, w.rolname)
FROM watched w JOIN pg_auth_members m ON m.member = w.oid JOIN pg_roles g ON g.oid = m.roleid, params p
WHERE w.kind <> 'owner'
  -- the app role switches to schema tenants' roles; a role in the owner is role_is_owner's
  AND NOT (w.kind = 'app' AND g.rolname ~ '^r_[0-9a-f]{32}$') AND g.rolname <> p.owner
UNION ALL
SELECT m.rolname,
       format('is a member of the owner role %I: it can act as the owner of every tenant table, switch row-level security off and rewrite the policies; only the administrator that installs Landlord is made one', w.rolname),
       format('REVOKE %I FROM %I', w.rolname, m.rolname)
FROM watched w JOIN pg_auth_members am ON am.roleid = w.oid JOIN pg_roles m ON m.oid = am.member
-- an administrator (a superuser, or CREATEROLE, which could grant itself
-- the owner anyway) gains nothing from the membership; the app and tenant
-- roles are role_is_owner's
WHERE w.kind = 'owner' AND NOT m.rolsuper AND NOT m.rolcreaterole
  AND m.oid NOT IN (SELECT oid FROM roles)`},
		{"rls_bypass_privilege", "I13", SeverityError, `
SELECT qname,
       format('%s granted to %s: these ignore row-level security (TRUNCATE empties every tenant''s rows, REFERENCES lets a foreign key probe other tenants'' keys, TRIGGER runs code on every tenant''s writes)',
              string_agg(DISTINCT privilege_type, ', '), string_agg(DISTINCT CASE grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(grantee)) END, ', ')),
       format('REVOKE TRUNCATE, REFERENCES, TRIGGER ON %s FROM %s', qname,
              string_agg(DISTINCT CASE grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(grantee)) END, ', '))
FROM risky WHERE grantee IN (SELECT grantee FROM actors)
GROUP BY oid, qname`},
		{"tenant_schema_create", "I18", SeverityError, `
SELECT quote_ident(nspname),
       format('CREATE on the schema is granted to %s, whose rights tenant traffic has or can take: a table, view or function created there can stand in for the tenant''s own',
              string_agg(quote_ident(pg_get_userbyid(grantee)), ', ' ORDER BY grantee)),
       format('REVOKE CREATE ON SCHEMA %I FROM %s', nspname, string_agg(quote_ident(pg_get_userbyid(grantee)), ', ' ORDER BY grantee))
FROM screate WHERE grantee IN (SELECT grantee FROM actors)
GROUP BY nspname`},
		{"public_create", "I18", SeverityError, `
SELECT quote_ident(n.nspname), 'PUBLIC may create objects in this schema: any role can put a table or function there that shadows another on a search_path',
       format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', n.nspname)
FROM pg_namespace n
WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
  AND EXISTS (SELECT FROM aclexplode(n.nspacl) a WHERE a.grantee = 0 AND a.privilege_type = 'CREATE')`},

		// Code that runs with someone else's rights or sees rows early.
		{"security_definer_search_path", "I09", SeverityError, `
SELECT fname, 'is SECURITY DEFINER without a pinned search_path: the caller''s search_path decides which tables and functions it uses with its owner''s rights',
       format('ALTER ROUTINE %s SET search_path = pg_catalog, pg_temp (and schema-qualify the names it uses)', fname)
FROM funcs WHERE prosecdef AND NOT pinned`},
		{"security_definer_public", "I09", SeverityError, `
SELECT f.fname,
       format('is SECURITY DEFINER, runs as %I, PUBLIC may execute it, and it touches tenant tables: any role can call it and act with its owner''s rights over every tenant', pg_get_userbyid(f.proowner)),
       format('REVOKE EXECUTE ON ROUTINE %s FROM PUBLIC (grant it to the roles that need it), or make it SECURITY INVOKER', f.fname)
FROM funcs f
-- "touches": lives in a tenant schema, names one or a tenant table, or
-- depends on a tenant table; matching names in the body is a heuristic that
-- errs towards reporting
WHERE f.prosecdef
  AND (f.proacl IS NULL OR EXISTS (SELECT FROM aclexplode(f.proacl) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))
  AND (f.pronamespace IN (SELECT oid FROM schemas)
       OR EXISTS (SELECT FROM schemas s WHERE position(s.nspname IN f.prosrc) > 0
                                           OR position(s.nspname IN coalesce(array_to_string(f.proconfig, ','), '')) > 0)
       OR EXISTS (SELECT FROM tenant t WHERE position(t.relname IN f.prosrc) > 0)
       OR EXISTS (SELECT FROM pg_depend d JOIN guarded g ON g.oid = d.refobjid
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = f.oid AND d.refclassid = 'pg_class'::regclass))`},
		{"trigger_search_path", "I24", SeverityError, `
SELECT format('%I on %s', tg.tgname, g.qname),
       format('trigger function %s has no pinned search_path: the names in it resolve through the search_path of whoever writes the row', f.fname),
       format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp (and schema-qualify the names it uses)', f.fname)
FROM guarded g
JOIN pg_trigger tg ON tg.tgrelid = g.oid AND NOT tg.tgisinternal AND tg.tgparentid = 0
JOIN funcs f ON f.oid = tg.tgfoid
WHERE NOT f.pinned AND f.prolang NOT IN (SELECT oid FROM pg_language WHERE lanname IN ('c', 'internal'))`},
		{"session_setting_function", "I06", SeverityError, `
SELECT fname, 'changes a setting for the whole session (set_config(..., false), or SET without LOCAL): on a pooled connection the value outlives the transaction and the next tenant reads it',
       format('make the change transaction-local in %s (set_config(..., true) or SET LOCAL), or give the function a SET clause for the setting', fname)
FROM funcs
WHERE prolang NOT IN (SELECT oid FROM pg_language WHERE lanname IN ('c', 'internal')) AND (
	prosrc ~* 'set_config\s*\([^;]*,\s*(false|''f''|''false''|''off''|''no''|0)\s*\)'
	OR prosrc ~* '(^|;|\ybegin|\ythen|\yelse|\yloop)\s*(set|reset)\s+(?!(local|transaction|constraints)\y)(session\s+)?[a-z_"]')`},
		{"leakproof_function", "I10", SeverityError, `
SELECT fname, 'is LEAKPROOF: the planner may call it on other tenants'' rows before the tenant policy filters them, and whatever it reveals (an error, a notice) leaks them',
       format('ALTER FUNCTION %s NOT LEAKPROOF', fname)
FROM funcs WHERE proleakproof`},

		// Copies of tenant rows that row-level security does not guard.
		{"view_security_invoker", "I08", SeverityError, `
SELECT format('%I.%I', n.nspname, c.relname),
       format('view over tenant table %s runs with the rights of its owner %I, not of the caller: the caller''s privileges do not apply, nor do the policies if the owner bypasses them',
              min(o.base), pg_get_userbyid(c.relowner)),
       format('ALTER VIEW %I.%I SET (security_invoker = true)', n.nspname, c.relname)
FROM over o JOIN pg_class c ON c.oid = o.view AND c.relkind = 'v' JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT EXISTS (SELECT FROM unnest(c.reloptions) opt WHERE opt ~* '^security_invoker=(t|true|y|yes|on|1)$')
GROUP BY n.nspname, c.relname, c.relowner`},
		{"materialized_view", "I16", SeverityError, `
SELECT format('%I.%I', n.nspname, c.relname),
       format('materialized view over tenant table %s: it stores a copy of the rows that has no row-level security', min(o.base)),
       format('DROP MATERIALIZED VIEW %I.%I, and keep per-tenant results in a tenant table', n.nspname, c.relname)
FROM over o JOIN pg_class c ON c.oid = o.view AND c.relkind = 'm' JOIN pg_namespace n ON n.oid = c.relnamespace
GROUP BY n.nspname, c.relname`},
		{"partition_rls", "I15", SeverityError, `
SELECT format('%I.%I', n.nspname, c.relname),
       format('partition of tenant table %s has row-level security %s and is granted to %s: a query on the partition itself skips the policies of %s',
              pt.root, CASE WHEN NOT c.relrowsecurity THEN 'disabled' ELSE 'not forced' END, gr.grantees, pt.root),
       format('ALTER TABLE %1$I.%2$I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY, with the tenant policies of %3$s; or REVOKE ALL ON %1$I.%2$I FROM %4$s',
              n.nspname, c.relname, pt.root, gr.grantees)
FROM parts pt JOIN pg_class c ON c.oid = pt.oid JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (SELECT string_agg(DISTINCT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, ', ') AS grantees
                    FROM aclexplode(c.relacl) a WHERE a.grantee <> c.relowner) gr
WHERE NOT (c.relrowsecurity AND c.relforcerowsecurity) AND gr.grantees IS NOT NULL`},
		// Only the shared schema: a tenant schema's sequence counts that
		// tenant's rows alone, and the same migrations create the shared
		// tables, where the finding then shows once instead of per tenant.
		{"sequence_id", "I17", SeverityWarning, `
SELECT format('%s.%I', t.qname, a.attname),
       'draws its values from a sequence every tenant of the shared table shares: the ids a tenant sees reveal how many rows the others write',
       format('ALTER TABLE %s ALTER COLUMN %I %s, and give it uuid (version 7) ids made by the application', t.qname, a.attname,
              CASE WHEN a.attidentity <> '' THEN 'DROP IDENTITY' ELSE 'DROP DEFAULT' END)
FROM tenant t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = t.oid AND d.adnum = a.attnum, params p
WHERE t.nspname = p.shared AND (a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%')`},

		// Who may reach a tenant database (SECURITY.md, I21).
		{"tenant_database_access", "I21", SeverityError, `
SELECT quote_ident(d.datname), 'PUBLIC may connect to this tenant database: every role of the cluster, not only the tenant''s own, can log in to it',
       format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC', d.datname)
FROM params p, pg_database d
WHERE p.tenant_db AND d.datname = current_database()
  AND (d.datacl IS NULL OR EXISTS (SELECT FROM aclexplode(d.datacl) a WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT'))
UNION ALL
SELECT quote_ident(d.datname), 'PUBLIC may create temporary tables in this tenant database: a temporary table can shadow a tenant table on a search_path',
       format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', d.datname)
FROM params p, pg_database d
WHERE p.tenant_db AND d.datname = current_database()
  AND (d.datacl IS NULL OR EXISTS (SELECT FROM aclexplode(d.datacl) a WHERE a.grantee = 0 AND a.privilege_type = 'TEMPORARY'))
UNION ALL
SELECT quote_ident(d.datname), format('role %I may connect to this tenant database; only the tenant''s role %I should', pg_get_userbyid(a.grantee), 'r_' || substr(d.datname, 3)),
       format('REVOKE CONNECT ON DATABASE %I FROM %I', d.datname, pg_get_userbyid(a.grantee))
FROM params p, pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) a
WHERE p.tenant_db AND d.datname = current_database() AND a.privilege_type = 'CONNECT'
  AND a.grantee NOT IN (0, d.datdba) AND pg_get_userbyid(a.grantee) <> 'r_' || substr(d.datname, 3)`},

		// The check the verifier makes (migration.ContextCheck), as its
		// comment records it, against the installation's record: a
		// database left unsigned by a change cut short, or a verifier
		// replaced, is an error; an installation that chose unsigned is
		// told what that leaves open.
		{"context_unsigned", "I31", SeverityError, `
SELECT 'view landlord_context.verified', 'the tenant context is not signed in this database, while the installation records a signed one: SQL inside one tenant''s transaction can set another tenant''s id (set_config) or role and act as that tenant. A change of the check was cut short, or the verifier was replaced',
       'landlord context set signed --reason "..." (Admin.SetContextCheck(ctx, landlord.ContextSigned, nil))'
FROM params p
WHERE p.context_check = 'signed' AND to_regclass('landlord_context.verified') IS NOT NULL
  AND (obj_description(to_regclass('landlord_context.verified'), 'pg_class') IS DISTINCT FROM 'signed'
       OR pg_get_viewdef(to_regclass('landlord_context.verified')) NOT LIKE '%sha256%landlord_context.key%')`},
		{"context_check_unsigned", "I31", SeverityWarning, `
SELECT 'view landlord_context.verified', 'the installation''s context check is unsigned: SQL inside one tenant''s transaction (an injection, a DO block) can set another tenant''s id or role and act as that tenant in the row and schema models; the signed check costs a key read and two digests per statement',
       'landlord context set signed --reason "..." (Admin.SetContextCheck(ctx, landlord.ContextSigned, nil))'
FROM params p
WHERE p.context_check = 'unsigned' AND obj_description(to_regclass('landlord_context.verified'), 'pg_class') = 'unsigned'`},

		// What every role may use outside the tables (SECURITY.md, I32, I35,
		// I36), checked in the control database, where row and schema
		// tenants share it, on a server that says it serves Landlord alone
		// (provision.OwnServerSetting), where bootstrap revokes each of
		// them. Elsewhere only a superuser can, and SECURITY.md gives the
		// statements. Warnings: an installation whose administrator is
		// not a superuser must still open.
		{"plpgsql_public", "I32", SeverityWarning, `
SELECT 'language plpgsql', 'PUBLIC may use PL/pgSQL: tenant SQL can run a DO block whose dynamic EXECUTE runs an EXPLAIN the handle does not see, and its row estimates come from statistics over every tenant''s rows',
       format('REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC; GRANT USAGE ON LANGUAGE plpgsql TO %I', p.owner)
FROM params p, pg_language l
WHERE NOT p.tenant_db AND current_setting('landlord.own_server', true) = 'on' AND l.lanname = 'plpgsql' AND has_language_privilege('public', l.oid, 'USAGE')`},
		{"large_object_functions_public", "I35", SeverityWarning, `
SELECT 'large-object functions', format('PUBLIC may execute %s large-object functions: row tenants all run as the app role, which owns every large object they make, so one tenant reads and changes another''s', count(*)),
       'REVOKE EXECUTE ON FUNCTION ' || string_agg(format('pg_catalog.%I(%s)', f.proname, pg_get_function_identity_arguments(f.oid)), ', ' ORDER BY f.proname, f.oid) || ' FROM PUBLIC'
FROM params p, pg_proc f
WHERE NOT p.tenant_db AND current_setting('landlord.own_server', true) = 'on' AND f.pronamespace = 'pg_catalog'::regnamespace AND (f.proname LIKE 'lo\_%' OR f.proname IN ('loread', 'lowrite'))
  AND has_function_privilege('public', f.oid, 'EXECUTE')
GROUP BY p.tenant_db`},
		{"stat_activity_public", "I35", SeverityWarning, `
SELECT 'pg_catalog.pg_stat_activity', 'PUBLIC may read the query text of the sessions of its own role: row tenants share the app role and read each other''s statements in flight, literals included',
       'REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC; REVOKE EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer), pg_catalog.pg_stat_get_backend_activity(integer) FROM PUBLIC'
FROM params p
WHERE NOT p.tenant_db AND current_setting('landlord.own_server', true) = 'on' AND (has_table_privilege('public', 'pg_catalog.pg_stat_activity', 'SELECT')
   OR has_function_privilege('public', 'pg_catalog.pg_stat_get_activity(integer)', 'EXECUTE')
   OR has_function_privilege('public', 'pg_catalog.pg_stat_get_backend_activity(integer)', 'EXECUTE'))`},
		{"signal_functions_public", "I37", SeverityWarning, `
SELECT 'pg_catalog.pg_terminate_backend', 'PUBLIC may cancel and terminate the backends of its own role: row and schema tenants all log in as the app role, so one row tenant''s SQL can end every other tenant''s connection',
       'REVOKE EXECUTE ON FUNCTION pg_catalog.pg_cancel_backend(integer), pg_catalog.pg_terminate_backend(integer, bigint) FROM PUBLIC'
FROM params p
WHERE NOT p.tenant_db AND current_setting('landlord.own_server', true) = 'on' AND (has_function_privilege('public', 'pg_catalog.pg_cancel_backend(integer)', 'EXECUTE')
   OR has_function_privilege('public', 'pg_catalog.pg_terminate_backend(integer, bigint)', 'EXECUTE'))`},
		{"advisory_locks_public", "I39", SeverityWarning, `
SELECT 'advisory-lock functions of two keys', format('PUBLIC may run %s advisory-lock functions of two int4 keys: Landlord coordinates provisioning, migrations and the tenant context with such locks, and a tenant transaction that takes one of their keys and stays open holds that work up', count(*)),
       'REVOKE EXECUTE ON FUNCTION ' || string_agg(format('pg_catalog.%I(%s)', f.proname, pg_get_function_identity_arguments(f.oid)), ', ' ORDER BY f.proname) || ' FROM PUBLIC; GRANT EXECUTE ON FUNCTION ' ||
       string_agg(format('pg_catalog.%I(%s)', f.proname, pg_get_function_identity_arguments(f.oid)), ', ' ORDER BY f.proname) || format(' TO %I', p.owner)
FROM params p, pg_proc f
WHERE NOT p.tenant_db AND current_setting('landlord.own_server', true) = 'on' AND f.pronamespace = 'pg_catalog'::regnamespace
  AND f.proname LIKE 'pg\_%advisory%' AND f.proargtypes = '23 23'::oidvector AND has_function_privilege('public', f.oid, 'EXECUTE')
GROUP BY p.tenant_db, p.owner`},
		{"temp_file_unlimited", "I40", SeverityWarning, `
SELECT 'setting temp_file_limit', 'statements may write temporary files without a limit: one tenant''s sort or hash over generate_series fills the server''s disk, which stops every tenant',
       'ALTER SYSTEM SET temp_file_limit = ''4GB''; SELECT pg_reload_conf()'
FROM params p
WHERE NOT p.tenant_db AND current_setting('landlord.own_server', true) = 'on'
  AND current_setting('temp_file_limit') = '-1'`},
		{"maintenance_database_access", "I36", SeverityWarning, `
SELECT quote_ident(d.datname), 'PUBLIC may connect to this maintenance database, or create temporary tables in it: every tenant login of the database model reaches it',
       format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', d.datname)
FROM params p, pg_database d
WHERE NOT p.tenant_db AND current_setting('landlord.own_server', true) = 'on'
  AND d.datname IN ('postgres', 'template1')
  AND (has_database_privilege('public', d.oid, 'CONNECT') OR has_database_privilege('public', d.oid, 'TEMPORARY'))`},
	}
}

// checksSQL is the whole audit of one database: every check over one set of
// CTEs, so that the catalog is read once per database.
func checksSQL() string {
	var b strings.Builder
	b.WriteString(checksPrelude)
	for i, c := range catalog() {
		if i > 0 {
			b.WriteString("\nUNION ALL")
		}
		b.WriteString("\nSELECT " + ident.Literal(c.id) + "::text, x.object, x.message, x.fix FROM (" + c.sql + "\n) AS x(object, message, fix)")
	}
	return b.String()
}

// globalReference is the condition, on foreign key k to table rc in
// schema rn, of a reference to the platform-wide tables (landlord.Config.Global)
// that the shape check allows: into schema global, with neither ON DELETE
// nor ON UPDATE changing the tenant's rows (NO ACTION or RESTRICT). Such a
// key points at rows every tenant shares and may read; it reveals nothing.
const globalReference = `(rn.nspname = 'global' AND k.confdeltype IN ('a', 'r') AND k.confupdtype IN ('a', 'r'))`
