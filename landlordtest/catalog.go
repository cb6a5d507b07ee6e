package landlordtest

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/tenant"
)

// The kit knows the application's tables only from the catalog. Every tenant
// table has tenant_id leading each key (Landlord's shape check refuses
// anything else), so a row copied with jsonb_populate_record and given fresh
// values in the other columns of its keys is a row its tenant can insert,
// and the same row with B's tenant_id is a write across tenants.

// table is one tenant table as the catalog describes it.
type table struct {
	name        string
	partitioned bool
	leaves      []string // leaf partitions of a partitioned table
	cols        []column // insertable columns, in order
	uniques     []unique
	fks         []foreignKey
	// fresh holds an expression per key column (a column of a unique index,
	// not of a foreign key, not tenant_id) that turns a value into one no
	// existing row has: %[1]s is the value, %[2]s an integer expression
	// that tells fresh values apart.
	fresh map[string]string
	// copyProblem says why the kit cannot make rows of this table (a key
	// column of a type it cannot make fresh values of, a constraint its
	// copies break); the cases that write copies skip with it.
	copyProblem string
	// crossProblem says why a copy of A's row with B's tenant_id cannot be
	// stored (a foreign key to a row B does not have).
	crossProblem string
	// serial is a column that takes its values from a sequence, if any.
	serial string
	// nA is how many rows A holds.
	nA int
	// bOnly is the row the kit added to B: a copy of one of B's rows whose
	// key values A has none of ("" when it could not make one).
	bOnly row
	// partB is the leaf partition that holds B's rows.
	partB string
	// recognisable reports that B's rows hold values the kit recognises
	// without B's id.
	recognisable bool
}

type column struct {
	name     string
	typ      string // format_type
	category string // pg_type.typcategory
	base     string // name of the base type
}

type unique struct {
	name    string
	primary bool
	plain   bool     // only columns: no expressions, no predicate
	cols    []string // its columns after tenant_id, for a plain index
}

type foreignKey struct {
	name     string
	cols     []string // after tenant_id
	ref      string   // the referenced table
	refCols  []string // after tenant_id
	position int
}

// row is one row as to_jsonb renders it.
type row map[string]json.RawMessage

// in returns the name of tb qualified by the schema of place.
func (tb *table) in(place tenant.Tenant) string {
	return ident(place.Schema) + "." + ident(tb.name)
}

// q returns tb's quoted name, resolved through the tenant's search path.
func (tb *table) q() string { return ident(tb.name) }

// colList returns the insertable columns of tb except those in skip, quoted
// and prefixed.
func (tb *table) colList(prefix string, skip ...string) string {
	var b []string
	for _, c := range tb.cols {
		if !slices.Contains(skip, c.name) {
			b = append(b, prefix+ident(c.name))
		}
	}
	return strings.Join(b, ", ")
}

func (tb *table) primary() *unique {
	for i := range tb.uniques {
		if tb.uniques[i].primary {
			return &tb.uniques[i]
		}
	}
	return nil
}

func (tb *table) column(name string) column {
	for _, c := range tb.cols {
		if c.name == name {
			return c
		}
	}
	return column{name: name, typ: "text"}
}

// insert returns an INSERT into target (tb's name as the statement should
// reach it, the new row aliased n) of the row passed as jsonb in $1, of
// every insertable column but those in skip, which then take their
// defaults.
func (tb *table) insert(target string, skip ...string) string {
	return fmt.Sprintf(`INSERT INTO %s AS n (%s) SELECT %s FROM jsonb_populate_record(NULL::%s, $1::jsonb) r`,
		target, tb.colList("", skip...), tb.colList("r.", skip...), target)
}

// freshExprs returns, for alias x, the jsonb of fresh key values number k.
func (tb *table) freshExprs(x string, k int) string { return tb.freshBy(x, strconv.Itoa(k)) }

