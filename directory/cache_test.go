package directory

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/tenant"
)

// counted is a cache whose build function counts its calls, i.e. the reads
// that reached the directory.
type counted struct {
	*Cache[tenant.Tenant]
	builds atomic.Int32
}

func newCounted(e *env, cfg CacheConfig) *counted {
	c := &counted{}
	c.Cache = NewCache(e.d, func(t tenant.Tenant) (tenant.Tenant, error) {
		c.builds.Add(1)
		return t, nil
	}, cfg)
	return c
}

// listener runs c.Run against e's database until the test ends, with
// connections named app so that the test can find them, and waits until it
// listens. It returns a function that stops Run and waits for it.
func (e *env) listener(t *testing.T, c *counted, app string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, e.connect(app), ready)
	}()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the cache did not start listening")
	}
	return stop
}

func (e *env) connect(app string) func(context.Context) (*pgx.Conn, error) {
	return func(ctx context.Context) (*pgx.Conn, error) {
		cfg, err := pgx.ParseConfig(e.db.URL)
		if err != nil {
			return nil, err
		}
		cfg.RuntimeParams["application_name"] = app
		return pgx.ConnectConfig(ctx, cfg)
	}
}

// listenerPID returns the pid of the backend named app that has run LISTEN,
// or 0.
func (e *env) listenerPID(t *testing.T, app string) int {
	t.Helper()
	var pid int
	err := e.pool.QueryRow(t.Context(), `SELECT coalesce(max(pid), 0) FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database() AND query ILIKE 'LISTEN%'`, app).Scan(&pid)
	must(t, err)
	return pid
}

// eventually polls cond until it holds, failing the test after a deadline
// generous enough for a loaded machine: the conditions are reached by
// background work (notifications, reconnects, sweeps).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *counted) mustGet(t *testing.T, id tenant.ID) tenant.Tenant {
	t.Helper()
	v, err := c.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("cache get %s: %v", id, err)
	}
	return v
}

func TestCacheGet(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	tn := e.insert(t, "acme", tenant.ModelSchema, tenant.StateActive)
	c := newCounted(e, CacheConfig{MaxAge: time.Minute})
	for range 3 {
		if got := c.mustGet(t, tn.ID); got.ID != tn.ID || got.Slug != "acme" {
			t.Fatalf("cache returned %+v", got)
		}
	}
	if n := c.builds.Load(); n != 1 {
		t.Errorf("3 Gets read the directory %d times, want 1", n)
	}
	if c.Len() != 1 {
		t.Errorf("Len %d, want 1", c.Len())
	}
	// A change without a listener is not seen until invalidated.
	_, err := e.d.SetState(ctx, tn.ID, tenant.StateSuspended)
	must(t, err)
	if got := c.mustGet(t, tn.ID); got.State != tenant.StateActive {
		t.Fatalf("a cached entry was refreshed without a read: %+v", got)
	}
	c.Invalidate(tn.ID)
	if got := c.mustGet(t, tn.ID); got.State != tenant.StateSuspended || c.builds.Load() != 2 {
		t.Errorf("after Invalidate: %s after %d reads, want suspended after 2", got.State, c.builds.Load())
	}
	c.Flush()
	if c.Len() != 0 {
		t.Errorf("Len %d after Flush", c.Len())
	}

	// Unknown ids are not cached: the tenant appears as soon as it exists.
	id := tenant.NewID()
	for range 2 {
		if _, err := c.Get(ctx, id); !errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("unknown id: %v, want ErrNotFound", err)
		}
	}
	if c.Len() != 0 {
		t.Errorf("an unknown id was cached")
	}
	late := tenant.Tenant{ID: id, Slug: "late", Model: tenant.ModelRow, Server: DefaultServer, Schema: "shared", Database: e.db.Name, State: tenant.StateActive}
	must(t, e.d.Insert(ctx, late))
	if got := c.mustGet(t, id); got.Slug != "late" {
		t.Errorf("got %+v for a tenant created after a miss", got)
	}
}

