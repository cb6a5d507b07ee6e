package landlord

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/pool"
	"github.com/landlordhq/landlord/tenant"
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
// COPY FROM is not offered: PostgreSQL refuses it on tables with row-level
// security. Use a batch of INSERTs or INSERT ... SELECT FROM unnest($1).
type Handle struct {
	l     *Landlord
	fixed tenant.ID // set by Admin.Tenant: ignore the context's tenant
	admin bool      // set by Admin.Tenant: suspended tenants are reachable
}

// Handle returns the tenant handle.
func (l *Landlord) Handle() *Handle { return &Handle{l: l} }

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

// acquire routes ctx and acquires a connection for it.
func (h *Handle) acquire(ctx context.Context) (*route, *pool.Conn, error) {
	r, err := h.l.route(ctx, h.fixed, h.admin)
	if err != nil {
		return nil, nil, err
	}
	c, err := h.l.conns.Acquire(ctx, pool.Key{Target: r.target, Tenant: r.t.ID, OwnTables: r.t.Model == tenant.ModelSchema})
	if err != nil {
		return nil, nil, err
	}
	return r, c, nil
}

// refused reports whether err is an enter statement refusing a connection
// that carries session state. Nothing of the round trip ran after it.
func refused(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42704" && strings.Contains(pgErr.Message, refusedSetting)
}

// replaceRefused closes a connection whose enter statement refused it (a
// session-level role was left on it), counts and logs it; the caller
// retries on another connection.
func (l *Landlord) replaceRefused(c *pool.Conn) {
	l.countReplaced()
	l.cfg.Logger.Warn("replaced a connection that carried a session-level role set by SQL out of sight (a function calling set_config('role', ..., false))")
	c.Discard()
}

// sent is a statement on its way, its tenant context accepted: exactly one
// of mrr (the lean path) and br (the pgx batch path) holds its result.
type sent struct {
	r *route
	o obs
	c *pool.Conn
	// leftState: sql may leave session state; the connection is closed
	// after the call.
	leftState bool
	mrr       *pgconn.MultiResultReader
	br        pgx.BatchResults
}

// send routes ctx, acquires a connection and sends the enter statement and
// sql in one round trip. A connection refused for leftover session state is
// destroyed and the call goes again on another: nothing of it ran.
func (h *Handle) send(ctx context.Context, sql string, args []any) (sent, error) {
	left := leavesSessionState(sql)
	for attempt := 0; ; attempt++ {
		r, c, err := h.acquire(ctx)
		if err != nil {
			return sent{}, err
		}
		o := h.l.begin(r)
		if r.pooled && left {
			c.Release()
			o.end(ErrSessionState)
			return sent{}, ErrSessionState
		}
		s, err := start(ctx, r, c, sql, args)
		if err == nil {
			s.o = o
			s.leftState = left
			return s, nil
		}
		if refused(err) && attempt < 2 {
			h.l.replaceRefused(c)
			continue
		}
		forget(ctx, c, r, sql, err)
		c.Release()
		o.end(err)
		return sent{}, err
	}
}

var eqbPool = sync.Pool{New: func() any { return new(pgx.ExtendedQueryBuilder) }}

// start sends r's enter statement and sql in one round trip on c and reads
// the enter statement's result. It is the hot path: with sql prepared on c
// already, it is one write and one read.
//
// It takes the lean route through pgconn (prepared statements, no batch
// bookkeeping) when the arguments are plain values; anything pgx interprets
// itself (a QueryRewriter such as pgx.NamedArgs, a result-format option) goes
// through a pgx batch, which costs a little more client CPU and the same
// round trips.
func start(ctx context.Context, r *route, c *pool.Conn, sql string, args []any) (sent, error) {
	conn := c.Conn()
	if r.pooled || !plainArgs(args) {
		b := &pgx.Batch{}
		r.queueEnter(b)
		b.Queue(sql, args...)
		br := conn.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			br.Close()
			return sent{}, err
		}
		return sent{r: r, c: c, br: br}, nil
	}
	enter, err := conn.Prepare(ctx, r.enter.name, r.enter.sql)
	if err != nil {
		return sent{}, err
	}
	var sd *pgconn.StatementDescription
	if r.t.Model == tenant.ModelSchema {
		sd, err = prepareInSchema(ctx, conn.PgConn(), r, enter, sql, false)
	} else {
		sd, err = conn.Prepare(ctx, sql, sql)
	}
	if err != nil {
		return sent{}, err
	}
	eqb := eqbPool.Get().(*pgx.ExtendedQueryBuilder)
	defer eqbPool.Put(eqb)
	if err := eqb.Build(conn.TypeMap(), sd, args); err != nil {
		return sent{}, err
	}
	var b pgconn.Batch
	b.ExecStatement(enter, r.enterArgs, nil, nil)
	b.ExecStatement(sd, eqb.ParamValues, eqb.ParamFormats, eqb.ResultFormats)
	mrr := conn.PgConn().ExecBatch(ctx, &b)
	if !mrr.NextResult() {
		return sent{}, closeErr(mrr)
	}
	if _, err := mrr.ResultReader().Close(); err != nil {
		mrr.Close()
		return sent{}, err
	}
	if !mrr.NextResult() {
		return sent{}, closeErr(mrr)
	}
	return sent{r: r, c: c, mrr: mrr}, nil
}

func closeErr(mrr *pgconn.MultiResultReader) error {
	if err := mrr.Close(); err != nil {
		return err
	}
	return errors.New("landlord: server sent fewer results than statements")
}

