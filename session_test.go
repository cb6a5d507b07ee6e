package landlord

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/tenant"
)

func TestLeavesSessionState(t *testing.T) {
	t.Parallel()
	for sql, want := range map[string]bool{
		`SELECT * FROM items`:        false,
		`UPDATE items SET sku = 'x'`: false,
		`SET search_path = t_x`:      true,
		`  set role r_x`:             true,
		`/* c */ -- line` + "\n" + `Set statement_timeout = 0`: true,
		`SET LOCAL statement_timeout = 0`:                      false,
		`set transaction isolation level serializable`:         false,
		`SET CONSTRAINTS ALL DEFERRED`:                         false,
		`RESET ALL`:                                            true,
		`DISCARD ALL`:                                          true,
		`DECLARE c CURSOR WITH HOLD FOR SELECT 1`:              true,
		`LISTEN orders`:                                        true,
		`PREPARE p AS SELECT 1`:                                true,
		`SELECT SET_CONFIG('search_path', 'x', false)`:         true,
		`SELECT pg_advisory_lock(1)`:                           true,
		`SELECT pg_try_advisory_lock(1)`:                       true,
		`SELECT pg_advisory_xact_lock(1)`:                      false,
		`(SELECT 1)`:                                           false,
		``:                                                     false,
		`-- only a comment`:                                    false,
	} {
		if got := leavesSessionState(sql); got != want {
			t.Errorf("leavesSessionState(%q) = %v, want %v", sql, got, want)
		}
	}
}

// TestRoleSetOutOfSight: a function that sets a session-level role, which no
// statement text shows, gets its connection refused on the next call; the
// call goes again on a fresh connection and succeeds (THREATS I06).
func TestRoleSetOutOfSight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := setup(t, Config{MaxConns: 1})
	tn := createTenant(t, l, "shop", tenant.ModelRow)
	admin, err := pgx.Connect(ctx, db.URL)
	must(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, `SET ROLE landlord_owner;
		CREATE FUNCTION shared.sneak() RETURNS int LANGUAGE sql AS $$ SELECT 1 FROM (SELECT set_config('role', current_user, false)) s $$;
		RESET ROLE`)
	must(t, err)
	h := l.Handle()
	tctx := WithTenant(ctx, tn.ID)
	pid := func() (p int) {
		must(t, h.QueryRow(tctx, `SELECT pg_backend_pid()`).Scan(&p))
		return p
	}
	before := pid()
	_, err = h.Exec(tctx, `SELECT shared.sneak()`)
	must(t, err)
	after := pid() // refused on the tainted connection, then served by a new one
	if after == before {
		t.Fatal("the connection with a session-level role served another call")
	}
	var role string
	must(t, h.QueryRow(tctx, `SELECT current_setting('role')`).Scan(&role))
	if role != "none" {
		t.Fatalf("role %q leaked into a later call", role)
	}
}