// freshBy is freshExprs with k an SQL expression.
func (tb *table) freshBy(x, k string) string {
	if len(tb.fresh) == 0 {
		return `'{}'::jsonb`
	}
	var parts []string
	for _, c := range tb.cols {
		if e, ok := tb.fresh[c.name]; ok {
			parts = append(parts, literal(c.name), fmt.Sprintf(e, x+"."+ident(c.name), "("+k+")"))
		}
	}
	return "jsonb_build_object(" + strings.Join(parts, ", ") + ")"
}

// setFresh returns the SET list of an UPDATE that gives the row x fresh key
// values number k.
func (tb *table) setFresh(x string, k int) string {
	var parts []string
	for _, c := range tb.cols {
		if e, ok := tb.fresh[c.name]; ok {
			parts = append(parts, ident(c.name)+" = "+fmt.Sprintf(e, x+"."+ident(c.name), strconv.Itoa(k)))
		}
	}
	return strings.Join(parts, ", ")
}

// orderBy orders the rows of alias x by their primary key, then their text.
func (tb *table) orderBy(x string) string {
	var by []string
	if pk := tb.primary(); pk != nil && pk.plain {
		for _, c := range pk.cols {
			by = append(by, x+"."+ident(c))
		}
	}
	return strings.Join(append(by, x+"::text"), ", ")
}

// keyMatch returns a condition that alias x has the primary key values of r.
func (tb *table) keyMatch(x string, r row) string {
	pk := tb.primary()
	if pk == nil || !pk.plain || len(pk.cols) == 0 {
		return "false"
	}
	var l, v []string
	for _, c := range pk.cols {
		l = append(l, x+"."+ident(c))
		v = append(v, valueLiteral(r[c], tb.column(c).typ))
	}
	return "(" + strings.Join(l, ", ") + ") = (" + strings.Join(v, ", ") + ")"
}

// valueLiteral renders a jsonb value as an SQL literal of type typ.
func valueLiteral(v json.RawMessage, typ string) string {
	var s string
	switch {
	case v == nil || string(v) == "null":
		return "NULL::" + typ
	case json.Unmarshal(v, &s) == nil:
	default:
		s = string(v)
	}
	return literal(s) + "::" + typ
}

