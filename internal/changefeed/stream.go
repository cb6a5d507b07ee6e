package changefeed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Kind is what a Change did to a row.
type Kind uint8

// The kinds of change.
const (
	Insert Kind = iota + 1
	Update
	Delete
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Txn is the changes to the published tables of one committed source
// transaction, or of several consecutive ones (CatchUp batches them), in
// order.
type Txn struct {
	// CommitLSN is the position of the commit record, EndLSN the position
	// after it: what is acknowledged once the transaction is applied.
	CommitLSN, EndLSN pglogrepl.LSN
	CommitTime        time.Time
	Changes           []Change
}

// Change is one row's change. Its slices must not be modified: Columns is
// shared by the changes of a table.
type Change struct {
	// Table is the source table, its Key filled in from the catalog.
	Table Table
	Kind  Kind
	// Columns names the values of New, in table order as the server's
	// relation message lists them. Generated columns are not among them
	// (the target computes its own).
	Columns []string
	// New holds the row after an Insert or Update as text-format values;
	// nil is NULL. It is nil for a Delete.
	New [][]byte
	// Unchanged marks, per column, an unchanged TOASTed value the server
	// did not send (Update): the target's value is to be left as it is.
	// It is nil when every value was sent.
	Unchanged []bool
	// OldKey holds the values of the key columns (in Table.Key order)
	// identifying the row before the change: for a Delete, and for an
	// Update that changed the key. It is nil otherwise.
	OldKey [][]byte
}

// CatchUpStats counts what CatchUp delivered.
type CatchUpStats struct {
	// Transactions and Changes count what apply returned nil for;
	// transactions without changes to the published tables are not
	// delivered.
	Transactions, Changes int
	// LSN is the position confirmed to the server so far.
	LSN pglogrepl.LSN
}

// markerPrefix is the prefix of CatchUp's logical decoding messages.
const markerPrefix = "landlord.changefeed"

const (
	// statusInterval is how often the stream confirms its position to the
	// server when it has nothing else to say; well below the server's
	// wal_sender_timeout (60 s by default).
	statusInterval = 10 * time.Second
	// minStatusInterval bounds it from below for a server whose
	// wal_sender_timeout is very short.
	minStatusInterval = 100 * time.Millisecond
	// batchWait is how long a batch of committed transactions waits for
	// more that the server has sent already; batchTransactions and
	// batchChanges bound a batch.
	batchWait         = 2 * time.Millisecond
	batchTransactions = 1000
	batchChanges      = 10000
	// progressInterval is how often CatchUp calls its progress function.
	progressInterval = time.Second
	// endStreamTimeout bounds the graceful end of a stream: the server
	// finishes sending the transaction it is decoding first.
	endStreamTimeout = 10 * time.Second
)

// relation is what a stream's relation message said about a table.
type relation struct {
	name    TableName
	table   Table
	columns []string
	keyIdx  []int // index in columns of each key column
	err     error // why changes to it cannot be decoded
}

// CatchUp delivers, in commit order, every transaction committed before
// the call, calling apply once per batch of consecutive transactions (one
// Txn holding their changes in order, with the last one's positions; a
// batch is what the server has sent at once, up to a thousand
// transactions), so that the target commits once per batch: it emits a
// non-transactional logical decoding message with a fresh nonce as a
// marker (pg_logical_emit_message) and streams until the marker arrives.
// Transactions committed during the call may be delivered too. After
// apply returns nil for a batch, its last end LSN is acknowledged to the
// server, so that a later Resume starts after it.
//
// progress, which may be nil, is called about once a second with the
// counts so far. When apply fails, or anything else does, CatchUp returns
// the error and drops the stream: the next call (or Resume) delivers again
// every transaction not acknowledged. A truncate of a published table
// fails with ErrTruncate.
func (f *Feed) CatchUp(ctx context.Context, apply func(context.Context, Txn) error, progress func(CatchUpStats)) (CatchUpStats, error) {
	if f.closed {
		return CatchUpStats{}, ErrClosed
	}
	if apply == nil {
		return CatchUpStats{}, fmt.Errorf("catch up change feed %s: no apply function", f.cfg.Name)
	}
	f.wake()
	fail := func(stats CatchUpStats, err error) (CatchUpStats, error) {
		f.resetStream(ctx)
		return stats, fmt.Errorf("catch up change feed %s: %w", f.cfg.Name, err)
	}
	if err := f.startStreaming(ctx); err != nil {
		return fail(CatchUpStats{}, err)
	}
	if f.conn.IsClosed() {
		// Closed by the server while idle, say: the marker needs one.
		conn, err := pgx.ConnectConfig(ctx, f.cfg.Conn.Copy())
		if err != nil {
			return fail(CatchUpStats{}, fmt.Errorf("connect to the source: %w", err))
		}
		f.conn = conn
	}
	nonce := randomHex(16)
	// An xid makes the commit flush the WAL at once, marker included: the
	// walsender sends only flushed WAL.
	if _, err := f.conn.Exec(ctx, "SELECT pg_current_xact_id(), pg_logical_emit_message(false, $1::text, $2::text)",
		markerPrefix, nonce); err != nil {
		return fail(CatchUpStats{}, fmt.Errorf("emit the marker message: %w", err))
	}
	stats, err := f.stream(ctx, nonce, apply, progress)
	if err != nil {
		return fail(stats, err)
	}
	// The stream stays open for the next call, unread meanwhile.
	f.stopIdle = f.keepAlive()
	return stats, nil
}

// startStreaming opens the replication connection unless the feed has it,
// and starts streaming from the slot's confirmed position.
func (f *Feed) startStreaming(ctx context.Context) error {
	if f.streaming {
		return nil
	}
	args := []string{"proto_version '1'", "publication_names '" + f.cfg.Name + "'", "messages 'true'"}
	deadline := time.Now().Add(slotBusyWait)
	for {
		if f.repl == nil {
			if err := f.connectReplication(ctx); err != nil {
				return err
			}
		}
		err := pglogrepl.StartReplication(ctx, f.repl, f.cfg.Name, 0,
			pglogrepl.StartReplicationOptions{Mode: pglogrepl.LogicalReplication, PluginArgs: args})
		if err == nil {
			break
		}
		// The walsender of an earlier connection (a crashed process, a
		// Close moments ago) holds the slot until it notices the
		// disconnect.
		if !isCode(err, pgerrcode.ObjectInUse) || time.Now().After(deadline) {
			return fmt.Errorf("start replication: %w", err)
		}
		f.closeRepl(ctx)
		if err := sleep(ctx, pollInterval); err != nil {
			return fmt.Errorf("wait for the slot: %w", err)
		}
	}
	f.snapshotHeld = false
	f.streaming = true
	f.relations = make(map[uint32]*relation)
	f.mu.Lock()
	f.lastStatus = time.Now()
	f.mu.Unlock()
	return nil
}

// resetStream ends the stream after a failure and closes the replication
// connection, so that the next CatchUp starts again from the slot's
// confirmed position on a new one (a walsender does not stream a second
// time). It ends the stream gracefully when it can, so that the server has
// taken every acknowledgement sent.
func (f *Feed) resetStream(ctx context.Context) {
	if f.streaming && f.repl != nil && !f.repl.IsClosed() {
		_ = f.endStream(ctx)
	}
	f.closeRepl(ctx)
}

// endStream confirms the position and ends the stream (CopyDone), reading
// what the server sent meanwhile until it is back to taking commands: the
// walsender handles messages in order, so it has then taken the
// confirmation. Sending it and closing the connection right away could
// lose it, when the server's unread data makes the close reset the
// connection.
func (f *Feed) endStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endStreamTimeout)
	defer cancel()
	if err := f.sendStatus(); err != nil {
		return err
	}
	f.repl.Frontend().Send(&pgproto3.CopyDone{})
	if err := f.repl.Frontend().Flush(); err != nil {
		return fmt.Errorf("end the replication stream: %w", err)
	}
	for {
		msg, err := f.repl.ReceiveMessage(ctx)
		if err != nil {
			return fmt.Errorf("end the replication stream: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("end the replication stream: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.ReadyForQuery:
			f.streaming = false
			f.relations = nil
			return nil
		}
	}
}

