package changefeed_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/changefeed"
	"github.com/landlordhq/landlord/pgtest"
)

// TestCatchUp copies the tables from the exported snapshot while writes go
// on, then catches up: the targets hold exactly the sources' rows, of
// every type, with keys changed, TOASTed values left unchanged, deletes.
func TestCatchUp(t *testing.T) {
	t.Parallel()
	const name = "feed_catchup"
	e := setup(t, name)
	ctx := t.Context()
	tenants := []uuid.UUID{uuid.New(), uuid.New()}
	e.churn(t, rand.New(rand.NewPCG(1, 1)), tenants, 100)

	// Writes go on while the slot is made and the copy runs, of one tenant
	// in the background and of the other in between.
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		rnd := rand.New(rand.NewPCG(2, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			e.churn(t, rnd, tenants[:1], 1)
		}
	}()
	f, err := changefeed.Start(ctx, e.config(name, nil))
	must(t, err)
	t.Cleanup(func() { f.Close(context.Background()) })
	if f.Snapshot() == "" || f.ConsistentLSN() == 0 {
		t.Errorf("snapshot %q at %s", f.Snapshot(), f.ConsistentLSN())
	}
	e.churn(t, rand.New(rand.NewPCG(3, 3)), tenants[1:], 50)
	e.copySnapshot(t, f, nil)
	close(stop)
	<-done

	a := applier()
	var n counts
	stats, err := f.CatchUp(ctx, e.applyFunc(a, &n), nil)
	must(t, err)
	e.same(t, nil)
	// Consecutive transactions come in batches: fewer applies than
	// transactions, the same changes.
	if stats.Changes != n.changes || stats.Transactions < n.txns || n.txns == 0 {
		t.Errorf("stats %+v, applied %+v", stats, n)
	}

	// Writes during a catch-up, then a last one after them.
	done = make(chan struct{})
	go func() {
		defer close(done)
		e.churn(t, rand.New(rand.NewPCG(4, 4)), tenants, 150)
	}()
	var reports []changefeed.CatchUpStats
	_, err = f.CatchUp(ctx, e.applyFunc(a, &n), func(s changefeed.CatchUpStats) { reports = append(reports, s) })
	must(t, err)
	<-done
	last, err := f.CatchUp(ctx, e.applyFunc(a, &n), nil)
	must(t, err)
	e.same(t, nil)
	if len(reports) == 0 {
		t.Error("progress was not called")
	}
	if last.LSN < stats.LSN {
		t.Errorf("confirmed position went back from %s to %s", stats.LSN, last.LSN)
	}
	t.Logf("applied %+v", n)
	if n.unchanged == 0 || n.keyChanges == 0 || n.deletes == 0 {
		t.Errorf("the churn did not exercise every kind of change: %+v", n)
	}

	// Nothing new: nothing delivered.
	again, err := f.CatchUp(ctx, e.applyFunc(a, nil), nil)
	must(t, err)
	if again.Transactions != 0 {
		t.Errorf("a catch-up with nothing new delivered %+v", again)
	}

	var owner string
	must(t, e.pool.QueryRow(ctx, "SELECT pubowner::regrole::text FROM pg_publication WHERE pubname = $1", name).Scan(&owner))
	if owner != pgtest.OwnerRole {
		t.Errorf("publication owned by %s, want %s", owner, pgtest.OwnerRole)
	}
}

// TestRowFilter: of a table shared by two tenants, only the configured
// tenant's changes are delivered, rows moving between tenants included.
func TestRowFilter(t *testing.T) {
	t.Parallel()
	const name = "feed_filter"
	e := setup(t, name)
	ctx := t.Context()
	mine, other := uuid.New(), uuid.New()
	both := []uuid.UUID{mine, other}
	rnd := rand.New(rand.NewPCG(4, 4))
	e.churn(t, rnd, both, 60)

	f, err := changefeed.Start(ctx, e.config(name, &mine))
	must(t, err)
	t.Cleanup(func() { f.Close(context.Background()) })
	e.copySnapshot(t, f, &mine)
	e.churn(t, rnd, both, 150)
	_, err = e.pool.Exec(ctx, "INSERT INTO src.notes (tenant_id, code, body) VALUES ($1, 'leaves', 'x'), ($2, 'arrives', 'y')", mine, other)
	must(t, err)
	// A row moves out of the tenant, another one into it.
	_, err = e.pool.Exec(ctx, "UPDATE src.notes SET tenant_id = $2 WHERE tenant_id = $1 AND code = 'leaves'", mine, other)
	must(t, err)
	_, err = e.pool.Exec(ctx, "UPDATE src.notes SET tenant_id = $1 WHERE tenant_id = $2 AND code = 'arrives'", mine, other)
	must(t, err)

	a := applier()
	apply := e.applyFunc(a, nil)
	var foreign, changes int
	_, err = f.CatchUp(ctx, func(ctx context.Context, txn changefeed.Txn) error {
		for _, c := range txn.Changes {
			changes++
			tenant := c.OldKey
			if c.New != nil {
				tenant = c.New[slices.Index(c.Columns, "tenant_id"):]
			}
			if string(tenant[0]) != mine.String() {
				foreign++
			}
		}
		return apply(ctx, txn)
	}, nil)
	must(t, err)
	if foreign > 0 || changes == 0 {
		t.Errorf("%d of %d changes were of another tenant", foreign, changes)
	}
	e.same(t, &mine)
	var code string
	must(t, e.pool.QueryRow(ctx, "SELECT string_agg(code, ',' ORDER BY code) FROM dst.notes WHERE code IN ('leaves', 'arrives')").Scan(&code))
	if code != "arrives" {
		t.Errorf("moved rows in the target: %q, want arrives", code)
	}
}

