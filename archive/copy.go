package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// CopyOptions are the settings of Copy.
type CopyOptions struct {
	// Snapshot, when set, is an exported snapshot (pg_export_snapshot, or
	// a logical replication slot's) in the source's database to read in.
	Snapshot string
	// Replace deletes the tenant's rows at the destination first.
	Replace bool
	// Progress, when set, is called as rows are written.
	Progress func(Progress)
}

// Copy copies the rows of one tenant from placement src to placement dst
// (the same tenant, elsewhere: a move's old and new placement), from one
// snapshot, as an archive streamed from an export into a fill with no file
// between: dst gets every row in one transaction, with the same checks as
// an import (counts, digests, foreign keys, sequences). Neither placement
// needs to be the one the directory routes to.
func Copy(ctx context.Context, p *provision.Provisioner, src, dst tenant.Tenant, opt CopyOptions) (Manifest, error) {
	if src.ID != dst.ID {
		return Manifest{}, fmt.Errorf("copy tenant %s: the destination is another tenant (%s)", src.ID, dst.ID)
	}
	asSuper, err := mayImport(ctx, p, dst.Model)
	if err != nil {
		return Manifest{}, fmt.Errorf("copy tenant %s: %w", src.ID, err)
	}
	pr, pw := io.Pipe()
	exported := make(chan error, 1)
	go func() {
		_, err := exportPlacement(ctx, p, src, pw, ExportOptions{store: true, snapshot: opt.Snapshot})
		pw.CloseWithError(err)
		exported <- err
	}()
	m, err := func() (Manifest, error) {
		rd, err := newReader(pr)
		if err != nil {
			return Manifest{}, err
		}
		return fillTenant(ctx, p, dst, rd, fillOptions{replace: opt.Replace, direct: asSuper, progress: opt.Progress})
	}()
	pr.CloseWithError(errStop)
	if xerr := <-exported; xerr != nil && (err == nil || errors.Is(err, ErrBadArchive)) {
		err = xerr
	}
	if err != nil {
		return m, fmt.Errorf("copy tenant %s from %s/%s to %s/%s: %w", src.ID, src.Model, src.Server, dst.Model, dst.Server, err)
	}
	return m, nil
}

// Sum is one table's rows of a tenant, summed: how many, and the sum of a
// 64-bit hash of each row's text, which does not depend on the rows' order
// or the table's placement.
type Sum struct {
	Rows int64
	Hash string // a decimal number
	// Keyed is how many rows Hash covers, for ChangedSums; 0 for Sums,
	// whose Hash covers every row.
	Keyed int64
}

// Keys names rows of one table by their primary key: the key's columns
// (tenant_id may be among them; it is t's) and, per row, the columns'
// values as text, as the table's input functions read them.
type Keys struct {
	Columns []string
	Values  [][]string
}

// ChangedSums is Sums for a caller that knows which rows may differ: per
// table of tenant t, Rows counts all of t's rows, but Hash sums only the
// rows keys names (by table name), and Keyed says how many of those exist.
// Each named row is read through the primary key's index, so the cost
// follows the number of keys, not of rows (the count aside).
func ChangedSums(ctx context.Context, p *provision.Provisioner, tx pgx.Tx, t tenant.Tenant, keys map[string]Keys) (map[string]Sum, error) {
	tables, err := sumTables(ctx, p, tx, t)
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(tables))
	for _, tb := range tables {
		have[tb.name] = true
	}
	for name := range keys {
		if !have[name] {
			return nil, fmt.Errorf("sum changed rows: no tenant table %s", name)
		}
	}
	out := make(map[string]Sum, len(tables))
	for _, tb := range tables {
		s := Sum{Hash: "0"}
		if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE tenant_id = $1`, ident.Quote(t.Schema, tb.name)), t.ID).Scan(&s.Rows); err != nil {
			return nil, fmt.Errorf("count table %s: %w", tb.name, err)
		}
		out[tb.name] = s
	}
	// Each key is a probe of the primary key's index, whatever the
	// statistics say: a table that grew since it was last analyzed looks
	// small enough to the planner for a scan per key.
	if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off`); err != nil {
		return nil, err
	}
	for _, tb := range tables {
		k, ok := keys[tb.name]
		if !ok || len(k.Values) == 0 {
			continue
		}
		sql, args, err := changedSumSQL(tb, ident.Quote(t.Schema, tb.name), k)
		if err != nil {
			return nil, err
		}
		s := out[tb.name]
		if err := tx.QueryRow(ctx, sql, append([]any{t.ID}, args...)...).Scan(&s.Keyed, &s.Hash); err != nil {
			return nil, fmt.Errorf("sum the changed rows of table %s: %w", tb.name, err)
		}
		out[tb.name] = s
	}
	return out, nil
}

