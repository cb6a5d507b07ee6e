package migration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

// Conn is what Apply needs of a connection. *pgx.Conn and *pgxpool.Conn
// satisfy it. Migrations marked no-transaction need one session throughout,
// so pass a single connection, not a pool.
type Conn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

var (
	_ Conn = (*pgx.Conn)(nil)
)

// Target is one place a Set applies to.
type Target struct {
	// Schema holds the tables. It is also the key of the target in the
	// ledger of its database.
	Schema string
	// Grantee is the role that gets SELECT, INSERT, UPDATE and DELETE on
	// the tables (and USAGE on the schema); "" grants nothing.
	Grantee string
	// Plain marks a schema that is not made of tenant tables (Landlord's
	// own control schema): no shape checks, no row-level security.
	Plain bool
	// Global marks the schema of platform-wide tables (GlobalSchema, the
	// only schema it may name): tables without tenant_id or row-level
	// security, checked by CheckGlobalShape and readable, never writable,
	// by every role that can reach the database (SecureGlobal). Apply
	// creates the schema, owned by Config.Owner, when it is missing.
	// Grantee must be empty.
	Global bool
}

func (t Target) validate() error {
	if err := tenant.CheckIdent(t.Schema); err != nil {
		return fmt.Errorf("target schema: %w", err)
	}
	switch {
	case t.Global && t.Schema != GlobalSchema:
		return fmt.Errorf("target schema %q: a global target is schema %q", t.Schema, GlobalSchema)
	case t.Global && (t.Grantee != "" || t.Plain):
		return errors.New("target: a global target has no Grantee and is not Plain: its tables are readable by every role of the database")
	case !t.Global && t.Schema == GlobalSchema:
		return fmt.Errorf("target schema %q: reserved for the global tables (Target.Global)", t.Schema)
	}
	if t.Grantee != "" {
		if err := tenant.CheckIdent(t.Grantee); err != nil {
			return fmt.Errorf("target grantee: %w", err)
		}
	}
	return nil
}

// Config holds the optional settings of a Migrator.
type Config struct {
	// Owner is the role that owns what migrations create. Each step runs
	// with SET LOCAL ROLE Owner, so tables are never owned by a superuser
	// or by the role that runs tenant traffic. "" keeps the connecting role.
	Owner string
	// LockTimeout bounds how long one statement waits for a lock, so a
	// migration never queues live traffic behind it for long. A step that
	// hits it is retried. Default 3s.
	LockTimeout time.Duration
	// LockRetries is how many times a step that hit LockTimeout is retried
	// before Apply gives up. Default 5.
	LockRetries int
	// Logger receives one line per applied step, and one every 5 s that a
	// step waits for the target's lock. Default: discard.
	Logger *slog.Logger
	// ContextKey, when set, is the installation's context key: before it
	// applies a step, Apply installs the signed tenant context
	// (InstallContext) in the target's database if it is missing or holds
	// another key, since the policies that Secure writes call its verifier.
	// Without it, the caller installs the context.
	ContextKey []byte
}

