package changefeed

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/internal/ident"
)

// Applier writes Txns into target tables. Each target has the source
// table's columns (by name; it may have more, which keep their defaults)
// and the same primary key. It is safe for concurrent use, and must not be
// copied after first use.
//
// Writes are idempotent: inserts and updates are upserts of the full row,
// deletes remove the key if it is there, so applying again transactions
// that were applied already converges to the same rows. An update whose
// TOASTed values were not sent (Change.Unchanged) updates the row in place
// and leaves them. Targets should have no triggers or foreign keys that
// act on the rows (an update of the key is a delete and an insert).
type Applier struct {
	// Target maps each source table to its target table.
	Target map[TableName]TableName

	mu       sync.Mutex
	identity map[TableName]map[string]bool // per target: GENERATED ALWAYS identity columns
	stmts    map[string][]*statement       // by shape of change
}

// applyBatchSize is how many statements go to the server in one pipeline.
const applyBatchSize = 1000

// statement is an SQL statement and where each of its parameters comes
// from.
type statement struct {
	sql  string
	args []argRef
}

// argRef names a parameter's value: a column of Change.New, or a value of
// Change.OldKey.
type argRef struct {
	old bool
	i   int
}

// Apply writes the changes of t inside tx, a transaction on the target
// database, in order and pipelined: Insert and Update as INSERT ...
// OVERRIDING SYSTEM VALUE ... ON CONFLICT (key) DO UPDATE (an Update whose
// key changed deletes the old key first), Delete as DELETE by the old key.
// Values are sent as text-format parameters of unknown type, which the
// server parses with its column's input function, so every type
// round-trips exactly. A GENERATED ALWAYS identity column outside the key
// is set on insert and left as it is on update (the server refuses to
// update it). After an error, roll tx back.
func (a *Applier) Apply(ctx context.Context, tx pgx.Tx, t Txn) error {
	pg := tx.Conn().PgConn()
	batch := &pgconn.Batch{}
	var origin []int // per statement queued: index of its change
	flush := func() error {
		if len(origin) == 0 {
			return nil
		}
		results, err := pg.ExecBatch(ctx, batch).ReadAll()
		for i, r := range results {
			if r.Err != nil {
				c := t.Changes[origin[i]]
				return fmt.Errorf("apply %s of %s (change %d of the transaction committed at %s): %w",
					c.Kind, c.Table.TableName(), origin[i]+1, t.CommitLSN, r.Err)
			}
		}
		if err != nil {
			return fmt.Errorf("apply the transaction committed at %s: %w", t.CommitLSN, err)
		}
		batch, origin = &pgconn.Batch{}, origin[:0]
		return nil
	}
	for i := range t.Changes {
		c := &t.Changes[i]
		stmts, err := a.statements(ctx, tx, c)
		if err != nil {
			return err
		}
		for _, s := range stmts {
			params := make([][]byte, len(s.args))
			for j, ref := range s.args {
				if ref.old {
					params[j] = c.OldKey[ref.i]
				} else {
					params[j] = c.New[ref.i]
				}
			}
			// Prepared once per connection (pgx keeps them by text): the
			// server then parses and plans each shape of change once.
			sd, err := tx.Conn().Prepare(ctx, s.sql, s.sql)
			if err != nil {
				return fmt.Errorf("apply %s of %s: prepare: %w", c.Kind, c.Table.TableName(), err)
			}
			batch.ExecPrepared(sd.Name, params, nil, nil)
			origin = append(origin, i)
		}
		if len(origin) >= applyBatchSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// statements returns the statements that apply c.
func (a *Applier) statements(ctx context.Context, tx pgx.Tx, c *Change) ([]*statement, error) {
	src := c.Table.TableName()
	target, ok := a.Target[src]
	if !ok {
		return nil, fmt.Errorf("apply %s of %s: no target table for it", c.Kind, src)
	}
	if len(c.Table.Key) == 0 {
		return nil, fmt.Errorf("apply %s of %s: no key", c.Kind, src)
	}
	switch c.Kind {
	case Delete:
		if len(c.OldKey) != len(c.Table.Key) {
			return nil, fmt.Errorf("apply delete of %s: old key has %d values, key has %d columns", src, len(c.OldKey), len(c.Table.Key))
		}
	case Insert, Update:
		if len(c.New) != len(c.Columns) || c.Unchanged != nil && len(c.Unchanged) != len(c.Columns) ||
			c.OldKey != nil && len(c.OldKey) != len(c.Table.Key) {
			return nil, fmt.Errorf("apply %s of %s: malformed change", c.Kind, src)
		}
	default:
		return nil, fmt.Errorf("apply %s of %s: unknown kind", c.Kind, src)
	}
	identity, err := a.identityColumns(ctx, tx, target)
	if err != nil {
		return nil, err
	}

	// The statements depend on the target, the kind, the columns, which
	// are unchanged and whether the key changed.
	var key strings.Builder
	key.WriteString(target.Schema + "\x00" + target.Name + "\x00" + strings.Join(c.Table.Key, "\x00") + "\x01" + c.Kind.String())
	if c.Kind != Delete {
		key.WriteString("\x01" + strings.Join(c.Columns, "\x00") + "\x01")
		for _, u := range c.Unchanged {
			key.WriteByte('0' + boolByte(u))
		}
		key.WriteByte('0' + boolByte(c.OldKey != nil))
	}
	a.mu.Lock()
	cached, ok := a.stmts[key.String()]
	a.mu.Unlock()
	if ok {
		return cached, nil
	}

	b := &builder{target: target.String(), key: c.Table.Key, columns: c.Columns, unchanged: c.Unchanged, identity: identity}
	var stmts []*statement
	switch {
	case c.Kind == Delete:
		stmts = []*statement{b.deleteOld()}
	case c.Unchanged == nil && c.OldKey == nil:
		stmts = []*statement{b.upsert()}
	case c.Unchanged == nil:
		stmts = []*statement{b.deleteOld(), b.upsert()}
	case c.OldKey == nil:
		if st := b.patch(); st != nil {
			stmts = []*statement{st}
		}
	default:
		stmts = []*statement{b.move()}
	}
	if err := b.err; err != nil {
		return nil, fmt.Errorf("apply %s of %s: %w", c.Kind, src, err)
	}
	a.mu.Lock()
	if a.stmts == nil {
		a.stmts = make(map[string][]*statement)
	}
	a.stmts[key.String()] = stmts
	a.mu.Unlock()
	return stmts, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// identityColumns returns the GENERATED ALWAYS identity columns of target.
func (a *Applier) identityColumns(ctx context.Context, tx pgx.Tx, target TableName) (map[string]bool, error) {
	a.mu.Lock()
	cols, ok := a.identity[target]
	a.mu.Unlock()
	if ok {
		return cols, nil
	}
	rows, err := tx.Query(ctx, `SELECT attname::text FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attidentity = 'a'`, target.String())
	if err != nil {
		return nil, fmt.Errorf("read the columns of target table %s: %w", target, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the columns of target table %s: %w", target, err)
	}
	cols = make(map[string]bool, len(names))
	for _, n := range names {
		cols[n] = true
	}
	a.mu.Lock()
	if a.identity == nil {
		a.identity = make(map[TableName]map[string]bool)
	}
	a.identity[target] = cols
	a.mu.Unlock()
	return cols, nil
}

// builder writes the statements of one shape of change.
type builder struct {
	target    string // quoted
	key       []string
	columns   []string
	unchanged []bool
	identity  map[string]bool
	err       error
}

func (b *builder) isKey(col string) bool {
	for _, k := range b.key {
		if k == col {
			return true
		}
	}
	return false
}

func (b *builder) isUnchanged(i int) bool { return b.unchanged != nil && b.unchanged[i] }

// settable reports whether column i is written by an update: not a key
// column, not left unchanged, not a GENERATED ALWAYS identity column.
func (b *builder) settable(i int) bool {
	c := b.columns[i]
	return !b.isKey(c) && !b.isUnchanged(i) && !b.identity[c]
}

// keyIndex returns the index in columns of each key column.
func (b *builder) keyIndex() []int {
	idx := make([]int, len(b.key))
	for j, k := range b.key {
		idx[j] = -1
		for i, c := range b.columns {
			if c == k {
				idx[j] = i
			}
		}
		if idx[j] < 0 && b.err == nil {
			b.err = fmt.Errorf("key column %s is not among the columns %q", k, b.columns)
		}
	}
	return idx
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = ident.Quote(n)
	}
	return strings.Join(q, ", ")
}

func param(n int) string { return "$" + strconv.Itoa(n) }

// deleteOld deletes the row of the old key.
func (b *builder) deleteOld() *statement {
	s := &statement{}
	var where []string
	for j, k := range b.key {
		s.args = append(s.args, argRef{old: true, i: j})
		where = append(where, ident.Quote(k)+" = "+param(j+1))
	}
	s.sql = "DELETE FROM " + b.target + " WHERE " + strings.Join(where, " AND ")
	return s
}

// onConflict is the ON CONFLICT clause that updates the settable columns.
func (b *builder) onConflict() string {
	var set []string
	for i, c := range b.columns {
		if b.settable(i) {
			set = append(set, ident.Quote(c)+" = EXCLUDED."+ident.Quote(c))
		}
	}
	clause := " ON CONFLICT (" + quoteAll(b.key) + ") DO "
	if len(set) == 0 {
		return clause + "NOTHING"
	}
	return clause + "UPDATE SET " + strings.Join(set, ", ")
}

// upsert inserts the full row, or updates the row of its key.
func (b *builder) upsert() *statement {
	b.keyIndex()
	s := &statement{}
	values := make([]string, len(b.columns))
	for i := range b.columns {
		s.args = append(s.args, argRef{i: i})
		values[i] = param(i + 1)
	}
	s.sql = "INSERT INTO " + b.target + " (" + quoteAll(b.columns) + ") OVERRIDING SYSTEM VALUE VALUES (" +
		strings.Join(values, ", ") + ")" + b.onConflict()
	return s
}

// patch updates the row of the key in place, leaving the unchanged
// columns; nil when there is nothing to set.
func (b *builder) patch() *statement {
	s := &statement{}
	var set, where []string
	for i, c := range b.columns {
		if b.settable(i) {
			s.args = append(s.args, argRef{i: i})
			set = append(set, ident.Quote(c)+" = "+param(len(s.args)))
		}
	}
	if len(set) == 0 {
		return nil
	}
	for j, i := range b.keyIndex() {
		s.args = append(s.args, argRef{i: i})
		where = append(where, ident.Quote(b.key[j])+" = "+param(len(s.args)))
	}
	s.sql = "UPDATE " + b.target + " SET " + strings.Join(set, ", ") + " WHERE " + strings.Join(where, " AND ")
	return s
}

// move deletes the row of the old key and inserts it under the new one,
// with the new values and the unchanged columns' old ones. When the old
// row is gone already (a transaction applied again) it does nothing; when
// a row of the new key exists, it updates the sent columns of that row
// only.
func (b *builder) move() *statement {
	b.keyIndex()
	s := &statement{}
	var where, unchanged []string
	for j, k := range b.key {
		s.args = append(s.args, argRef{old: true, i: j})
		where = append(where, ident.Quote(k)+" = "+param(j+1))
	}
	values := make([]string, len(b.columns))
	for i, c := range b.columns {
		if b.isUnchanged(i) {
			unchanged = append(unchanged, ident.Quote(c))
			values[i] = "old." + ident.Quote(c)
			continue
		}
		s.args = append(s.args, argRef{i: i})
		values[i] = param(len(s.args))
	}
	s.sql = "WITH old AS (DELETE FROM " + b.target + " WHERE " + strings.Join(where, " AND ") +
		" RETURNING " + strings.Join(unchanged, ", ") + ") INSERT INTO " + b.target + " (" + quoteAll(b.columns) +
		") OVERRIDING SYSTEM VALUE SELECT " + strings.Join(values, ", ") + " FROM old" + b.onConflict()
	return s
}