// queueEnter queues r's enter statement on b.
func (r *route) queueEnter(b *pgx.Batch) { b.Queue(r.enter.name, r.enterAny...) }

// plainArgs reports whether args holds only values, none of the option types
// pgx interprets when they come first.
func plainArgs(args []any) bool {
	if len(args) == 0 {
		return true
	}
	switch args[0].(type) {
	case pgx.QueryRewriter, pgx.QueryResultFormats, pgx.QueryResultFormatsByOID, pgx.QueryExecMode:
		return false
	}
	return true
}

// forget drops a prepared statement that the server says is stale (its
// result type changed after a migration), so the next call prepares it anew.
func forget(ctx context.Context, c *pool.Conn, r *route, sql string, err error) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || (pgErr.Code != "0A000" && pgErr.Code != "26000") || c.Conn().IsClosed() {
		return
	}
	if r.t.Model == tenant.ModelSchema {
		k := stmtKey{r.t.Schema, sql}
		stmtsOf(c.Conn().PgConn()).forget(k)
		_ = c.Conn().PgConn().Deallocate(ctx, stmtName(k))
		return
	}
	_ = c.Conn().Deallocate(ctx, sql)
}

// Exec runs sql as the tenant in ctx.
func (h *Handle) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	s, err := h.send(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	var tag pgconn.CommandTag
	if s.br != nil {
		tag, err = s.br.Exec()
		if cerr := s.br.Close(); err == nil {
			err = cerr
		}
	} else {
		tag, err = s.mrr.ResultReader().Close()
		if cerr := s.mrr.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			forget(ctx, s.c, s.r, sql, err)
		}
	}
	h.l.finish(s.c, s.leftState)
	s.o.end(err)
	return tag, err
}

// Query runs sql as the tenant in ctx. The connection goes back to the pool
// when the rows are closed (pgx.CollectRows and friends close them).
func (h *Handle) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	s, err := h.send(ctx, sql, args)
	if err != nil {
		return errRows(err), err
	}
	if s.br != nil {
		rows, err := s.br.Query()
		br := &tenantRows{Rows: rows, br: s.br, l: h.l, o: s.o, r: s.r, c: s.c, leftState: s.leftState, ctx: ctx, sql: sql}
		if err != nil {
			// As with pgx, a Query that fails returns closed rows: callers
			// need not close them.
			br.Close()
			return errRows(err), err
		}
		return br, nil
	}
	return &tenantRows{
		Rows: pgx.RowsFromResultReader(s.c.Conn().TypeMap(), s.mrr.ResultReader()),
		mrr:  s.mrr, l: h.l, o: s.o, r: s.r, c: s.c, leftState: s.leftState, ctx: ctx, sql: sql,
	}, nil
}

// QueryRow runs sql as the tenant in ctx and returns its first row. Errors
// are deferred to Scan, as with pgx.
func (h *Handle) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, _ := h.Query(ctx, sql, args...)
	return row{rows}
}

// Begin starts a transaction as the tenant in ctx.
func (h *Handle) Begin(ctx context.Context) (pgx.Tx, error) {
	return h.BeginTx(ctx, pgx.TxOptions{})
}

// BeginTx starts a transaction as the tenant in ctx. BEGIN and the tenant
// context go in one round trip; the context lasts until the transaction
// ends, and the connection returns to the pool on Commit or Rollback.
func (h *Handle) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	for attempt := 0; ; attempt++ {
		r, c, err := h.acquire(ctx)
		if err != nil {
			return nil, err
		}
		b := &pgx.Batch{}
		b.BeginTx(opts)
		r.queueEnter(b)
		br := c.Conn().SendBatch(ctx, b)
		_, err = br.Exec()
		if err == nil {
			_, err = br.Exec()
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			return &tx{Tx: br.Tx(), l: h.l, o: h.l.begin(r), r: r, c: c}, nil
		}
		if refused(err) && attempt < 2 {
			h.l.replaceRefused(c)
			continue
		}
		c.Release() // the pool destroys a connection left in a transaction
		return nil, err
	}
}

// SendBatch runs the queries of b as the tenant in ctx, in one implicit
// transaction with the tenant context first. A batch that begins its own
// transaction is refused with ErrBatchTx; use BeginTx and Tx.SendBatch.
func (h *Handle) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if pgx.FailedBatchResults(b, ErrBatchTx).Tx() != nil {
		return pgx.FailedBatchResults(&pgx.Batch{}, ErrBatchTx)
	}
	left := false
	for _, q := range b.QueuedQueries {
		left = left || leavesSessionState(q.SQL)
	}
	for attempt := 0; ; attempt++ {
		r, c, err := h.acquire(ctx)
		if err != nil {
			return pgx.FailedBatchResults(&pgx.Batch{}, err)
		}
		if r.pooled && left {
			c.Release()
			return pgx.FailedBatchResults(&pgx.Batch{}, ErrSessionState)
		}
		nb := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(b.QueuedQueries)+1)}
		r.queueEnter(nb)
		nb.QueuedQueries = append(nb.QueuedQueries, b.QueuedQueries...)
		br := c.Conn().SendBatch(ctx, nb)
		if _, err := br.Exec(); err != nil {
			br.Close()
			if refused(err) && attempt < 2 {
				h.l.replaceRefused(c)
				continue
			}
			c.Release()
			return pgx.FailedBatchResults(&pgx.Batch{}, err)
		}
		return &batchResults{BatchResults: br, l: h.l, o: h.l.begin(r), c: c, leftState: left}
	}
}
