// Package changefeed reads one tenant's committed changes from a PostgreSQL
// server's logical decoding (the pgoutput plugin) and applies them to
// another placement: the catch-up half of an online tenant move. A move
// copies the tenant's rows as of the replication slot's exported snapshot,
// then applies every change committed since:
//
//	f, err := changefeed.Start(ctx, cfg) // publication, slot, exported snapshot
//	// copy in a REPEATABLE READ transaction that ran
//	// SET TRANSACTION SNAPSHOT '<f.Snapshot()>'
//	err = f.ReleaseSnapshot(ctx)
//	stats, err := f.CatchUp(ctx, apply, nil) // as often as needed
//	// stop the tenant's writes, CatchUp once more, switch placements
//	err = f.Close(ctx)
//	err = changefeed.Drop(ctx, cfg.Conn, cfg.Owner, cfg.Name)
//
// Delivery is at least once: a transaction is acknowledged to the server
// after apply returned for it, so a crash between the two delivers it again
// after Resume. Applier writes full row images as upserts, so replaying
// transactions that were applied already converges to the same rows.
//
// The slot holds back WAL removal on the source until it is dropped: a
// feed that is abandoned must be dropped (Drop works without a Feed, after
// a crash too).
package changefeed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/internal/ident"
)

// TenantColumn is the column a publication's row filter compares with
// Config.Tenant.
const TenantColumn = "tenant_id"

// TableName is a table's schema and name, as a map key.
type TableName struct {
	Schema, Name string
}

// String returns the name quoted for SQL.
func (n TableName) String() string { return ident.Quote(n.Schema, n.Name) }

// Table names one published table and its primary key columns (in key
// order).
type Table struct {
	Schema, Name string
	// Key lists the primary key's columns in key order. Empty in a Config
	// means: read it from the catalog; given, it must be the primary key.
	Key []string
}

// TableName returns the table's schema and name.
func (t Table) TableName() TableName { return TableName{t.Schema, t.Name} }

// Config describes a feed.
type Config struct {
	// Conn connects to the source database as an administrator that may
	// create publications and replication slots: a superuser, or a role
	// with REPLICATION that owns the tables or may SET ROLE to Owner. It
	// must come from pgx.ParseConfig. The replication connection is made
	// with the same settings plus replication=database; pg_hba.conf
	// matches such a (logical) replication connection by its database
	// like any other, not by the "replication" keyword. Each feed takes
	// one of the server's max_replication_slots and, while it streams,
	// one of its max_wal_senders.
	Conn *pgx.ConnConfig
	// Owner, when set, is the role to SET ROLE to for CREATE and DROP
	// PUBLICATION: the tables' owner. "" creates the publication as the
	// connected role.
	Owner string
	// Name names both the replication slot and the publication. It must
	// match ^[a-z_][a-z0-9_]{0,62}$; slot names are unique per server,
	// publication names per database.
	Name string
	// Tables are the tables to publish, each with a primary key.
	Tables []Table
	// Tenant, when set, gives the publication the row filter
	// WHERE (tenant_id = '<id>') on every table: the tables are shared
	// by tenants and only this tenant's rows are delivered. tenant_id must
	// then be part of each table's primary key.
	Tenant *uuid.UUID
}

var namePattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func checkName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("feed name %q does not match %s", name, namePattern)
	}
	return nil
}

func (c *Config) check() error {
	if c.Conn == nil {
		return errors.New("no source connection configured")
	}
	if err := checkName(c.Name); err != nil {
		return err
	}
	if len(c.Tables) == 0 {
		return errors.New("no tables configured")
	}
	seen := make(map[TableName]bool, len(c.Tables))
	for _, t := range c.Tables {
		if t.Schema == "" || t.Name == "" {
			return fmt.Errorf("table %q.%q: schema and name must be given", t.Schema, t.Name)
		}
		if seen[t.TableName()] {
			return fmt.Errorf("table %s configured twice", t.TableName())
		}
		seen[t.TableName()] = true
		for i, k := range t.Key {
			if k == "" || slices.Contains(t.Key[:i], k) {
				return fmt.Errorf("table %s: bad key %q", t.TableName(), t.Key)
			}
		}
	}
	return nil
}

