package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// ImportOptions are the settings of Import and Clone.
type ImportOptions struct {
	// Slug, DisplayName, Model and Server describe the new tenant; empty
	// ones are the archive's (the directory's own server for Server). Slug
	// must be free; Clone requires one.
	Slug        string
	DisplayName string
	Model       tenant.Model
	Server      string
	// Replace, when not zero, imports over this existing tenant instead:
	// its rows are replaced by the archive's in one transaction, while it
	// keeps serving. Slug, DisplayName, Model and Server must be empty.
	Replace tenant.ID
	// Progress, when set, is called as rows are written, from the
	// importing goroutine.
	Progress func(Progress)
}

func (o ImportOptions) validate() error {
	if !o.Replace.IsZero() && (o.Slug != "" || o.DisplayName != "" || o.Model != "" || o.Server != "") {
		return errors.New("an import over an existing tenant keeps its slug, name, model and server: leave them empty")
	}
	if o.Model != "" {
		if _, err := tenant.ParseModel(string(o.Model)); err != nil {
			return err
		}
	}
	return nil
}

// Import reads an archive from r into p's installation: as a new tenant,
// or over the tenant opt.Replace. It returns the tenant and the archive's
// manifest.
//
// When r is also an io.Seeker (a file), the whole archive is verified
// first (Verify) and read again to import it, so that a bad archive
// creates nothing at all. Otherwise the archive is checked as it is read:
// a bad one is refused before the rows commit, and a new tenant made for
// it is deleted again. Either way the rows of a tenant are written in one
// transaction, with triggers off (the archive holds what triggers made)
// and every foreign key checked after, and a crash during the import
// leaves nothing: Reconcile deletes a new tenant whose import did not
// finish, and an import over a tenant leaves its old rows.
//
// The archive's schema version must be that of the target: the head of
// the installation's migrations for a new tenant, the tenant's own for
// Replace; the tables and columns must match too (ErrIncompatible).
// An administrator that is not a superuser imports into schema and
// database tenants only (ErrNotPermitted for the row model).
func Import(ctx context.Context, p *provision.Provisioner, r io.Reader, opt ImportOptions) (tenant.Tenant, Manifest, error) {
	t, m, err := importArchive(ctx, p, r, opt)
	if err != nil {
		return t, m, fmt.Errorf("import tenant: %w", err)
	}
	return t, m, nil
}

func importArchive(ctx context.Context, p *provision.Provisioner, r io.Reader, opt ImportOptions) (tenant.Tenant, Manifest, error) {
	if err := opt.validate(); err != nil {
		return tenant.Tenant{}, Manifest{}, err
	}
	var total int64
	var verified *Manifest
	// A file is verified whole first; a pipe (standard input is an
	// *os.File too, but cannot seek) is checked as it is read.
	if s, ok := r.(io.Seeker); ok {
		if start, err := s.Seek(0, io.SeekCurrent); err == nil {
			m, err := Verify(r)
			if err != nil {
				return tenant.Tenant{}, m, err
			}
			if err := fits(ctx, p, m, opt); err != nil {
				return tenant.Tenant{}, m, err
			}
			if _, err := s.Seek(start, io.SeekStart); err != nil {
				return tenant.Tenant{}, m, err
			}
			total, verified = m.Rows(), &m
		}
	}
	rd, err := newReader(r)
	if err != nil {
		return tenant.Tenant{}, Manifest{}, err
	}
	m := rd.header
	switch {
	case verified == nil:
		if err := fits(ctx, p, m, opt); err != nil {
			return tenant.Tenant{}, m, err
		}
	case !m.sameShape(*verified) || m.SchemaVersion != verified.SchemaVersion:
		return tenant.Tenant{}, m, fmt.Errorf("%w: the archive changed between its check and its import", ErrBadArchive)
	}
	model := opt.Model
	if model == "" {
		model = m.Tenant.Model
	}
	if !opt.Replace.IsZero() {
		t, err := p.Directory().Get(ctx, opt.Replace)
		if err != nil {
			return t, m, err
		}
		model = t.Model
	}
	asSuper, err := mayImport(ctx, p, model)
	if err != nil {
		return tenant.Tenant{}, m, err
	}
	fill := func(ctx context.Context, t tenant.Tenant) error {
		got, err := fillTenant(ctx, p, t, rd, fillOptions{replace: !opt.Replace.IsZero(), direct: asSuper, total: total, progress: opt.Progress})
		m = got
		if err != nil || !opt.Replace.IsZero() || m.Tenant.Settings == (tenant.Settings{}) {
			// A tenant imported over keeps its own settings: they are
			// its operator's, not the archive's.
			return err
		}
		// Before activation: the new tenant never runs without the
		// limits its source had.
		_, err = p.Directory().SetSettings(ctx, t.ID, m.Tenant.Settings,
			fmt.Sprintf("imported from the archive of %s (%s)", m.Tenant.Slug, m.Tenant.ID))
		return err
	}
	var t tenant.Tenant
	if opt.Replace.IsZero() {
		req := provision.Request{Slug: opt.Slug, DisplayName: opt.DisplayName, Model: opt.Model, Server: opt.Server, Fill: fill}
		if req.Slug == "" {
			req.Slug = m.Tenant.Slug
		}
		if req.DisplayName == "" {
			req.DisplayName = m.Tenant.DisplayName
		}
		if req.Model == "" {
			req.Model = m.Tenant.Model
		}
		t, err = p.Create(ctx, req)
	} else {
		t, err = p.Refill(ctx, opt.Replace, fill)
	}
	return t, m, err
}

