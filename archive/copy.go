package archive

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
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
		_, err := exportPlacement(ctx, p, src, pw, ExportOptions{level: gzip.NoCompression, snapshot: opt.Snapshot})
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
}

// Sums returns the Sum of each table of tenant t (by table name), read in
// tx, a transaction on t's database the caller began (in the snapshot it
// wants compared). Values print with the archive's fixed settings, so the
// same rows give the same sums in every model and on every server.
func Sums(ctx context.Context, p *provision.Provisioner, tx pgx.Tx, t tenant.Tenant) (map[string]Sum, error) {
	if _, err := tx.Exec(ctx, sessionSettings+"; SET LOCAL search_path = "+searchPath(t.Schema)); err != nil {
		return nil, err
	}
	if err := readAsTenant(ctx, tx, p, t.ID); err != nil {
		return nil, err
	}
	tables, err := readTables(ctx, tx, t.Schema)
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
