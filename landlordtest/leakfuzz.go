package landlordtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/embedded"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// Environment variables of LeakFuzz.
const (
	// EnvFuzzOps sets the number of operations of a LeakFuzz whose caller
	// leaves it open: LANDLORD_FUZZ_OPS=1000000 runs the long mode.
	EnvFuzzOps = "LANDLORD_FUZZ_OPS"
	// EnvFuzzSeed replays the operation streams of a failed run, whose
	// seed it printed (the interleaving of goroutines still varies).
	EnvFuzzSeed = "LANDLORD_FUZZ_SEED"
)

// DefaultFuzzOps is the number of operations LeakFuzz runs when neither
// its caller nor EnvFuzzOps says how many.
const DefaultFuzzOps = 100_000

// fuzzMigration is the kit's own tenant table, added after the
// application's migrations: every write of the fuzz goes there, with the
// writer's slug, its id and the context it ran with, so that the final check
// knows where each row belongs.
const fuzzMigration = `CREATE TABLE landlordtest_fuzz (
	tenant_id uuid   NOT NULL,
	id        bigint NOT NULL,
	secret    text   NOT NULL,
	PRIMARY KEY (tenant_id, id)
)`

// LeakFuzz runs the pool-leak fuzz (SECURITY.md) on k's tables: goroutines
// run random operations as random tenants through small pools: reads of
// the application's tables and of the kit's own, writes, transactions that
// panic, statements cancelled or timed out mid-flight, calls that leave
// session state behind, batches; half-way through each round the server
// restarts. Every statement reports the tenant context and role it ran
// with, which must be its caller's; every read must return only the
// caller's rows; at the end the superuser reads every tenant's rows and
// checks that each write landed in its writer's tenant with its writer's
// context, that every acknowledged write is there and that no write of a
// panicked transaction is.
//
// It runs three rounds (two tenants of one model and a third of another,
// with a budget of 3 to 6 connections per round) on a PostgreSQL server of
// its own, started from the machine's binaries (package embedded), since it
// restarts it; Kit.Open and Kit.SuperuserURL are not used. It runs ops
// operations in all; with ops 0, EnvFuzzOps when set, else DefaultFuzzOps.
// A failure prints the seed to replay with EnvFuzzSeed.
func LeakFuzz(t *testing.T, k Kit, ops int) {
	if k.Migrations == nil || k.Seed == nil {
		t.Fatal("landlordtest: LeakFuzz needs Kit.Migrations and Kit.Seed")
	}
	if v := os.Getenv(EnvFuzzOps); ops <= 0 && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number of operations", EnvFuzzOps, v)
		}
		ops = n
	}
	if ops <= 0 {
		ops = DefaultFuzzOps
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(EnvFuzzSeed); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want an unsigned integer", EnvFuzzSeed, v)
		}
		seed = n
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with %s=%d %s=%d", EnvFuzzSeed, seed, EnvFuzzOps, ops)
		}
	})
	migrations := withFuzzTable(t, k)
	srv := startFuzzServer(t)
	rounds := []struct{ ab, c tenant.Model }{
		{tenant.ModelRow, tenant.ModelSchema},
		{tenant.ModelSchema, tenant.ModelDatabase},
		{tenant.ModelDatabase, tenant.ModelRow},
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	for i, r := range rounds {
		// One budget for the round's (at most three) targets, of three to six
		// connections: every target keeps one to four, as pools of their
		// own would. (Budgets below the number of targets, where every
		// switch closes a connection to open another, are the pool
		// alternation's and package pool's tests.)
		cfg := landlord.Config{MaxConns: 3 + rng.IntN(4), MaxDialsPerSecond: -1}
		n := ops / len(rounds)
		if i == 0 {
			n += ops % len(rounds)
		}
		t.Run(fmt.Sprintf("%s-%s", r.ab, r.c), func(t *testing.T) {
			fz := newFuzzRound(t, k, srv, migrations, i, []tenant.Model{r.ab, r.ab, r.c}, cfg, rng.Uint64())
			fz.run(t, n)
			for _, p := range fz.verify(t) {
				t.Error(p)
			}
			if t.Failed() {
				return
			}
			t.Logf("%d operations on MaxConns=%d: %d ok, %d failed (cancels, timeouts, panics, restart), 0 leaks",
				n, cfg.MaxConns, fz.okOps.Load(), fz.failedOps.Load())
			if i == 0 {
				t.Run("checks-can-fail", func(t *testing.T) {
					fz.corrupt(t)
					got := strings.Join(fz.verify(t), "\n")
					if !strings.Contains(got, "999999") || !strings.Contains(got, "acknowledged write 2/999999 is missing") {
						t.Fatalf("the final check missed a misplaced row and a lost write: %q", got)
					}
				})
			}
		})
	}
}

