package traffic

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// tenantRows reads the result of a statement sent by start: on the lean
// path from mrr, through a pgx batch from br (one of the two is set), or,
// inside a transaction, from the transaction's connection. Closing it reads
// the rest of the round trip and gives the connection back.
type tenantRows struct {
	pgx.Rows
	mrr *pgconn.MultiResultReader
	br  pgx.BatchResults
	// lease is the call's; inside a transaction it is a copy of the
	// transaction's, which owns the connection and releases it.
	lease  lease
	ctx    context.Context
	sql    string
	inTx   bool
	err    error
	closed bool
}

func (r *tenantRows) Next() bool {
	if r.closed {
		return false
	}
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *tenantRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = r.Rows.Err()
	var rest error
	switch {
	case r.mrr != nil:
		rest = r.mrr.Close()
	case r.br != nil:
		rest = r.br.Close()
	}
	if r.err == nil {
		r.err = rest
	}
	if r.lease.r != nil {
		r.err = movingErr(r.lease.r.t.ID, r.err)
	}
	if r.err != nil && r.br == nil {
		// pgx's batch path invalidates its own statement cache.
		forget(r.ctx, r.lease.c, r.lease.r, r.sql, r.err)
	}
	if !r.inTx {
		r.lease.release(r.err)
	}
}

func (r *tenantRows) Err() error {
	if r.closed {
		return r.err
	}
	return r.Rows.Err()
}

// Conn returns nil: the connection belongs to the pool, not to the caller.
func (r *tenantRows) Conn() *pgx.Conn { return nil }

// row is pgx.Row over any Rows, with pgx's QueryRow semantics. With h
// set (Handle.QueryRow), a row that a move's fence refused is queried
// again as h.Exec goes again.
type row struct {
	rows pgx.Rows
	h    *Handle
	ctx  context.Context
	sql  string
	args []any
}

func (r row) Scan(dest ...any) error {
	if r.h == nil {
		return r.scan(dest...)
	}
	var deadline time.Time
	for {
		again, err := r.h.afterFence(r.ctx, &deadline, r.scan(dest...))
		if !again {
			return err
		}
		r.rows, _ = r.h.Query(r.ctx, r.sql, r.args...)
	}
}

func (r row) scan(dest ...any) error {
	defer r.rows.Close()
	if err := r.rows.Err(); err != nil {
		return err
	}
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// errRows is the Rows of a call that failed before it reached the server.
func errRows(err error) pgx.Rows { return &failedRows{err: err} }

type failedRows struct{ err error }

func (r *failedRows) Close()                                       {}
func (r *failedRows) Err() error                                   { return r.err }
func (r *failedRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (r *failedRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (r *failedRows) Next() bool                                   { return false }
func (r *failedRows) Scan(...any) error                            { return r.err }
func (r *failedRows) Values() ([]any, error)                       { return nil, r.err }
func (r *failedRows) RawValues() [][]byte                          { return nil }
func (r *failedRows) Conn() *pgx.Conn                              { return nil }
func (r *failedRows) TypeMap() *pgtype.Map                         { return nil }
