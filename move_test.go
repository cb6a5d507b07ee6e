package landlord

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/move"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// writer writes to one tenant through the handle at a steady pace until
// stopped: each step inserts an item with a new id and renames parent 1
// to the step's number. It records what was acknowledged.
type writer struct {
	h      *Handle
	ctx    context.Context
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	acked  []int64 // ids of acknowledged inserts
	named  int     // the last acknowledged rename
	errs   []error
	longst time.Duration // the longest acknowledged call
}

func startWriter(h *Handle, ctx context.Context, from int64) *writer {
	return startWriterEvery(h, ctx, from, 4*time.Millisecond)
}

func startWriterEvery(h *Handle, ctx context.Context, from int64, every time.Duration) *writer {
	w := &writer{h: h, ctx: ctx, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := from; ; i++ {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			start := time.Now()
			_, err := h.Exec(ctx, `INSERT INTO items (id, parent_id, sku, secret) VALUES ($1, 1, $2, 'written')`, i, "w"+strconv.FormatInt(i, 10))
			took := time.Since(start)
			var name string
			var rerr error
			if err == nil {
				rerr = h.QueryRow(ctx, `UPDATE parents SET name = $1 WHERE id = 1 RETURNING name`, strconv.FormatInt(i, 10)).Scan(&name)
			}
			w.mu.Lock()
			switch {
			case err != nil:
				w.errs = append(w.errs, err)
			default:
				w.acked = append(w.acked, i)
				w.longst = max(w.longst, took)
				if rerr != nil {
					w.errs = append(w.errs, rerr)
				} else {
					w.named = int(i)
				}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *writer) finish() {
	close(w.stop)
	<-w.done
}

// check verifies that every acknowledged write is there exactly once,
// through the handle (at the tenant's placement now).
func (w *writer) check(t *testing.T) {
	t.Helper()
	for _, err := range w.errs {
		t.Errorf("a write failed during the move: %v", err)
	}
	if len(w.acked) == 0 {
		t.Fatal("no write was acknowledged")
	}
	var n int
	if err := w.h.QueryRow(w.ctx, `SELECT count(*) FROM items WHERE id = ANY($1)`, w.acked).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(w.acked) {
		t.Errorf("%d of %d acknowledged inserts are there", n, len(w.acked))
	}
	var name string
	if err := w.h.QueryRow(w.ctx, `SELECT name FROM parents WHERE id = 1`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if got, _ := strconv.Atoi(name); got < w.named {
		t.Errorf("parent 1 is named %s, older than the last acknowledged rename %d", name, w.named)
	}
}

// seed gives tenant id a parent and n items through the handle.
func seedItems(t *testing.T, h *Handle, ctx context.Context, n int) {
	t.Helper()
	_, err := h.Exec(ctx, `INSERT INTO parents (id, name) VALUES (1, '0'), (2, 'two')`)
	must(t, err)
	_, err = h.Exec(ctx, `INSERT INTO items (id, parent_id, sku, secret) SELECT g, 1 + g % 2, 's' || g, repeat('x', g % 50) FROM generate_series(1, $1) g`, n)
	must(t, err)
}

// moveSetup is a superuser installation (an online move needs one) with a
// second server.
func moveSetup(t *testing.T) (*Landlord, *Admin, *pgtest.DB) {
	t.Helper()
	db := server.NewDB(t, template)
	l, err := Open(t.Context(), db.AdminURL, testMigrations(), Config{MoveWait: 20 * time.Second})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(l.Close)
	a, err := l.Admin(t.Context(), "move test")
	must(t, err)
	return l, a, db
}

// leftovers lists what of the tenant's move or old placement remains.
func leftovers(t *testing.T, l *Landlord, src tenant.Tenant) []string {
	t.Helper()
	ctx := t.Context()
	cfg, err := l.Provisioner().ConnConfig(ctx, src.Server, "postgres", "")
	must(t, err)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	must(t, err)
	defer conn.Close(ctx)
	var out []string
	var slots, dbs int
	must(t, conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE '%' || $1 || '%'),
		(SELECT count(*) FROM pg_database WHERE datname = $2)`, src.ID.Hex(), src.ID.DatabaseName()).Scan(&slots, &dbs))
	if slots > 0 {
		out = append(out, "replication slot")
	}
	if src.Model == tenant.ModelDatabase && dbs > 0 {
		out = append(out, "database "+src.Database)
	}
	if src.Model != tenant.ModelDatabase {
		cfg.Database = src.Database
		sc, err := pgx.ConnectConfig(ctx, cfg)
		must(t, err)
		defer sc.Close(ctx)
		var pubs, schemas, rows int
		must(t, sc.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_publication WHERE pubname LIKE '%' || $1 || '%'),
			(SELECT count(*) FROM pg_namespace WHERE nspname = $2)`, src.ID.Hex(), src.ID.SchemaName()).Scan(&pubs, &schemas))
		if pubs > 0 {
			out = append(out, "publication")
		}
		if src.Model == tenant.ModelSchema && schemas > 0 {
			out = append(out, "schema "+src.Schema)
		}
		if src.Model == tenant.ModelRow {
			must(t, sc.QueryRow(ctx, `SELECT (SELECT count(*) FROM shared.items WHERE tenant_id = $1) + (SELECT count(*) FROM shared.parents WHERE tenant_id = $1)`, src.ID).Scan(&rows))
			if rows > 0 {
				out = append(out, fmt.Sprintf("%d rows in the shared tables", rows))
			}
		}
	}
	return out
}

// TestMoveEveryPair moves a tenant between every ordered pair of models,
// and to another server, online, while a writer inserts and updates
// through the handle: every acknowledged write is there afterwards, once,
// a neighbour is untouched, and nothing of the old placement, the slot or
// the publication is left.
func TestMoveEveryPair(t *testing.T) {
	t.Parallel()
	l, a, _ := moveSetup(t)
	ctx := t.Context()
	extra := pgtest.StartExtra(t)
	_, err := a.AddServer(ctx, provision.ServerSpec{ID: "second", Host: extra.Host, Port: extra.Port, Database: extra.Database})
	must(t, err)
	h := l.Handle()

	neighbour, err := l.CreateTenant(ctx, provision.Request{Slug: "neighbour", Model: tenant.ModelRow})
	must(t, err)
	nctx := WithTenant(ctx, neighbour.ID)
	seedItems(t, h, nctx, 20)

	cases := []struct {
		from, to tenant.Model
		server   string
	}{
		{tenant.ModelRow, tenant.ModelSchema, ""},
		{tenant.ModelSchema, tenant.ModelDatabase, ""},
		{tenant.ModelDatabase, tenant.ModelRow, ""},
		{tenant.ModelRow, tenant.ModelDatabase, ""},
		{tenant.ModelDatabase, tenant.ModelSchema, ""},
		{tenant.ModelSchema, tenant.ModelRow, ""},
		{tenant.ModelSchema, tenant.ModelRow, "second"},
	}
	for i, c := range cases {
		name := fmt.Sprintf("%s-to-%s", c.from, c.to)
		if c.server != "" {
			name += "-on-" + c.server
		}
		t.Run(name, func(t *testing.T) {
			src, err := l.CreateTenant(ctx, provision.Request{Slug: fmt.Sprintf("moving-%d", i), Model: c.from})
			must(t, err)
			tctx := WithTenant(ctx, src.ID)
			seedItems(t, h, tctx, 200)
			w := startWriterEvery(h, tctx, 10000, 8*time.Millisecond)
			time.Sleep(100 * time.Millisecond)
			var phases []directory.MovePhase
			res, err := a.MoveTenant(ctx, src.ID, c.to, c.server, move.Config{Settle: time.Millisecond, Progress: func(p move.Progress) {
				if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
					phases = append(phases, p.Phase)
				}
			}})
			time.Sleep(100 * time.Millisecond)
			w.finish()
			if err != nil {
				t.Fatalf("move: %v", err)
			}
			if !res.Move.Online {
				t.Errorf("the move went offline")
			}
			// It followed every change from the copy on: the cutover
			// compared those, and the counts.
			// Each change writes one key, two when it changes the key:
			// every change since the copy is counted, not the last round's.
			if res.Cutover.Compared != "changed" || res.Changes > 0 && res.Cutover.Keys == 0 || int64(res.Cutover.Keys) > 2*res.Changes {
				t.Errorf("the cutover compared %q, %d keys, after %d changes", res.Cutover.Compared, res.Cutover.Keys, res.Changes)
			}
			got, err := l.Directory().Get(ctx, src.ID)
			must(t, err)
			wantServer := src.Server
			if c.server != "" {
				wantServer = c.server
			}
			if got.Model != c.to || got.Server != wantServer || got.State != tenant.StateActive {
				t.Errorf("after the move the tenant is %s on %s, %s", got.Model, got.Server, got.State)
			}
			w.check(t)
			var n int
			must(t, h.QueryRow(tctx, `SELECT count(*) FROM items WHERE id <= 200`).Scan(&n))
			if n != 200 {
				t.Errorf("%d of the 200 seeded items are there", n)
			}
			if left := leftovers(t, l, src); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
			must(t, h.QueryRow(nctx, `SELECT count(*) FROM items`).Scan(&n))
			if n != 20 {
				t.Errorf("the neighbour has %d items, want 20", n)
			}
			t.Logf("%s: %d rows copied, %d changes applied, pause %s (%+v), longest acknowledged insert %s, phases %v",
				name, res.Rows, res.Changes, res.Pause, res.Cutover, w.longst, phases)
		})
	}
}