func (c *Config) setDefaults() {
	if c.LockTimeout == 0 {
		c.LockTimeout = 3 * time.Second
	}
	if c.LockRetries == 0 {
		c.LockRetries = 5
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	if c.Owner != "" {
		if err := tenant.CheckIdent(c.Owner); err != nil {
			return fmt.Errorf("migration config: Owner: %w", err)
		}
	}
	if c.LockTimeout < 0 {
		return errors.New("migration config: LockTimeout must not be negative")
	}
	if c.LockRetries < 0 {
		return errors.New("migration config: LockRetries must not be negative")
	}
	return nil
}

// Migrator applies one Set to targets. It is safe for concurrent use; two
// migrators (in one process or several) applying to the same target apply
// each step exactly once.
type Migrator struct {
	set *Set
	cfg Config
}

// WithContextKey returns a copy of m whose Config.ContextKey is key.
func (m *Migrator) WithContextKey(key []byte) *Migrator {
	c := *m
	c.cfg.ContextKey = key
	return &c
}

// New returns a Migrator for set.
func New(set *Set, cfg Config) (*Migrator, error) {
	if set == nil {
		return nil, errors.New("migration: nil set")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Migrator{set: set, cfg: cfg}, nil
}

// Set returns the migrations this Migrator applies.
func (m *Migrator) Set() *Set { return m.set }

// Result describes one Apply.
type Result struct {
	From    int   // version before
	To      int   // version after
	Applied []int // versions applied by this call
}

// ledgerSQL creates the per-database ledger. Every database that holds
// targets has one; a target's rows are keyed by its schema name.
const ledgerSQL = `
CREATE SCHEMA IF NOT EXISTS landlord;
CREATE TABLE IF NOT EXISTS landlord.target_migrations (
	target     text        NOT NULL,
	version    integer     NOT NULL,
	name       text        NOT NULL,
	checksum   text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (target, version)
)`

// lockNamespace is the first key of every advisory lock the migrator takes,
// so its locks never collide with an application's (SECURITY.md, I26).
const lockNamespace = 0x4c4c4d47 // "LLMG"

// EnsureLedger creates the ledger table of the connected database if it is
// missing. Apply calls it; provisioning calls it once per new database.
func EnsureLedger(ctx context.Context, conn Conn, owner string) error {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('landlord.target_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("check ledger: %w", err)
	}
	if exists {
		return nil
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// Serialize creators: CREATE ... IF NOT EXISTS is not safe against a
		// concurrent creator of the same name.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockNamespace); err != nil {
			return err
		}
		if owner != "" {
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(owner)); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, ledgerSQL); err != nil {
			return fmt.Errorf("create ledger: %w", err)
		}
		return nil
	})
}

// ensureSchema creates schema, owned by owner ("" keeps the connecting
// role), when it is missing.
func ensureSchema(ctx context.Context, conn Conn, schema, owner string) error {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		return fmt.Errorf("look up schema %s: %w", schema, err)
	}
	if exists {
		return nil
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// As EnsureLedger: IF NOT EXISTS is not safe against a concurrent
		// creator of the same name.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockNamespace); err != nil {
			return err
		}
		sql := "CREATE SCHEMA IF NOT EXISTS " + ident.Quote(schema)
		if owner != "" {
			sql = "SET LOCAL ROLE " + ident.Quote(owner) + "; " + sql
		}
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create schema %s: %w", schema, err)
		}
		return nil
	})
}

// Version returns the highest version recorded for t (0 if none) after
// checking every recorded migration against the set.
func (m *Migrator) Version(ctx context.Context, conn Conn, t Target) (int, error) {
	if err := t.validate(); err != nil {
		return 0, err
	}
	if err := EnsureLedger(ctx, conn, m.cfg.Owner); err != nil {
		return 0, err
	}
	return m.check(ctx, conn, t)
}

// Check is Version for a database that must not be changed: it reads t's
// ledger, which must exist, and verifies every recorded migration against
// the set (ErrChecksumMismatch, ErrUnknownVersion, ErrMissingVersion),
// writing nothing.
func (m *Migrator) Check(ctx context.Context, conn Conn, t Target) (int, error) {
	if err := t.validate(); err != nil {
		return 0, err
	}
	return m.check(ctx, conn, t)
}

