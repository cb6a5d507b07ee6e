// Package archive exports one tenant, whatever its model, to one portable
// file, and imports such a file as a new tenant or over an existing one, in
// any model: the same tables in every model (ARCHITECTURE.md, idea 1) make
// the rows of one tenant the same whatever holds them. Clone is an export
// piped into an import.
//
// An export reads every tenant table in one REPEATABLE READ transaction, so
// the archive is one consistent snapshot, and streams the rows (COPY) into
// the file: memory stays flat however large the tenant. An import checks
// the archive before it creates anything, writes all rows in one
// transaction, checks every count and digest again before it commits, and
// rewrites the tenant_id of every row to its target's.
package archive

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// Progress is what an export or import reports as it goes: the table it is
// in (1-based, of Tables), and the rows done so far in all tables. Total is
// the number of rows of the whole archive when it is known (an import of a
// verified file), else 0.
type Progress struct {
	Table       string
	TableIndex  int
	Tables      int
	Rows, Total int64
}

// ExportOptions are the settings of Export.
type ExportOptions struct {
	// Progress, when set, is called as rows are written, from the
	// exporting goroutine.
	Progress func(Progress)
	// store writes the archive without compressing it: Clone and Copy,
	// whose archive never leaves the process.
	store bool
	// snapshot, when set, is an exported snapshot to read in (a move's
	// logical replication slot's).
	snapshot string
}

// sessionSettings fix how values print, so that the same rows give the
// same bytes (and digest) on any server and in any session.
const sessionSettings = `SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres';
SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = 'hex';
SET LOCAL client_encoding = 'UTF8'`

// Export writes tenant id of p's installation to w as an archive and
// returns its manifest. The tenant must be active, read-only or suspended;
// it keeps serving meanwhile. w gets a partial archive when Export fails:
// write to a temporary file and rename it when Export returns nil.
func Export(ctx context.Context, p *provision.Provisioner, id tenant.ID, w io.Writer, opt ExportOptions) (Manifest, error) {
	m, err := export(ctx, p, id, w, opt)
	if err != nil {
		return m, fmt.Errorf("export tenant %s: %w", id, err)
	}
	return m, nil
}

func export(ctx context.Context, p *provision.Provisioner, id tenant.ID, w io.Writer, opt ExportOptions) (Manifest, error) {
	t, err := p.Directory().Get(ctx, id)
	if err != nil {
		return Manifest{}, err
	}
	switch t.State {
	case tenant.StateActive, tenant.StateReadOnly, tenant.StateSuspended:
	default:
		return Manifest{}, &tenant.StateError{ID: id, State: t.State}
	}
	return exportPlacement(ctx, p, t, w, opt)
}