// Feed streams the changes of one slot. Its methods are not safe for
// concurrent use.
type Feed struct {
	cfg    Config
	tables map[TableName]Table // resolved: Key from the catalog

	conn *pgx.Conn      // regular connection: the markers
	repl *pgconn.PgConn // replication connection; nil until needed, and after a failed CatchUp

	snapshot     string // exported snapshot, while the replication connection holds it
	snapshotHeld bool
	consistent   pglogrepl.LSN
	streaming    bool
	relations    map[uint32]*relation // this stream's relation messages

	// mu serializes status updates between CatchUp and the goroutine that
	// keeps the stream alive while apply runs and between CatchUps.
	mu             sync.Mutex
	flushed        pglogrepl.LSN // position confirmed to the server; 0 = nothing yet
	lastStatus     time.Time
	statusInterval time.Duration
	stopIdle       func() // stops the keep-alive between CatchUps; nil when none runs

	closed bool
}

// Start creates the publication (unless it exists with the same tables)
// and a logical replication slot with an exported snapshot. The returned
// Feed keeps the replication connection open, so that Snapshot stays
// importable (SET TRANSACTION SNAPSHOT) until ReleaseSnapshot or the first
// CatchUp. Creating the slot waits for the transactions running on the
// server to end. It refuses tables that are not plain tables, have no
// primary key (ErrNoPrimaryKey) or a replica identity other than the
// primary key or FULL, and a slot that exists already (ErrSlotExists).
// When it fails it removes what it created.
func Start(ctx context.Context, cfg Config) (_ *Feed, err error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("start change feed: %w", err)
	}
	f, err := open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start change feed %s: %w", cfg.Name, err)
	}
	var createdPub, createdSlot bool
	defer func() {
		if err == nil {
			return
		}
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		var errs []error
		if createdSlot {
			errs = append(errs, f.dropSlot(cleanup))
		}
		if createdPub {
			errs = append(errs, DropPublication(cleanup, f.conn, cfg.Owner, cfg.Name))
		}
		errs = append(errs, f.Close(cleanup))
		if cerr := errors.Join(errs...); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up (Drop finishes it): %w", cerr))
		}
	}()
	if createdPub, err = f.ensurePublication(ctx); err != nil {
		return nil, fmt.Errorf("start change feed %s: %w", cfg.Name, err)
	}
	if err = f.connectReplication(ctx); err != nil {
		return nil, fmt.Errorf("start change feed %s: %w", cfg.Name, err)
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, f.repl, cfg.Name, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		if isCode(err, pgerrcode.DuplicateObject) {
			err = fmt.Errorf("%w: %w", ErrSlotExists, err)
		}
		return nil, fmt.Errorf("start change feed %s: create replication slot: %w", cfg.Name, err)
	}
	createdSlot = true
	if f.consistent, err = pglogrepl.ParseLSN(res.ConsistentPoint); err != nil {
		return nil, fmt.Errorf("start change feed %s: slot's consistent point: %w", cfg.Name, err)
	}
	f.snapshot, f.snapshotHeld = res.SnapshotName, true
	return f, nil
}

// Resume opens the existing slot of cfg.Name, after a crash of the process
// that started it or after Close: streaming continues from the slot's
// confirmed position, so transactions that were applied but not yet
// acknowledged are delivered again. It returns ErrNoSlot, wrapped, when
// the database has no such slot. The publication must exist as Start made
// it.
func Resume(ctx context.Context, cfg Config) (*Feed, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("resume change feed: %w", err)
	}
	f, err := open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("resume change feed %s: %w", cfg.Name, err)
	}
	fail := func(err error) (*Feed, error) {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = f.Close(cleanup)
		return nil, fmt.Errorf("resume change feed %s: %w", cfg.Name, err)
	}
	var plugin string
	var confirmed *string
	err = f.conn.QueryRow(ctx, `SELECT plugin, confirmed_flush_lsn::text FROM pg_replication_slots
		WHERE slot_name = $1 AND database = current_database()`, cfg.Name).Scan(&plugin, &confirmed)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fail(ErrNoSlot)
	case err != nil:
		return fail(fmt.Errorf("read the slot: %w", err))
	case plugin != "pgoutput" || confirmed == nil:
		return fail(fmt.Errorf("slot %s is not a logical pgoutput slot (plugin %q)", cfg.Name, plugin))
	}
	if f.consistent, err = pglogrepl.ParseLSN(*confirmed); err != nil {
		return fail(fmt.Errorf("slot's confirmed position: %w", err))
	}
	exists, err := f.checkPublication(ctx)
	if err != nil {
		return fail(err)
	}
	if !exists {
		return fail(fmt.Errorf("publication %s does not exist", cfg.Name))
	}
	return f, nil
}