// check reads t's ledger and verifies it against the set.
func (m *Migrator) check(ctx context.Context, conn Conn, t Target) (int, error) {
	rows, err := conn.Query(ctx, `SELECT version, name, checksum FROM landlord.target_migrations WHERE target = $1 ORDER BY version`, t.Schema)
	if err != nil {
		return 0, fmt.Errorf("read ledger of %s: %w", t.Schema, err)
	}
	type rec struct {
		version        int
		name, checksum string
	}
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rec, error) {
		var x rec
		err := r.Scan(&x.version, &x.name, &x.checksum)
		return x, err
	})
	if err != nil {
		return 0, fmt.Errorf("read ledger of %s: %w", t.Schema, err)
	}
	version := 0
	recorded := make(map[int]bool, len(recs))
	for _, r := range recs {
		version = r.version
		recorded[r.version] = true
		if r.version > m.set.Head() {
			continue // applied by newer code; not ours to judge
		}
		mg, ok := m.set.find(r.version)
		if !ok {
			return 0, fmt.Errorf("target %s: version %d (%s): %w", t.Schema, r.version, r.name, ErrUnknownVersion)
		}
		if !mg.Matches(r.checksum) {
			return 0, fmt.Errorf("target %s: %s: %w (recorded sha256 %s…, file sha256 %s…)", t.Schema, mg.Name, ErrChecksumMismatch, r.checksum[:12], mg.Checksum[:12])
		}
	}
	// Apply only runs versions above the recorded one, so a migration that
	// slipped in below it would never run while the target claimed it.
	for _, mg := range m.set.list {
		if mg.Version < version && !recorded[mg.Version] {
			return 0, fmt.Errorf("target %s: %s: %w (target is at version %d)", t.Schema, mg.Name, ErrMissingVersion, version)
		}
	}
	return version, nil
}

// Apply brings t up to the head of the set, one migration at a time. It
// stops at the first failing migration and returns its error; the migrations
// before it stay applied.
func (m *Migrator) Apply(ctx context.Context, conn Conn, t Target) (Result, error) {
	if err := t.validate(); err != nil {
		return Result{}, err
	}
	if err := EnsureLedger(ctx, conn, m.cfg.Owner); err != nil {
		return Result{}, err
	}
	if t.Global {
		if err := ensureSchema(ctx, conn, t.Schema, m.cfg.Owner); err != nil {
			return Result{}, err
		}
	}
	from, err := m.check(ctx, conn, t)
	if err != nil {
		return Result{}, err
	}
	res := Result{From: from, To: from}
	contextReady := len(m.cfg.ContextKey) == 0 || t.Global || t.Plain
	for _, mg := range m.set.list {
		if mg.Version <= from {
			continue
		}
		if !contextReady {
			if err := InstallContext(ctx, conn, m.cfg.Owner, m.cfg.ContextKey); err != nil {
				return res, fmt.Errorf("target %s: %w", t.Schema, err)
			}
			contextReady = true
		}
		start := time.Now()
		applied, err := m.step(ctx, conn, t, mg)
		if err != nil {
			return res, fmt.Errorf("target %s: %s: %w", t.Schema, mg.Name, err)
		}
		res.To = mg.Version
		if applied {
			res.Applied = append(res.Applied, mg.Version)
			m.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "migration applied",
				slog.String("target", t.Schema), slog.String("migration", mg.Name),
				slog.Duration("took", time.Since(start)))
		}
	}
	return res, nil
}

// lockPoll is how long a migrator that found the target's migration lock
// taken waits before it tries again.
const lockPoll = 50 * time.Millisecond

// busyNotice is how long a step waits for the target's migration lock
// before it logs that it waits: moves into or out of a server's shared
// tables hold that lock (in shared mode) for their whole length.
var busyNotice = 5 * time.Second