// direct reports whether the administrator can write rows past row-level
// security with triggers off (session_replication_role): a superuser, or a
// role with BYPASSRLS that may set the parameter. Any other administrator
// imports as the owner role, with the target's tables switched for the
// import's transaction: that locks them, so it is done only for the
// tables of schema and database tenants, never the shared ones.
func direct(ctx context.Context, p *provision.Provisioner) (bool, error) {
	var ok bool
	err := pgx.BeginFunc(ctx, p.Admin(), func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&ok); err != nil || !ok {
			return err
		}
		if _, err := tx.Exec(ctx, `SAVEPOINT probe`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			ok = false
			_, err = tx.Exec(ctx, `ROLLBACK TO SAVEPOINT probe`)
			return err
		}
		return nil
	})
	return ok, err
}

// mayImport refuses, before anything is created, an import into the
// shared tables by an administrator that cannot import directly.
func mayImport(ctx context.Context, p *provision.Provisioner, m tenant.Model) (bool, error) {
	ok, err := direct(ctx, p)
	if err != nil || ok || m != tenant.ModelRow {
		return ok, err
	}
	return false, fmt.Errorf("%w: an import into the shared tables (row model) writes past row-level security with triggers off, "+
		"which takes a superuser administrator, or one with BYPASSRLS that may SET session_replication_role; "+
		"import into the schema or database model instead", ErrNotPermitted)
}

// fits checks an archive's header against its target before anything is
// created: the migration version its tables must be at.
func fits(ctx context.Context, p *provision.Provisioner, m Manifest, opt ImportOptions) error {
	want, what := p.Migrator().Set().Head(), "new tenants here are created at version"
	if !opt.Replace.IsZero() {
		t, err := p.Directory().Get(ctx, opt.Replace)
		if err != nil {
			return err
		}
		want, what = t.SchemaVersion, fmt.Sprintf("tenant %s is at version", t.Slug)
	}
	if m.SchemaVersion != want {
		return fmt.Errorf("%w: the archive's tables are at migration version %d; %s %d (migrate the one that is behind first)",
			ErrIncompatible, m.SchemaVersion, what, want)
	}
	return nil
}

type fillOptions struct {
	replace  bool // delete the tenant's rows first
	direct   bool // as the administrator, with session_replication_role = replica
	total    int64
	progress func(Progress)
}