// Snapshot returns the name of the snapshot exported as the slot was
// created, for SET TRANSACTION SNAPSHOT in a REPEATABLE READ transaction:
// the copy made in it holds exactly the transactions CatchUp does not
// deliver. It is importable until ReleaseSnapshot or the first CatchUp.
// A resumed Feed has none: "".
func (f *Feed) Snapshot() string { return f.snapshot }

// ConsistentLSN returns the position from which the slot delivers
// transactions: its consistent point after Start, the slot's confirmed
// position when Resume opened it.
func (f *Feed) ConsistentLSN() pglogrepl.LSN { return f.consistent }

// ReleaseSnapshot ends the exported snapshot once the copy has imported it
// (a transaction that imported it keeps it): the server no longer holds
// back the removal of old row versions for it. It runs a command on the
// replication connection, hence the context. It is a no-op when the
// snapshot is released already, and the first CatchUp releases it too.
func (f *Feed) ReleaseSnapshot(ctx context.Context) error {
	if f.closed {
		return ErrClosed
	}
	if !f.snapshotHeld || f.repl == nil {
		return nil
	}
	if _, err := pglogrepl.IdentifySystem(ctx, f.repl); err != nil {
		return fmt.Errorf("release the exported snapshot of change feed %s: %w", f.cfg.Name, err)
	}
	f.snapshotHeld = false
	return nil
}

// Close closes the feed's connections, after confirming to the server what
// was applied. The slot and the publication stay: Resume continues, Drop
// removes them. Close is idempotent.
func (f *Feed) Close(ctx context.Context) error {
	if f.closed {
		return nil
	}
	f.closed = true
	f.wake()
	var errs []error
	if f.repl != nil {
		if f.streaming {
			// Best effort: when it fails, the server has not taken the
			// last acknowledgements, and Resume delivers those
			// transactions again.
			_ = f.endStream(ctx)
		}
		errs = append(errs, f.repl.Close(ctx))
		f.repl = nil
	}
	if f.conn != nil {
		errs = append(errs, f.conn.Close(ctx))
		f.conn = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close change feed %s: %w", f.cfg.Name, err)
	}
	return nil
}

const (
	cleanupTimeout = 30 * time.Second
	// slotBusyWait is how long CatchUp waits for a slot still held by an
	// earlier process's walsender (it ends shortly after the connection
	// does), and Drop for an active walsender to let go before it
	// terminates it.
	slotBusyWait = 30 * time.Second
	dropWait     = 5 * time.Second
	pollInterval = 100 * time.Millisecond
)

// open validates the tables and opens the regular connection.
func open(ctx context.Context, cfg Config) (*Feed, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg.Conn.Copy())
	if err != nil {
		return nil, fmt.Errorf("connect to the source: %w", err)
	}
	cfg.Tables = slices.Clone(cfg.Tables)
	f := &Feed{cfg: cfg, conn: conn, tables: make(map[TableName]Table, len(cfg.Tables))}
	for i, t := range cfg.Tables {
		rt, err := resolveTable(ctx, conn, t, cfg.Tenant != nil)
		if err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return nil, err
		}
		cfg.Tables[i] = rt
		f.tables[rt.TableName()] = rt
	}
	f.cfg = cfg
	return f, nil
}