// step applies one migration, retrying when it lost a lock race.
func (m *Migrator) step(ctx context.Context, conn Conn, t Target, mg Migration) (applied bool, err error) {
	var busySince, noticed time.Time
	for attempt := 0; ; {
		if mg.NoTransaction {
			applied, err = m.stepNoTx(ctx, conn, t, mg)
		} else {
			err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				done, err := m.lockAndCheck(ctx, tx, t, mg)
				if err != nil || done {
					return err
				}
				if _, err := tx.Exec(ctx, mg.SQL); err != nil {
					return err
				}
				if err := m.finish(ctx, tx, t, mg); err != nil {
					return err
				}
				applied = true
				return nil
			})
		}
		if errors.Is(err, errBusy) {
			switch {
			case busySince.IsZero():
				busySince, noticed = time.Now(), time.Now()
			case time.Since(noticed) >= busyNotice:
				m.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "migration waits for the target's lock: another migrator, or a move of tenants into or out of these tables, holds it",
					slog.String("target", t.Schema), slog.String("migration", mg.Name), slog.Duration("waited", time.Since(busySince).Round(time.Second)))
				noticed = time.Now()
			}
			// Wait with no transaction open: CREATE INDEX CONCURRENTLY in
			// the lock holder's no-transaction step waits for every
			// transaction older than its snapshot, so a migrator blocked
			// on the lock inside one would deadlock with it.
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(lockPoll):
			}
			continue
		}
		if err == nil || !isLockTimeout(err) || attempt >= m.cfg.LockRetries {
			return applied, err
		}
		// Back off so the live traffic that holds the lock can drain.
		wait := time.Duration(attempt+1) * 200 * time.Millisecond
		m.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "migration waited too long for a lock; retrying",
			slog.String("target", t.Schema), slog.String("migration", mg.Name), slog.Int("attempt", attempt+1))
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(wait):
		}
		attempt++
	}
}

// lockAndCheck takes the target's migration lock for the rest of tx, or
// returns errBusy when another migrator holds it, reports whether mg is
// already recorded (by a concurrent migrator), and enters the target (see
// enter) for mg's statements.
func (m *Migrator) lockAndCheck(ctx context.Context, tx pgx.Tx, t Target, mg Migration) (done bool, err error) {
	// One round trip: the ledger is read in the statement after the lock
	// (each with a snapshot of its own, so a migrator that released the
	// lock before this one took it has its ledger row seen), and used only
	// when the lock was taken.
	var locked bool
	var sum *string
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_try_advisory_xact_lock($1, hashtext($2))`, lockNamespace, t.Schema).QueryRow(func(r pgx.Row) error {
		return r.Scan(&locked)
	})
	b.Queue(`SELECT checksum FROM landlord.target_migrations WHERE target = $1 AND version = $2`, t.Schema, mg.Version).Query(func(rows pgx.Rows) error {
		var err error
		sum, err = pgx.CollectOneRow(rows, pgx.RowTo[*string])
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	// Entering is harmless when the step is not to run: the transaction
	// then ends with nothing done.
	sql, args := m.enterSQL(t)
	b.Queue(sql, args...)
	err = tx.SendBatch(ctx, b).Close()
	switch {
	case err != nil:
		return false, err
	case !locked:
		return false, errBusy
	case sum == nil:
		return false, nil
	case !mg.Matches(*sum):
		return false, ErrChecksumMismatch
	}
	return true, nil
}

// enter makes the transaction run as the owner with the target schema first
// on the search path, so unqualified DDL lands in the target.
func (m *Migrator) enter(ctx context.Context, tx pgx.Tx, t Target) error {
	sql, args := m.enterSQL(t)
	_, err := tx.Exec(ctx, sql, args...)
	return err
}

// enterSQL is enter's statement: set_config of each setting, local to the
// transaction, as SET LOCAL would (role included), in one statement that
// a batch can carry.
func (m *Migrator) enterSQL(t Target) (string, []any) {
	path := ident.Quote(t.Schema) + ", pg_catalog, pg_temp"
	timeout := strconv.FormatInt(m.cfg.LockTimeout.Milliseconds(), 10)
	if m.cfg.Owner == "" {
		return `SELECT set_config('search_path', $1, true), set_config('lock_timeout', $2, true)`, []any{path, timeout}
	}
	return `SELECT set_config('role', $3, true), set_config('search_path', $1, true), set_config('lock_timeout', $2, true)`,
		[]any{path, timeout, m.cfg.Owner}
}

// finish secures the target's tables, checks their shape and records mg.
func (m *Migrator) finish(ctx context.Context, tx pgx.Tx, t Target, mg Migration) error {
	switch {
	case t.Global:
		if err := SecureGlobal(ctx, tx, t); err != nil {
			return err
		}
	case !t.Plain:
		if err := Secure(ctx, tx, t); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO landlord.target_migrations (target, version, name, checksum) VALUES ($1, $2, $3, $4)`,
		t.Schema, mg.Version, mg.Name, mg.Checksum)
	return err
}