// fillTenant writes the archive's rows into t in one transaction: the
// rows of every table (after deleting t's own with opt.replace), then the
// sequences past the imported values and every foreign key checked. It
// commits only when every table's count and digest and the manifest hold.
//
// Triggers are off: the archive holds what the source's triggers made
// (stock levels, counters), and running them again would make it twice.
// Directly, foreign keys are off too and checked after the rows are in.
// Otherwise the owner role writes, with row-level security not forced and
// its user triggers disabled on t's own tables for the transaction, and
// the foreign keys check as rows go in: archives list parents first.
func fillTenant(ctx context.Context, p *provision.Provisioner, t tenant.Tenant, rd *reader, opt fillOptions) (Manifest, error) {
	if !opt.direct && t.Model == tenant.ModelRow {
		return rd.header, fmt.Errorf("%w: the shared tables cannot be switched for an import", ErrNotPermitted)
	}
	conn, err := connect(ctx, p, t)
	if err != nil {
		return rd.header, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var m Manifest
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		setup := sessionSettings + "; SET LOCAL search_path = " + searchPath(t.Schema)
		if opt.direct {
			setup += "; SET LOCAL session_replication_role = replica"
		} else {
			setup += "; SET LOCAL ROLE " + ident.Quote(p.Roles().Owner)
		}
		if _, err := tx.Exec(ctx, setup); err != nil {
			return err
		}
		tables, err := readTables(ctx, tx, t.Schema)
		if err != nil {
			return err
		}
		if err := sameTables(rd.header, tables); err != nil {
			return err
		}
		var restore string
		if !opt.direct {
			if restore, err = switchTables(ctx, tx, t.Schema, tables); err != nil {
				return err
			}
		}
		if opt.replace {
			// Children first, for the foreign keys that check.
			for _, tb := range slices.Backward(tables) {
				if _, err := tx.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE tenant_id = $1", ident.Quote(t.Schema, tb.name)), t.ID); err != nil {
					return fmt.Errorf("delete the rows of %s: %w", tb.name, err)
				}
			}
		}
		if err := copyTables(ctx, tx, t, rd, opt); err != nil {
			return err
		}
		if m, err = rd.manifest(); err != nil {
			return err
		}
		if err := advanceSequences(ctx, tx, t, tables); err != nil {
			return err
		}
		if err := checkForeignKeys(ctx, tx, t, tables); err != nil {
			return err
		}
		if restore != "" {
			if _, err := tx.Exec(ctx, restore); err != nil {
				return fmt.Errorf("restore the tables: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return rd.header, err
	}
	return m, nil
}

// switchTables lets the owner write t's own tables for the transaction:
// row-level security not forced, user triggers that are enabled disabled.
// It returns the statement that undoes both before the commit.
func switchTables(ctx context.Context, tx pgx.Tx, schema string, tables []table) (string, error) {
	oids := make([]uint32, len(tables))
	for i, tb := range tables {
		oids[i] = tb.oid
	}
	rows, err := tx.Query(ctx, `SELECT c.relname::text, g.tgname::text FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
		WHERE g.tgrelid = ANY($1) AND NOT g.tgisinternal AND g.tgenabled <> 'D' ORDER BY 1, 2`, oids)
	if err != nil {
		return "", fmt.Errorf("list triggers: %w", err)
	}
	type trig struct{ table, name string }
	trigs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (trig, error) {
		var x trig
		err := r.Scan(&x.table, &x.name)
		return x, err
	})
	if err != nil {
		return "", fmt.Errorf("list triggers: %w", err)
	}
	var off, on strings.Builder
	for _, tb := range tables {
		q := ident.Quote(schema, tb.name)
		fmt.Fprintf(&off, "ALTER TABLE %s NO FORCE ROW LEVEL SECURITY;", q)
		fmt.Fprintf(&on, "ALTER TABLE %s FORCE ROW LEVEL SECURITY;", q)
	}
	for _, g := range trigs {
		q := ident.Quote(schema, g.table)
		fmt.Fprintf(&off, "ALTER TABLE %s DISABLE TRIGGER %s;", q, ident.Quote(g.name))
		fmt.Fprintf(&on, "ALTER TABLE %s ENABLE TRIGGER %s;", q, ident.Quote(g.name))
	}
	if _, err := tx.Exec(ctx, off.String()); err != nil {
		return "", fmt.Errorf("switch the tables for the import: %w", err)
	}
	return on.String(), nil
}

// copyTables writes the rows of every table of the archive, each checked
// against its end frame.
func copyTables(ctx context.Context, tx pgx.Tx, t tenant.Tenant, rd *reader, opt fillOptions) error {
	var done int64
	for i, at := range rd.header.Tables {
		var report func(int64)
		if opt.progress != nil {
			base := done
			report = func(rows int64) {
				opt.progress(Progress{Table: at.Name, TableIndex: i + 1, Tables: len(rd.header.Tables), Rows: base + rows, Total: opt.total})
			}
			report(0)
		}
		tr, err := rd.table(report)
		if err != nil {
			return err
		}
		cols := make([]string, 0, len(at.Columns)+1)
		cols = append(cols, "tenant_id")
		for _, c := range at.Columns {
			cols = append(cols, ident.Quote(c.Name))
		}
		sql := fmt.Sprintf("COPY %s (%s) FROM STDIN", ident.Quote(t.Schema, at.Name), strings.Join(cols, ", "))
		tag, err := tx.Conn().PgConn().CopyFrom(ctx, newPrefixReader(tr, t.ID.String()+"\t"), sql)
		if err != nil {
			// A bad archive ends the COPY with the reader's error; that
			// is the one to report.
			if tr.err != nil && !errors.Is(tr.err, io.EOF) {
				return tr.err
			}
			return fmt.Errorf("write table %s: %w", at.Name, err)
		}
		if tr.err == nil {
			// COPY stops at the reader's io.EOF, which only the E
			// frame's check returns.
			return fmt.Errorf("%w: table %s did not end", ErrBadArchive, at.Name)
		}
		if tag.RowsAffected() != tr.rows {
			return fmt.Errorf("table %s: %d rows written of %d read", at.Name, tag.RowsAffected(), tr.rows)
		}
		done += tr.rows
	}
	return nil
}

// sameTables checks that the target's tenant tables are the archive's,
// with the same columns and types.
func sameTables(m Manifest, tables []table) error {
	have := map[string]table{}
	for _, tb := range tables {
		have[tb.name] = tb
	}
	want := map[string]bool{}
	for _, at := range m.Tables {
		want[at.Name] = true
		tb, ok := have[at.Name]
		if !ok {
			return fmt.Errorf("%w: the archive holds table %s, which tenants here do not have", ErrIncompatible, at.Name)
		}
		a := map[string]string{}
		for _, c := range at.Columns {
			a[c.Name] = c.Type
		}
		h := map[string]string{}
		for _, c := range tb.columns {
			h[c.Name] = c.Type
		}
		if !maps.Equal(a, h) {
			return fmt.Errorf("%w: table %s has columns %s in the archive and %s here", ErrIncompatible, at.Name, columnList(at.Columns), columnList(tb.columns))
		}
	}
	for _, tb := range tables {
		if !want[tb.name] {
			return fmt.Errorf("%w: tenants here have table %s, which the archive does not hold", ErrIncompatible, tb.name)
		}
	}
	return nil
}

func columnList(cs []Column) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.Name + " " + c.Type
	}
	slices.Sort(s)
	return "(" + strings.Join(s, ", ") + ")"
}

