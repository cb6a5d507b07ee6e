package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

// The global tables (Config.Global) live in schema migration.GlobalSchema
// of the control database, where row and schema tenants read them, and as
// a copy in every database that holds tenant tables elsewhere: each tenant
// database, the template database (so a new database tenant is born with
// the copy) and the database of any other server with row or schema
// tenants. A copy has the same DDL (the global set, applied and recorded
// in its own ledger) and the control database's rows as of its last sync,
// with a marker (landlord.global_copy) naming the version of the data it
// holds: a hash of the global set and of every row, so that any change is
// seen, whoever made it. SyncGlobal brings every copy to the control
// database's version; each copy is brought in one transaction.

// ErrGlobalRowInUse is wrapped by the error of a copy whose sync would
// delete a global row that a tenant's row in that database still
// references: the copy keeps its old rows, and the message names the row
// and the referencing table.
var ErrGlobalRowInUse = errors.New("global row still referenced by a tenant")

// ErrSyncFailed is wrapped by the error SyncGlobal returns when some copies
// could not be brought to the current version; the SyncReport says which
// and why, and the other copies were synced.
var ErrSyncFailed = errors.New("global data sync failed")

// ErrNoGlobal is returned by the global operations of an installation
// opened without global tables (Config.Global).
var ErrNoGlobal = errors.New("no global tables: the installation was opened without a global migration set")

// globalLockNamespace is the first key of the lock that serializes syncs of
// one copy (SECURITY.md, I26: namespaced keys).
const globalLockNamespace = 0x4c4c474c // "LLGL"

// DefaultSyncParallel is how many copies SyncGlobal brings at once when
// SyncConfig.Parallel is zero: each is a connection to its database.
const DefaultSyncParallel = 8

// globalTable is one global table as a sync copies it.
type globalTable struct {
	name string   // unquoted
	key  []string // primary key columns, unquoted
	cols []string // the columns a sync writes (not generated), unquoted
	refs []string // the other global tables its foreign keys reference
	rows string   // every row, as a JSON array in key order
	n    int
}

// GlobalData is the control database's global rows at one moment, as a
// sync copies them.
type GlobalData struct {
	// Version names the data: the hex SHA-256 of the global migration
	// set's hash and of every table's columns and rows.
	Version string
	// Rows is the number of rows in all global tables.
	Rows   int
	tables []*globalTable // referenced tables before the tables that reference them
}

// globalTablesSQL lists the global tables with their key, the columns a
// sync writes and the global tables they reference.
const globalTablesSQL = `
SELECT c.relname::text,
	(SELECT array_agg(a.attname::text ORDER BY array_position(k.conkey, a.attnum)) FROM pg_attribute a
	 WHERE a.attrelid = c.oid AND a.attnum = ANY (k.conkey)),
	(SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
	 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''),
	coalesce((SELECT array_agg(DISTINCT r.relname::text) FROM pg_constraint f JOIN pg_class r ON r.oid = f.confrelid
	 WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.confrelid <> c.oid), '{}')
FROM pg_depend d
JOIN pg_class c ON c.oid = d.objid AND c.relkind = 'r'
JOIN pg_constraint k ON k.conrelid = c.oid AND k.contype = 'p'
WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjsubid = 0 AND d.classid = 'pg_class'::regclass
  AND d.refobjid = (SELECT oid FROM pg_namespace WHERE nspname = $1)
ORDER BY c.relname`