// withFuzzTable returns k's migrations with the fuzz's own table after them.
func withFuzzTable(t *testing.T, k Kit) fstest.MapFS {
	t.Helper()
	set, err := migration.Load(k.Migrations)
	if err != nil {
		t.Fatalf("landlordtest: %v", err)
	}
	files := fstest.MapFS{}
	for _, m := range set.Migrations() {
		files[m.Name] = &fstest.MapFile{Data: []byte(m.SQL)}
	}
	files[fmt.Sprintf("%03d_landlordtest_fuzz.up.sql", set.Head()+1)] = &fstest.MapFile{Data: []byte(fuzzMigration)}
	return files
}

// fuzzServer is the fuzz's own PostgreSQL server, which it restarts.
type fuzzServer struct {
	mu   sync.Mutex
	srv  *embedded.Server
	cfg  embedded.Config
	down atomic.Bool
}

func startFuzzServer(t *testing.T) *fuzzServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "landlord-leakfuzz-")
	must(t, err)
	// The server's OS user must enter the directory when we are root.
	must(t, os.Chmod(dir, 0o755))
	cfg := embedded.Config{
		DataDir: filepath.Join(dir, "pgdata"),
		// Disposable data, but kept across the restart, so not Temporary.
		Settings: map[string]string{"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := embedded.Start(ctx, cfg)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("start the fuzz server: %v", err)
	}
	cfg.Port = srv.Port()
	fs := &fuzzServer{srv: srv, cfg: cfg}
	t.Cleanup(func() {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := fs.srv.Stop(ctx); err != nil {
			t.Errorf("stop the fuzz server: %v", err)
		}
		os.RemoveAll(dir)
	})
	return fs
}

// restart stops the server (a fast shutdown: sessions are ended) and starts
// it again on the same data directory and port.
func (s *fuzzServer) restart(t *testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s.down.Store(true)
	defer s.down.Store(false)
	if err := s.srv.Stop(ctx); err != nil {
		t.Errorf("stop the fuzz server: %v", err)
		return
	}
	srv, err := embedded.Start(ctx, s.cfg)
	if err != nil {
		t.Errorf("restart the fuzz server: %v", err)
		return
	}
	s.srv = srv
}

func (s *fuzzServer) url(db string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv.URL(db)
}

// fuzzRound is one installation with three tenants and what was written.
type fuzzRound struct {
	srv     *fuzzServer
	l       *landlord.Landlord
	ts      []tenant.Tenant
	tables  []string // the application's tenant tables
	seed    uint64
	nextID  []atomic.Int64
	written sync.Map // "<tenant index>/<id>" → write state
	roles   []string // the role each tenant's statements run as

	okOps, failedOps atomic.Int64
}

type writeState int

const (
	acked    writeState = iota // the call returned success: the row must exist
	maybe                      // the call failed: the row may exist
	rolledBk                   // its transaction panicked: the row must not exist
)

