package httptenant

import (
	"container/list"
	"sync"
	"time"

	"github.com/landlordhq/landlord/tenant"
)

// lookupCache remembers lookups of slugs and custom domains for a short
// time: found tenants for Config.CacheTTL, unknown names for
// Config.NegativeCacheTTL. Found and unknown names live in separate
// least-recently-used lists of Config.CacheSize entries each, so a flood of
// random unknown subdomains evicts other unknown names, never the tenants
// that are being served.
type lookupCache struct {
	mu       sync.Mutex
	found    lru
	unknown  lru
	ttl      time.Duration
	negative time.Duration
}

type lru struct {
	size  int
	order *list.List // front = most recently used; values are *cacheEntry
	index map[string]*list.Element
}

type cacheEntry struct {
	key     string
	id      tenant.ID
	expires time.Time
}

func newLookupCache(size int, ttl, negative time.Duration) *lookupCache {
	return &lookupCache{
		found:    lru{size: size, order: list.New(), index: map[string]*list.Element{}},
		unknown:  lru{size: size, order: list.New(), index: map[string]*list.Element{}},
		ttl:      ttl,
		negative: negative,
	}
}

// get returns the cached answer for key: a tenant (found), no tenant
// (found with a zero id), or nothing (ok false).
func (c *lookupCache) get(key string, now time.Time) (id tenant.ID, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, hit := c.found.get(key, now); hit {
		return e.id, true
	}
	if _, hit := c.unknown.get(key, now); hit {
		return tenant.ID{}, true
	}
	return tenant.ID{}, false
}

// put records the answer for key; a zero id records an unknown name.
func (c *lookupCache) put(key string, id tenant.ID, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id.IsZero() {
		c.found.remove(key)
		c.unknown.put(key, id, now.Add(c.negative))
		return
	}
	c.unknown.remove(key)
	c.found.put(key, id, now.Add(c.ttl))
}

func (l *lru) get(key string, now time.Time) (*cacheEntry, bool) {
	el, ok := l.index[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		l.order.Remove(el)
		delete(l.index, key)
		return nil, false
	}
	l.order.MoveToFront(el)
	return e, true
}

func (l *lru) put(key string, id tenant.ID, expires time.Time) {
	if el, ok := l.index[key]; ok {
		e := el.Value.(*cacheEntry)
		e.id, e.expires = id, expires
		l.order.MoveToFront(el)
		return
	}
	for l.order.Len() >= l.size {
		oldest := l.order.Back()
		l.order.Remove(oldest)
		delete(l.index, oldest.Value.(*cacheEntry).key)
	}
	l.index[key] = l.order.PushFront(&cacheEntry{key: key, id: id, expires: expires})
}

func (l *lru) remove(key string) {
	if el, ok := l.index[key]; ok {
		l.order.Remove(el)
		delete(l.index, key)
	}
}

func (l *lru) len() int { return l.order.Len() }