func TestCacheBuild(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tn := e.insert(t, "acme", tenant.ModelSchema, tenant.StateActive)
	// A build error is returned and nothing is stored.
	fail := true
	var builds int
	c := NewCache(e.d, func(t tenant.Tenant) (string, error) {
		builds++
		if fail {
			return "", errors.New("no route")
		}
		return t.Slug, nil
	}, CacheConfig{})
	if _, err := c.Get(t.Context(), tn.ID); err == nil || err.Error() != "no route" {
		t.Errorf("build error: %v", err)
	}
	if c.Len() != 0 {
		t.Errorf("a failed build was cached")
	}
	fail = false
	if v, err := c.Get(t.Context(), tn.ID); err != nil || v != "acme" || builds != 2 {
		t.Errorf("after a failed build: %q, %v after %d builds", v, err, builds)
	}

	// A read that raced an invalidation is returned but not stored: the
	// notification may be about the row it read.
	var racing *Cache[string]
	racing = NewCache(e.d, func(t tenant.Tenant) (string, error) {
		racing.Invalidate(t.ID) // a notification arrives meanwhile
		return t.Slug, nil
	}, CacheConfig{})
	if v, err := racing.Get(t.Context(), tn.ID); err != nil || v != "acme" {
		t.Errorf("racing read: %q, %v", v, err)
	}
	if racing.Len() != 0 {
		t.Errorf("a read that raced an invalidation was stored")
	}
}

func TestCacheNotifications(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	a := e.insert(t, "alpha", tenant.ModelSchema, tenant.StateActive)
	b := e.insert(t, "bravo", tenant.ModelSchema, tenant.StateActive)
	c := newCounted(e, CacheConfig{MaxAge: time.Minute})
	e.listener(t, c, "cache-notifications")
	c.mustGet(t, a.ID)
	c.mustGet(t, b.ID)

	// Another process changes A: its entry goes, B's stays.
	other := New(openPool(t, e.db.URL))
	_, err := other.SetState(ctx, a.ID, tenant.StateSuspended)
	must(t, err)
	eventually(t, "invalidation after SetState", func() bool { return c.Len() == 1 })
	if got := c.mustGet(t, a.ID); got.State != tenant.StateSuspended {
		t.Errorf("after the notification: %s, want suspended", got.State)
	}
	builds := c.builds.Load()
	c.mustGet(t, b.ID)
	if c.builds.Load() != builds {
		t.Errorf("B's entry was dropped by a change to A")
	}

	// A schema version change notifies too (the row changed), without an
	// epoch change.
	must(t, other.SetSchemaVersion(ctx, b.ID, 9))
	eventually(t, "invalidation after SetSchemaVersion", func() bool { return c.Len() == 1 })
	if got := c.mustGet(t, b.ID); got.SchemaVersion != 9 {
		t.Errorf("after the notification: version %d, want 9", got.SchemaVersion)
	}

	// A deleted tenant is dropped and not found again.
	must(t, other.Remove(ctx, a.ID))
	eventually(t, "invalidation after Remove", func() bool { return c.Len() == 1 })
	if _, err := c.Get(ctx, a.ID); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("a removed tenant: %v, want ErrNotFound", err)
	}

	if c.Len() != 1 {
		t.Errorf("Len %d, want B's entry only", c.Len())
	}
}

func TestCacheGarbledNotificationFlushes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := e.insert(t, "alpha", tenant.ModelSchema, tenant.StateActive)
	b := e.insert(t, "bravo", tenant.ModelRow, tenant.StateActive)
	c := newCounted(e, CacheConfig{MaxAge: time.Minute})
	e.listener(t, c, "cache-garbled")
	c.mustGet(t, a.ID)
	c.mustGet(t, b.ID)
	_, err := e.pool.Exec(t.Context(), `SELECT pg_notify($1, 'not-an-id 3')`, Channel)
	must(t, err)
	eventually(t, "flush after a garbled notification", func() bool { return c.Len() == 0 })
}

