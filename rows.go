package landlord

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/landlordhq/landlord/pool"
)

// tenantRows reads the result of a statement sent by start on the lean path.
// Closing it reads the rest of the round trip and returns the connection.
type tenantRows struct {
	pgx.Rows
	mrr       *pgconn.MultiResultReader
	l         *Landlord
	o         obs
	r         *route
	c         *pool.Conn
	leftState bool
	ctx       context.Context
	sql       string
	inTx      bool // inside a Tx: the transaction owns the connection
	err       error
	closed    bool
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
	if r.mrr != nil {
		if err := r.mrr.Close(); r.err == nil {
			r.err = err
		}
	}
	if r.err != nil {
		forget(r.ctx, r.c, r.r, r.sql, r.err)
	}
	if !r.inTx {
		r.l.finish(r.c, r.leftState)
		r.o.end(r.err)
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

// batchRows reads the result of a statement sent by start through a pgx
// batch.
type batchRows struct {
	pgx.Rows
	br        pgx.BatchResults
	l         *Landlord
	o         obs
	c         *pool.Conn
	leftState bool
	err       error
	closed    bool
}

func (r *batchRows) Next() bool {
	if r.closed {
		return false
	}
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = r.Rows.Err()
	if err := r.br.Close(); r.err == nil {
		r.err = err
	}
	r.l.finish(r.c, r.leftState)
	r.o.end(r.err)
}

func (r *batchRows) Err() error {
	if r.closed {
		return r.err
	}
	return r.Rows.Err()
}

func (r *batchRows) Conn() *pgx.Conn { return nil }

// row is pgx.Row over any Rows, with pgx's QueryRow semantics.
type row struct{ rows pgx.Rows }

func (r row) Scan(dest ...any) error {
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