func (f *Feed) closeRepl(ctx context.Context) {
	if f.repl != nil {
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), endStreamTimeout)
		_ = f.repl.Close(c)
		cancel()
		f.repl = nil
	}
	f.streaming = false
	f.snapshotHeld = false
	f.relations = nil
}

// stream reads the replication stream until the marker with nonce arrives.
func (f *Feed) stream(ctx context.Context, nonce string, apply func(context.Context, Txn) error, progress func(CatchUpStats)) (CatchUpStats, error) {
	var stats CatchUpStats
	var txn *Txn
	// batch holds committed transactions not applied yet, in commit
	// order, as one Txn: they are applied together when the stream has
	// nothing more at once, when the batch is full, or at a keepalive or
	// the marker, and acknowledged after that.
	var batch *Txn
	batched := 0
	flush := func() error {
		if batch == nil {
			return nil
		}
		b := *batch
		batch, batched = nil, 0
		if len(b.Changes) > 0 {
			if err := f.applyKeepingAlive(ctx, apply, b); err != nil {
				return fmt.Errorf("apply the transactions committed up to %s: %w", b.CommitLSN, err)
			}
		}
		f.advance(b.EndLSN)
		return f.sendStatus()
	}
	lastProgress := time.Now()
	report := func(force bool) {
		if progress != nil && (force || time.Since(lastProgress) >= progressInterval) {
			stats.LSN = f.confirmed()
			progress(stats)
			lastProgress = time.Now()
		}
	}
	for {
		f.mu.Lock()
		next := f.lastStatus.Add(f.statusInterval)
		f.mu.Unlock()
		if !time.Now().Before(next) {
			if err := f.sendStatus(); err != nil {
				return stats, err
			}
			continue
		}
		wait := next
		if batch != nil {
			// A batch waits only for what the server has already sent.
			if soon := time.Now().Add(batchWait); soon.Before(next) {
				wait = soon
			}
		}
		rctx, cancel := context.WithDeadline(ctx, wait)
		msg, err := f.repl.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && pgconn.Timeout(err) {
				if err := flush(); err != nil {
					return stats, err
				}
				report(false)
				continue
			}
			return stats, fmt.Errorf("receive from the replication stream: %w", err)
		}
		var data []byte
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			data = m.Data
		case *pgproto3.ErrorResponse:
			return stats, fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return stats, errors.New("the server ended the replication stream")
		default:
			continue
		}
		if len(data) == 0 {
			continue
		}
		switch data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
			if err != nil {
				return stats, fmt.Errorf("parse keepalive message: %w", err)
			}
			if err := flush(); err != nil {
				return stats, err
			}
			if txn == nil {
				// Every transaction that committed before the position
				// was sent, and applied.
				f.advance(pkm.ServerWALEnd)
			}
			if pkm.ReplyRequested {
				if err := f.sendStatus(); err != nil {
					return stats, err
				}
			}
			continue
		case pglogrepl.XLogDataByteID:
		default:
			continue
		}
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return stats, fmt.Errorf("parse WAL data message: %w", err)
		}
		lm, err := pglogrepl.Parse(xld.WALData)
		if err != nil {
			return stats, fmt.Errorf("parse pgoutput message at %s: %w", xld.WALStart, err)
		}
		switch lm := lm.(type) {
		case *pglogrepl.RelationMessage:
			f.relations[lm.RelationID] = f.newRelation(lm)
		case *pglogrepl.BeginMessage:
			if txn != nil {
				return stats, fmt.Errorf("transaction begins at %s inside the one committing at %s", lm.FinalLSN, txn.CommitLSN)
			}
			txn = &Txn{CommitLSN: lm.FinalLSN, CommitTime: lm.CommitTime}
		case *pglogrepl.InsertMessage:
			if err := f.add(txn, lm.RelationID, Insert, lm.Tuple, nil); err != nil {
				return stats, err
			}
		case *pglogrepl.UpdateMessage:
			if err := f.add(txn, lm.RelationID, Update, lm.NewTuple, lm.OldTuple); err != nil {
				return stats, err
			}
		case *pglogrepl.DeleteMessage:
			if err := f.add(txn, lm.RelationID, Delete, nil, lm.OldTuple); err != nil {
				return stats, err
			}
		case *pglogrepl.TruncateMessage:
			// What committed before it is applied first.
			if err := flush(); err != nil {
				return stats, err
			}
			var names []string
			for _, id := range lm.RelationIDs {
				if r := f.relations[id]; r != nil {
					names = append(names, r.name.String())
				} else {
					names = append(names, fmt.Sprintf("relation %d", id))
				}
			}
			return stats, fmt.Errorf("%w: %s at %s", ErrTruncate, strings.Join(names, ", "), xld.WALStart)
		case *pglogrepl.CommitMessage:
			if txn == nil {
				return stats, fmt.Errorf("commit at %s without a transaction", lm.CommitLSN)
			}
			txn.CommitLSN, txn.EndLSN, txn.CommitTime = lm.CommitLSN, lm.TransactionEndLSN, lm.CommitTime
			if len(txn.Changes) > 0 {
				stats.Transactions++
				stats.Changes += len(txn.Changes)
			}
			if batch == nil {
				batch = txn
			} else {
				batch.Changes = append(batch.Changes, txn.Changes...)
				batch.CommitLSN, batch.EndLSN, batch.CommitTime = txn.CommitLSN, txn.EndLSN, txn.CommitTime
			}
			batched++
			txn = nil
			if batched >= batchTransactions || len(batch.Changes) >= batchChanges {
				if err := flush(); err != nil {
					return stats, err
				}
			}
			report(false)
		case *pglogrepl.LogicalDecodingMessage:
			if lm.Transactional || lm.Prefix != markerPrefix || string(lm.Content) != nonce {
				continue
			}
			if err := flush(); err != nil {
				return stats, err
			}
			if txn == nil {
				f.advance(lm.LSN)
			}
			if err := f.sendStatus(); err != nil {
				return stats, err
			}
			stats.LSN = f.confirmed()
			report(true)
			return stats, nil
		case *pglogrepl.TypeMessage, *pglogrepl.OriginMessage:
		default:
			return stats, fmt.Errorf("unexpected pgoutput message %s at %s", lm.Type(), xld.WALStart)
		}
	}
}