// resolveTable checks that t can be published and fills in its key.
func resolveTable(ctx context.Context, conn *pgx.Conn, t Table, tenantFilter bool) (Table, error) {
	var kind, replident string
	var key []string
	var pkIdentity, hasTenant bool
	err := conn.QueryRow(ctx, `SELECT c.relkind::text, c.relreplident::text,
			coalesce((SELECT array_agg(a.attname::text ORDER BY k.n)
				FROM pg_index i
				CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
				JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
				WHERE i.indrelid = c.oid AND i.indisprimary), '{}'),
			EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary AND i.indisreplident),
			EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $3 AND a.attnum > 0 AND NOT a.attisdropped)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2`, t.Schema, t.Name, TenantColumn).
		Scan(&kind, &replident, &key, &pkIdentity, &hasTenant)
	name := t.TableName()
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return t, fmt.Errorf("table %s does not exist", name)
	case err != nil:
		return t, fmt.Errorf("read table %s: %w", name, err)
	case kind != "r":
		return t, fmt.Errorf("%s is not a plain table (relkind %s); partitioned tables are not supported", name, kind)
	case len(key) == 0:
		return t, fmt.Errorf("table %s: %w", name, ErrNoPrimaryKey)
	case len(t.Key) > 0 && !slices.Equal(t.Key, key):
		return t, fmt.Errorf("table %s: configured key %q is not its primary key %q", name, t.Key, key)
	case replident == "n" || replident == "i" && !pkIdentity:
		return t, fmt.Errorf("table %s: replica identity must be the primary key (DEFAULT) or FULL", name)
	case tenantFilter && !hasTenant:
		return t, fmt.Errorf("table %s has no column %s to filter rows by", name, TenantColumn)
	case tenantFilter && replident != "f" && !slices.Contains(key, TenantColumn):
		// PostgreSQL refuses updates and deletes on the source when a row
		// filter uses a column outside the replica identity.
		return t, fmt.Errorf("table %s: %s is not part of the primary key, which a row filter needs", name, TenantColumn)
	}
	t.Key = key
	return t, nil
}

// ensurePublication creates the publication unless it exists with the
// configured tables, and reports whether it created it.
func (f *Feed) ensurePublication(ctx context.Context) (bool, error) {
	exists, err := f.checkPublication(ctx)
	if err != nil || exists {
		return false, err
	}
	var b strings.Builder
	b.WriteString("CREATE PUBLICATION " + ident.Quote(f.cfg.Name) + " FOR TABLE ")
	for i, t := range f.cfg.Tables {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("ONLY " + t.TableName().String())
		if f.cfg.Tenant != nil {
			b.WriteString(" WHERE (" + ident.Quote(TenantColumn) + " = " + ident.Literal(f.cfg.Tenant.String()) + "::uuid)")
		}
	}
	err = pgx.BeginFunc(ctx, f.conn, func(tx pgx.Tx) error {
		if f.cfg.Owner != "" {
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(f.cfg.Owner)); err != nil {
				return fmt.Errorf("set role %s: %w", f.cfg.Owner, err)
			}
		}
		_, err := tx.Exec(ctx, b.String())
		return err
	})
	if err != nil {
		return false, fmt.Errorf("create publication: %w", err)
	}
	return true, nil
}