// advanceSequences moves every sequence that feeds a column of the tables
// past the largest value imported, so that the tenant's next insert does
// not collide with an imported row.
func advanceSequences(ctx context.Context, tx pgx.Tx, t tenant.Tenant, tables []table) error {
	oids := make([]uint32, len(tables))
	for i, tb := range tables {
		oids[i] = tb.oid
	}
	rows, err := tx.Query(ctx, `
		SELECT c.relname, a.attname::text, s.oid::regclass::text
		FROM pg_depend d
		JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
		JOIN pg_class c ON c.oid = d.refobjid
		JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
		WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
			AND d.deptype IN ('a', 'i') AND d.refobjid = ANY($1)`, oids)
	if err != nil {
		return fmt.Errorf("list sequences: %w", err)
	}
	type seq struct{ table, column, name string }
	seqs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (seq, error) {
		var s seq
		err := r.Scan(&s.table, &s.column, &s.name)
		return s, err
	})
	if err != nil {
		return fmt.Errorf("list sequences: %w", err)
	}
	for _, s := range seqs {
		// s.name is regclass text, quoted as needed by PostgreSQL.
		sql := fmt.Sprintf(`SELECT setval($1::regclass, m) FROM (SELECT max(%s) AS m FROM %s WHERE tenant_id = $2) x
			WHERE m > (SELECT last_value FROM %s)`, ident.Quote(s.column), ident.Quote(t.Schema, s.table), s.name)
		if _, err := tx.Exec(ctx, sql, s.name, t.ID); err != nil {
			return fmt.Errorf("advance sequence %s: %w", s.name, err)
		}
	}
	return nil
}