// TestMoveOffline: an offline move copies after the fence; the writer's
// calls wait through it and none is lost.
func TestMoveOffline(t *testing.T) {
	t.Parallel()
	l, a, _ := moveSetup(t)
	ctx := t.Context()
	h := l.Handle()
	src, err := l.CreateTenant(ctx, provision.Request{Slug: "offline", Model: tenant.ModelSchema})
	must(t, err)
	tctx := WithTenant(ctx, src.ID)
	seedItems(t, h, tctx, 300)
	w := startWriter(h, tctx, 10000)
	time.Sleep(100 * time.Millisecond)
	res, err := a.MoveTenant(ctx, src.ID, tenant.ModelDatabase, "", move.Config{Mode: move.Offline, Settle: time.Millisecond})
	time.Sleep(100 * time.Millisecond)
	w.finish()
	must(t, err)
	if got, err := l.Directory().Get(ctx, src.ID); err != nil || got.Model != tenant.ModelDatabase || got.State != tenant.StateActive {
		t.Errorf("after the move: %v, %v; want an active database tenant", got, err)
	}
	if res.Move.Online || res.Changes != 0 || res.Cutover.Compared != "all" {
		t.Errorf("offline move: online %v, %d changes, compared %q", res.Move.Online, res.Changes, res.Cutover.Compared)
	}
	w.check(t)
	if left := leftovers(t, l, src); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	// An admin scope reaches it at its new placement.
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = a.Fanout(fctx, directory.Filter{}, FanoutOptions{}, func(ctx context.Context, tn tenant.Tenant, q Querier) error {
		var n int
		return q.QueryRow(ctx, `SELECT count(*) FROM items`).Scan(&n)
	})
	if err != nil {
		t.Errorf("fanout after the move: %v", err)
	}
}