// TestResume: a feed that stopped between applying a transaction and
// acknowledging it, resumed, delivers that transaction again and everything
// after it; a replay of every transaction from the start onto the caught-up
// target converges to the same rows.
func TestResume(t *testing.T) {
	t.Parallel()
	const name, replay = "feed_resume", "feed_resume_replay"
	e := setup(t, name, replay)
	ctx := t.Context()
	tenants := []uuid.UUID{uuid.New(), uuid.New()}
	rnd := rand.New(rand.NewPCG(5, 5))
	e.churn(t, rnd, tenants, 50)

	f, err := changefeed.Start(ctx, e.config(name, nil))
	must(t, err)
	// A second slot at the same position, with its publication, to
	// replay everything later.
	_, err = e.pool.Exec(ctx, "CREATE PUBLICATION "+replay+" FOR TABLE src.items, src.notes, src.counters")
	must(t, err)
	admin, err := pgx.ConnectConfig(ctx, e.admin)
	must(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "SELECT pg_copy_logical_replication_slot($1, $2)", name, replay)
	must(t, err)

	e.copySnapshot(t, f, nil)
	e.churn(t, rnd, tenants, 150)
	a := applier()
	apply := e.applyFunc(a, nil)
	crash := errors.New("crash")
	var applied int
	var unacknowledged pglogrepl.LSN
	var failedFirst changefeed.Change
	_, err = f.CatchUp(ctx, func(ctx context.Context, txn changefeed.Txn) error {
		if err := apply(ctx, txn); err != nil {
			return err
		}
		if applied++; applied == 1 {
			unacknowledged, failedFirst = txn.EndLSN, txn.Changes[0]
			return crash
		}
		return nil
	}, nil)
	if !errors.Is(err, crash) {
		t.Fatalf("CatchUp: %v, want the apply function's error", err)
	}
	must(t, f.Close(ctx))
	e.churn(t, rnd, tenants, 50)

	if _, err := changefeed.Resume(ctx, e.config("feed_none", nil)); !errors.Is(err, changefeed.ErrNoSlot) {
		t.Errorf("Resume of a missing slot: %v, want ErrNoSlot", err)
	}
	f, err = changefeed.Resume(ctx, e.config(name, nil))
	must(t, err)
	t.Cleanup(func() { f.Close(context.Background()) })
	// The first batch delivered again starts with the unacknowledged
	// one's first change: nothing acknowledged comes again, nothing after
	// it is skipped. (Where it ends depends on what the server has sent
	// at once.)
	var first pglogrepl.LSN
	var firstChange changefeed.Change
	_, err = f.CatchUp(ctx, func(ctx context.Context, txn changefeed.Txn) error {
		if first == 0 {
			first, firstChange = txn.EndLSN, txn.Changes[0]
		}
		return apply(ctx, txn)
	}, nil)
	must(t, err)
	if first == 0 || !reflect.DeepEqual(firstChange, failedFirst) {
		t.Errorf("resumed with a batch ending at %s that starts with %+v; want the unacknowledged one's first change, %+v (its batch ended at %s)",
			first, firstChange, failedFirst, unacknowledged)
	}
	e.same(t, nil)
	must(t, f.Close(ctx))

	// Acknowledged: a resumed feed starts after it all.
	f, err = changefeed.Resume(ctx, e.config(name, nil))
	must(t, err)
	stats, err := f.CatchUp(ctx, apply, nil)
	must(t, err)
	if stats.Transactions != 0 {
		t.Errorf("resumed after a complete catch-up, delivered %+v", stats)
	}

	// Everything again, from before the copy.
	cfg := e.config(replay, nil)
	r, err := changefeed.Resume(ctx, cfg)
	must(t, err)
	t.Cleanup(func() { r.Close(context.Background()) })
	var n counts
	stats, err = r.CatchUp(ctx, e.applyFunc(a, &n), nil)
	must(t, err)
	if stats.Transactions < 150 {
		t.Errorf("replay delivered %+v, want every transaction since the copy", stats)
	}
	t.Logf("replayed %+v", n)
	e.same(t, nil)
}