func TestCacheListenerLost(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	tn := e.insert(t, "acme", tenant.ModelSchema, tenant.StateActive)
	c := newCounted(e, CacheConfig{MaxAge: time.Minute})
	const app = "cache-listener-lost"
	e.listener(t, c, app)
	pid := e.listenerPID(t, app)
	if pid == 0 {
		t.Fatal("no listener backend")
	}
	c.mustGet(t, tn.ID)
	if c.Len() != 1 {
		t.Fatalf("Len %d, want 1", c.Len())
	}
	if !queryBool(t, e, `SELECT pg_terminate_backend($1)`, pid) {
		t.Fatal("could not end the listener's session")
	}
	// Changes made while no one listens must not be served from the cache.
	eventually(t, "flush after the listener was lost", func() bool { return c.Len() == 0 })

	var newPID int
	eventually(t, "reconnect", func() bool {
		newPID = e.listenerPID(t, app)
		return newPID != 0 && newPID != pid
	})
	// Cache the tenant again once the new listener has flushed.
	eventually(t, "cache again", func() bool {
		c.mustGet(t, tn.ID)
		time.Sleep(20 * time.Millisecond)
		return c.Len() == 1
	})
	_, err := New(openPool(t, e.db.URL)).SetState(ctx, tn.ID, tenant.StateMoving)
	must(t, err)
	eventually(t, "invalidation through the new listener", func() bool { return c.Len() == 0 })
	if got := c.mustGet(t, tn.ID); got.State != tenant.StateMoving {
		t.Errorf("after reconnecting: %s, want moving", got.State)
	}
}

func TestCacheMaxAge(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tn := e.insert(t, "acme", tenant.ModelSchema, tenant.StateActive)
	const maxAge = 200 * time.Millisecond
	for _, run := range []bool{true, false} {
		c := newCounted(e, CacheConfig{MaxAge: maxAge})
		if run {
			e.listener(t, c, "cache-max-age")
		}
		start := time.Now()
		c.mustGet(t, tn.ID)
		c.mustGet(t, tn.ID)
		// The entry was stored after start: if the second Get came within
		// MaxAge of start, the entry was fresh and must have been used. A
		// machine too loaded for that says nothing here.
		if n := c.builds.Load(); n != 1 && time.Since(start) < maxAge {
			t.Fatalf("run=%t: a fresh entry was read %d times", run, n)
		}
		// Past MaxAge an entry is never used, whenever the sweep runs.
		before := c.builds.Load()
		time.Sleep(maxAge + 30*time.Millisecond)
		c.mustGet(t, tn.ID)
		if n := c.builds.Load(); n != before+1 {
			t.Errorf("run=%t: an entry older than MaxAge was used (%d reads, want %d)", run, n, before+1)
		}
		if run {
			// And Run's sweep drops it without a Get.
			eventually(t, "expiry", func() bool { return c.Len() == 0 })
		}
	}
}

func TestCacheRunStops(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := newCounted(e, CacheConfig{})
	const app = "cache-run-stops"
	stop := e.listener(t, c, app)
	if e.listenerPID(t, app) == 0 {
		t.Fatal("no listener backend")
	}
	// Run waits for a notification while it listens: the cancellation
	// must end that wait, or stop never returns.
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop when its context was cancelled")
	}
	eventually(t, "the listener's session to end", func() bool { return e.listenerPID(t, app) == 0 })
}

func TestCacheReadyWaitsForListen(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := newCounted(e, CacheConfig{})
	var up atomic.Bool
	var attempts atomic.Int32
	connect := e.connect("cache-ready")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, func(ctx context.Context) (*pgx.Conn, error) {
			attempts.Add(1)
			if !up.Load() {
				return nil, errors.New("server not up yet")
			}
			return connect(ctx)
		}, ready)
	}()
	defer func() { cancel(); <-done }()
	eventually(t, "a failed connection attempt is retried", func() bool { return attempts.Load() >= 2 })
	select {
	case <-ready:
		t.Fatal("ready closed before any LISTEN")
	default:
	}
	up.Store(true)
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("ready not closed after the server came up")
	}
}

func queryBool(t *testing.T, e *env, sql string, args ...any) bool {
	t.Helper()
	var b bool
	must(t, e.pool.QueryRow(t.Context(), sql, args...).Scan(&b))
	return b
}
