package landlord

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
)

// SyncReport is the outcome of SyncGlobal: the data version the copies
// were brought to, and what happened to each copy.
type SyncReport = provision.SyncReport

// GlobalWriter writes the global tables (Config.Global) of the control
// database. It is the one way besides the administrator's own connections:
// tenant traffic may only read them. Each use is logged with the reason
// the writer was opened with.
//
// Row and schema tenants read the control database's rows, so they see a
// committed write at once. Database tenants read a copy in their own
// database, which changes only when SyncGlobal runs: run it (or Sync)
// after writing. Nothing needs to be marked: a copy's version is a hash of
// the global rows themselves, so SyncGlobal sees every change, also one
// made without a GlobalWriter or by a global migration.
type GlobalWriter struct {
	l      *Landlord
	reason string
}

// GlobalAdmin opens a writer of the global tables. reason says why, for the
// log; it is required (ErrNoReason). An installation opened without
// Config.Global gets ErrNoGlobal.
func (l *Landlord) GlobalAdmin(ctx context.Context, reason string) (*GlobalWriter, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, ErrNoReason
	}
	if l.prov.GlobalMigrator() == nil {
		return nil, ErrNoGlobal
	}
	l.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "global writer opened", slog.String("reason", reason))
	return &GlobalWriter{l: l, reason: reason}, nil
}

func (w *GlobalWriter) log(ctx context.Context, what string) {
	w.l.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "global: "+what, slog.String("reason", w.reason))
}

// Begin starts a transaction on the control database as the owner role,
// with the global schema first on the search path, so that unqualified
// names are the global tables. pgx.BeginFunc(ctx, w, fn) runs fn in one.
func (w *GlobalWriter) Begin(ctx context.Context) (pgx.Tx, error) {
	w.log(ctx, "transaction")
	tx, err := w.l.admin.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("global writer: %w", err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL ROLE %s; SET LOCAL search_path = %s, pg_catalog, pg_temp",
		ident.Quote(w.l.cfg.OwnerRole), ident.Quote(migration.GlobalSchema))); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("global writer: %w", err)
	}
	return tx, nil
}

// Exec runs sql in a transaction of its own, as Begin does.
func (w *GlobalWriter) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := pgx.BeginFunc(ctx, w, func(tx pgx.Tx) error {
		var err error
		tag, err = tx.Exec(ctx, sql, args...)
		return err
	})
	return tag, err
}

// Sync runs SyncGlobal: after a write, it brings the copies in the tenant
// databases to the new rows.
func (w *GlobalWriter) Sync(ctx context.Context) (SyncReport, error) {
	w.log(ctx, "sync")
	return w.l.SyncGlobal(ctx)
}

// SyncGlobal brings the copy of the global tables in every tenant database,
// in the template database (which new database tenants are copied from)
// and in the reserve's databases to the control database's rows, a few
// databases at a time, each in one transaction. A copy already at the
// current version is skipped without a connection. A copy whose sync would
// delete a row that one of its tenant's rows references keeps its old rows
// and fails with an error wrapping ErrGlobalRowInUse, which names the row;
// the others are synced, and the error returned then wraps ErrSyncFailed.
// The report lists every copy. Writes through GlobalAdmin need it to reach
// database tenants; it is safe to run at any time, and concurrently.
func (l *Landlord) SyncGlobal(ctx context.Context) (SyncReport, error) {
	if l.prov.GlobalMigrator() == nil {
		return SyncReport{}, ErrNoGlobal
	}
	rep, err := l.prov.SyncGlobal(ctx, provision.SyncConfig{Logger: l.cfg.Logger})
	l.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "global data synced", slog.String("version", rep.Version),
		slog.Int("synced", rep.Synced), slog.Int("current", rep.Current), slog.Int("failed", rep.Failed),
		slog.Duration("took", rep.Duration))
	return rep, err
}