// applyKeepingAlive runs apply while the stream is kept alive.
func (f *Feed) applyKeepingAlive(ctx context.Context, apply func(context.Context, Txn) error, txn Txn) error {
	stop := f.keepAlive()
	defer stop()
	return apply(ctx, txn)
}

// keepAlive starts a goroutine that confirms the position to the server
// every status interval while nothing reads the stream (apply runs, or
// CatchUp is not), so that the walsender does not time out; stop ends it.
func (f *Feed) keepAlive() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	interval := f.statusInterval
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval / 4)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				f.mu.Lock()
				if time.Since(f.lastStatus) >= interval {
					_ = f.sendStatusLocked()
				}
				f.mu.Unlock()
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// wake stops the keep-alive that runs between CatchUps.
func (f *Feed) wake() {
	if f.stopIdle != nil {
		f.stopIdle()
		f.stopIdle = nil
	}
}

// advance moves the position to confirm forward to lsn.
func (f *Feed) advance(lsn pglogrepl.LSN) {
	f.mu.Lock()
	if lsn > f.flushed {
		f.flushed = lsn
	}
	f.mu.Unlock()
}

func (f *Feed) confirmed() pglogrepl.LSN {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flushed
}

// sendStatus confirms the position to the server (a standby status
// update). Before anything was received it confirms nothing (0), which
// the server ignores but takes as a sign of life.
func (f *Feed) sendStatus() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sendStatusLocked()
}

