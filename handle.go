package landlord

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/internal/traffic"
)

// Handle runs SQL as the tenant in the context. It has the method set that
// sqlc-generated code expects (Exec, Query, QueryRow, plus SendBatch), and
// BeginTx for transactions, so pgx.BeginFunc works on it.
//
// Each call is routed by the directory, and the tenant context is set
// transaction-locally in the same round trip as the statement. Statements are
// prepared once per connection and must be single statements; a context with
// no tenant fails with ErrNoTenant before any SQL is sent.
//
// A statement that may leave session state on its connection (a
// session-level SET or RESET, set_config, DISCARD, a cursor WITH HOLD,
// LISTEN, PREPARE, LOAD, a temporary table, a session advisory lock) costs
// the connection: it is closed after the call instead of serving another
// tenant. Behind a transaction pooler (Config.Pooler) such a statement is
// refused with ErrSessionState before it is sent.
//
// COPY FROM is not offered: PostgreSQL refuses it on tables with row-level
// security. Use a batch of INSERTs or INSERT ... SELECT FROM unnest($1).
type Handle struct{ h *traffic.Handle }

// Handle returns the tenant handle.
func (l *Landlord) Handle() *Handle { return &Handle{l.traffic.Handle()} }

// Querier is the method set of Handle and of the transactions it begins, as
// sqlc's generated DBTX interface declares it.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

var (
	_ Querier = (*Handle)(nil)
	_ Querier = (pgx.Tx)(nil)
)

// Exec runs sql as the tenant in ctx.
func (h *Handle) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return h.h.Exec(ctx, sql, args...)
}

// Query runs sql as the tenant in ctx. The connection goes back to the pool
// when the rows are closed (pgx.CollectRows and friends close them).
func (h *Handle) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return h.h.Query(ctx, sql, args...)
}

// QueryRow runs sql as the tenant in ctx and returns its first row. Errors
// are deferred to Scan, as with pgx.
func (h *Handle) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return h.h.QueryRow(ctx, sql, args...)
}

// Begin starts a transaction as the tenant in ctx.
func (h *Handle) Begin(ctx context.Context) (pgx.Tx, error) {
	return h.h.BeginTx(ctx, pgx.TxOptions{})
}

// BeginTx starts a transaction as the tenant in ctx. BEGIN and the tenant
// context go in one round trip; the context lasts until the transaction
// ends, and the connection returns to the pool on Commit or Rollback.
func (h *Handle) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	return h.h.BeginTx(ctx, opts)
}

// SendBatch runs the queries of b as the tenant in ctx, in one implicit
// transaction with the tenant context first. A batch that begins its own
// transaction is refused with ErrBatchTx; use BeginTx and Tx.SendBatch.
func (h *Handle) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return h.h.SendBatch(ctx, b)
}
