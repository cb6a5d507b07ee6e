package landlord

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// tx is a pgx transaction begun by a Handle. It returns its connection to
// the pool when it ends.
type tx struct {
	pgx.Tx
	c    *pgxpool.Conn
	done bool
}

func (t *tx) Commit(ctx context.Context) error {
	err := t.Tx.Commit(ctx)
	t.release()
	return err
}

func (t *tx) Rollback(ctx context.Context) error {
	err := t.Tx.Rollback(ctx)
	t.release()
	return err
}

// release gives the connection back once. pgxpool destroys it instead if the
// transaction could not be ended (THREATS I06).
func (t *tx) release() {
	if !t.done {
		t.done = true
		t.c.Release()
	}
}

// Conn returns nil: the connection belongs to the pool, and using it outside
// the transaction would run without the tenant context.
func (t *tx) Conn() *pgx.Conn { return nil }

// batchResults are the results of Handle.SendBatch; closing them returns the
// connection.
type batchResults struct {
	pgx.BatchResults
	c      *pgxpool.Conn
	closed bool
}

func (b *batchResults) Close() error {
	err := b.BatchResults.Close()
	if !b.closed {
		b.closed = true
		b.c.Release()
	}
	return err
}