// TestTruncate: a truncate of a published table fails the catch-up, after
// the transactions before it were applied.
func TestTruncate(t *testing.T) {
	t.Parallel()
	const name = "feed_truncate"
	e := setup(t, name)
	ctx := t.Context()
	tenant := uuid.New()
	f, err := changefeed.Start(ctx, e.config(name, nil))
	must(t, err)
	t.Cleanup(func() { f.Close(context.Background()) })
	e.copySnapshot(t, f, nil)
	e.churn(t, rand.New(rand.NewPCG(6, 6)), []uuid.UUID{tenant}, 20)
	_, err = e.pool.Exec(ctx, "TRUNCATE src.counters")
	must(t, err)
	_, err = f.CatchUp(ctx, e.applyFunc(applier(), nil), nil)
	if !errors.Is(err, changefeed.ErrTruncate) {
		t.Fatalf("CatchUp after a truncate: %v, want ErrTruncate", err)
	}
	for _, tb := range []string{"items", "notes"} {
		if s, d := e.digest(t, "src", tb, nil), e.digest(t, "dst", tb, nil); s != d {
			t.Errorf("%s: source %s, target %s", tb, s, d)
		}
	}
	// It stays failed: the truncate comes again.
	if _, err = f.CatchUp(ctx, e.applyFunc(applier(), nil), nil); !errors.Is(err, changefeed.ErrTruncate) {
		t.Errorf("second CatchUp after a truncate: %v, want ErrTruncate", err)
	}
}

// TestDrop: Drop removes the slot and the publication, of a feed still
// streaming or of one whose process is gone, and can be called again.
func TestDrop(t *testing.T) {
	t.Parallel()
	const streaming, closed = "feed_drop_streaming", "feed_drop_closed"
	e := setup(t, streaming, closed)
	ctx := t.Context()

	f, err := changefeed.Start(ctx, e.config(streaming, nil))
	must(t, err)
	e.copySnapshot(t, f, nil)
	_, err = f.CatchUp(ctx, e.applyFunc(applier(), nil), nil)
	must(t, err)
	must(t, changefeed.Drop(ctx, e.admin, pgtest.OwnerRole, streaming))
	must(t, changefeed.Drop(ctx, e.admin, pgtest.OwnerRole, streaming))
	_ = f.Close(ctx) // its walsender was terminated
	e.gone(t, streaming)

	f, err = changefeed.Start(ctx, e.config(closed, nil))
	must(t, err)
	must(t, f.Close(ctx))
	e.exists(t, closed)
	must(t, changefeed.Drop(ctx, e.admin, pgtest.OwnerRole, closed))
	must(t, changefeed.Drop(ctx, e.admin, pgtest.OwnerRole, closed))
	e.gone(t, closed)
	if _, err := changefeed.Resume(ctx, e.config(closed, nil)); !errors.Is(err, changefeed.ErrNoSlot) {
		t.Errorf("Resume after Drop: %v, want ErrNoSlot", err)
	}
}

// TestRefuse: what Start will not do, and that it leaves nothing behind
// when it refuses.
func TestRefuse(t *testing.T) {
	t.Parallel()
	const name = "feed_refuse"
	e := setup(t, name)
	ctx := t.Context()
	_, err := e.pool.Exec(ctx, `CREATE TABLE src.nokey (tenant_id uuid, x int);
		CREATE TABLE src.loose (id int PRIMARY KEY, tenant_id uuid)`)
	must(t, err)
	tenant := uuid.New()

	for _, c := range []struct {
		what string
		cfg  changefeed.Config
		want error
	}{
		{"bad name", changefeed.Config{Conn: e.admin, Name: "Feed-1", Tables: tables}, nil},
		{"long name", changefeed.Config{Conn: e.admin, Name: strings.Repeat("f", 64), Tables: tables}, nil},
		{"no tables", changefeed.Config{Conn: e.admin, Name: name}, nil},
		{"missing table", changefeed.Config{Conn: e.admin, Name: name, Tables: []changefeed.Table{{Schema: "src", Name: "nothere"}}}, nil},
		{"no primary key", changefeed.Config{Conn: e.admin, Name: name, Tables: []changefeed.Table{{Schema: "src", Name: "nokey"}}}, changefeed.ErrNoPrimaryKey},
		{"wrong key", changefeed.Config{Conn: e.admin, Name: name, Tables: []changefeed.Table{{Schema: "src", Name: "notes", Key: []string{"code"}}}}, nil},
		{"tenant outside the key", changefeed.Config{Conn: e.admin, Name: name, Tables: []changefeed.Table{{Schema: "src", Name: "loose"}}, Tenant: &tenant}, nil},
	} {
		f, err := changefeed.Start(ctx, c.cfg)
		if err == nil {
			f.Close(ctx)
			t.Errorf("%s: Start succeeded", c.what)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.what, err, c.want)
		}
		t.Logf("%s: %v", c.what, err)
	}
	e.gone(t, name)

	f, err := changefeed.Start(ctx, e.config(name, nil))
	must(t, err)
	t.Cleanup(func() { f.Close(context.Background()) })
	if _, err := changefeed.Start(ctx, e.config(name, nil)); !errors.Is(err, changefeed.ErrSlotExists) {
		t.Errorf("second Start: %v, want ErrSlotExists", err)
	}
	if _, err := changefeed.Start(ctx, e.config(name, &tenant)); err == nil {
		t.Error("Start with a row filter the existing publication does not have succeeded")
	}
	e.exists(t, name)
}

