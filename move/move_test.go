package move

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/archive"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// conn connects as the administrator to the database of t's placement.
func conn(t *testing.T, p *provision.Provisioner, tn tenant.Tenant) *pgx.Conn {
	t.Helper()
	c, err := p.Connect(t.Context(), tn.Server, tn.Database)
	must(t, err)
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// seed writes products of every type and movements, whose trigger keeps
// the levels, at tn's placement.
func seed(t *testing.T, c *pgx.Conn, tn tenant.Tenant) {
	t.Helper()
	s := ident.Quote(tn.Schema)
	_, err := c.Exec(t.Context(), fmt.Sprintf(`
		INSERT INTO %[1]s.products (tenant_id, name, status, attrs, photo, tags, price)
		SELECT $1, 'product ' || g || E'\ttab\nline\\', 'live', jsonb_build_object('g', g), '\x00ff'::bytea, ARRAY['a', NULL, 'c'], g * 1.5
		FROM generate_series(1, 20) g`, s), tn.ID)
	must(t, err)
	_, err = c.Exec(t.Context(), fmt.Sprintf(`INSERT INTO %[1]s.movements (tenant_id, product_id, quantity)
		SELECT $1, id, 10 FROM %[1]s.products WHERE tenant_id = $1`, s), tn.ID)
	must(t, err)
}

// levelsHold reports the products whose level is not the sum of their
// movements: a trigger run twice, or a movement lost, shows there.
func levelsHold(t *testing.T, c *pgx.Conn, tn tenant.Tenant) (bad, movements int) {
	t.Helper()
	s := ident.Quote(tn.Schema)
	must(t, c.QueryRow(t.Context(), fmt.Sprintf(`
		SELECT (SELECT count(*) FROM %[1]s.levels l WHERE l.tenant_id = $1 AND l.on_hand <>
			(SELECT sum(quantity) FROM %[1]s.movements m WHERE m.tenant_id = $1 AND m.product_id = l.product_id)),
		       (SELECT count(*) FROM %[1]s.movements WHERE tenant_id = $1)`, s), tn.ID).Scan(&bad, &movements))
	return bad, movements
}

// TestMoveKeepsWhatTriggersMade moves a schema tenant into the shared
// tables online while movements are written at the old placement until
// the fence: the catch-up applies them without running the levels'
// trigger again, so every level is still the sum of its movements, and
// every movement is there.
func TestMoveKeepsWhatTriggersMade(t *testing.T) {
	p := setup(t)
	ctx := t.Context()
	src := create(t, p, "stocked", tenant.ModelSchema)
	sc := conn(t, p, src)
	seed(t, sc, src)

	// The writer writes as the administrator, past the fence, so it must
	// stop before it: the mover waits in Progress until it has.
	stop, stopped := make(chan struct{}), make(chan struct{})
	written := 0
	go func() {
		defer close(stopped)
		wc, err := p.Connect(ctx, src.Server, src.Database)
		if err != nil {
			t.Error(err)
			return
		}
		defer wc.Close(context.Background())
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := wc.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.movements (tenant_id, product_id, quantity)
				SELECT $1, id, $2 FROM %[1]s.products WHERE tenant_id = $1 ORDER BY id LIMIT 1 OFFSET $3`, ident.Quote(src.Schema)),
				src.ID, i%7-3, i%20); err != nil {
				t.Error(err)
				return
			}
			written++
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var once sync.Once
	res, err := Move(ctx, p, src.ID, tenant.ModelRow, "", Config{Mode: Online, Settle: time.Millisecond, Progress: func(pr Progress) {
		if pr.Phase == directory.MoveFenced {
			once.Do(func() { close(stop); <-stopped })
		}
	}})
	must(t, err)
	if !res.Move.Online || res.Changes == 0 || res.Rows == 0 {
		t.Errorf("the move: online %v, %d rows, %d changes", res.Move.Online, res.Rows, res.Changes)
	}
	dst, err := p.Directory().Get(ctx, src.ID)
	must(t, err)
	if dst.Model != tenant.ModelRow || dst.State != tenant.StateActive {
		t.Fatalf("after the move: %+v", dst)
	}
	bad, n := levelsHold(t, conn(t, p, dst), dst)
	if bad != 0 || n != 20+written {
		t.Errorf("at the new placement %d levels are off and %d movements are there, want 0 and %d", bad, n, 20+written)
	}
	var schemas int
	must(t, sc.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, src.Schema).Scan(&schemas))
	if schemas != 0 {
		t.Errorf("the old schema %s is still there", src.Schema)
	}
}

// TestAbortAndResume: nothing to resume or abort without a move; a move
// past its fence cannot be aborted, only finished, and Resume finishes it.
func TestAbortAndResume(t *testing.T) {
	p := setup(t)
	ctx := t.Context()
	src := create(t, p, "halfway", tenant.ModelSchema)
	seed(t, conn(t, p, src), src)
	if _, _, err := Resume(ctx, p, src.ID, Config{}); !errors.Is(err, ErrNoMove) {
		t.Errorf("resume without a move: %v", err)
	}
	if _, err := Abort(ctx, p, src.ID, Config{}); !errors.Is(err, ErrNoMove) {
		t.Errorf("abort without a move: %v", err)
	}
	// A mover that stopped right after the directory's fence.
	dst, err := p.Placement(ctx, src, tenant.ModelDatabase, src.Server)
	must(t, err)
	m, err := p.Directory().StartMove(ctx, directory.Move{Tenant: src.ID, From: src, To: dst})
	must(t, err)
	if _, err := p.Directory().StartMove(ctx, directory.Move{Tenant: src.ID, From: src, To: dst}); !errors.Is(err, directory.ErrMoveUnderway) {
		t.Errorf("a second move of the tenant: %v", err)
	}
	must(t, p.WithTenantLock(ctx, src.ID, func(c *pgx.Conn) error {
		_, err := p.MakePlacement(ctx, c, dst)
		return err
	}))
	_, err = p.Directory().SetMoving(ctx, m)
	must(t, err)
	if _, err := Abort(ctx, p, src.ID, Config{}); !errors.Is(err, ErrRollsForward) {
		t.Errorf("abort past the fence: %v", err)
	}
	if _, err := Move(ctx, p, src.ID, tenant.ModelRow, "", Config{}); !errors.Is(err, directory.ErrMoveUnderway) {
		t.Errorf("another move while one is unfinished: %v", err)
	}
	res, aborted, err := Resume(ctx, p, src.ID, Config{Settle: time.Millisecond})
	must(t, err)
	if aborted || res.Move.Phase != directory.MoveDone {
		t.Fatalf("resume: aborted %v, %+v", aborted, res.Move)
	}
	got, err := p.Directory().Get(ctx, src.ID)
	must(t, err)
	if got.Model != tenant.ModelDatabase || got.State != tenant.StateActive {
		t.Errorf("after the resume: %+v", got)
	}
	if bad, n := levelsHold(t, conn(t, p, got), got); bad != 0 || n != 20 {
		t.Errorf("after the resume %d levels are off, %d movements", bad, n)
	}
}

// TestUndoBeforeTheTarget: a mover that stopped right after recording its
// move, before it made the new placement, is undone by Resume in every
// model: there is nothing to remove, and that is no error.
func TestUndoBeforeTheTarget(t *testing.T) {
	p := setup(t)
	ctx := t.Context()
	for _, to := range []tenant.Model{tenant.ModelRow, tenant.ModelSchema, tenant.ModelDatabase} {
		from := tenant.ModelSchema
		if to == tenant.ModelSchema {
			from = tenant.ModelRow
		}
		src := create(t, p, "unmade-"+string(to), from)
		dst, err := p.Placement(ctx, src, to, src.Server)
		must(t, err)
		_, err = p.Directory().StartMove(ctx, directory.Move{Tenant: src.ID, From: src, To: dst})
		must(t, err)
		if _, aborted, err := Resume(ctx, p, src.ID, Config{}); err != nil || !aborted {
			t.Errorf("to %s: resume of a move stopped before its target: aborted %v, %v", to, aborted, err)
		}
		got, err := p.Directory().Get(ctx, src.ID)
		must(t, err)
		if got.Model != from || got.State != tenant.StateActive {
			t.Errorf("to %s: after the undo the tenant is %s, %s", to, got.Model, got.State)
		}
	}
}

// TestSweep: a row tenant's old placement keeps its fence after the move
// until it has settled; Sweep lifts it then, and only then.
func TestSweep(t *testing.T) {
	p := setup(t)
	ctx := t.Context()
	src := create(t, p, "shared-one", tenant.ModelRow)
	seed(t, conn(t, p, src), src)
	_, err := Move(ctx, p, src.ID, tenant.ModelSchema, "", Config{Settle: -1})
	must(t, err)
	c := conn(t, p, src)
	fences := func() int {
		t.Helper()
		f, err := migration.Fenced(ctx, c, p.Roles().Owner)
		must(t, err)
		return len(f)
	}
	if fences() != 1 {
		t.Fatalf("the shared tables hold %d fences after the move, want the tenant's", fences())
	}
	must(t, Sweep(ctx, p, time.Hour, false))
	if fences() != 1 {
		t.Errorf("Sweep lifted a fence that has not settled")
	}
	must(t, Sweep(ctx, p, time.Millisecond, false))
	if fences() != 0 {
		t.Errorf("Sweep left a settled fence")
	}
	if ms, err := p.Directory().FencedSources(ctx); err != nil || len(ms) != 0 {
		t.Errorf("fenced sources after the sweep: %v, %v", ms, err)
	}
	// The tenant's rows left the shared tables, and its data is whole.
	var left int
	must(t, c.QueryRow(ctx, `SELECT count(*) FROM shared.products WHERE tenant_id = $1`, src.ID).Scan(&left))
	if left != 0 {
		t.Errorf("%d of its products are left in the shared tables", left)
	}
	got, err := p.Directory().Get(ctx, src.ID)
	must(t, err)
	sums := map[string]archive.Sum{}
	must(t, pgx.BeginFunc(ctx, conn(t, p, got), func(tx pgx.Tx) error {
		sums, err = archive.Sums(ctx, p, tx, got)
		return err
	}))
	if sums["products"].Rows != 20 || sums["movements"].Rows != 20 || sums["levels"].Rows != 20 {
		t.Errorf("at the new placement: %+v", sums)
	}
}

// TestCutoverFindsADifference: the new placement made to differ by hand
// (as a lost or stray change would) after the last catch-up fails the move
// before the flip, and the tenant stays where it was, serving. The default
// comparison reads the counts and the changed rows; VerifyAll every row.
func TestCutoverFindsADifference(t *testing.T) {
	p := setup(t)
	for _, tc := range []struct {
		name   string
		verify Verify
		tamper string // at the new placement; %s is its schema, $1 the tenant
	}{
		{"changed row", VerifyChanged, `UPDATE %s.products SET name = 'lost' WHERE tenant_id = $1 AND name = 'renamed'`},
		{"row missing", VerifyChanged, `DELETE FROM %s.products WHERE tenant_id = $1 AND id = (SELECT max(id) FROM %[1]s.products WHERE tenant_id = $1)`},
		{"unchanged row", VerifyAll, `UPDATE %s.products SET name = 'lost' WHERE tenant_id = $1 AND id = (SELECT max(id) FROM %[1]s.products WHERE tenant_id = $1)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			src := create(t, p, "differs-"+strings.ReplaceAll(tc.name, " ", "-"), tenant.ModelSchema)
			sc := conn(t, p, src)
			seed(t, sc, src)
			dst, err := p.Placement(ctx, src, tenant.ModelDatabase, src.Server)
			must(t, err)
			fenced := 0
			res, err := Move(ctx, p, src.ID, tenant.ModelDatabase, "", Config{Mode: Online, Verify: tc.verify, Progress: func(pr Progress) {
				switch pr.Phase {
				case directory.MoveCopied:
					if pr.Changes == 0 { // after the copy: a change the catch-up carries
						_, err := sc.Exec(ctx, fmt.Sprintf(`UPDATE %s.products SET name = 'renamed' WHERE tenant_id = $1 AND id = (SELECT min(id) FROM %[1]s.products WHERE tenant_id = $1)`,
							ident.Quote(src.Schema)), src.ID)
						must(t, err)
					}
				case directory.MoveFenced:
					if fenced++; fenced == 2 { // the database's fence is in place: the catch-up is over but the last round
						dc, err := p.Connect(ctx, dst.Server, dst.Database)
						must(t, err)
						defer dc.Close(context.Background())
						_, err = dc.Exec(ctx, fmt.Sprintf(tc.tamper, ident.Quote(dst.Schema)), src.ID)
						must(t, err)
					}
				}
			}})
			if !errors.Is(err, ErrMismatch) {
				t.Fatalf("a move whose copy differs: %v, want ErrMismatch", err)
			}
			want := "changed"
			if tc.verify == VerifyAll {
				want = "all"
			}
			if res.Cutover.Compared != want {
				t.Errorf("compared %q, want %q", res.Cutover.Compared, want)
			}
			got, err := p.Directory().Get(ctx, src.ID)
			must(t, err)
			if got.Model != tenant.ModelSchema || got.State != tenant.StateActive {
				t.Errorf("after the failed move the tenant is %s, %s; want schema, active", got.Model, got.State)
			}
			var fences, dbs int
			must(t, sc.QueryRow(ctx, `SELECT (SELECT cardinality(fence_keys) FROM landlord_context.key), (SELECT count(*) FROM pg_database WHERE datname = $1)`, dst.Database).Scan(&fences, &dbs))
			if fences != 0 || dbs != 0 {
				t.Errorf("after the failed move: %d fences at the old placement, %d new databases", fences, dbs)
			}
			if m, ok, _ := p.Directory().UnfinishedMove(ctx, src.ID); ok {
				t.Errorf("the failed move is unfinished: %+v", m)
			}
		})
	}
}