// TestMoveRefusals: bad moves are refused before anything is made.
func TestMoveRefusals(t *testing.T) {
	t.Parallel()
	l, a, _ := moveSetup(t)
	ctx := t.Context()
	src, err := l.CreateTenant(ctx, provision.Request{Slug: "stays", Model: tenant.ModelSchema})
	must(t, err)
	if _, err := a.MoveTenant(ctx, src.ID, tenant.ModelSchema, "", move.Config{}); !errors.Is(err, move.ErrSamePlacement) {
		t.Errorf("move to where it is: %v", err)
	}
	if _, err := a.MoveTenant(ctx, src.ID, tenant.ModelRow, "nowhere", move.Config{}); !errors.Is(err, provision.ErrUnknownServer) {
		t.Errorf("move to an unknown server: %v", err)
	}
	if _, err := a.MoveTenant(ctx, src.ID, "cluster", "", move.Config{}); !errors.Is(err, tenant.ErrBadModel) {
		t.Errorf("move to an unknown model: %v", err)
	}
	if _, err := a.MoveTenant(ctx, tenant.NewID(), tenant.ModelRow, "", move.Config{}); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("move of an unknown tenant: %v", err)
	}
	moves, err := l.Directory().Moves(ctx, tenant.ID{}, false, 10)
	must(t, err)
	if len(moves) != 0 {
		t.Errorf("refused moves left records: %v", moves)
	}
	if _, err := a.AbortMove(ctx, src.ID); !errors.Is(err, move.ErrNoMove) {
		t.Errorf("abort without a move: %v", err)
	}
}

