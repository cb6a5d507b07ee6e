package platform

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/shop/store"
)

// readOnlyDB runs every call of a store service in a READ ONLY transaction,
// so the database itself refuses any write (SQLSTATE 25006), whatever the
// service tries: an operator browsing a store changes nothing in it.
type readOnlyDB struct{ db store.DB }

var _ store.DB = readOnlyDB{}

// BeginTx begins a READ ONLY transaction, whatever opts asks for.
func (d readOnlyDB) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	opts.AccessMode = pgx.ReadOnly
	return d.db.BeginTx(ctx, opts)
}

// Exec runs sql in a READ ONLY transaction of its own.
func (d readOnlyDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tx, err := d.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := tx.Exec(ctx, sql, args...)
	if err != nil {
		_ = tx.Rollback(ctx)
		return tag, err
	}
	return tag, tx.Commit(ctx)
}

// Query runs sql in a READ ONLY transaction that ends when the rows are
// closed.
func (d readOnlyDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	tx, err := d.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		_ = tx.Rollback(ctx)
		return nil, err
	}
	return &txRows{Rows: rows, ctx: ctx, tx: tx}, nil
}

// QueryRow runs sql in a READ ONLY transaction of its own; as with pgx,
// errors are deferred to Scan.
func (d readOnlyDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return txRow{d: d, ctx: ctx, sql: sql, args: args}
}

// txRows are rows whose transaction ends when they are closed.
type txRows struct {
	pgx.Rows
	ctx    context.Context
	tx     pgx.Tx
	closed bool
	err    error // of ending the transaction
}

// Next ends the transaction when the rows are done, as pgx's rows close
// themselves: callers that read to the end and never call Close (as the
// store's lists do) would otherwise hold the transaction, and its
// connection, for good.
func (r *txRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *txRows) Close() {
	r.Rows.Close()
	if r.closed {
		return
	}
	r.closed = true
	if r.Rows.Err() != nil {
		_ = r.tx.Rollback(r.ctx)
		return
	}
	r.err = r.tx.Commit(r.ctx)
}

func (r *txRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// txRow is the deferred result of QueryRow.
type txRow struct {
	d    readOnlyDB
	ctx  context.Context
	sql  string
	args []any
}

func (r txRow) Scan(dest ...any) error {
	rows, err := r.d.Query(r.ctx, r.sql, r.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	return nil
}