func (r row) with(name string, v any) row {
	out := make(row, len(r)+1)
	for k, x := range r {
		out[k] = x
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	out[name] = b
	return out
}

func (r row) String() string {
	b, err := json.Marshal(map[string]json.RawMessage(r))
	if err != nil {
		panic(err)
	}
	return string(b)
}

const tablesSQL = `
SELECT c.oid, c.relname, c.relkind = 'p',
	coalesce((SELECT array_agg(l.relid::regclass::text ORDER BY l.relid::regclass::text) FROM pg_partition_tree(c.oid) l
		WHERE l.isleaf AND l.relid <> c.oid), '{}')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname NOT LIKE 'landlordtest\_%'
  AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
ORDER BY c.relname`

const columnsSQL = `
SELECT a.attname, format_type(a.atttypid, a.atttypmod), bt.typcategory::text, bt.typname::text,
	a.attgenerated <> '' OR a.attidentity = 'a',
	a.attidentity <> '' OR coalesce(pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%', false)
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`

// uniquesSQL lists the unique indexes of a table with the columns each uses
// (through expressions and predicates too).
const uniquesSQL = `
SELECT ic.relname, i.indisprimary, i.indexprs IS NULL AND i.indpred IS NULL,
	array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(attnum, o)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.o),
	array(SELECT DISTINCT a.attname::text FROM pg_attribute a WHERE a.attrelid = i.indrelid AND (a.attnum = ANY (i.indkey)
		OR EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
			AND d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indrelid AND d.refobjsubid = a.attnum)))
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = $1 AND i.indisunique
ORDER BY NOT i.indisprimary, ic.relname`

const foreignKeysSQL = `
SELECT k.conname, rc.relname,
	array(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY x(attnum, o)
		JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.attnum ORDER BY x.o),
	array(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY x(attnum, o)
		JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = x.attnum ORDER BY x.o)
FROM pg_constraint k JOIN pg_class rc ON rc.oid = k.confrelid
WHERE k.conrelid = $1 AND k.contype = 'f'
  -- References to the platform-wide (global) tables are not between
  -- tenants: only foreign keys within the tenant's schema are probed.
  AND rc.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = $1)
ORDER BY k.conname`

// freshValue returns the expression that makes a fresh value of a column of
// category cat and base type base, or "" when the kit has none.
func freshValue(cat, base string) string {
	switch {
	case base == "int2":
		return "(%[1]s + %[2]s * 7)"
	case cat == "N":
		return "(%[1]s + %[2]s * 1000003)"
	case cat == "S":
		return "(%[1]s || '-lt' || %[2]s)"
	case base == "uuid":
		return "md5(%[1]s::text || '-lt' || %[2]s)::uuid"
	case base == "date":
		return "(%[1]s + %[2]s * 3653)"
	case base == "timestamp" || base == "timestamptz":
		return "(%[1]s + %[2]s * interval '10 years')"
	}
	return ""
}

// readTables reads the tenant tables at A's placement (the same tables are
// at B's), and what A holds in each.
func (f *fx) readTables(t *testing.T) []*table {
	t.Helper()
	ctx := context.Background()
	conn := f.super(t, f.a).conn
	rows, err := conn.Query(ctx, tablesSQL, f.a.Schema)
	must(t, err)
	type rel struct {
		oid    uint32
		t      *table
		leaves []string
	}
	rels, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rel, error) {
		x := rel{t: &table{fresh: map[string]string{}}}
		err := r.Scan(&x.oid, &x.t.name, &x.t.partitioned, &x.leaves)
		return x, err
	})
	must(t, err)
	if len(rels) == 0 {
		t.Fatalf("schema %s holds no tenant tables", f.a.Schema)
	}
	var tables []*table
	for _, x := range rels {
		tb := x.t
		for _, l := range x.leaves {
			tb.leaves = append(tb.leaves, l[strings.LastIndex(l, ".")+1:])
		}
		rows, err := conn.Query(ctx, columnsSQL, x.oid)
		must(t, err)
		type col struct {
			column
			skip, serial bool
		}
		cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (col, error) {
			var c col
			err := r.Scan(&c.name, &c.typ, &c.category, &c.base, &c.skip, &c.serial)
			return c, err
		})
		must(t, err)
		for i, c := range cols {
			// A type of the tenant schema is named in the placement the
			// statement runs at.
			for _, q := range []string{ident(f.a.Schema) + ".", f.a.Schema + "."} {
				if strings.HasPrefix(c.typ, q) {
					cols[i].typ, c.typ = "{s}."+c.typ[len(q):], "{s}."+c.typ[len(q):]
				}
			}
			if c.serial && tb.serial == "" && !c.skip {
				tb.serial = c.name
			}
			if !c.skip {
				tb.cols = append(tb.cols, c.column)
			}
		}
		rows, err = conn.Query(ctx, uniquesSQL, x.oid)
		must(t, err)
		keyCols := map[string]bool{}
		tb.uniques, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (unique, error) {
			var u unique
			var cols, used []string
			err := r.Scan(&u.name, &u.primary, &u.plain, &cols, &used)
			if len(cols) > 0 && cols[0] == "tenant_id" {
				u.cols = cols[1:]
			} else {
				u.plain = false
			}
			for _, c := range used {
				keyCols[c] = true
			}
			return u, err
		})
		must(t, err)
		rows, err = conn.Query(ctx, foreignKeysSQL, x.oid)
		must(t, err)
		tb.fks, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (foreignKey, error) {
			var k foreignKey
			err := r.Scan(&k.name, &k.ref, &k.cols, &k.refCols)
			if len(k.cols) > 0 && k.cols[0] == "tenant_id" {
				k.cols, k.refCols = k.cols[1:], k.refCols[1:]
			}
			return k, err
		})
		must(t, err)
		for _, k := range tb.fks {
			for _, c := range k.cols {
				delete(keyCols, c)
			}
		}
		delete(keyCols, "tenant_id")
		for _, c := range cols {
			if !keyCols[c.name] || c.skip {
				continue
			}
			e := freshValue(c.category, c.base)
			if e == "" {
				tb.copyProblem = fmt.Sprintf("key column %s is of type %s, of which the kit cannot make fresh values", c.name, c.typ)
				break
			}
			tb.fresh[c.name] = e
		}
		must(t, conn.QueryRow(ctx, `SELECT count(*) FROM `+tb.in(f.a)+` WHERE tenant_id = $1`, f.a.ID).Scan(&tb.nA))
		var nB int
		must(t, f.super(t, f.b).conn.QueryRow(ctx, `SELECT count(*) FROM `+tb.in(f.b)+` WHERE tenant_id = $1`, f.b.ID).Scan(&nB))
		if tb.nA == 0 || nB == 0 {
			t.Fatalf("Kit.Seed left table %s without rows (%d of the first tenant, %d of the second): seed every tenant table", tb.name, tb.nA, nB)
		}
		tables = append(tables, tb)
	}
	return tables
}