// TestFenceAtTheHandle: a call that meets a fence at the tenant's
// placement, which its router does not know of, waits for the move (here:
// the fence going) and goes again; one that waits longer than MoveWait
// fails with tenant.ErrMoving, and nothing of it ran.
func TestFenceAtTheHandle(t *testing.T) {
	t.Parallel()
	l, _ := setup(t, Config{MoveWait: 300 * time.Millisecond})
	ctx := t.Context()
	tn, err := l.CreateTenant(ctx, provision.Request{Slug: "fenced", Model: tenant.ModelSchema})
	must(t, err)
	h := l.Handle()
	tctx := WithTenant(ctx, tn.ID)
	seedItems(t, h, tctx, 3)
	owner := l.Provisioner().Roles().Owner
	admin := l.Provisioner().Admin()
	role := provision.PlacementRole(tn)
	_, err = migration.Fence(ctx, admin, owner, tn.ID.String(), role)
	must(t, err)

	_, err = h.Exec(tctx, `INSERT INTO items (id, parent_id, sku, secret) VALUES (100, 1, 'late', 'x')`)
	if !errors.Is(err, tenant.ErrMoving) {
		t.Fatalf("Exec at a fenced placement: %v, want tenant.ErrMoving", err)
	}
	var n int
	if err := h.QueryRow(tctx, `SELECT count(*) FROM items`).Scan(&n); !errors.Is(err, tenant.ErrMoving) {
		t.Fatalf("QueryRow at a fenced placement: %v, want tenant.ErrMoving", err)
	}

	// Lifted while the call waits: it goes through.
	go func() {
		time.Sleep(100 * time.Millisecond)
		if err := migration.Unfence(context.Background(), admin, owner, tn.ID.String(), role); err != nil {
			t.Errorf("unfence: %v", err)
		}
	}()
	if _, err := h.Exec(tctx, `INSERT INTO items (id, parent_id, sku, secret) VALUES (101, 1, 'waited', 'x')`); err != nil {
		t.Fatalf("Exec while the fence goes: %v", err)
	}
	must(t, h.QueryRow(tctx, `SELECT count(*) FROM items`).Scan(&n))
	if n != 4 {
		t.Errorf("%d items, want 4: the refused insert ran, or the waiting one did not", n)
	}
}

// TestDrain: three servers; the second's tenants, of every model, are
// drained while each is written to through the handle: every one ends on
// another server in its model, every acknowledged write is there, and
// nothing of them is left on the drained server.
func TestDrain(t *testing.T) {
	t.Parallel()
	l, a, _ := moveSetup(t)
	ctx := t.Context()
	h := l.Handle()
	for _, name := range []string{"second", "third"} {
		x := pgtest.StartExtra(t)
		_, err := a.AddServer(ctx, provision.ServerSpec{ID: name, Host: x.Host, Port: x.Port, Database: x.Database})
		must(t, err)
	}
	type moving struct {
		src tenant.Tenant
		w   *writer
	}
	var all []moving
	for i, m := range []tenant.Model{tenant.ModelRow, tenant.ModelSchema, tenant.ModelDatabase, tenant.ModelRow, tenant.ModelSchema, tenant.ModelDatabase} {
		src, err := l.CreateTenant(ctx, provision.Request{Slug: fmt.Sprintf("drained-%d", i), Model: m, Server: "second"})
		must(t, err)
		tctx := WithTenant(ctx, src.ID)
		seedItems(t, h, tctx, 50)
		all = append(all, moving{src, startWriterEvery(h, tctx, 10000, 25*time.Millisecond)})
	}
	var last move.DrainProgress
	res, err := a.DrainServer(ctx, "second", move.DrainConfig{Parallel: 3, Move: move.Config{Settle: time.Millisecond},
		Progress: func(p move.DrainProgress) { last = p }})
	time.Sleep(100 * time.Millisecond)
	for _, m := range all {
		m.w.finish()
	}
	must(t, err)
	if len(res.Moved) != len(all) || last.Done != len(all) || last.Total != len(all) {
		t.Errorf("drained %d of %d tenants (progress %+v)", len(res.Moved), len(all), last)
	}
	for _, m := range all {
		got, err := l.Directory().Get(ctx, m.src.ID)
		must(t, err)
		if got.Server == "second" || got.Model != m.src.Model || got.State != tenant.StateActive {
			t.Errorf("%s after the drain: %s on %s, %s", m.src.Slug, got.Model, got.Server, got.State)
		}
		m.w.check(t)
		if left := leftovers(t, l, m.src); len(left) > 0 {
			t.Errorf("%s left on the drained server: %v", m.src.Slug, left)
		}
	}
	loads, err := a.ServerLoads(ctx)
	must(t, err)
	for _, ld := range loads {
		if ld.Server == "second" && ld.Load != 0 {
			t.Errorf("the drained server still has tenants: %+v", ld)
		}
	}
	if _, err := a.DrainServer(ctx, "nowhere", move.DrainConfig{}); !errors.Is(err, provision.ErrUnknownServer) {
		t.Errorf("drain of an unknown server: %v", err)
	}
}
