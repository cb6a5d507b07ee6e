package traffic

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/pool"
	"github.com/landlordhq/landlord/tenant"
)

// Handle runs SQL as the tenant in the context, or as the tenant it is
// fixed to. See landlord.Handle for its contract.
type Handle struct {
	t     *Traffic
	fixed tenant.ID // set for an admin scope: ignore the context's tenant
	admin bool      // set for an admin scope: suspended tenants are reachable
}

// route returns the route of the handle's tenant, or the typed error that
// forbids its traffic. It sends no SQL when ctx carries no tenant.
func (h *Handle) route(ctx context.Context) (*route, error) {
	id, ok := h.tenantOf(ctx)
	if !ok {
		return nil, tenant.ErrNoTenant
	}
	r, err := h.t.routes.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.err != nil && !(h.admin && r.adminOK) {
		return nil, r.err
	}
	return r, nil
}

// tenantOf returns the tenant the handle serves in ctx.
func (h *Handle) tenantOf(ctx context.Context) (tenant.ID, bool) {
	if !h.fixed.IsZero() {
		return h.fixed, true
	}
	return tenant.FromContext(ctx)
}

// sent is a statement on its way, its tenant context accepted: exactly one
// of mrr (the lean path) and br (the pgx batch path) holds its result.
type sent struct {
	mrr *pgconn.MultiResultReader
	br  pgx.BatchResults
}

// send leases a connection and sends the enter statement and sql on it in
// one round trip.
func (h *Handle) send(ctx context.Context, sql string, args []any) (lease, sent, error) {
	args, err := handleOptions(args)
	if err != nil {
		return lease{}, sent{}, err
	}
	if err := refuse(sql); err != nil {
		return lease{}, sent{}, err
	}
	var s sent
	ls, err := h.open(ctx, leavesSessionState(sql), func(r *route, c *pool.Conn) error {
		var err error
		s, err = start(ctx, r, c, sql, args)
		if err != nil && !refused(err) {
			forget(ctx, c, r, sql, err)
		}
		return err
	})
	return ls, s, err
}

var eqbPool = sync.Pool{New: func() any { return new(pgx.ExtendedQueryBuilder) }}

// start sends r's enter statement and sql in one round trip on c and reads
// the enter statement's result. It is the hot path: with sql prepared on c
// already, it is one write and one read.
//
// It takes the lean route through pgconn (prepared statements, no batch
// bookkeeping) when the arguments are plain values; a QueryRewriter such as
// pgx.NamedArgs, which pgx interprets itself, goes through a pgx batch,
// which costs a little more client CPU and the same round trips.
func start(ctx context.Context, r *route, c *pool.Conn, sql string, args []any) (sent, error) {
	conn := c.Conn()
	if r.pooled || !plainArgs(args) {
		b := &pgx.Batch{}
		if err := r.queueEnter(ctx, conn, b); err != nil {
			return sent{}, err
		}
		b.Queue(sql, args...)
		br := conn.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			br.Close()
			return sent{}, err
		}
		return sent{br: br}, nil
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
	b.ExecStatement(enter, r.enterParams().raw, nil, nil)
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
	return sent{mrr: mrr}, nil
}

func closeErr(mrr *pgconn.MultiResultReader) error {
	if err := mrr.Close(); err != nil {
		return err
	}
	return errors.New("landlord: server sent fewer results than statements")
}

// queueEnter queues r's enter statement on b, which goes to conn. A
// statement that the connection did not prepare when it opened (one that
// sets a tenant's settings) is prepared first, once per connection.
func (r *route) queueEnter(ctx context.Context, conn *pgx.Conn, b *pgx.Batch) error {
	if !r.pooled {
		if _, err := conn.Prepare(ctx, r.enter.name, r.enter.sql); err != nil {
			return err
		}
	}
	b.Queue(r.enter.name, r.enterParams().any...)
	return nil
}

// handleOptions drops the pgx.QueryExecMode options that lead args: the
// handle decides how a statement is sent (prepared, in one round trip with
// the enter statement; as a plain execution behind a pooler), so a mode
// chosen for a bare pgx connection, such as the simple protocol for a
// pooler, changes nothing here. Result-format options are refused with
// ErrResultFormats: a statement sent with its enter statement cannot take
// them. A QueryRewriter (pgx.NamedArgs) stays.
func handleOptions(args []any) ([]any, error) {
	for len(args) > 0 {
		switch args[0].(type) {
		case pgx.QueryExecMode:
			args = args[1:]
			continue
		case pgx.QueryResultFormats, pgx.QueryResultFormatsByOID:
			return nil, ErrResultFormats
		}
		break
	}
	return args, nil
}

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
	if !stale(err) || c.Conn().IsClosed() {
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
//
// A statement that a move's fence refused at the tenant's old placement ran
// nothing: it waits for the move to flip (Config.MoveWait) and goes again
// at the new placement.
func (h *Handle) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var deadline time.Time
	for {
		tag, err := h.exec(ctx, sql, args)
		again, err := h.afterFence(ctx, &deadline, err)
		if !again {
			return tag, err
		}
	}
}