// TestMoveHoldsTheSharedTables: a move into or out of the shared tables
// keeps migrators off them from the copy to the cutover, since rows of one
// shape are copied into tables of another otherwise; and a move refuses to
// start when those tables are not at its migrations' head.
func TestMoveHoldsTheSharedTables(t *testing.T) {
	p := setup(t)
	ctx := t.Context()
	admin := conn(t, p, create(t, p, "bystander", tenant.ModelRow))
	// What a migrator of the shared tables does first in each step.
	migratorMay := func() bool {
		t.Helper()
		tx, err := admin.Begin(ctx)
		must(t, err)
		defer tx.Rollback(ctx)
		var ok bool
		must(t, tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(1280068935, hashtext('shared'))`).Scan(&ok))
		return ok
	}
	for _, tc := range []struct {
		name     string
		from, to tenant.Model
	}{{"out of", tenant.ModelRow, tenant.ModelSchema}, {"into", tenant.ModelSchema, tenant.ModelRow}} {
		t.Run(tc.name, func(t *testing.T) {
			src := create(t, p, "held-"+string(tc.from), tc.from)
			phases := map[directory.MovePhase]bool{}
			_, err := Move(ctx, p, src.ID, tc.to, "", Config{Settle: time.Millisecond, Progress: func(pr Progress) {
				if !phases[pr.Phase] && pr.Phase != directory.MoveDone {
					phases[pr.Phase] = true
					if migratorMay() {
						t.Errorf("a migrator could take the shared tables' lock in phase %s", pr.Phase)
					}
				}
			}})
			must(t, err)
			if len(phases) < 3 {
				t.Errorf("saw phases %v, want the copy, the fence and the flip", phases)
			}
			if !migratorMay() {
				t.Error("the shared tables' lock is still held after the move")
			}
		})
	}

	t.Run("refused behind the head", func(t *testing.T) {
		src := create(t, p, "behind", tenant.ModelSchema)
		head := p.Migrator().Set().Head()
		_, err := admin.Exec(ctx, `DELETE FROM landlord.target_migrations WHERE target = 'shared' AND version = $1`, head)
		must(t, err)
		_, err = Move(ctx, p, src.ID, tenant.ModelRow, "", Config{Settle: time.Millisecond})
		if !errors.Is(err, archive.ErrIncompatible) || !strings.Contains(err.Error(), "the shared tables of server") {
			t.Fatalf("move into shared tables behind the head: %v, want ErrIncompatible naming them", err)
		}
		if _, ok, err := p.Directory().UnfinishedMove(ctx, src.ID); err != nil || ok {
			t.Fatalf("a refused move left a record (%v, %v)", ok, err)
		}
		got, err := p.Directory().Get(ctx, src.ID)
		must(t, err)
		if got.Model != tenant.ModelSchema || got.State != tenant.StateActive {
			t.Fatalf("refused move left the tenant %s %s", got.Model, got.State)
		}
	})
}

// TestOnlineWithoutSuperuser: on a managed server there is no superuser;
// an administrator with REPLICATION and BYPASSRLS that may SET
// session_replication_role moves online. Without the parameter it moves
// offline (Auto) or is refused (Online), saying what it lacks.
func TestOnlineWithoutSuperuser(t *testing.T) {
	p := setup(t)
	ctx := t.Context()
	db := p.Admin()
	role := "mover_" + tenant.NewID().Hex()[20:]
	// The superuser's bootstrap took the activity view and the signal
	// functions from PUBLIC (SECURITY.md, I35, I37): an administrator that
	// is not one gets them explicitly, as on a server where it bootstraps
	// itself it keeps them.
	_, err := db.Exec(ctx, fmt.Sprintf(`CREATE ROLE %[1]s LOGIN REPLICATION BYPASSRLS CREATEDB CREATEROLE;
		GRANT %[2]s TO %[1]s; GRANT CREATE, CONNECT ON DATABASE %[3]s TO %[1]s;
		GRANT SELECT ON pg_catalog.pg_stat_activity TO %[1]s; GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer) TO %[1]s;
		GRANT EXECUTE ON FUNCTION pg_catalog.pg_cancel_backend(integer), pg_catalog.pg_terminate_backend(integer, bigint) TO %[1]s`,
		role, ident.Quote(p.Roles().Owner), ident.Quote(dbName(t, p))))
	must(t, err)
	t.Cleanup(func() {
		_, _ = db.Exec(context.Background(), fmt.Sprintf(`REVOKE SET ON PARAMETER session_replication_role FROM %[1]s;
			DROP OWNED BY %[1]s; DROP ROLE %[1]s`, role))
	})
	cfg := db.Config().Copy()
	cfg.ConnConfig.User = role
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	must(t, err)
	t.Cleanup(pool.Close)
	mp, err := provision.New(ctx, pool, testMigrations(), provision.Config{})
	must(t, err)

	src := create(t, p, "managed", tenant.ModelRow)
	seed(t, conn(t, p, src), src)
	if _, err := Move(ctx, mp, src.ID, tenant.ModelSchema, "", Config{Mode: Online}); !errors.Is(err, ErrNotPermitted) ||
		!strings.Contains(err.Error(), "session_replication_role") {
		t.Fatalf("online without SET of session_replication_role: %v, want ErrNotPermitted naming it", err)
	}
	_, err = db.Exec(ctx, `GRANT SET ON PARAMETER session_replication_role TO `+role)
	must(t, err)
	res, err := Move(ctx, mp, src.ID, tenant.ModelSchema, "", Config{Mode: Online, Settle: time.Millisecond})
	must(t, err)
	if !res.Move.Online {
		t.Fatalf("the move went offline: %+v", res.Move)
	}
	got, err := p.Directory().Get(ctx, src.ID)
	must(t, err)
	if bad, n := levelsHold(t, conn(t, p, got), got); got.Model != tenant.ModelSchema || bad != 0 || n != 20 {
		t.Errorf("after the move: %s, %d levels off, %d movements", got.Model, bad, n)
	}
}

// dbName is the control database's name.
func dbName(t *testing.T, p *provision.Provisioner) string {
	t.Helper()
	var name string
	must(t, p.Admin().QueryRow(t.Context(), `SELECT current_database()`).Scan(&name))
	return name
}