func (f *Feed) sendStatusLocked() error {
	if f.repl == nil {
		return nil
	}
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), f.repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: f.flushed, WALFlushPosition: f.flushed, WALApplyPosition: f.flushed,
	})
	if err != nil {
		return fmt.Errorf("send standby status update: %w", err)
	}
	f.lastStatus = time.Now()
	return nil
}

func (f *Feed) newRelation(m *pglogrepl.RelationMessage) *relation {
	r := &relation{name: TableName{m.Namespace, m.RelationName}}
	for _, c := range m.Columns {
		r.columns = append(r.columns, c.Name)
	}
	var ok bool
	if r.table, ok = f.tables[r.name]; !ok {
		r.err = fmt.Errorf("change of %s, which is not a configured table", r.name)
		return r
	}
	for _, k := range r.table.Key {
		i := -1
		for j, c := range r.columns {
			if c == k {
				i = j
				break
			}
		}
		if i < 0 {
			r.err = fmt.Errorf("%s: key column %s is not among the published columns %q", r.name, k, r.columns)
			return r
		}
		r.keyIdx = append(r.keyIdx, i)
	}
	return r
}

// add decodes one row change into txn.
func (f *Feed) add(txn *Txn, relID uint32, kind Kind, newTup, oldTup *pglogrepl.TupleData) error {
	if txn == nil {
		return fmt.Errorf("%s outside a transaction", kind)
	}
	r := f.relations[relID]
	if r == nil {
		return fmt.Errorf("%s of relation %d, which the stream did not describe", kind, relID)
	}
	if r.err != nil {
		return r.err
	}
	c, err := r.change(kind, newTup, oldTup)
	if err != nil {
		return fmt.Errorf("%s of %s in the transaction committing at %s: %w", kind, r.name, txn.CommitLSN, err)
	}
	txn.Changes = append(txn.Changes, c)
	return nil
}

