package landlord

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/pool"
	"github.com/landlordhq/landlord/tenant"
)

// TestTenantSettings: a tenant's settings reach every way a handle runs
// its SQL (Exec, QueryRow, a transaction, a batch), in every model, while
// a neighbour on the same connections keeps the server's; a statement over
// the tenant's statement_timeout is cancelled; unsetting them brings the
// server's back; and max_conns holds the tenant to its connections while
// the neighbour gets more.
func TestTenantSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, m := range tenant.Models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			// A budget with room for both tenants' connections: with it
			// full, a tenant that holds one waits rather than evict another
			// target's warm connection (package pool).
			l, _ := setup(t, Config{MaxConns: 8})
			a := createTenant(t, l, "alpha", m)
			b := createTenant(t, l, "bravo", m)
			adm, err := l.Admin(ctx, "test tenant settings")
			must(t, err)
			h := l.Handle()
			ctxA, ctxB := WithTenant(ctx, a.ID), WithTenant(ctx, b.ID)

			var serverWorkMem string
			must(t, h.QueryRow(ctxB, `SHOW work_mem`).Scan(&serverWorkMem))
			set, err := tenant.Settings{}.ParseSettings([]string{"statement_timeout=300ms", "work_mem=8MB", "lock_timeout=2s", "max_conns=1"})
			must(t, err)
			got, err := adm.SetSettings(ctx, a.ID, set)
			must(t, err)
			if got.Settings != set {
				t.Fatalf("SetSettings returned %v, want %v", got.Settings, set)
			}

			// show reads three settings through each path of the handle.
			const q = `SELECT current_setting('statement_timeout'), current_setting('work_mem'), current_setting('lock_timeout')`
			show := func(t *testing.T, ctx context.Context) map[string][3]string {
				t.Helper()
				out := map[string][3]string{}
				var v [3]string
				must(t, h.QueryRow(ctx, q).Scan(&v[0], &v[1], &v[2]))
				out["QueryRow"] = v
				rows, err := h.Query(ctx, q, pgx.NamedArgs{})
				must(t, err)
				for rows.Next() {
					must(t, rows.Scan(&v[0], &v[1], &v[2]))
				}
				must(t, rows.Err())
				out["Query, named arguments"] = v
				tx, err := h.Begin(ctx)
				must(t, err)
				must(t, tx.QueryRow(ctx, q).Scan(&v[0], &v[1], &v[2]))
				must(t, tx.Commit(ctx))
				out["transaction"] = v
				b := &pgx.Batch{}
				b.Queue(q)
				br := h.SendBatch(ctx, b)
				must(t, br.QueryRow().Scan(&v[0], &v[1], &v[2]))
				must(t, br.Close())
				out["batch"] = v
				return out
			}
			for path, v := range show(t, ctxA) {
				if v != [3]string{"300ms", "8MB", "2s"} {
					t.Errorf("%s of the tenant with settings: %v, want [300ms 8MB 2s]", path, v)
				}
			}
			for path, v := range show(t, ctxB) {
				if v != [3]string{"0", serverWorkMem, "0"} {
					t.Errorf("%s of its neighbour: %v, want [0 %s 0]", path, v, serverWorkMem)
				}
			}

			_, err = h.Exec(ctxA, `SELECT pg_sleep(5)`)
			if !isCode(err, "57014") {
				t.Errorf("a 5 s statement under a 300ms statement_timeout: %v, want SQLSTATE 57014", err)
			}
			if _, err := h.Exec(ctxB, `SELECT pg_sleep(0.4)`); err != nil {
				t.Errorf("the neighbour's 400 ms statement: %v", err)
			}

			// max_conns=1: while a transaction of a holds its one
			// connection, a's next call waits; b's do not.
			tx, err := h.Begin(ctxA)
			must(t, err)
			short, cancel := context.WithTimeout(ctxA, 200*time.Millisecond)
			var one int
			err = h.QueryRow(short, `SELECT 1`).Scan(&one)
			cancel()
			if !errors.Is(err, pool.ErrAcquireTimeout) && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("a second call of a tenant capped at one connection: %v, want it to wait", err)
			}
			txB1, err := h.Begin(ctxB)
			must(t, err)
			txB2, err := h.Begin(ctxB)
			must(t, err)
			must(t, txB1.Rollback(ctx))
			must(t, txB2.Rollback(ctx))
			must(t, tx.Rollback(ctx))

			// Unset: the server's settings again, and a's cap is the handle's.
			if _, err := adm.SetSettings(ctx, a.ID, tenant.Settings{}); err != nil {
				t.Fatal(err)
			}
			for path, v := range show(t, ctxA) {
				if v != [3]string{"0", serverWorkMem, "0"} {
					t.Errorf("%s after the settings were unset: %v, want [0 %s 0]", path, v, serverWorkMem)
				}
			}
			tx1, err := h.Begin(ctxA)
			must(t, err)
			tx2, err := h.Begin(ctxA)
			must(t, err)
			must(t, tx1.Rollback(ctx))
			must(t, tx2.Rollback(ctx))

			// The change is in the tenant's ledger.
			steps, err := l.dir.Steps(ctx, a.ID)
			must(t, err)
			var seen []string
			for _, s := range steps {
				if s.Operation == directory.SettingsOperation {
					seen = append(seen, s.Step+": "+strings.SplitN(s.Detail, " (by ", 2)[0])
				}
			}
			if want := []string{set.String() + ": test tenant settings", "none: test tenant settings"}; !slices.Equal(seen, want) {
				t.Errorf("ledger: %q, want %q", seen, want)
			}
		})
	}
}