func (e *env) slotAndPublication(t *testing.T, name string) (slot, pub bool) {
	t.Helper()
	err := e.pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1),
		EXISTS (SELECT FROM pg_publication WHERE pubname = $1)`, name).Scan(&slot, &pub)
	must(t, err)
	return slot, pub
}

func (e *env) gone(t *testing.T, name string) {
	t.Helper()
	if slot, pub := e.slotAndPublication(t, name); slot || pub {
		t.Errorf("%s: slot left %t, publication left %t", name, slot, pub)
	}
}

func (e *env) exists(t *testing.T, name string) {
	t.Helper()
	if slot, pub := e.slotAndPublication(t, name); !slot || !pub {
		t.Errorf("%s: slot exists %t, publication exists %t", name, slot, pub)
	}
}

// TestKeepAlive: a stream left unread between catch-ups, and during a slow
// apply, outlives the walsender's timeout (made short here).
func TestKeepAlive(t *testing.T) {
	t.Parallel()
	const name = "feed_keepalive"
	e := setup(t, name)
	ctx := t.Context()
	cfg := e.config(name, nil)
	cfg.Conn = e.admin.Copy()
	cfg.Conn.RuntimeParams["wal_sender_timeout"] = "2s"
	f, err := changefeed.Start(ctx, cfg)
	must(t, err)
	t.Cleanup(func() { f.Close(context.Background()) })
	e.copySnapshot(t, f, nil)
	rnd := rand.New(rand.NewPCG(7, 7))
	tenants := []uuid.UUID{uuid.New()}
	e.churn(t, rnd, tenants, 20)
	apply := e.applyFunc(applier(), nil)
	_, err = f.CatchUp(ctx, apply, nil)
	must(t, err)

	time.Sleep(5 * time.Second)
	e.churn(t, rnd, tenants, 20)
	slow := true
	_, err = f.CatchUp(ctx, func(ctx context.Context, txn changefeed.Txn) error {
		if slow {
			slow = false
			time.Sleep(5 * time.Second)
		}
		return apply(ctx, txn)
	}, nil)
	must(t, err)
	e.same(t, nil)
}

// TestReplicationRole: a role that is not a superuser, with REPLICATION
// and membership in the tables' owner, runs a feed from Start to Drop.
func TestReplicationRole(t *testing.T) {
	t.Parallel()
	const name = "feed_role"
	e := setup(t, name)
	ctx := t.Context()
	admin, err := pgx.ConnectConfig(ctx, e.admin)
	must(t, err)
	t.Cleanup(func() { admin.Close(context.Background()) })
	var super bool
	must(t, admin.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super))
	if !super {
		t.Skip("making a role with REPLICATION takes a superuser")
	}
	role := "changefeed_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	_, err = admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN REPLICATION NOSUPERUSER; GRANT "+pgtest.OwnerRole+" TO "+role)
	must(t, err)
	conn := e.admin.Copy()
	conn.User = role
	// Registered after setup's, so it runs before the slot is dropped.
	t.Cleanup(func() {
		if err := changefeed.Drop(context.Background(), conn, pgtest.OwnerRole, name); err != nil {
			t.Errorf("drop as %s: %v", role, err)
		}
		if _, err := admin.Exec(context.Background(), "DROP ROLE "+role); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	cfg := e.config(name, nil)
	cfg.Conn = conn
	f, err := changefeed.Start(ctx, cfg)
	must(t, err)
	e.copySnapshot(t, f, nil)
	e.churn(t, rand.New(rand.NewPCG(8, 8)), []uuid.UUID{uuid.New()}, 30)
	_, err = f.CatchUp(ctx, e.applyFunc(applier(), nil), nil)
	must(t, err)
	e.same(t, nil)
	must(t, f.Close(ctx))
}