// exportPlacement is export of tenant t at the placement t names, whatever
// the directory says of it.
func exportPlacement(ctx context.Context, p *provision.Provisioner, t tenant.Tenant, w io.Writer, opt ExportOptions) (Manifest, error) {
	conn, err := connect(ctx, p, t)
	if err != nil {
		return Manifest{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	level := gzip.BestSpeed
	if opt.store {
		level = gzip.NoCompression
	}
	var m Manifest
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if opt.snapshot != "" {
			if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+ident.Literal(opt.snapshot)); err != nil {
				return fmt.Errorf("read in the move's snapshot: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, sessionSettings+"; SET LOCAL search_path = "+searchPath(t.Schema)); err != nil {
			return err
		}
		if err := readAsTenant(ctx, tx, p, t.ID); err != nil {
			return err
		}
		tables, err := readTables(ctx, tx, t.Schema)
		if err != nil {
			return err
		}
		m = Manifest{
			Format: FormatVersion, Landlord: moduleVersion(),
			Tenant:        Source{ID: t.ID, Slug: t.Slug, DisplayName: t.DisplayName, Model: t.Model, Server: t.Server, Settings: t.Settings},
			SchemaVersion: t.SchemaVersion, Tables: []Table{},
		}
		if err := tx.QueryRow(ctx, `SELECT current_setting('server_version'), now()`).Scan(&m.PostgreSQL, &m.CreatedAt); err != nil {
			return err
		}
		m.CreatedAt = m.CreatedAt.UTC()
		for _, tb := range tables {
			m.Tables = append(m.Tables, Table{Name: tb.name, Columns: tb.columns})
		}
		aw, err := newWriter(w, level)
		if err != nil {
			return err
		}
		if err := aw.json(frameHeader, m); err != nil {
			return err
		}
		var done int64
		for i, tb := range tables {
			if err := aw.json(frameTable, map[string]string{"name": tb.name}); err != nil {
				return err
			}
			var report func(int64)
			if opt.Progress != nil {
				base := done
				report = func(rows int64) {
					opt.Progress(Progress{Table: tb.name, TableIndex: i + 1, Tables: len(tables), Rows: base + rows})
				}
				report(0)
			}
			tw := aw.table(report)
			if _, err := tx.Conn().PgConn().CopyTo(ctx, tw, tb.copyOut(t.Schema, t.ID)); err != nil {
				return fmt.Errorf("read table %s: %w", tb.name, err)
			}
			e, err := tw.end()
			if err != nil {
				return err
			}
			m.Tables[i].Rows, m.Tables[i].SHA256 = e.Rows, e.SHA256
			done += e.Rows
		}
		if err := aw.json(frameManifest, m); err != nil {
			return err
		}
		return aw.close()
	})
	return m, err
}

// readAsTenant lets an administrator that row-level security applies to
// (not a superuser, no BYPASSRLS) read the tenant's rows: as the owner
// role, with the tenant's context entered, as Landlord's own deletes do;
// the policies then admit exactly this tenant's rows.
func readAsTenant(ctx context.Context, tx pgx.Tx, p *provision.Provisioner, id tenant.ID) error {
	var bypass bool
	if err := tx.QueryRow(ctx, `SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&bypass); err != nil || bypass {
		return err
	}
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(p.Roles().Owner)); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `SELECT landlord_context.enter($1)`, id)
	return err
}

// connect opens a connection as the administrator to the database that
// holds t's tables.
func connect(ctx context.Context, p *provision.Provisioner, t tenant.Tenant) (*pgx.Conn, error) {
	return p.Connect(ctx, t.Server, t.Database)
}

// searchPath puts the tenant's schema first, so that format_type names
// the schema's own types (enums) without it in every model.
func searchPath(schema string) string { return ident.Quote(schema) + ", pg_catalog" }

// table is a tenant table as the catalog describes it.
type table struct {
	oid     uint32
	name    string
	columns []Column // without tenant_id and generated columns
	key     []string // the primary key's columns without tenant_id
	refs    []string // the other tables of the schema its foreign keys reference
}

// readTables lists the tenant tables of schema, by name, with their
// columns and primary keys. A table without a tenant_id column cannot be
// told apart per tenant: it is an error, not skipped.
func readTables(ctx context.Context, tx pgx.Tx, schema string) ([]table, error) {
	rows, err := tx.Query(ctx, `
		SELECT c.oid, c.relname,
			EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped),
			coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
				WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND a.attname <> 'tenant_id'), '{}'),
			coalesce((SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) FROM pg_attribute a
				WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND a.attname <> 'tenant_id'), '{}'),
			coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
				CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
				JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
				WHERE i.indrelid = c.oid AND i.indisprimary AND a.attname <> 'tenant_id'), '{}'),
			coalesce((SELECT array_agg(DISTINCT r.relname::text) FROM pg_constraint k JOIN pg_class r ON r.oid = k.confrelid
				WHERE k.conrelid = c.oid AND k.contype = 'f' AND r.relnamespace = c.relnamespace AND r.oid <> c.oid), '{}')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		ORDER BY c.relname`, schema)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var out []table
	for rows.Next() {
		var tb table
		var hasTenant bool
		var names, types []string
		if err := rows.Scan(&tb.oid, &tb.name, &hasTenant, &names, &types, &tb.key, &tb.refs); err != nil {
			rows.Close()
			return nil, err
		}
		if !hasTenant {
			rows.Close()
			return nil, fmt.Errorf("table %s.%s has no tenant_id column", schema, tb.name)
		}
		for i := range names {
			tb.columns = append(tb.columns, Column{Name: names[i], Type: types[i]})
		}
		out = append(out, tb)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return parentsFirst(out)
}

// parentsFirst orders tables so that each comes after the tables its
// foreign keys reference, by name where that leaves a choice: the order
// in which rows can go in while foreign keys check.
func parentsFirst(tables []table) ([]table, error) {
	left := map[string]int{} // references to tables not yet placed
	by := map[string][]string{}
	index := map[string]table{}
	for _, tb := range tables {
		index[tb.name] = tb
		left[tb.name] = len(tb.refs)
		for _, r := range tb.refs {
			by[r] = append(by[r], tb.name)
		}
	}
	var ready []string
	for _, tb := range tables {
		if left[tb.name] == 0 {
			ready = append(ready, tb.name)
		}
	}
	out := make([]table, 0, len(tables))
	for len(ready) > 0 {
		slices.Sort(ready)
		n := ready[0]
		ready = ready[1:]
		out = append(out, index[n])
		for _, c := range by[n] {
			if left[c]--; left[c] == 0 {
				ready = append(ready, c)
			}
		}
	}
	if len(out) != len(tables) {
		return nil, errors.New("foreign keys between tenant tables form a cycle; an archive needs an order in which rows can go in")
	}
	return out, nil
}

// copyOut is the COPY that reads tenant id's rows of tb: its columns
// without tenant_id, ordered by its primary key (or by the whole row, for
// a table without one), so that equal rows give equal bytes.
func (tb table) copyOut(schema string, id tenant.ID) string {
	cols := make([]string, len(tb.columns))
	for i, c := range tb.columns {
		cols[i] = ident.Quote(c.Name)
	}
	order := "t::text"
	if len(tb.key) > 0 {
		keys := make([]string, len(tb.key))
		for i, k := range tb.key {
			keys[i] = ident.Quote(k)
		}
		order = strings.Join(keys, ", ")
	}
	return fmt.Sprintf("COPY (SELECT %s FROM %s t WHERE tenant_id = %s ORDER BY %s) TO STDOUT",
		strings.Join(cols, ", "), ident.Quote(schema, tb.name), ident.Literal(id.String()), order)
}

// moduleVersion is the version of the Landlord module in this binary.
func moduleVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	const path = "github.com/landlordhq/landlord"
	if info.Main.Path == path {
		return info.Main.Version
	}
	for _, d := range info.Deps {
		if d.Path == path {
			return d.Version
		}
	}
	return "unknown"
}

// errStop ends a clone's export when its import has stopped.
var errStop = errors.New("the import stopped")