// afterFence reports whether a call that met err goes again: when a
// move's fence refused it, once its move has flipped (or, until
// Config.MoveWait from the first wait, to look again). A call that stops
// gets err, made to match tenant.ErrMoving when the fence refused it.
func (h *Handle) afterFence(ctx context.Context, deadline *time.Time, err error) (bool, error) {
	if !fenced(err) {
		return false, err
	}
	if h.waitMove(ctx, deadline) {
		return true, nil
	}
	id, _ := h.tenantOf(ctx)
	return false, movingErr(id, err)
}

func (h *Handle) exec(ctx context.Context, sql string, args []any) (pgconn.CommandTag, error) {
	ls, s, err := h.send(ctx, sql, args)
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
			forget(ctx, ls.c, ls.r, sql, err)
		}
	}
	ls.release(err)
	return tag, err
}

// Query runs sql as the tenant in ctx. The connection goes back to the pool
// when the rows are closed (pgx.CollectRows and friends close them).
func (h *Handle) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	ls, s, err := h.send(ctx, sql, args)
	if err != nil {
		return errRows(err), err
	}
	if s.br != nil {
		rows, err := s.br.Query()
		tr := &tenantRows{Rows: rows, br: s.br, lease: ls, ctx: ctx, sql: sql}
		if err != nil {
			// As with pgx, a Query that fails returns closed rows: callers
			// need not close them.
			tr.Close()
			return errRows(err), err
		}
		return tr, nil
	}
	return &tenantRows{
		Rows:  pgx.RowsFromResultReader(ls.c.Conn().TypeMap(), s.mrr.ResultReader()),
		mrr:   s.mrr,
		lease: ls, ctx: ctx, sql: sql,
	}, nil
}

// QueryRow runs sql as the tenant in ctx and returns its first row. Errors
// are deferred to Scan, as with pgx.
//
// A row that a move's fence refused goes again as Exec does: nothing of it
// reached the caller.
func (h *Handle) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, _ := h.Query(ctx, sql, args...)
	return row{rows: rows, h: h, ctx: ctx, sql: sql, args: args}
}

// BeginTx starts a transaction as the tenant in ctx. BEGIN and the tenant
// context go in one round trip; the context lasts until the transaction
// ends, and the connection returns to the pool on Commit or Rollback.
func (h *Handle) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	var ptx pgx.Tx
	ls, err := h.open(ctx, false, func(r *route, c *pool.Conn) error {
		b := &pgx.Batch{}
		b.BeginTx(opts)
		if err := r.queueEnter(ctx, c.Conn(), b); err != nil {
			return err
		}
		br := c.Conn().SendBatch(ctx, b)
		_, err := br.Exec()
		if err == nil {
			_, err = br.Exec()
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		ptx = br.Tx()
		return err
	})
	if err != nil {
		return nil, err
	}
	return &tx{Tx: ptx, lease: ls}, nil
}

// SendBatch runs the queries of b as the tenant in ctx, in one implicit
// transaction with the tenant context first. A batch that begins its own
// transaction is refused with ErrBatchTx.
func (h *Handle) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if pgx.FailedBatchResults(b, ErrBatchTx).Tx() != nil {
		return pgx.FailedBatchResults(&pgx.Batch{}, ErrBatchTx)
	}
	left := false
	for _, q := range b.QueuedQueries {
		if err := refuse(q.SQL); err != nil {
			return pgx.FailedBatchResults(&pgx.Batch{}, err)
		}
		left = left || leavesSessionState(q.SQL)
	}
	var br pgx.BatchResults
	ls, err := h.open(ctx, left, func(r *route, c *pool.Conn) error {
		nb := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(b.QueuedQueries)+1)}
		if err := r.queueEnter(ctx, c.Conn(), nb); err != nil {
			return err
		}
		nb.QueuedQueries = append(nb.QueuedQueries, b.QueuedQueries...)
		br = c.Conn().SendBatch(ctx, nb)
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return pgx.FailedBatchResults(&pgx.Batch{}, err)
	}
	return &batchResults{BatchResults: br, lease: ls}
}