// checkPublication reports whether the publication exists, and fails when
// it does with other tables or another row filter than the configured
// ones.
func (f *Feed) checkPublication(ctx context.Context) (bool, error) {
	var allTables bool
	err := f.conn.QueryRow(ctx, "SELECT puballtables FROM pg_publication WHERE pubname = $1", f.cfg.Name).Scan(&allTables)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read publication %s: %w", f.cfg.Name, err)
	case allTables:
		return true, fmt.Errorf("publication %s exists and is FOR ALL TABLES", f.cfg.Name)
	}
	rows, err := f.conn.Query(ctx, "SELECT schemaname::text, tablename::text, rowfilter FROM pg_publication_tables WHERE pubname = $1", f.cfg.Name)
	if err != nil {
		return true, fmt.Errorf("read publication %s: %w", f.cfg.Name, err)
	}
	published := make(map[TableName]bool)
	var schema, table string
	var filter *string
	_, err = pgx.ForEachRow(rows, []any{&schema, &table, &filter}, func() error {
		n := TableName{schema, table}
		switch _, ok := f.tables[n]; {
		case !ok:
			return fmt.Errorf("publication %s exists and publishes %s, which is not configured", f.cfg.Name, n)
		case f.cfg.Tenant == nil && filter != nil:
			return fmt.Errorf("publication %s exists and filters the rows of %s", f.cfg.Name, n)
		case f.cfg.Tenant != nil && (filter == nil || !strings.Contains(*filter, f.cfg.Tenant.String())):
			return fmt.Errorf("publication %s exists and does not filter the rows of %s by tenant %s", f.cfg.Name, n, f.cfg.Tenant)
		}
		published[n] = true
		return nil
	})
	if err != nil {
		return true, fmt.Errorf("check publication %s: %w", f.cfg.Name, err)
	}
	for n := range f.tables {
		if !published[n] {
			return true, fmt.Errorf("publication %s exists and does not publish %s", f.cfg.Name, n)
		}
	}
	return true, nil
}

// connectReplication opens a logical replication connection to the
// source database and sets the status interval from the walsender's
// timeout.
func (f *Feed) connectReplication(ctx context.Context) error {
	cfg := f.cfg.Conn.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = make(map[string]string)
	}
	cfg.RuntimeParams["replication"] = "database"
	// The walsender writes values with its session's output settings; these
	// are the ones every session reads back exactly (as PostgreSQL's own
	// subscriber sets them).
	cfg.RuntimeParams["DateStyle"] = "ISO"
	cfg.RuntimeParams["IntervalStyle"] = "postgres"
	cfg.RuntimeParams["extra_float_digits"] = "3"
	c, err := pgconn.ConnectConfig(ctx, &cfg.Config)
	if err != nil {
		return fmt.Errorf("open a replication connection: %w", err)
	}
	res, err := c.Exec(ctx, "SELECT setting FROM pg_settings WHERE name = 'wal_sender_timeout'").ReadAll()
	if err == nil && (len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1) {
		err = errors.New("no such setting")
	}
	var ms int64
	if err == nil {
		ms, err = strconv.ParseInt(string(res[0].Rows[0][0]), 10, 64)
	}
	if err != nil {
		c.Close(context.WithoutCancel(ctx))
		return fmt.Errorf("read wal_sender_timeout: %w", err)
	}
	f.repl = c
	f.statusInterval = statusInterval
	// The walsender gives up on a stream it has heard nothing from for
	// wal_sender_timeout (0: never).
	if t := time.Duration(ms) * time.Millisecond / 4; t > 0 && t < f.statusInterval {
		f.statusInterval = max(t, minStatusInterval)
	}
	return nil
}

// dropSlot drops the slot over the feed's own replication connection,
// which has it while Start runs.
func (f *Feed) dropSlot(ctx context.Context) error {
	if f.repl == nil {
		return nil
	}
	if err := pglogrepl.DropReplicationSlot(ctx, f.repl, f.cfg.Name, pglogrepl.DropReplicationSlotOptions{}); err != nil {
		return fmt.Errorf("drop replication slot %s: %w", f.cfg.Name, err)
	}
	return nil
}

