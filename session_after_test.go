package landlord

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/tenant"
)

// connState is what a connection carries at session level between calls.
type connState struct {
	tenantID, signature, role, searchPath, appName, readOnly string
}

const connStateSQL = `SELECT coalesce(current_setting('landlord.tenant_id', true), ''),
	coalesce(current_setting('landlord.tenant_sig', true), ''), current_setting('role'),
	current_setting('search_path'), current_setting('application_name'), current_setting('transaction_read_only')`

// TestNothingOutlivesTheTransaction looks at the connection itself after
// every kind of call, in each model, with and without session tags: no
// tenant, signature, role, search path, application name or read-only mode
// is left at session level (ARCHITECTURE.md, idea 3; SECURITY.md, I06).
// The calls' results cannot show this: each transaction sets its own
// context over whatever the session holds.
func TestNothingOutlivesTheTransaction(t *testing.T) {
	t.Parallel()
	for _, tagged := range []bool{false, true} {
		t.Run(fmt.Sprintf("tagged=%t", tagged), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l, _ := setup(t, Config{MaxConns: 1, TagSessions: tagged})
			admin, err := l.Admin(ctx, "read-only tenants for the session check")
			must(t, err)
			for _, m := range tenant.Models {
				tn := createTenant(t, l, "after-"+string(m), m)
				inspect := func() connState {
					t.Helper()
					var s connState
					must(t, l.traffic.Inspect(ctx, tn.ID, func(c *pgx.Conn) error {
						return c.QueryRow(ctx, connStateSQL).Scan(&s.tenantID, &s.signature, &s.role, &s.searchPath, &s.appName, &s.readOnly)
					}))
					return s
				}
				clean := inspect()
				if clean.tenantID != "" || clean.signature != "" || clean.role != "none" || clean.readOnly != "off" {
					t.Fatalf("%s: a fresh connection carries %+v", m, clean)
				}
				for _, c := range afterCalls(ctx, l, admin, tn) {
					must(t, c.call())
					if got := inspect(); got != clean {
						t.Errorf("%s, after %s: the connection carries %+v, want %+v", m, c.name, got, clean)
					}
				}
			}
		})
	}
}

// afterCall is a kind of handle call whose connection is looked at after it.
type afterCall struct {
	name string
	call func() error
}

// afterCalls are the calls the after-call checks make as tenant tn, in
// order: each kind of statement, transactions that commit, roll back and
// fail, and a read-only tenant's call. admin sets the tenant's state.
func afterCalls(ctx context.Context, l *Landlord, admin *Admin, tn tenant.Tenant) []afterCall {
	tctx := WithTenant(ctx, tn.ID)
	h := l.Handle()
	return []afterCall{
		{"exec", func() error { _, err := h.Exec(tctx, `INSERT INTO parents (id, name) VALUES (1, 'p')`); return err }},
		{"query-row", func() error { var n int; return h.QueryRow(tctx, `SELECT count(*) FROM parents`).Scan(&n) }},
		{"query", func() error {
			rows, err := h.Query(tctx, `SELECT id FROM parents`)
			if err != nil {
				return err
			}
			rows.Close()
			return rows.Err()
		}},
		{"named-args", func() error {
			var n int
			return h.QueryRow(tctx, `SELECT count(*) FROM parents WHERE id = @id`, pgx.NamedArgs{"id": 1}).Scan(&n)
		}},
		{"batch", func() error {
			b := &pgx.Batch{}
			b.Queue(`SELECT count(*) FROM parents`)
			return h.SendBatch(tctx, b).Close()
		}},
		{"transaction", func() error {
			tx, err := h.BeginTx(tctx, pgx.TxOptions{})
			if err != nil {
				return err
			}
			if _, err := tx.Exec(tctx, `UPDATE parents SET name = 'q' WHERE id = 1`); err != nil {
				return err
			}
			return tx.Commit(tctx)
		}},
		{"rolled-back", func() error {
			tx, err := h.BeginTx(tctx, pgx.TxOptions{})
			if err != nil {
				return err
			}
			if _, err := tx.Exec(tctx, `UPDATE parents SET name = 'r' WHERE id = 1`); err != nil {
				return err
			}
			return tx.Rollback(tctx)
		}},
		{"failed", func() error {
			if _, err := h.Exec(tctx, `SELECT 1 / 0`); err == nil {
				return fmt.Errorf("division by zero succeeded")
			}
			return nil
		}},
		{"read-only", func() error {
			if _, err := admin.SetState(ctx, tn.ID, tenant.StateReadOnly); err != nil {
				return err
			}
			var n int
			err := h.QueryRow(tctx, `SELECT count(*) FROM parents`).Scan(&n)
			if _, serr := admin.SetState(ctx, tn.ID, tenant.StateActive); err == nil {
				err = serr
			}
			return err
		}},
	}
}