func newFuzzRound(t *testing.T, k Kit, srv *fuzzServer, migrations fstest.MapFS, n int, models []tenant.Model, cfg landlord.Config, seed uint64) *fuzzRound {
	t.Helper()
	ctx := context.Background()
	fz := &fuzzRound{srv: srv, seed: seed}
	dbName := fmt.Sprintf("leakfuzz_%d", n)
	admin, err := pgx.Connect(ctx, srv.url("postgres"))
	must(t, err)
	_, err = admin.Exec(ctx, `CREATE DATABASE `+dbName)
	admin.Close(ctx)
	must(t, err)
	fz.l, err = landlord.Open(ctx, srv.url(dbName), migrations, cfg)
	must(t, err)
	t.Cleanup(fz.l.Close)
	conn, err := pgx.Connect(ctx, srv.url(dbName))
	must(t, err)
	rows, err := conn.Query(ctx, tablesSQL, provision.SharedSchema)
	must(t, err)
	fz.tables, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var oid uint32
		var name string
		var partitioned bool
		var leaves []string
		err := r.Scan(&oid, &name, &partitioned, &leaves)
		return name, err
	})
	conn.Close(ctx)
	must(t, err)
	fz.nextID = make([]atomic.Int64, len(models))
	roles := fz.l.Provisioner().Roles()
	for i, m := range models {
		tn := createTenant(t, fz.l, fmt.Sprintf("fuzz-%d-%c", n, 'a'+i), m)
		fz.ts = append(fz.ts, tn)
		role := roles.App
		if m != tenant.ModelRow {
			role = tn.ID.RoleName()
		}
		fz.roles = append(fz.roles, role)
		tctx := landlord.WithTenant(ctx, tn.ID)
		if err := k.Seed(tctx, fz.l.Handle()); err != nil {
			t.Fatalf("Kit.Seed: %v", err)
		}
		// Each tenant starts with rows of its own, ids 1 to 20.
		b := &pgx.Batch{}
		for id := 1; id <= 20; id++ {
			b.Queue(`INSERT INTO landlordtest_fuzz (id, secret) VALUES ($1, $2)`, id, fz.secret(i, id, tn.ID.String()))
			fz.written.Store(fz.key(i, int64(id)), acked)
		}
		must(t, fz.l.Handle().SendBatch(tctx, b).Close())
		fz.nextID[i].Store(20)
	}
	return fz
}

func (fz *fuzzRound) key(who int, id int64) string { return fmt.Sprint(who, "/", id) }

// secret is the value tenant who writes in row id, with the context the
// statement ran with.
func (fz *fuzzRound) secret(who, id int, ctxID string) string {
	return fmt.Sprintf("%s:%d:%s", fz.ts[who].Slug, id, ctxID)
}

// failure records one broken promise; run stops at the first few.
type failure struct {
	mu   sync.Mutex
	msgs []string
}

func (f *failure) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.msgs) < 20 {
		f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
	}
}

func (f *failure) any() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.msgs) > 0
}

