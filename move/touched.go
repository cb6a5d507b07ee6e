package move

import (
	"slices"
	"strconv"

	"github.com/landlordhq/landlord/archive"
	"github.com/landlordhq/landlord/internal/changefeed"
)

// maxTouched bounds the keys a move remembers for its cutover's
// comparison. Past it the cutover compares every row instead, which costs
// about as much as probing that many keys one by one.
const maxTouched = 200_000

// touched is the keys of the rows a move's catch-up wrote at the new
// placement, per table. With the counts, they are what the cutover
// compares: every other row came with the snapshot's copy, whose rows were
// counted as they went in, and nothing else writes to the new placement
// before the flip.
type touched struct {
	tables map[string]*keySet // by table name
	n      int
	over   bool // more than maxTouched: compare every row
}

// keySet is one table's keys, each once.
type keySet struct {
	columns []string
	seen    map[string]bool
	values  [][]string
}

func newTouched() *touched { return &touched{tables: map[string]*keySet{}} }

// add remembers the keys txn's changes wrote: the new key of an insert or
// update, and the old one of a delete or an update that changed it.
func (t *touched) add(txn changefeed.Txn) {
	if t.over {
		return
	}
	for i := range txn.Changes {
		c := &txn.Changes[i]
		if c.OldKey != nil {
			t.addKey(c.Table, c.OldKey)
		}
		if c.Kind == changefeed.Delete || c.New == nil {
			continue
		}
		key := make([][]byte, len(c.Table.Key))
		for j, k := range c.Table.Key {
			idx := slices.Index(c.Columns, k)
			if idx < 0 {
				// The applier refuses such a change; compare everything
				// should it ever get here.
				t.overflow()
				return
			}
			key[j] = c.New[idx]
		}
		t.addKey(c.Table, key)
	}
}

func (t *touched) addKey(tb changefeed.Table, key [][]byte) {
	ks := t.tables[tb.Name]
	if ks == nil {
		ks = &keySet{columns: tb.Key, seen: map[string]bool{}}
		t.tables[tb.Name] = ks
	}
	vals := make([]string, len(key))
	var id []byte
	for i, v := range key {
		vals[i] = string(v)
		// Length-prefixed, so that no two keys print alike.
		id = strconv.AppendInt(id, int64(len(v)), 10)
		id = append(id, ':')
		id = append(id, v...)
	}
	if ks.seen[string(id)] {
		return
	}
	ks.seen[string(id)] = true
	ks.values = append(ks.values, vals)
	if t.n++; t.n > maxTouched {
		t.overflow()
	}
}

func (t *touched) overflow() {
	t.over, t.tables = true, nil
}

// keys returns the keys per table, for archive.ChangedSums.
func (t *touched) keys() map[string]archive.Keys {
	out := make(map[string]archive.Keys, len(t.tables))
	for name, ks := range t.tables {
		out[name] = archive.Keys{Columns: ks.columns, Values: ks.values}
	}
	return out
}