// stepNoTx runs a migration that cannot run in a transaction. It holds a
// session advisory lock meanwhile; the ledger row, the security and the shape
// check then commit together. A crash between the two leaves the migration
// unrecorded, so it runs again: such migrations must be idempotent.
func (m *Migrator) stepNoTx(ctx context.Context, conn Conn, t Target, mg Migration) (applied bool, err error) {
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, lockNamespace, t.Schema).Scan(&locked); err != nil {
		return false, err
	}
	if !locked {
		return false, errBusy
	}
	defer func() {
		// Use a fresh context: the lock must go even when ctx is done.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, lockNamespace, t.Schema); uerr != nil && err == nil {
			err = uerr
		}
	}()
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM landlord.target_migrations WHERE target = $1 AND version = $2`, t.Schema, mg.Version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	var pre strings.Builder
	if m.cfg.Owner != "" {
		pre.WriteString("SET ROLE " + ident.Quote(m.cfg.Owner) + ";")
	}
	fmt.Fprintf(&pre, "SET search_path = %s, pg_catalog, pg_temp; SET lock_timeout = %d;",
		ident.Quote(t.Schema), m.cfg.LockTimeout.Milliseconds())
	if _, err := conn.Exec(ctx, pre.String()); err != nil {
		return false, err
	}
	_, runErr := conn.Exec(ctx, mg.SQL)
	// Session settings must not outlive the step on a pooled connection.
	if _, err := conn.Exec(ctx, "RESET ROLE; RESET search_path; RESET lock_timeout"); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return false, runErr
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := m.enter(ctx, tx, t); err != nil {
			return err
		}
		return m.finish(ctx, tx, t, mg)
	})
	return err == nil, err
}

func isLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == pgerrcode.LockNotAvailable
}

// Rehearse applies every migration of the set to a scratch schema in the
// database conn is connected to, inside one transaction that it rolls back:
// each step runs as it would on a real target, with its security and shape
// check, and nothing of it is left. It returns the first error, naming the
// migration, so that a bad migration is caught before it touches any real
// target. Migrations that cannot run in a transaction are skipped; their
// statements run only on real targets.
func (m *Migrator) Rehearse(ctx context.Context, conn Conn) error {
	if err := EnsureLedger(ctx, conn, m.cfg.Owner); err != nil {
		return err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // rolled back on purpose
	var suffix string
	if err := tx.QueryRow(ctx, `SELECT substr(md5(random()::text), 1, 12)`).Scan(&suffix); err != nil {
		return err
	}
	t := Target{Schema: "landlord_rehearsal_" + suffix}
	create := "CREATE SCHEMA " + ident.Quote(t.Schema)
	if m.cfg.Owner != "" {
		create += " AUTHORIZATION " + ident.Quote(m.cfg.Owner)
	}
	if _, err := tx.Exec(ctx, create); err != nil {
		return fmt.Errorf("rehearse migrations: %w", err)
	}
	for _, mg := range m.set.list {
		if mg.NoTransaction {
			continue
		}
		err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
			if err := m.enter(ctx, sp, t); err != nil {
				return err
			}
			if _, err := sp.Exec(ctx, mg.SQL); err != nil {
				return err
			}
			return m.finish(ctx, sp, t, mg)
		})
		if err != nil {
			return fmt.Errorf("rehearsal in a scratch schema: %s: %w", mg.Name, err)
		}
	}
	return nil
}