// run performs n operations on goroutines and restarts the server half-way.
func (fz *fuzzRound) run(t *testing.T, n int) {
	const workers = 6
	var done atomic.Int64
	var fail failure
	var wg sync.WaitGroup
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		for done.Load() < int64(n/2) {
			if fail.any() {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		fz.srv.restart(t)
		t.Logf("server restarted after %d operations", done.Load())
	}()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		r := rand.New(rand.NewPCG(fz.seed, uint64(w)))
		go func() {
			defer wg.Done()
			for done.Add(1) <= int64(n) && !fail.any() {
				for fz.srv.down.Load() {
					time.Sleep(5 * time.Millisecond)
				}
				who := r.IntN(len(fz.ts))
				if fz.op(r, who, &fail) {
					fz.okOps.Add(1)
				} else {
					fz.failedOps.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	<-restarted
	for _, m := range fail.msgs {
		t.Error(m)
	}
}

// check verifies what one statement said about itself: its context and
// role, and the rows it read.
func (fz *fuzzRound) check(fail *failure, who int, what, ctxID, role string, secrets []string) {
	tn := fz.ts[who]
	if ctxID != tn.ID.String() {
		fail.add("%s by %s (%s) ran with tenant context %q", what, tn.Slug, tn.Model, ctxID)
	}
	if role != fz.roles[who] {
		fail.add("%s by %s (%s) ran as role %q, want %q", what, tn.Slug, tn.Model, role, fz.roles[who])
	}
	for _, s := range secrets {
		if !strings.HasPrefix(s, tn.Slug+":") {
			fail.add("%s by %s (%s) read another tenant's row %q", what, tn.Slug, tn.Model, s)
		}
	}
}

const fuzzRead = `SELECT current_setting('landlord.tenant_id'), current_user::text, coalesce(array_agg(secret ORDER BY id), '{}')
	FROM landlordtest_fuzz WHERE id BETWEEN $1::bigint AND $1::bigint + 3`

// op runs one random operation as tenant who and reports whether it
// succeeded. Any result it gets is checked.
func (fz *fuzzRound) op(r *rand.Rand, who int, fail *failure) (ok bool) {
	tn := fz.ts[who]
	ctx := landlord.WithTenant(context.Background(), tn.ID)
	h := fz.l.Handle()
	read := func(ctx context.Context, q landlord.Querier, what string) error {
		var ctxID, role string
		var secrets []string
		err := q.QueryRow(ctx, fuzzRead, 1+r.IntN(int(fz.nextID[who].Load()))).Scan(&ctxID, &role, &secrets)
		if err == nil {
			fz.check(fail, who, what, ctxID, role, secrets)
		}
		return err
	}
	write := func(ctx context.Context, q landlord.Querier, sleepMS int) (int64, error) {
		id := fz.nextID[who].Add(1)
		fz.written.Store(fz.key(who, id), maybe)
		_, err := q.Exec(ctx, `INSERT INTO landlordtest_fuzz (id, secret)
			SELECT $1::bigint, $2::text || ':' || $1::text || ':' || current_setting('landlord.tenant_id')
			FROM pg_sleep($3::float8 / 1000)`, id, tn.Slug, sleepMS)
		return id, err
	}
	// Per mille. Cancels, deadlines and leftovers each cost a connection,
	// which costs a fork on the server: they are rare enough that the run
	// stays within its time on two cores.
	switch k := r.IntN(1000); {
	case k < 310:
		return read(ctx, h, "read") == nil
	case k < 460:
		// A read of one of the application's tables: only the caller's
		// tenant_id.
		table := fz.tables[r.IntN(len(fz.tables))]
		var ctxID, role string
		var ids []string
		err := h.QueryRow(ctx, `SELECT current_setting('landlord.tenant_id'), current_user::text, coalesce(array_agg(DISTINCT tenant_id::text), '{}') FROM `+ident(table)).
			Scan(&ctxID, &role, &ids)
		if err == nil {
			fz.check(fail, who, "read of "+table, ctxID, role, nil)
			for _, id := range ids {
				if id != tn.ID.String() {
					fail.add("read of %s by %s (%s) returned rows of tenant %s", table, tn.Slug, tn.Model, id)
				}
			}
		}
		return err == nil
	case k < 710:
		id, err := write(ctx, h, 0)
		if err == nil {
			fz.written.Store(fz.key(who, id), acked)
		}
		return err == nil
	case k < 860:
		// A transaction: read, write, read, and sometimes a panic.
		var id int64
		panics := r.IntN(4) == 0
		err := func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("panic: %v", p)
				}
			}()
			return pgx.BeginFunc(ctx, h, func(tx pgx.Tx) error {
				if err := read(ctx, tx, "read in a transaction"); err != nil {
					return err
				}
				var err error
				if id, err = write(ctx, tx, 0); err != nil {
					return err
				}
				if panics {
					fz.written.Store(fz.key(who, id), rolledBk)
					panic("fuzz: panic inside a transaction")
				}
				return read(ctx, tx, "read after a write")
			})
		}()
		if err == nil {
			fz.written.Store(fz.key(who, id), acked)
		}
		return err == nil
	case k < 980:
		// A batch: a read and a write in one implicit transaction.
		var ctxID, role string
		var secrets []string
		id := fz.nextID[who].Add(1)
		fz.written.Store(fz.key(who, id), maybe)
		b := &pgx.Batch{}
		b.Queue(fuzzRead, 1+r.IntN(20)).QueryRow(func(row pgx.Row) error { return row.Scan(&ctxID, &role, &secrets) })
		b.Queue(`INSERT INTO landlordtest_fuzz (id, secret) VALUES ($1::bigint, $2::text || ':' || $1::text || ':' || current_setting('landlord.tenant_id'))`, id, tn.Slug)
		err := h.SendBatch(ctx, b).Close()
		if err == nil {
			fz.check(fail, who, "batch read", ctxID, role, secrets)
			fz.written.Store(fz.key(who, id), acked)
		}
		return err == nil
	case k < 985:
		// A deadline shorter than the statement: cancelled mid-flight.
		cctx, cancel := context.WithTimeout(ctx, time.Duration(1+r.IntN(5))*time.Millisecond)
		defer cancel()
		if r.IntN(2) == 0 {
			_, err := write(cctx, h, 10+r.IntN(20))
			return err == nil
		}
		_, err := h.Exec(cctx, `SELECT pg_sleep(0.02)`)
		return err == nil
	case k < 995:
		// A cancel at a random moment of an ordinary read.
		cctx, cancel := context.WithCancel(ctx)
		timer := time.AfterFunc(time.Duration(r.IntN(500))*time.Microsecond, cancel)
		defer timer.Stop()
		defer cancel()
		return read(cctx, h, "read racing a cancel") == nil
	default:
		// Session state left behind on purpose; the next user of the
		// connection must not see it.
		leftovers := []string{
			`SELECT set_config('landlord.tenant_id', $1, false)`,
			`SELECT set_config('search_path', 'pg_catalog', false), $1::text`,
			`SET application_name = 'leftover'`,
			`DECLARE leftover CURSOR WITH HOLD FOR SELECT secret FROM landlordtest_fuzz`,
			`SELECT pg_advisory_lock(hashtext($1))`,
			`SELECT set_config('statement_timeout', '1', false), $1::text`,
			`SELECT set_config('role', current_user, false), $1::text`,
		}
		sql := leftovers[r.IntN(len(leftovers))]
		var err error
		if strings.Contains(sql, "$1") {
			_, err = h.Exec(ctx, sql, tn.ID.String())
		} else {
			_, err = h.Exec(ctx, sql)
		}
		return err == nil
	}
}

// verify reads every tenant's rows as the superuser and returns every
// broken promise it finds.
func (fz *fuzzRound) verify(t *testing.T) []string {
	ctx := context.Background()
	var problems []string
	found := map[string]bool{}
	for who, tn := range fz.ts {
		conn, err := pgx.Connect(ctx, fz.srv.url(tn.Database))
		must(t, err)
		rows, err := conn.Query(ctx, `SELECT tenant_id::text, id, secret FROM `+pgx.Identifier{tn.Schema, "landlordtest_fuzz"}.Sanitize()+` WHERE tenant_id = $1 OR $2`,
			tn.ID, tn.Model != tenant.ModelRow)
		must(t, err)
		type item struct {
			tid    string
			id     int64
			secret string
		}
		items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (item, error) {
			var x item
			err := r.Scan(&x.tid, &x.id, &x.secret)
			return x, err
		})
		if err == nil && tn.Model != tenant.ModelRow {
			// The application's tables at the tenant's own placement hold
			// its rows only.
			for _, table := range fz.tables {
				var n int
				if err = conn.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{tn.Schema, table}.Sanitize()+` WHERE tenant_id <> $1`, tn.ID).Scan(&n); err != nil {
					break
				}
				if n != 0 {
					problems = append(problems, fmt.Sprintf("%s's placement holds %d rows of %s of another tenant", tn.Slug, n, table))
				}
			}
		}
		conn.Close(ctx)
		must(t, err)
		for _, it := range items {
			want := fz.secret(who, int(it.id), tn.ID.String())
			if it.tid != tn.ID.String() || it.secret != want {
				problems = append(problems, fmt.Sprintf("%s's placement holds row %d as tenant %s with %q, want %q", tn.Slug, it.id, it.tid, it.secret, want))
				continue
			}
			found[fz.key(who, it.id)] = true
		}
	}
	fz.written.Range(func(k, v any) bool {
		switch v.(writeState) {
		case acked:
			if !found[k.(string)] {
				problems = append(problems, fmt.Sprintf("acknowledged write %s is missing", k))
			}
		case rolledBk:
			if found[k.(string)] {
				problems = append(problems, fmt.Sprintf("write %s of a panicked transaction is there", k))
			}
		}
		return true
	})
	// The installation still serves every tenant correctly.
	for who, tn := range fz.ts {
		var ctxID, role string
		var secrets []string
		if err := fz.l.Handle().QueryRow(landlord.WithTenant(ctx, tn.ID), fuzzRead, 1).Scan(&ctxID, &role, &secrets); err != nil {
			problems = append(problems, fmt.Sprintf("%s after the run: %v", tn.Slug, err))
			continue
		}
		var fail failure
		fz.check(&fail, who, "final read", ctxID, role, secrets)
		problems = append(problems, fail.msgs...)
	}
	return problems
}

// corrupt writes, as the superuser, a row of tenant 1 into tenant 0's
// placement, and forgets an acknowledged write of tenant 2: what a leak and
// a lost write would leave behind.
func (fz *fuzzRound) corrupt(t *testing.T) {
	ctx := context.Background()
	tn := fz.ts[0]
	conn, err := pgx.Connect(ctx, fz.srv.url(tn.Database))
	must(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `INSERT INTO `+pgx.Identifier{tn.Schema, "landlordtest_fuzz"}.Sanitize()+` (tenant_id, id, secret) VALUES ($1, 999999, $2)`,
		tn.ID, fz.secret(1, 999999, tn.ID.String()))
	must(t, err)
	fz.written.Store(fz.key(2, 999999), acked)
}