// checkForeignKeys checks, for t's rows, every foreign key of the tables,
// which the import's COPY did not (its triggers were off): to other
// tenant tables and to the global tables alike.
func checkForeignKeys(ctx context.Context, tx pgx.Tx, t tenant.Tenant, tables []table) error {
	oids := make([]uint32, len(tables))
	for i, tb := range tables {
		oids[i] = tb.oid
	}
	rows, err := tx.Query(ctx, `
		SELECT k.conname::text, c.relname::text, rn.nspname::text, r.relname::text,
			array(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY x(n, o) JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.n ORDER BY x.o),
			array(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY x(n, o) JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = x.n ORDER BY x.o)
		FROM pg_constraint k
		JOIN pg_class c ON c.oid = k.conrelid
		JOIN pg_class r ON r.oid = k.confrelid
		JOIN pg_namespace rn ON rn.oid = r.relnamespace
		WHERE k.contype = 'f' AND k.conrelid = ANY($1)
		ORDER BY c.relname, k.conname`, oids)
	if err != nil {
		return fmt.Errorf("list foreign keys: %w", err)
	}
	type fk struct {
		name, table, refSchema, refTable string
		cols, refCols                    []string
	}
	fks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fk, error) {
		var f fk
		err := r.Scan(&f.name, &f.table, &f.refSchema, &f.refTable, &f.cols, &f.refCols)
		return f, err
	})
	if err != nil {
		return fmt.Errorf("list foreign keys: %w", err)
	}
	for _, f := range fks {
		notNull := make([]string, len(f.cols))
		match := make([]string, len(f.cols))
		for i := range f.cols {
			notNull[i] = "c." + ident.Quote(f.cols[i]) + " IS NOT NULL"
			match[i] = "r." + ident.Quote(f.refCols[i]) + " = c." + ident.Quote(f.cols[i])
		}
		sql := fmt.Sprintf(`SELECT EXISTS (SELECT FROM %s c WHERE c.tenant_id = $1 AND %s AND NOT EXISTS (SELECT FROM %s r WHERE %s))`,
			ident.Quote(t.Schema, f.table), strings.Join(notNull, " AND "), ident.Quote(f.refSchema, f.refTable), strings.Join(match, " AND "))
		var broken bool
		if err := tx.QueryRow(ctx, sql, t.ID).Scan(&broken); err != nil {
			return fmt.Errorf("check foreign key %s of %s: %w", f.name, f.table, err)
		}
		if broken {
			return fmt.Errorf("%w: table %s: a row refers to a row of %s.%s that is not there (foreign key %s)",
				ErrIncompatible, f.table, f.refSchema, f.refTable, f.name)
		}
	}
	return nil
}

// Clone copies tenant id into a new tenant, opt.Slug (required), in any
// model: an export piped into an import, with no file between and no
// compression. The source keeps serving; the copy is its state at one
// snapshot.
func Clone(ctx context.Context, p *provision.Provisioner, id tenant.ID, opt ImportOptions) (tenant.Tenant, Manifest, error) {
	if opt.Slug == "" {
		return tenant.Tenant{}, Manifest{}, fmt.Errorf("clone tenant %s: %w: a clone needs a slug of its own", id, tenant.ErrBadSlug)
	}
	if !opt.Replace.IsZero() {
		return tenant.Tenant{}, Manifest{}, fmt.Errorf("clone tenant %s: a clone is a new tenant; import over an existing one instead", id)
	}
	if _, err := tenant.NormalizeSlug(opt.Slug); err != nil {
		return tenant.Tenant{}, Manifest{}, fmt.Errorf("clone tenant %s: %w", id, err)
	}
	pr, pw := io.Pipe()
	exported := make(chan error, 1)
	go func() {
		_, err := export(ctx, p, id, pw, ExportOptions{store: true})
		pw.CloseWithError(err)
		exported <- err
	}()
	t, m, err := importArchive(ctx, p, pr, opt)
	pr.CloseWithError(errStop) // the export stops if the import did
	// An export that failed ends the stream: the import then sees a bad
	// archive, whose cause is the export's error.
	if xerr := <-exported; xerr != nil && (err == nil || errors.Is(err, ErrBadArchive)) {
		err = xerr
	}
	if err != nil {
		return t, m, fmt.Errorf("clone tenant %s: %w", id, err)
	}
	return t, m, nil
}