func (r *relation) change(kind Kind, newTup, oldTup *pglogrepl.TupleData) (Change, error) {
	c := Change{Table: r.table, Kind: kind, Columns: r.columns}
	if kind != Delete {
		if newTup == nil || len(newTup.Columns) != len(r.columns) {
			return c, fmt.Errorf("new row does not have the relation's %d columns", len(r.columns))
		}
		c.New = make([][]byte, len(r.columns))
		for i, col := range newTup.Columns {
			switch col.DataType {
			case pglogrepl.TupleDataTypeText:
				c.New[i] = col.Data
			case pglogrepl.TupleDataTypeNull:
			case pglogrepl.TupleDataTypeToast:
				if kind == Insert {
					// An update that moved a row into a row filter comes
					// as an insert, without the TOASTed values it kept.
					return c, fmt.Errorf("column %s: an insert without its TOASTed value (a row moved into the tenant by an update) cannot be applied", r.columns[i])
				}
				if c.Unchanged == nil {
					c.Unchanged = make([]bool, len(r.columns))
				}
				c.Unchanged[i] = true
			default:
				return c, fmt.Errorf("column %s: value of type %q", r.columns[i], col.DataType)
			}
		}
	}
	if oldTup != nil {
		if len(oldTup.Columns) != len(r.columns) {
			return c, fmt.Errorf("old row does not have the relation's %d columns", len(r.columns))
		}
		c.OldKey = make([][]byte, len(r.keyIdx))
		for j, i := range r.keyIdx {
			col := oldTup.Columns[i]
			if col.DataType != pglogrepl.TupleDataTypeText {
				return c, fmt.Errorf("old row: key column %s not sent (type %q)", r.columns[i], col.DataType)
			}
			c.OldKey[j] = col.Data
		}
	} else if kind == Delete {
		return c, errors.New("no old key")
	}
	if kind == Delete {
		return c, nil
	}
	for j, i := range r.keyIdx {
		if c.Unchanged != nil && c.Unchanged[i] {
			// A key value stored out of line and left as it was.
			if c.OldKey == nil {
				return c, fmt.Errorf("key column %s unchanged and not sent", r.columns[i])
			}
			c.New[i], c.Unchanged[i] = c.OldKey[j], false
		}
		if c.New[i] == nil {
			return c, fmt.Errorf("key column %s is NULL", r.columns[i])
		}
	}
	if c.Unchanged != nil && !slices.Contains(c.Unchanged, true) {
		c.Unchanged = nil
	}
	if c.OldKey != nil {
		same := true
		for j, i := range r.keyIdx {
			same = same && bytes.Equal(c.OldKey[j], c.New[i])
		}
		if same {
			c.OldKey = nil
		}
	}
	if kind == Insert {
		c.OldKey = nil
	}
	return c, nil
}
