// Package tenantcache is a small in-process cache whose entries belong to
// tenants. Every key is built from a context that carries a tenant (Key),
// every entry is stored under the tenant of the context that set it, and
// every method finds only the entries of its context's tenant: a key made
// for one tenant and used with another tenant's context is refused, and
// there is no way to name an entry without a tenant (tenant.ErrNoTenant).
//
//	products := tenantcache.New[[]Product](tenantcache.Config{MaxEntries: 10000, TTL: time.Minute})
//
//	func list(ctx context.Context, page int) ([]Product, error) {
//		key, err := tenantcache.Key(ctx, "products", strconv.Itoa(page))
//		if err != nil {
//			return nil, err // no tenant in ctx
//		}
//		return products.GetOrLoad(ctx, key, func(ctx context.Context) ([]Product, error) {
//			return store.Products(ctx, page) // runs as the tenant in ctx
//		})
//	}
//
//	// after a write: products.DeleteTenant(ctx)
package tenantcache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/landlordhq/landlord/tenant"
)

// ErrForeignKey is returned when a key built for one tenant is used with the
// context of another (or is not a key Key built at all).
var ErrForeignKey = errors.New("key does not belong to the context's tenant")

// Key returns the cache key of parts for the tenant in ctx; an error
// wrapping tenant.ErrNoTenant when ctx carries none. The encoding is
// unambiguous: every part is written with its length, so ("a:b") and
// ("a", "b") are different keys, and so are keys of different tenants.
func Key(ctx context.Context, parts ...string) (string, error) {
	id, ok := tenant.FromContext(ctx)
	if !ok {
		return "", fmt.Errorf("tenantcache: key: %w", tenant.ErrNoTenant)
	}
	n := 36
	for _, p := range parts {
		n += len(p) + 8
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(id.String())
	for _, p := range parts {
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(len(p)))
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String(), nil
}

// Config holds the settings of New. The zero value is usable.
type Config struct {
	// MaxEntries bounds the entries across all tenants; past it the least
	// recently used entry goes. Default 10000.
	MaxEntries int
	// MaxEntriesPerTenant, when positive, also bounds each tenant's
	// entries (the tenant's least recently used goes), so that one busy
	// tenant cannot push every other tenant out of the cache.
	MaxEntriesPerTenant int
	// TTL is how long an entry lives after it was set. Default 1 minute;
	// negative: entries never expire.
	TTL time.Duration
	// Now returns the time; default time.Now.
	Now func() time.Time
}

// Cache maps keys to values of type V, per tenant, with a size bound (least
// recently used entries go first) and a time to live. It is safe for
// concurrent use.
type Cache[V any] struct {
	max, maxPerTenant int
	ttl               time.Duration
	now               func() time.Time

	mu      sync.Mutex
	tenants map[tenant.ID]*bucket[V]
	lru     list.List // of *entry[V], most recent first
	gen     uint64    // bumped by every change; a load stores only if no change came since it began
	flights map[flightKey]*flight[V]
}

type bucket[V any] struct {
	entries map[string]*entry[V]
	lru     list.List // of *entry[V], most recent first
}

type entry[V any] struct {
	tenant    tenant.ID
	key       string
	value     V
	expires   time.Time // zero: never
	global    *list.Element
	perTenant *list.Element
}

type flightKey struct {
	tenant tenant.ID
	key    string
}

type flight[V any] struct {
	done  chan struct{}
	value V
	err   error
}

// New returns an empty cache.
func New[V any](c Config) *Cache[V] {
	if c.MaxEntries <= 0 {
		c.MaxEntries = 10000
	}
	if c.TTL == 0 {
		c.TTL = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Cache[V]{
		max: c.MaxEntries, maxPerTenant: c.MaxEntriesPerTenant, ttl: c.TTL, now: c.Now,
		tenants: map[tenant.ID]*bucket[V]{},
		flights: map[flightKey]*flight[V]{},
	}
}

// tenantOf returns the tenant of ctx, or an error wrapping
// tenant.ErrNoTenant.
func tenantOf(ctx context.Context, op string) (tenant.ID, error) {
	id, ok := tenant.FromContext(ctx)
	if !ok {
		return tenant.ID{}, fmt.Errorf("tenantcache: %s: %w", op, tenant.ErrNoTenant)
	}
	return id, nil
}

// owner returns the tenant of ctx, after checking that key was built for
// it by Key.
func owner(ctx context.Context, op, key string) (tenant.ID, error) {
	id, err := tenantOf(ctx, op)
	if err != nil {
		return id, err
	}
	rest, ok := strings.CutPrefix(key, id.String())
	if !ok || !wellFormed(rest) {
		return tenant.ID{}, fmt.Errorf("tenantcache: %s: %w", op, ErrForeignKey)
	}
	return id, nil
}

// wellFormed reports whether rest is a sequence of parts as Key writes
// them: "/", the length in decimal, ":", that many bytes.
func wellFormed(rest string) bool {
	for rest != "" {
		if rest[0] != '/' {
			return false
		}
		lenStr, tail, ok := strings.Cut(rest[1:], ":")
		if !ok {
			return false
		}
		n, err := strconv.Atoi(lenStr)
		if err != nil || n < 0 || n > len(tail) || strconv.Itoa(n) != lenStr {
			return false
		}
		rest = tail[n:]
	}
	return true
}

// Get returns the live value of key for the tenant in ctx, and whether
// there was one.
func (c *Cache[V]) Get(ctx context.Context, key string) (V, bool, error) {
	var zero V
	id, err := owner(ctx, "get", key)
	if err != nil {
		return zero, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.lookup(id, key)
	if e == nil {
		return zero, false, nil
	}
	return e.value, true, nil
}

// Set stores v under key for the tenant in ctx.
func (c *Cache[V]) Set(ctx context.Context, key string, v V) error {
	id, err := owner(ctx, "set", key)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.store(id, key, v)
	return nil
}

// Delete removes key of the tenant in ctx, if it is there.
func (c *Cache[V]) Delete(ctx context.Context, key string) error {
	id, err := owner(ctx, "delete", key)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if b := c.tenants[id]; b != nil {
		if e := b.entries[key]; e != nil {
			c.remove(e)
		}
	}
	return nil
}

// DeleteTenant removes every entry of the tenant in ctx (after a write
// that may have changed any of them), and keeps loads already running for
// it from storing what they read before.
func (c *Cache[V]) DeleteTenant(ctx context.Context) error {
	id, err := tenantOf(ctx, "delete tenant")
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if b := c.tenants[id]; b != nil {
		for _, e := range b.entries {
			c.lru.Remove(e.global)
		}
		delete(c.tenants, id)
	}
	return nil
}

// GetOrLoad returns the live value of key for the tenant in ctx, or calls
// load with ctx, stores what it returns and returns it. Concurrent calls for
// the same tenant and key share one load: the others wait for it (or for
// their own ctx) and get its result, error included. An error is not
// stored. A value loaded while the cache changed (Set, Delete, DeleteTenant)
// is returned but not stored, since it may predate the change.
func (c *Cache[V]) GetOrLoad(ctx context.Context, key string, load func(ctx context.Context) (V, error)) (V, error) {
	var zero V
	id, err := owner(ctx, "get or load", key)
	if err != nil {
		return zero, err
	}
	fk := flightKey{id, key}
	c.mu.Lock()
	if e := c.lookup(id, key); e != nil {
		c.mu.Unlock()
		return e.value, nil
	}
	if f := c.flights[fk]; f != nil {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.value, f.err
		case <-ctx.Done():
			return zero, fmt.Errorf("tenantcache: get or load: %w", context.Cause(ctx))
		}
	}
	f := &flight[V]{done: make(chan struct{})}
	c.flights[fk] = f
	gen := c.gen
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		delete(c.flights, fk)
		if f.err == nil && c.gen == gen {
			c.store(id, key, f.value)
		}
		c.mu.Unlock()
		close(f.done)
	}()
	f.err = errors.New("tenantcache: load panicked")
	f.value, f.err = load(ctx)
	return f.value, f.err
}

// Len returns the number of entries held, live or expired, of all tenants.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// lookup returns the live entry of (id, key) and marks it used, or removes
// it when it has expired. c.mu is held.
func (c *Cache[V]) lookup(id tenant.ID, key string) *entry[V] {
	b := c.tenants[id]
	if b == nil {
		return nil
	}
	e := b.entries[key]
	if e == nil {
		return nil
	}
	if !e.expires.IsZero() && !c.now().Before(e.expires) {
		c.remove(e)
		return nil
	}
	c.lru.MoveToFront(e.global)
	b.lru.MoveToFront(e.perTenant)
	return e
}

// store sets (id, key) to v and evicts past the bounds. c.mu is held.
func (c *Cache[V]) store(id tenant.ID, key string, v V) {
	var expires time.Time
	if c.ttl > 0 {
		expires = c.now().Add(c.ttl)
	}
	b := c.tenants[id]
	if b == nil {
		b = &bucket[V]{entries: map[string]*entry[V]{}}
		c.tenants[id] = b
	}
	if e := b.entries[key]; e != nil {
		e.value, e.expires = v, expires
		c.lru.MoveToFront(e.global)
		b.lru.MoveToFront(e.perTenant)
		return
	}
	e := &entry[V]{tenant: id, key: key, value: v, expires: expires}
	e.global = c.lru.PushFront(e)
	e.perTenant = b.lru.PushFront(e)
	b.entries[key] = e
	if c.maxPerTenant > 0 {
		for len(b.entries) > c.maxPerTenant {
			c.remove(b.lru.Back().Value.(*entry[V]))
		}
	}
	for c.lru.Len() > c.max {
		c.remove(c.lru.Back().Value.(*entry[V]))
	}
}

// remove drops e. c.mu is held.
func (c *Cache[V]) remove(e *entry[V]) {
	c.lru.Remove(e.global)
	b := c.tenants[e.tenant]
	b.lru.Remove(e.perTenant)
	delete(b.entries, e.key)
	if len(b.entries) == 0 {
		delete(c.tenants, e.tenant)
	}
}
