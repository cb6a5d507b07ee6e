package directory

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

// Channel is the notification channel the directory's triggers signal on.
const Channel = "landlord_directory"

// CacheConfig holds the optional settings of a Cache.
type CacheConfig struct {
	// MaxAge bounds how long an entry is used without a fresh read, as a
	// backstop should a notification be lost. Default 30s.
	MaxAge time.Duration
	// Logger receives listener errors. Default: discard.
	Logger *slog.Logger
}

// Cache maps tenant ids to values built from their directory rows, such as
// routing entries. It drops an entry as soon as the directory reports a change
// to that tenant (LISTEN/NOTIFY, see Run), drops everything when it may have
// missed a report, and never keeps an entry longer than MaxAge.
type Cache[V any] struct {
	dir   *Directory
	build func(tenant.Tenant) (V, error)
	cfg   CacheConfig

	entries sync.Map // tenant.ID → *cacheEntry[V]
	// gen counts invalidations. A read that raced one is returned but not
	// stored, so a stale row can never outlive the notification about it.
	gen atomic.Uint64
}

type cacheEntry[V any] struct {
	v  V
	at time.Time
}

// NewCache returns a cache over dir. build turns a directory row into the
// cached value; an error from it is returned by Get and nothing is stored.
func NewCache[V any](dir *Directory, build func(tenant.Tenant) (V, error), cfg CacheConfig) *Cache[V] {
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Cache[V]{dir: dir, build: build, cfg: cfg}
}

// Get returns the value for id, reading the directory on a miss. Unknown ids
// return an error wrapping tenant.ErrNotFound and are not cached.
func (c *Cache[V]) Get(ctx context.Context, id tenant.ID) (V, error) {
	if e, ok := c.entries.Load(id); ok {
		// Run's sweep is periodic, and may not be running: check the age.
		if e := e.(*cacheEntry[V]); time.Since(e.at) <= c.cfg.MaxAge {
			return e.v, nil
		}
	}
	gen := c.gen.Load()
	t, err := c.dir.Get(ctx, id)
	if err != nil {
		var zero V
		return zero, err
	}
	v, err := c.build(t)
	if err != nil {
		return v, err
	}
	if c.gen.Load() == gen {
		c.entries.Store(id, &cacheEntry[V]{v: v, at: time.Now()})
	}
	return v, nil
}

// Invalidate drops the entry for id.
func (c *Cache[V]) Invalidate(id tenant.ID) {
	c.gen.Add(1)
	c.entries.Delete(id)
}

// Flush drops every entry.
func (c *Cache[V]) Flush() {
	c.gen.Add(1)
	c.entries.Clear()
}

// Len returns the number of cached entries.
func (c *Cache[V]) Len() int {
	n := 0
	c.entries.Range(func(any, any) bool { n++; return true })
	return n
}

// expire drops entries older than MaxAge.
func (c *Cache[V]) expire(now time.Time) {
	c.entries.Range(func(k, e any) bool {
		if now.Sub(e.(*cacheEntry[V]).at) > c.cfg.MaxAge {
			c.entries.Delete(k)
		}
		return true
	})
}

// Run keeps the cache in step with the directory until ctx is done: it listens
// on Channel over a connection from connect, invalidates the tenants it hears
// about, and expires old entries. After any listener failure it flushes the
// cache (notifications may have been missed) and reconnects with backoff.
// ready, if not nil, is closed once the first LISTEN is in place.
func (c *Cache[V]) Run(ctx context.Context, connect func(context.Context) (*pgx.Conn, error), ready chan<- struct{}) {
	go func() {
		t := time.NewTicker(c.cfg.MaxAge / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				c.expire(now)
			}
		}
	}()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := c.listen(ctx, connect, &ready)
		c.Flush()
		if ctx.Err() != nil {
			return
		}
		c.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "directory listener lost; cache flushed, reconnecting",
			slog.String("error", err.Error()), slog.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (c *Cache[V]) listen(ctx context.Context, connect func(context.Context) (*pgx.Conn, error), ready *chan<- struct{}) error {
	conn, err := connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+ident.Quote(Channel)); err != nil {
		return err
	}
	// Anything cached before the LISTEN took effect may be stale.
	c.Flush()
	if *ready != nil {
		close(*ready)
		*ready = nil
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		idText, _, _ := strings.Cut(n.Payload, " ")
		id, err := tenant.ParseID(idText)
		if err != nil {
			c.Flush()
			continue
		}
		c.Invalidate(id)
	}
}