// table returns the tenant table called name.
func (f *fx) table(name string) *table {
	for _, tb := range f.tables {
		if tb.name == name {
			return tb
		}
	}
	return nil
}

// row returns a row of who's in tb (the first by primary key) with fresh key
// values number k (none for k = 0).
func (f *fx) row(t *testing.T, tb *table, who tenant.Tenant, k int) row {
	t.Helper()
	var fresh string
	if k == 0 {
		fresh = `'{}'::jsonb`
	} else {
		fresh = tb.freshExprs("x", k)
	}
	var b []byte
	err := f.super(t, who).conn.QueryRow(context.Background(), fmt.Sprintf(
		`SELECT to_jsonb(x) || %s FROM %s x WHERE x.tenant_id = $1 ORDER BY %s LIMIT 1`, fresh, tb.in(who), tb.orderBy("x")),
		who.ID).Scan(&b)
	must(t, err)
	var r row
	must(t, json.Unmarshal(b, &r))
	return r
}

// refresh returns r with fresh key values number k.
func (f *fx) refresh(t *testing.T, tb *table, place tenant.Tenant, r row, k int) row {
	t.Helper()
	var b []byte
	err := f.super(t, place).conn.QueryRow(context.Background(), fmt.Sprintf(
		`SELECT to_jsonb(x) || %s FROM jsonb_populate_record(NULL::%s, $1::jsonb) x`, tb.freshExprs("x", k), tb.in(place)),
		r.String()).Scan(&b)
	must(t, err)
	var out row
	must(t, json.Unmarshal(b, &out))
	return out
}

// victim returns what turns a row of A's into one of B's: B's tenant_id,
// and the references of one of B's rows, so that foreign keys find B's
// rows.
func (f *fx) victim(t *testing.T, tb *table) row {
	t.Helper()
	b := f.row(t, tb, f.b, 0)
	v := row{}.with("tenant_id", f.b.ID.String())
	for _, k := range tb.fks {
		for _, c := range k.cols {
			v[c] = b[c]
		}
	}
	return v
}

// merge returns r with the values of s.
func (r row) merge(s row) row {
	out := make(row, len(r)+len(s))
	for k, x := range r {
		out[k] = x
	}
	for k, x := range s {
		out[k] = x
	}
	return out
}

// tryInsert inserts r into tb at place as the superuser, in a transaction
// it rolls back, and returns why the insert failed ("" when it did not).
func (f *fx) tryInsert(t *testing.T, tb *table, place tenant.Tenant, r row) string {
	t.Helper()
	ctx := context.Background()
	tx, err := f.super(t, place).conn.Begin(ctx)
	must(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, searchPath(place.Schema))
	must(t, err)
	if _, err := tx.Exec(ctx, tb.insert(tb.in(place)), r.String()); err != nil {
		return err.Error()
	}
	return ""
}

