package landlordtest

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/tenant"
)

// attackI38TableLocks: LOCK TABLE locks the whole table, and in the row
// model the table holds every tenant's rows: A's ACCESS EXCLUSIVE lock, held
// in an open transaction, stalls every statement of B's on it. The app role
// may take it (it holds UPDATE and DELETE), so the handle refuses LOCK in
// every model. defense-off takes the lock as A's role at B's placement and
// finds it granted on the table that holds B's rows.
func (f *fx) attackI38TableLocks(t *testing.T) {
	T := f.main.q()
	lock := `LOCK TABLE ` + T + ` IN ACCESS EXCLUSIVE MODE`
	if f.m == tenant.ModelRow {
		t.Run("defense-off", func(t *testing.T) {
			o := f.at(t, f.b, stage{after: `SELECT 'CANARY-B-stalled' FROM pg_locks
				WHERE locktype = 'relation' AND relation = '` + strings.ReplaceAll(T, "'", "''") + `'::regclass
				AND mode = 'AccessExclusiveLock' AND granted AND pid = pg_backend_pid()`}, "", lock)
			must(t, o.err)
			if len(o.after) != 1 {
				t.Fatalf("A's role took no ACCESS EXCLUSIVE lock on the table of B's rows: %v, after %v", o, o.after)
			}
		})
	}
	t.Run("handle", func(t *testing.T) {
		for _, sql := range []string{lock, `lock ` + T, `SELECT 1; LOCK TABLE ` + T + ` IN SHARE MODE`} {
			o := f.viaHandle(t, f.ctxA, nil, false, sql)
			if !errors.Is(o.err, landlord.ErrStatementRefused) {
				t.Fatalf("%s through the handle: %v, want ErrStatementRefused", sql, o)
			}
			o = f.viaHandle(t, f.ctxA, []string{`SELECT 1`}, false, sql)
			if !errors.Is(o.err, landlord.ErrStatementRefused) {
				t.Fatalf("%s in a transaction: %v, want ErrStatementRefused", sql, o)
			}
		}
		b := &pgx.Batch{}
		b.Queue(`SELECT 1`)
		b.Queue(lock)
		if err := f.h.SendBatch(f.ctxA, b).Close(); !errors.Is(err, landlord.ErrStatementRefused) {
			t.Fatalf("a batch with LOCK: %v, want ErrStatementRefused", err)
		}
		// Row locks reach A's own rows only, and stay allowed.
		must(t, f.viaHandle(t, f.ctxA, nil, false, `SELECT count(*) FROM (SELECT 1 FROM `+T+` FOR UPDATE) x`).err)
	})
}
