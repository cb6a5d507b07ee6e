package traffic

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestTxRefusesBeforeSending: in a transaction, EXPLAIN is refused, and
// behind a pooler so is a statement that would leave session state, before
// anything is sent. The transaction has no connection here: sending would
// panic.
func TestTxRefusesBeforeSending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, pooled := range []bool{false, true} {
		tx := &tx{lease: lease{r: &route{pooled: pooled}}}
		refused := map[string]error{`EXPLAIN SELECT 1`: ErrStatementRefused}
		if pooled {
			refused[`SET search_path = x`] = ErrSessionState
		} else if err := tx.pooledRefusal(`SET search_path = x`); err != nil {
			t.Errorf("not pooled: SET refused: %v", err)
		}
		for sql, want := range refused {
			if _, err := tx.Exec(ctx, sql); !errors.Is(err, want) {
				t.Errorf("pooled %v: Exec(%q) = %v, want %v", pooled, sql, err, want)
			}
			if _, err := tx.Query(ctx, sql); !errors.Is(err, want) {
				t.Errorf("pooled %v: Query(%q) = %v, want %v", pooled, sql, err, want)
			}
			if err := tx.QueryRow(ctx, sql).Scan(); !errors.Is(err, want) {
				t.Errorf("pooled %v: QueryRow(%q) = %v, want %v", pooled, sql, err, want)
			}
			b := &pgx.Batch{}
			b.Queue(`SELECT 1`)
			b.Queue(sql)
			if _, err := tx.SendBatch(ctx, b).Exec(); !errors.Is(err, want) {
				t.Errorf("pooled %v: SendBatch(%q) = %v, want %v", pooled, sql, err, want)
			}
		}
		if err := tx.pooledRefusal(`SELECT 1`); err != nil {
			t.Errorf("pooled %v: SELECT 1 refused: %v", pooled, err)
		}
	}
}