// GlobalData reads the control database's global rows in one snapshot.
func (p *Provisioner) GlobalData(ctx context.Context) (*GlobalData, error) {
	if p.gmig == nil {
		return nil, ErrNoGlobal
	}
	tx, err := p.admin.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("read global data: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read only
	rows, err := tx.Query(ctx, globalTablesSQL, migration.GlobalSchema)
	if err != nil {
		return nil, fmt.Errorf("list global tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*globalTable, error) {
		t := &globalTable{}
		err := r.Scan(&t.name, &t.key, &t.cols, &t.refs)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list global tables: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "global set %s\n", p.gmig.Set().Hash())
	d := &GlobalData{}
	for _, t := range tables {
		order := make([]string, len(t.key))
		for i, k := range t.key {
			order[i] = "t." + ident.Quote(k)
		}
		err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), coalesce(jsonb_agg(to_jsonb(t) ORDER BY %s), '[]')::text FROM %s t`,
			strings.Join(order, ", "), ident.Quote(migration.GlobalSchema, t.name))).Scan(&t.n, &t.rows)
		if err != nil {
			return nil, fmt.Errorf("read global.%s: %w", t.name, err)
		}
		fmt.Fprintf(h, "table %q columns %q rows %d\n%s\n", t.name, t.cols, t.n, t.rows)
		d.Rows += t.n
	}
	d.Version = hex.EncodeToString(h.Sum(nil))
	d.tables = dependencyOrder(tables)
	return d, nil
}

// dependencyOrder puts each table after the tables it references; tables
// in a cycle keep their order.
func dependencyOrder(tables []*globalTable) []*globalTable {
	out := make([]*globalTable, 0, len(tables))
	done := map[string]bool{}
	for len(out) < len(tables) {
		progressed := false
		for _, t := range tables {
			if done[t.name] {
				continue
			}
			ready := true
			for _, r := range t.refs {
				if !done[r] {
					ready = false
					break
				}
			}
			if ready {
				out, done[t.name], progressed = append(out, t), true, true
			}
		}
		if !progressed {
			for _, t := range tables {
				if !done[t.name] {
					out, done[t.name] = append(out, t), true
					break
				}
			}
		}
	}
	return out
}

// upsertSQL writes the rows of t ($1) over the copy's: new rows are
// inserted, rows whose columns differ updated, equal rows left alone.
func (t *globalTable) upsertSQL() string {
	q := ident.Quote(migration.GlobalSchema, t.name)
	cols := quoteAll("", t.cols)
	var rest []string
	for _, c := range t.cols {
		if !slices.Contains(t.key, c) {
			rest = append(rest, c)
		}
	}
	sql := fmt.Sprintf("INSERT INTO %s AS d (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM jsonb_populate_recordset(NULL::%s, $1::jsonb) ON CONFLICT (%s) ",
		q, strings.Join(cols, ", "), strings.Join(cols, ", "), q, strings.Join(quoteAll("", t.key), ", "))
	if len(rest) == 0 {
		return sql + "DO NOTHING"
	}
	// Compared as text: the row's own output, which every type has (json
	// has no equality operator).
	return sql + fmt.Sprintf("DO UPDATE SET (%s) = ROW(%s) WHERE ROW(%s)::text IS DISTINCT FROM ROW(%s)::text",
		strings.Join(quoteAll("", rest), ", "), strings.Join(quoteAll("EXCLUDED.", rest), ", "),
		strings.Join(quoteAll("d.", t.cols), ", "), strings.Join(quoteAll("EXCLUDED.", t.cols), ", "))
}

// deleteSQL deletes the copy's rows of t whose key is not among $1's.
func (t *globalTable) deleteSQL() string {
	q := ident.Quote(migration.GlobalSchema, t.name)
	return fmt.Sprintf("DELETE FROM %s d WHERE NOT EXISTS (SELECT FROM jsonb_populate_recordset(NULL::%s, $1::jsonb) s WHERE (%s) = (%s))",
		q, q, strings.Join(quoteAll("s.", t.key), ", "), strings.Join(quoteAll("d.", t.key), ", "))
}

func quoteAll(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + ident.Quote(n)
	}
	return out
}

// copyMarkerSQL creates the marker of a copy: the version of the global
// data it holds.
const copyMarkerSQL = `CREATE TABLE IF NOT EXISTS landlord.global_copy (
	one          boolean     PRIMARY KEY DEFAULT true CHECK (one),
	data_version text        NOT NULL,
	synced_at    timestamptz NOT NULL DEFAULT now()
)`

// copyResult is what syncing one copy did.
type copyResult struct {
	current           bool // the copy was at the version already
	upserted, deleted int
}

// syncCopy brings the global tables of the database conn is connected to
// to d: their DDL first (the global set, recorded in the database's
// ledger), then, in one transaction, their rows and the marker.
func (p *Provisioner) syncCopy(ctx context.Context, conn *pgx.Conn, d *GlobalData) (copyResult, error) {
	var out copyResult
	// A copy at the version costs this one read (the version covers the
	// global set, so its DDL is current too); one behind is migrated and
	// then brought in a transaction of four round trips, whatever the
	// number of tables.
	have, haveMarker, err := readMarker(ctx, conn)
	if err != nil {
		return out, err
	}
	if have == d.Version {
		out.current = true
		return out, nil
	}
	res, err := p.gmig.Apply(ctx, conn, migration.GlobalTarget())
	if err != nil {
		return out, fmt.Errorf("migrate the global schema: %w", err)
	}
	if head := p.gmig.Set().Head(); res.To != head {
		return out, fmt.Errorf("the global schema is at version %d, these global migrations end at %d", res.To, head)
	}
	lock := fmt.Sprintf("SET LOCAL ROLE %s; SELECT pg_advisory_xact_lock(%d, 0)", ident.Quote(p.cfg.OwnerRole), globalLockNamespace)
	if !haveMarker {
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, lock+"; "+copyMarkerSQL)
			return err
		}); err != nil {
			return out, fmt.Errorf("create the copy's marker: %w", err)
		}
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(fmt.Sprintf("SET LOCAL ROLE %s", ident.Quote(p.cfg.OwnerRole)))
		b.Queue(`SELECT pg_advisory_xact_lock($1, 0)`, int32(globalLockNamespace))
		b.Queue(`SELECT coalesce((SELECT data_version FROM landlord.global_copy), '')`).QueryRow(func(r pgx.Row) error {
			return r.Scan(&have)
		})
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("lock the copy: %w", err)
		}
		if have == d.Version {
			out.current = true // a concurrent sync brought it meanwhile
			return nil
		}
		b = &pgx.Batch{}
		for _, t := range d.tables {
			b.Queue(t.upsertSQL(), t.rows).Exec(func(tag pgconn.CommandTag) error {
				out.upserted += int(tag.RowsAffected())
				return nil
			})
		}
		// Referencing tables first, so a row and the rows pointing at it
		// go together.
		for _, t := range slices.Backward(d.tables) {
			b.Queue(t.deleteSQL(), t.rows).Exec(func(tag pgconn.CommandTag) error {
				out.deleted += int(tag.RowsAffected())
				return nil
			})
		}
		b.Queue(`INSERT INTO landlord.global_copy (data_version) VALUES ($1)
			ON CONFLICT (one) DO UPDATE SET data_version = EXCLUDED.data_version, synced_at = now()`, d.Version)
		err := tx.SendBatch(ctx, b).Close()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ForeignKeyViolation {
			// Only a delete or a changed key can break a tenant's foreign
			// key: the message names the global table, the tenant's table
			// and the key of the row.
			return fmt.Errorf("%w: a row changed or gone in the control database: %s: %s",
				ErrGlobalRowInUse, pgErr.Message, pgErr.Detail)
		}
		if err != nil {
			return fmt.Errorf("write the global rows: %w", err)
		}
		return nil
	})
	return out, err
}

// readMarker reads the version of the global data a copy holds; ok is
// false when the copy has no marker yet.
func readMarker(ctx context.Context, conn *pgx.Conn) (version string, ok bool, err error) {
	err = conn.QueryRow(ctx, `SELECT coalesce((SELECT data_version FROM landlord.global_copy), '')`).Scan(&version)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UndefinedTable {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read the copy's marker: %w", err)
	}
	return version, true, nil
}

// syncNew brings the global tables of a database that provisioning has
// just made (a tenant's, or the template) to the control database's
// current data, and records it. Without global tables it does nothing.
func (p *Provisioner) syncNew(ctx context.Context, conn *pgx.Conn, key directory.CopyKey) error {
	if p.gmig == nil {
		return nil
	}
	d, err := p.GlobalData(ctx)
	if err != nil {
		return err
	}
	if _, err := p.syncCopy(ctx, conn, d); err != nil {
		return fmt.Errorf("global tables: %w", err)
	}
	return p.dir.SetGlobalCopy(ctx, key, d.Version)
}

// CopyKind says what database a copy of the global tables is in.
type CopyKind string

// The kinds of copy.
const (
	CopyTenant   CopyKind = "tenant"   // a database tenant's database
	CopyReserve  CopyKind = "reserve"  // a reserved database tenant's database
	CopyTemplate CopyKind = "template" // the template database
	CopyServer   CopyKind = "server"   // the database of another server, for its row and schema tenants
)

// CopyStatus is what a sync did to one copy.
type CopyStatus string

// The outcomes of a copy's sync.
const (
	CopySynced  CopyStatus = "synced"  // brought to the version
	CopyCurrent CopyStatus = "current" // at the version already: skipped
	CopyFailed  CopyStatus = "failed"  // left as it was; Error says why
)

// CopyResult is one copy in a SyncReport.
type CopyResult struct {
	Kind     CopyKind      `json:"kind"`
	Server   string        `json:"server"`
	Database string        `json:"database"`
	Tenant   tenant.ID     `json:"tenant,omitzero"` // for CopyTenant and CopyReserve
	Slug     string        `json:"slug,omitempty"`
	Status   CopyStatus    `json:"status"`
	Upserted int           `json:"upserted"` // rows inserted or changed
	Deleted  int           `json:"deleted"`
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
	// Err is the error of a failed copy.
	Err error `json:"-"`
}

// SyncReport is the outcome of SyncGlobal.
type SyncReport struct {
	// Version is the global data version the copies were brought to.
	Version string `json:"version"`
	// Rows is the number of rows in all global tables.
	Rows int `json:"rows"`
	// Copies lists every copy, failed ones first.
	Copies   []CopyResult  `json:"copies"`
	Synced   int           `json:"synced"`
	Current  int           `json:"current"`
	Failed   int           `json:"failed"`
	Duration time.Duration `json:"duration_ns"`
}

// SyncConfig holds the optional settings of SyncGlobal.
type SyncConfig struct {
	// Parallel is how many copies are brought at once, each over its own
	// connection. Default DefaultSyncParallel.
	Parallel int
	// Logger receives a line per copy synced or failed. Default: discard.
	Logger *slog.Logger
}

// SyncGlobal brings every copy of the global tables to the control
// database's current rows: the database of each database tenant (but those
// being provisioned, deleted or moved) and reserved database tenant, the
// template database, and the database of each other server with row or
// schema tenants. A copy recorded at the current version is skipped
// without a connection; any other is brought, DDL first, then its rows in
// one transaction: rows are inserted or updated where they differ, and
// deleted where they are gone from the control database. A delete that a
// tenant's foreign key refuses fails that copy with an error wrapping
// ErrGlobalRowInUse; the others go on. The error wraps ErrSyncFailed when
// some copy failed. SyncGlobal is idempotent, and safe to run at the same
// time as itself.
func (p *Provisioner) SyncGlobal(ctx context.Context, cfg SyncConfig) (SyncReport, error) {
	start := time.Now()
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultSyncParallel
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var rep SyncReport
	d, err := p.GlobalData(ctx)
	if err != nil {
		return rep, err
	}
	rep.Version, rep.Rows = d.Version, d.Rows
	copies, servers, err := p.globalCopies(ctx)
	if err != nil {
		return rep, err
	}
	recorded, err := p.dir.GlobalCopies(ctx)
	if err != nil {
		return rep, err
	}
	var stale []directory.CopyKey
	for k := range recorded {
		if !slices.ContainsFunc(copies, func(c CopyResult) bool { return c.Server == k.Server && c.Database == k.Database }) {
			stale = append(stale, k)
		}
	}
	slices.SortFunc(stale, func(a, b directory.CopyKey) int {
		return strings.Compare(a.Server+"/"+a.Database, b.Server+"/"+b.Database)
	})
	if err := p.dir.ForgetGlobalCopies(ctx, stale...); err != nil {
		return rep, err
	}

	sem := make(chan struct{}, cfg.Parallel)
	var wg sync.WaitGroup
	for i := range copies {
		c := &copies[i]
		key := directory.CopyKey{Server: c.Server, Database: c.Database}
		if recorded[key] == d.Version {
			c.Status = CopyCurrent
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			c.Status, c.Err = CopyFailed, ctx.Err()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			cstart := time.Now()
			res, err := p.syncOne(ctx, c, servers[c.Server], d)
			c.Duration = time.Since(cstart)
			c.Upserted, c.Deleted = res.upserted, res.deleted
			switch {
			case err != nil:
				c.Status, c.Err = CopyFailed, err
			case res.current:
				c.Status = CopyCurrent
			default:
				c.Status = CopySynced
			}
			if err == nil {
				err = p.dir.SetGlobalCopy(ctx, key, d.Version)
				if err != nil {
					c.Status, c.Err = CopyFailed, err
				}
			}
			if c.Err != nil {
				c.Error = c.Err.Error()
				cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "global copy failed", slog.String("server", c.Server),
					slog.String("database", c.Database), slog.String("slug", c.Slug), slog.String("error", c.Error))
			} else if c.Status == CopySynced {
				cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "global copy synced", slog.String("server", c.Server),
					slog.String("database", c.Database), slog.String("slug", c.Slug), slog.Int("upserted", c.Upserted),
					slog.Int("deleted", c.Deleted), slog.Duration("took", c.Duration))
			}
		})
	}
	wg.Wait()
	for i := range copies {
		c := &copies[i]
		if c.Err != nil && c.Error == "" {
			c.Error = c.Err.Error()
		}
		switch c.Status {
		case CopySynced:
			rep.Synced++
		case CopyCurrent:
			rep.Current++
		default:
			rep.Failed++
		}
	}
	slices.SortStableFunc(copies, func(a, b CopyResult) int {
		return boolRank(b.Status == CopyFailed) - boolRank(a.Status == CopyFailed)
	})
	rep.Copies, rep.Duration = copies, time.Since(start)
	if rep.Failed > 0 {
		first := copies[0]
		return rep, fmt.Errorf("%w: %d of %d copies; first: database %s on server %s: %w",
			ErrSyncFailed, rep.Failed, len(copies), first.Database, first.Server, first.Err)
	}
	return rep, nil
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// syncOne brings one copy, on server s, to d.
func (p *Provisioner) syncOne(ctx context.Context, c *CopyResult, s directory.Server, d *GlobalData) (copyResult, error) {
	var res copyResult
	if c.Kind == CopyTemplate {
		// The template accepts connections only while its lock is held.
		err := p.WithTemplateDatabase(ctx, func(ctx context.Context, conn *pgx.Conn) error {
			var err error
			res, err = p.syncCopy(ctx, conn, d)
			return err
		})
		return res, err
	}
	if s.ID == "" {
		return res, fmt.Errorf("server %q: %w", c.Server, ErrUnknownServer)
	}
	conn, err := pgx.ConnectConfig(ctx, s.ConnConfig(p.admin.Config().ConnConfig, c.Database))
	if err != nil {
		return res, fmt.Errorf("connect to database %s: %w", c.Database, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return p.syncCopy(ctx, conn, d)
}

// globalCopies lists the databases that hold a copy of the global tables,
// and the servers by id.
func (p *Provisioner) globalCopies(ctx context.Context) ([]CopyResult, map[string]directory.Server, error) {
	ts, err := p.dir.List(ctx, directory.Filter{})
	if err != nil {
		return nil, nil, err
	}
	servers, err := p.dir.Servers(ctx)
	if err != nil {
		return nil, nil, err
	}
	byID := make(map[string]directory.Server, len(servers))
	for _, s := range servers {
		byID[s.ID] = s
	}
	var out []CopyResult
	otherServers := map[string]bool{}
	for _, t := range ts {
		switch {
		case t.State == tenant.StateProvisioning || t.State == tenant.StateDeleting || t.State == tenant.StateMoving:
			// The operation under way owns the database; provisioning
			// syncs it before the tenant becomes active.
		case t.Model == tenant.ModelDatabase:
			out = append(out, CopyResult{Kind: CopyTenant, Server: t.Server, Database: t.Database, Tenant: t.ID, Slug: t.Slug})
		case t.Server != directory.DefaultServer:
			otherServers[t.Server] = true
		}
	}
	for _, s := range servers {
		if otherServers[s.ID] {
			out = append(out, CopyResult{Kind: CopyServer, Server: s.ID, Database: s.Database})
		}
	}
	reserved, err := p.dir.ListReserved(ctx, tenant.ModelDatabase, directory.DefaultServer)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range reserved {
		if e.Ready {
			out = append(out, CopyResult{Kind: CopyReserve, Server: e.Server, Database: e.Database, Tenant: e.ID})
		}
	}
	exists, _, _, err := p.templateDatabaseState(ctx)
	if err != nil {
		return nil, nil, err
	}
	if exists {
		out = append(out, CopyResult{Kind: CopyTemplate, Server: directory.DefaultServer, Database: p.TemplateDatabase()})
	}
	return out, byID, nil
}

// GlobalMigrator returns the migrator of the global tables, nil when the
// installation has none.
func (p *Provisioner) GlobalMigrator() *migration.Migrator { return p.gmig }

// ensureGlobal brings the control database's global schema to the global
// set, or, with InstallNever, only checks its ledger against the set.
func (p *Provisioner) ensureGlobal(ctx context.Context, apply bool) error {
	if p.gmig == nil {
		return nil
	}
	conn, err := p.admin.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if !apply {
		if _, err := p.gmig.Version(ctx, conn, migration.GlobalTarget()); err != nil {
			return fmt.Errorf("global schema: %w", err)
		}
		return nil
	}
	if _, err := p.gmig.Apply(ctx, conn, migration.GlobalTarget()); err != nil {
		return fmt.Errorf("migrate global schema: %w", err)
	}
	return nil
}
