package traffic

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/tenant"
)

// tx is a pgx transaction begun by a Handle. It returns its connection to
// the pool when it ends. For schema tenants its statements are prepared per
// schema (see stmtcache.go); otherwise pgx runs them.
type tx struct {
	pgx.Tx
	lease // its leftState grows with each statement that may leave state
}

// Commit and Rollback end the lease: the pool closes the connection
// instead of reusing it if the transaction could not be ended (SECURITY.md,
// I06).
func (t *tx) Commit(ctx context.Context) error {
	err := t.Tx.Commit(ctx)
	t.release(err)
	return err
}

func (t *tx) Rollback(ctx context.Context) error {
	err := t.Tx.Rollback(ctx)
	t.release(nil)
	return err
}

// Conn returns nil: the connection belongs to the pool, and using it outside
// the transaction would run without the tenant context.
func (t *tx) Conn() *pgx.Conn { return nil }

// schemaPath reports whether a call takes the per-schema statement path.
func (t *tx) schemaPath(args []any) bool {
	return t.r.t.Model == tenant.ModelSchema && !t.r.pooled && !t.released && plainArgs(args)
}

// prepare returns the statement for sql in the tenant's schema, and its
// encoded arguments.
func (t *tx) prepare(ctx context.Context, sql string, args []any) (*pgconn.StatementDescription, *pgx.ExtendedQueryBuilder, error) {
	pc := t.c.Conn().PgConn()
	sd, err := prepareInSchema(ctx, pc, t.r, nil, sql, true)
	if err != nil {
		return nil, nil, err
	}
	eqb := eqbPool.Get().(*pgx.ExtendedQueryBuilder)
	if err := eqb.Build(t.c.Conn().TypeMap(), sd, args); err != nil {
		eqbPool.Put(eqb)
		return nil, nil, err
	}
	return sd, eqb, nil
}

// pooledRefusal is the refusal of a statement tenant traffic may not run
// (refuse), or ErrSessionState for a statement that would leave session
// state behind a transaction pooler.
func (t *tx) pooledRefusal(sql string) error {
	if err := refuse(sql); err != nil {
		return err
	}
	if t.r.pooled && leavesSessionState(sql) {
		return ErrSessionState
	}
	return nil
}

func (t *tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.pooledRefusal(sql); err != nil {
		return pgconn.CommandTag{}, err
	}
	t.leftState = t.leftState || leavesSessionState(sql)
	if !t.schemaPath(args) {
		return t.Tx.Exec(ctx, sql, args...)
	}
	sd, eqb, err := t.prepare(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer eqbPool.Put(eqb)
	tag, err := t.c.Conn().PgConn().ExecStatement(ctx, sd, eqb.ParamValues, eqb.ParamFormats, eqb.ResultFormats).Close()
	if err != nil {
		forget(ctx, t.c, t.r, sql, err)
	}
	return tag, err
}

func (t *tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.pooledRefusal(sql); err != nil {
		return errRows(err), err
	}
	t.leftState = t.leftState || leavesSessionState(sql)
	if !t.schemaPath(args) {
		return t.Tx.Query(ctx, sql, args...)
	}
	sd, eqb, err := t.prepare(ctx, sql, args)
	if err != nil {
		return errRows(err), err
	}
	defer eqbPool.Put(eqb)
	rr := t.c.Conn().PgConn().ExecStatement(ctx, sd, eqb.ParamValues, eqb.ParamFormats, eqb.ResultFormats)
	return &tenantRows{Rows: pgx.RowsFromResultReader(t.c.Conn().TypeMap(), rr), lease: t.lease, ctx: ctx, sql: sql, inTx: true}, nil
}

func (t *tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, _ := t.Query(ctx, sql, args...)
	return row{rows: rows}
}

// SendBatch sends b within the transaction.
func (t *tx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	for _, q := range b.QueuedQueries {
		if err := t.pooledRefusal(q.SQL); err != nil {
			return pgx.FailedBatchResults(&pgx.Batch{}, err)
		}
		t.leftState = t.leftState || leavesSessionState(q.SQL)
	}
	return t.Tx.SendBatch(ctx, b)
}

// batchResults are the results of Handle.SendBatch; closing them ends the
// lease.
type batchResults struct {
	pgx.BatchResults
	lease
}

func (b *batchResults) Close() error {
	err := b.BatchResults.Close()
	b.release(err)
	return err
}