// prepareB checks that the kit can make rows of every table, gives B a row
// of keys A does not have in each table where it can, marks B's text values
// and collects them as canaries.
func (f *fx) prepareB(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, tb := range f.tables {
		if tb.copyProblem == "" {
			tb.copyProblem = f.tryInsert(t, tb, f.a, f.row(t, tb, f.a, 2))
		}
		if tb.copyProblem == "" {
			tb.crossProblem = f.tryInsert(t, tb, f.b, f.row(t, tb, f.a, 3).merge(f.victim(t, tb)))
		}
	}
	c := f.super(t, f.b).conn
	tx, err := c.Begin(ctx)
	must(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, searchPath(f.b.Schema))
	must(t, err)
	try := func(sql string, args ...any) error {
		if _, err := tx.Exec(ctx, `SAVEPOINT mark`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			_, rerr := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT mark`)
			must(t, rerr)
			return err
		}
		return nil
	}
	for _, tb := range f.tables {
		if tb.copyProblem != "" {
			continue
		}
		r := f.row(t, tb, f.b, 1)
		if try(tb.insert(tb.in(f.b)), r.String()) == nil {
			tb.bOnly = r
		}
	}
	// B's text values, where no key and no constraint forbids, carry the
	// mark.
	for _, tb := range f.tables {
		keys := map[string]bool{"tenant_id": true}
		for c := range tb.fresh {
			keys[c] = true
		}
		for _, k := range tb.fks {
			for _, c := range k.cols {
				keys[c] = true
			}
		}
		for _, col := range tb.cols {
			if col.category != "S" || keys[col.name] {
				continue
			}
			_ = try(fmt.Sprintf(`UPDATE %s SET %s = %s || '-' || %[2]s WHERE tenant_id = $1 AND %[2]s NOT LIKE %[4]s`,
				tb.in(f.b), ident(col.name), literal(canaryMark), literal(canaryMark+"%")), f.b.ID)
		}
		if tb.bOnly != nil {
			var b []byte
			must(t, tx.QueryRow(ctx, fmt.Sprintf(`SELECT to_jsonb(x) FROM %s x WHERE x.tenant_id = $1 AND %s`,
				tb.in(f.b), tb.keyMatch("x", tb.bOnly)), f.b.ID).Scan(&b))
			must(t, json.Unmarshal(b, &tb.bOnly))
		}
		if tb.partitioned {
			var part string
			must(t, tx.QueryRow(ctx, `SELECT tableoid::regclass::text FROM `+tb.in(f.b)+` WHERE tenant_id = $1 LIMIT 1`, f.b.ID).Scan(&part))
			tb.partB = part[strings.LastIndex(part, ".")+1:]
		}
	}
	must(t, tx.Commit(ctx))
	f.values = f.valueCanaries(t)
	for _, tb := range f.tables {
		if tb.copyProblem == "" && f.main == nil {
			f.main = tb
		}
	}
	if f.main == nil {
		f.main = f.tables[0]
	}
}

var hasLetter = regexp.MustCompile(`[A-Za-z]`)

// valueCanaries returns the mark when B's rows carry it, and every other
// value of B's that is long enough to be recognised and that no value of A
// contains. It notes which tables hold such a value in B's rows.
func (f *fx) valueCanaries(t *testing.T) []string {
	t.Helper()
	values := func(who tenant.Tenant, tb *table) []string {
		rows, err := f.super(t, who).conn.Query(context.Background(), `SELECT DISTINCT e.value FROM `+tb.in(who)+` x,
			jsonb_each_text(to_jsonb(x)) e WHERE x.tenant_id = $1 AND e.value IS NOT NULL`, who.ID)
		must(t, err)
		vs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		must(t, err)
		return vs
	}
	own := []string{f.a.ID.String(), f.a.Slug, f.b.Slug}
	for _, tb := range f.tables {
		own = append(own, values(f.a, tb)...)
	}
	ownText := strings.Join(own, "\n")
	var out []string
	marked := false
	for _, tb := range f.tables {
		for _, v := range values(f.b, tb) {
			switch {
			case strings.Contains(v, canaryMark):
				marked, tb.recognisable = true, true
			case v == f.b.ID.String() || len(v) < 8 || !hasLetter.MatchString(v) || strings.Contains(ownText, v):
			default:
				tb.recognisable = true
				if !slices.Contains(out, v) {
					out = append(out, v)
				}
			}
		}
	}
	if marked {
		out = append(out, canaryMark)
	}
	slices.Sort(out)
	return out
}