// Drop removes the replication slot and the publication named name from
// the database of conn, as owner when given (see Config.Owner). Missing
// ones are fine, so it can be called twice, and after a crash: it needs no
// Feed. A walsender still holding the slot (a Feed not closed, or one
// whose process died moments ago) gets a few seconds to let go and is then
// terminated. Drop the feed's slot before the feed's Close only when the
// feed is abandoned.
func Drop(ctx context.Context, conn *pgx.ConnConfig, owner, name string) error {
	if conn == nil {
		return errors.New("drop change feed: no source connection configured")
	}
	if err := checkName(name); err != nil {
		return fmt.Errorf("drop change feed: %w", err)
	}
	c, err := pgx.ConnectConfig(ctx, conn.Copy())
	if err != nil {
		return fmt.Errorf("drop change feed %s: connect to the source: %w", name, err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	if err := dropSlot(ctx, c, name); err != nil {
		return fmt.Errorf("drop change feed %s: %w", name, err)
	}
	if err := DropPublication(ctx, c, owner, name); err != nil {
		return fmt.Errorf("drop change feed %s: %w", name, err)
	}
	return nil
}

// dropSlot drops the slot of the connection's database, waiting for or
// terminating a walsender that holds it.
func dropSlot(ctx context.Context, c *pgx.Conn, name string) error {
	busySince := time.Time{}
	for {
		var pid *int32
		err := c.QueryRow(ctx, `SELECT active_pid FROM pg_replication_slots
			WHERE slot_name = $1 AND database = current_database()`, name).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read replication slot %s: %w", name, err)
		}
		if pid == nil {
			_, err = c.Exec(ctx, "SELECT pg_drop_replication_slot($1)", name)
			switch {
			case err == nil || isCode(err, pgerrcode.UndefinedObject):
				return nil
			case !isCode(err, pgerrcode.ObjectInUse):
				return fmt.Errorf("drop replication slot %s: %w", name, err)
			}
		} else {
			if busySince.IsZero() {
				busySince = time.Now()
			}
			if time.Since(busySince) > dropWait {
				if _, err := c.Exec(ctx, "SELECT pg_terminate_backend($1)", *pid); err != nil {
					return fmt.Errorf("terminate walsender %d holding replication slot %s: %w", *pid, name, err)
				}
			}
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return fmt.Errorf("wait for replication slot %s: %w", name, err)
		}
	}
}

// dropPause is how long DropPublication waits between taking a
// publication's tables out of it and dropping it.
var dropPause = 250 * time.Millisecond

// Beginner is a connection DropPublication can open transactions on.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// DropPublication drops publication name, as owner ("" the connection's
// role), without failing other sessions' statements. PostgreSQL (15 at
// least) lists the publications of a table when a statement first updates
// or deletes from it after a change to them, and then looks each one up:
// a publication dropped in between fails that statement with "cache lookup
// failed for publication", and a move's publication on the shared tables
// did so to other tenants' writes. So the publication first lets go of its
// tables and schemas, which makes those sessions list the tables'
// publications again while it still exists, and is dropped dropPause
// later, when none can still be between the two reads. Under pgbench
// (8 writers, a publication made and dropped 1,500 to 4,500 times) a
// plain DROP failed 5 writers, the two steps none.
func DropPublication(ctx context.Context, c Beginner, owner, name string) error {
	asOwner := func(tx pgx.Tx) error {
		if owner == "" {
			return nil
		}
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(owner)); err != nil {
			return fmt.Errorf("set role %s: %w", owner, err)
		}
		return nil
	}
	var released bool
	err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if err := asOwner(tx); err != nil {
			return err
		}
		var parts []string
		rows, err := tx.Query(ctx, `SELECT 'TABLE ONLY ' || format('%I.%I', n.nspname, c.relname)
			FROM pg_publication p JOIN pg_publication_rel r ON r.prpubid = p.oid
			JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE p.pubname = $1
			UNION ALL
			SELECT 'TABLES IN SCHEMA ' || quote_ident(n.nspname)
			FROM pg_publication p JOIN pg_publication_namespace pn ON pn.pnpubid = p.oid
			JOIN pg_namespace n ON n.oid = pn.pnnspid
			WHERE p.pubname = $1`, name)
		if err == nil {
			parts, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil || len(parts) == 0 {
			return err
		}
		released = true
		_, err = tx.Exec(ctx, "ALTER PUBLICATION "+ident.Quote(name)+" DROP "+strings.Join(parts, ", "))
		return err
	})
	if err != nil {
		return fmt.Errorf("take the tables out of publication %s: %w", name, err)
	}
	if released {
		if err := sleep(ctx, dropPause); err != nil {
			return err
		}
	}
	err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if err := asOwner(tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DROP PUBLICATION IF EXISTS "+ident.Quote(name))
		return err
	})
	if err != nil {
		return fmt.Errorf("drop publication %s: %w", name, err)
	}
	return nil
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