// changedSumSQL is the query of ChangedSums for one table ($1 the tenant,
// then one text array per key column), and its arguments.
func changedSumSQL(tb table, table string, k Keys) (string, []any, error) {
	types := make(map[string]string, len(tb.columns))
	for _, c := range tb.columns {
		types[c.Name] = c.Type
	}
	var given []string
	for _, c := range k.Columns {
		if c != "tenant_id" {
			given = append(given, c)
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(given)), slices.Sorted(slices.Values(tb.key))) {
		return "", nil, fmt.Errorf("sum changed rows of table %s: keys by %q, its primary key is %q", tb.name, k.Columns, tb.key)
	}
	cols := make([]string, len(tb.columns))
	for i, c := range tb.columns {
		cols[i] = "t." + ident.Quote(c.Name)
	}
	var arrays, names, where []string
	var args []any
	for i, c := range k.Columns {
		vals := make([]string, len(k.Values))
		for j, v := range k.Values {
			if len(v) != len(k.Columns) {
				return "", nil, fmt.Errorf("sum changed rows of table %s: a key of %d values, want %d", tb.name, len(v), len(k.Columns))
			}
			vals[j] = v[i]
		}
		args = append(args, vals)
		arrays = append(arrays, fmt.Sprintf("$%d::text[]", i+2))
		names = append(names, fmt.Sprintf("k%d", i))
		if c == "tenant_id" {
			where = append(where, fmt.Sprintf("t.tenant_id = k.k%d::uuid", i))
		} else {
			where = append(where, fmt.Sprintf("t.%s = k.k%d::%s", ident.Quote(c), i, types[c]))
		}
	}
	// LIMIT 1 (the key is unique) keeps each key a probe of the index.
	sql := fmt.Sprintf(`SELECT count(r.h), coalesce(sum(r.h::numeric), 0)::text
		FROM unnest(%[2]s) AS k(%[3]s)
		CROSS JOIN LATERAL (SELECT hashtextextended(ROW(%[4]s)::text, 0) AS h FROM %[1]s t
			WHERE t.tenant_id = $1 AND %[5]s LIMIT 1) r`,
		table, strings.Join(arrays, ", "), strings.Join(names, ", "), strings.Join(cols, ", "), strings.Join(where, " AND "))
	return sql, args, nil
}

// sumTables readies tx for Sums and ChangedSums (the archive's output
// settings, t's schema, t's rows readable) and lists t's tables. No JIT:
// compiling costs more than these statements save by it.
func sumTables(ctx context.Context, p *provision.Provisioner, tx pgx.Tx, t tenant.Tenant) ([]table, error) {
	if _, err := tx.Exec(ctx, sessionSettings+"; SET LOCAL jit = off; SET LOCAL search_path = "+searchPath(t.Schema)); err != nil {
		return nil, err
	}
	if err := readAsTenant(ctx, tx, p, t.ID); err != nil {
		return nil, err
	}
	return readTables(ctx, tx, t.Schema)
}

// Sums returns the Sum of each table of tenant t (by table name), read in
// tx, a transaction on t's database the caller began (in the snapshot it
// wants compared). Values print with the archive's fixed settings, so the
// same rows give the same sums in every model and on every server.
func Sums(ctx context.Context, p *provision.Provisioner, tx pgx.Tx, t tenant.Tenant) (map[string]Sum, error) {
	tables, err := sumTables(ctx, p, tx, t)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Sum, len(tables))
	for _, tb := range tables {
		cols := make([]string, len(tb.columns))
		for i, c := range tb.columns {
			cols[i] = ident.Quote(c.Name)
		}
		var s Sum
		if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), coalesce(sum(hashtextextended(ROW(%s)::text, 0)::numeric), 0)::text
			FROM %s WHERE tenant_id = $1`, strings.Join(cols, ", "), ident.Quote(t.Schema, tb.name)), t.ID).Scan(&s.Rows, &s.Hash); err != nil {
			return nil, fmt.Errorf("sum table %s: %w", tb.name, err)
		}
		out[tb.name] = s
	}
	return out, nil
}

// AdvanceSequences moves every sequence that feeds a column of tenant t's
// tables past the largest value of t's rows, as an import does when it
// ends: for rows written into t by other means (a move's catch-up). conn
// is an administrator's connection to t's database.
func AdvanceSequences(ctx context.Context, p *provision.Provisioner, conn *pgx.Conn, t tenant.Tenant) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL search_path = "+searchPath(t.Schema)); err != nil {
			return err
		}
		if err := readAsTenant(ctx, tx, p, t.ID); err != nil {
			return err
		}
		tables, err := readTables(ctx, tx, t.Schema)
		if err != nil {
			return err
		}
		return advanceSequences(ctx, tx, t, tables)
	})
}
