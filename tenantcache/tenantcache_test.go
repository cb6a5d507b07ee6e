package tenantcache_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/landlordhq/landlord/tenant"
	"github.com/landlordhq/landlord/tenantcache"
)

func tenantCtx() (context.Context, tenant.ID) {
	id := tenant.NewID()
	return tenant.WithContext(context.Background(), id), id
}

func mustKey(t *testing.T, ctx context.Context, parts ...string) string {
	t.Helper()
	k, err := tenantcache.Key(ctx, parts...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// decode reverses Key's encoding; it fails on anything Key cannot produce.
func decode(key string) (string, []string, error) {
	if len(key) < 36 {
		return "", nil, errors.New("short")
	}
	id, rest := key[:36], key[36:]
	var parts []string
	for rest != "" {
		if rest[0] != '/' {
			return "", nil, errors.New("no separator")
		}
		colon := strings.IndexByte(rest, ':')
		if colon < 0 {
			return "", nil, errors.New("no length")
		}
		n, err := strconv.Atoi(rest[1:colon])
		if err != nil || n < 0 || colon+1+n > len(rest) {
			return "", nil, errors.New("bad length")
		}
		parts = append(parts, rest[colon+1:colon+1+n])
		rest = rest[colon+1+n:]
	}
	return id, parts, nil
}

func TestKey(t *testing.T) {
	if _, err := tenantcache.Key(context.Background(), "a"); !errors.Is(err, tenant.ErrNoTenant) {
		t.Fatalf("key without tenant: %v", err)
	}
	if _, err := tenantcache.Key(tenant.WithContext(context.Background(), tenant.ID{}), "a"); !errors.Is(err, tenant.ErrNoTenant) {
		t.Fatalf("key with the zero tenant: %v", err)
	}
	a, _ := tenantCtx()
	b, _ := tenantCtx()
	lists := [][]string{
		{}, {""}, {"", ""}, {"a:b"}, {"a", "b"}, {"a/b"}, {"a", "/b"}, {"a/1:b"},
		{"1:a"}, {"/1:a"}, {"a", ""}, {"", "a"}, {"ab"}, {"a", "b", ""},
	}
	seen := map[string]string{}
	for ti, ctx := range []context.Context{a, b} {
		for _, parts := range lists {
			k := mustKey(t, ctx, parts...)
			label := fmt.Sprintf("tenant %d %q", ti, parts)
			if prev, dup := seen[k]; dup {
				t.Errorf("%s and %s share key %q", prev, label, k)
			}
			seen[k] = label
		}
	}
}

func FuzzKey(f *testing.F) {
	f.Add("a:b", "c", "")
	f.Add("1:a", "/2:bc", "/")
	ctx, id := tenantCtx()
	c := tenantcache.New[int](tenantcache.Config{MaxEntries: 10})
	f.Fuzz(func(t *testing.T, p1, p2, p3 string) {
		for _, parts := range [][]string{{p1}, {p1, p2}, {p1, p2, p3}} {
			k := mustKey(t, ctx, parts...)
			if err := c.Set(ctx, k, 1); err != nil {
				t.Fatalf("%q: a key of Key refused: %v", parts, err)
			}
			gotID, got, err := decode(k)
			if err != nil || gotID != id.String() || len(got) != len(parts) {
				t.Fatalf("%q: decoded %q %q %v", parts, gotID, got, err)
			}
			for i := range parts {
				if got[i] != parts[i] {
					t.Fatalf("%q decoded as %q", parts, got)
				}
			}
		}
	})
}

func TestRefusesWithoutTenant(t *testing.T) {
	c := tenantcache.New[string](tenantcache.Config{})
	a, _ := tenantCtx()
	k := mustKey(t, a, "k")
	if err := c.Set(a, k, "a's"); err != nil {
		t.Fatal(err)
	}
	for name, ctx := range map[string]context.Context{
		"no tenant":   context.Background(),
		"zero tenant": tenant.WithContext(context.Background(), tenant.ID{}),
	} {
		if _, _, err := c.Get(ctx, k); !errors.Is(err, tenant.ErrNoTenant) {
			t.Errorf("%s: Get: %v", name, err)
		}
		if err := c.Set(ctx, k, "x"); !errors.Is(err, tenant.ErrNoTenant) {
			t.Errorf("%s: Set: %v", name, err)
		}
		if err := c.Delete(ctx, k); !errors.Is(err, tenant.ErrNoTenant) {
			t.Errorf("%s: Delete: %v", name, err)
		}
		if err := c.DeleteTenant(ctx); !errors.Is(err, tenant.ErrNoTenant) {
			t.Errorf("%s: DeleteTenant: %v", name, err)
		}
		called := false
		if _, err := c.GetOrLoad(ctx, k, func(context.Context) (string, error) { called = true; return "x", nil }); !errors.Is(err, tenant.ErrNoTenant) || called {
			t.Errorf("%s: GetOrLoad: %v, load called %v", name, err, called)
		}
	}
	if v, ok, err := c.Get(a, k); err != nil || !ok || v != "a's" || c.Len() != 1 {
		t.Errorf("after refused calls: %q %v %v, %d entries", v, ok, err, c.Len())
	}
}

func TestTenantsApart(t *testing.T) {
	c := tenantcache.New[string](tenantcache.Config{})
	a, _ := tenantCtx()
	b, _ := tenantCtx()
	ka, kb := mustKey(t, a, "product", "1"), mustKey(t, b, "product", "1")
	if err := c.Set(a, ka, "a's"); err != nil {
		t.Fatal(err)
	}
	// b's own key for the same parts finds nothing of a's.
	if v, ok, err := c.Get(b, kb); err != nil || ok {
		t.Fatalf("b read %q %v %v under its own key", v, ok, err)
	}
	// a's key with b's context is refused, by every method.
	if _, _, err := c.Get(b, ka); !errors.Is(err, tenantcache.ErrForeignKey) {
		t.Errorf("Get of a's key as b: %v", err)
	}
	if err := c.Set(b, ka, "b's"); !errors.Is(err, tenantcache.ErrForeignKey) {
		t.Errorf("Set of a's key as b: %v", err)
	}
	if err := c.Delete(b, ka); !errors.Is(err, tenantcache.ErrForeignKey) {
		t.Errorf("Delete of a's key as b: %v", err)
	}
	if _, err := c.GetOrLoad(b, ka, func(context.Context) (string, error) { return "b's", nil }); !errors.Is(err, tenantcache.ErrForeignKey) {
		t.Errorf("GetOrLoad of a's key as b: %v", err)
	}
	for _, bad := range []string{"", "product", ka[:35], ka + "x", ka + "/", ka + "/9:a", ka + "/01:a", ka + "/-1:", strings.ToUpper(ka)} {
		if _, _, err := c.Get(a, bad); !errors.Is(err, tenantcache.ErrForeignKey) {
			t.Errorf("Get(%q): %v", bad, err)
		}
	}
	if err := c.Set(b, kb, "b's"); err != nil {
		t.Fatal(err)
	}
	for ctx, want := range map[context.Context]string{a: "a's", b: "b's"} {
		k := mustKey(t, ctx, "product", "1")
		if v, ok, err := c.Get(ctx, k); err != nil || !ok || v != want {
			t.Errorf("got %q %v %v, want %q", v, ok, err, want)
		}
	}
	// Dropping b's entries leaves a's.
	if err := c.DeleteTenant(b); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Get(b, kb); ok {
		t.Error("b's entry survived DeleteTenant")
	}
	if v, ok, _ := c.Get(a, ka); !ok || v != "a's" {
		t.Errorf("a's entry after b's DeleteTenant: %q %v", v, ok)
	}
	if err := c.Delete(a, ka); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Get(a, ka); ok || c.Len() != 0 {
		t.Errorf("after Delete: found %v, %d entries", ok, c.Len())
	}
}

func TestBounds(t *testing.T) {
	a, _ := tenantCtx()
	b, _ := tenantCtx()
	c := tenantcache.New[int](tenantcache.Config{MaxEntries: 3, TTL: -1})
	for i := range 3 {
		if err := c.Set(a, mustKey(t, a, strconv.Itoa(i)), i); err != nil {
			t.Fatal(err)
		}
	}
	c.Get(a, mustKey(t, a, "0")) // 0 is now the most recent; 1 the least
	if err := c.Set(b, mustKey(t, b, "x"), 9); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 3 {
		t.Fatalf("%d entries, bound 3", c.Len())
	}
	for k, want := range map[string]bool{"0": true, "1": false, "2": true} {
		if _, ok, _ := c.Get(a, mustKey(t, a, k)); ok != want {
			t.Errorf("entry %s present %v, want %v", k, ok, want)
		}
	}

	// A tenant over its own bound loses its own entries, not others'.
	c = tenantcache.New[int](tenantcache.Config{MaxEntries: 100, MaxEntriesPerTenant: 2, TTL: -1})
	if err := c.Set(b, mustKey(t, b, "x"), 1); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := c.Set(a, mustKey(t, a, strconv.Itoa(i)), i); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := c.Get(b, mustKey(t, b, "x")); !ok || c.Len() != 3 {
		t.Errorf("b's entry present %v, %d entries, want true and 3", ok, c.Len())
	}
	for i := range 10 {
		_, ok, _ := c.Get(a, mustKey(t, a, strconv.Itoa(i)))
		if ok != (i >= 8) {
			t.Errorf("a's entry %d present %v", i, ok)
		}
	}
}

func TestTTL(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	c := tenantcache.New[string](tenantcache.Config{TTL: time.Minute, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	a, _ := tenantCtx()
	k := mustKey(t, a, "k")
	if err := c.Set(a, k, "v"); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(59 * time.Second))
	if _, ok, _ := c.Get(a, k); !ok {
		t.Fatal("entry gone before its TTL")
	}
	now.Add(int64(time.Second))
	if _, ok, _ := c.Get(a, k); ok {
		t.Fatal("entry alive at its TTL")
	}
	if c.Len() != 0 {
		t.Errorf("expired entry still held: %d", c.Len())
	}
	loads := 0
	load := func(context.Context) (string, error) { loads++; return "v" + strconv.Itoa(loads), nil }
	c.GetOrLoad(a, k, load)
	c.GetOrLoad(a, k, load)
	now.Add(int64(time.Minute))
	if v, _ := c.GetOrLoad(a, k, load); v != "v2" || loads != 2 {
		t.Errorf("after expiry GetOrLoad gave %q after %d loads, want v2 after 2", v, loads)
	}
}

func TestGetOrLoad(t *testing.T) {
	c := tenantcache.New[string](tenantcache.Config{})
	a, aID := tenantCtx()
	k := mustKey(t, a, "k")

	t.Run("single flight", func(t *testing.T) {
		var calls atomic.Int32
		release := make(chan struct{})
		var wg sync.WaitGroup
		results := make([]string, 20)
		for i := range results {
			wg.Go(func() {
				v, err := c.GetOrLoad(a, k, func(ctx context.Context) (string, error) {
					calls.Add(1)
					if id, _ := tenant.FromContext(ctx); id != aID {
						return "", errors.New("load ran without its tenant")
					}
					<-release
					return "loaded", nil
				})
				if err != nil {
					t.Error(err)
				}
				results[i] = v
			})
		}
		close(release)
		wg.Wait()
		if calls.Load() != 1 {
			t.Errorf("%d loads, want 1", calls.Load())
		}
		for _, v := range results {
			if v != "loaded" {
				t.Errorf("a caller got %q", v)
			}
		}
	})

	t.Run("error not stored", func(t *testing.T) {
		k := mustKey(t, a, "fails")
		boom := errors.New("boom")
		if _, err := c.GetOrLoad(a, k, func(context.Context) (string, error) { return "", boom }); !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if _, ok, _ := c.Get(a, k); ok {
			t.Error("a failed load was stored")
		}
	})

	t.Run("load overtaken by a change is not stored", func(t *testing.T) {
		k := mustKey(t, a, "stale")
		started, release := make(chan struct{}), make(chan struct{})
		done := make(chan string)
		go func() {
			v, _ := c.GetOrLoad(a, k, func(context.Context) (string, error) {
				close(started)
				<-release
				return "read before the write", nil
			})
			done <- v
		}()
		<-started
		if err := c.DeleteTenant(a); err != nil {
			t.Fatal(err)
		}
		close(release)
		if v := <-done; v != "read before the write" {
			t.Errorf("the caller got %q", v)
		}
		if v, ok, _ := c.Get(a, k); ok {
			t.Errorf("a value loaded before DeleteTenant was stored: %q", v)
		}
	})

	t.Run("other tenants load their own", func(t *testing.T) {
		b, _ := tenantCtx()
		kb := mustKey(t, b, "k")
		v, err := c.GetOrLoad(b, kb, func(context.Context) (string, error) { return "b's", nil })
		if err != nil || v != "b's" {
			t.Errorf("b got %q %v", v, err)
		}
	})
}

// Many tenants at once: every read finds only values of its own tenant.
func TestConcurrent(t *testing.T) {
	c := tenantcache.New[string](tenantcache.Config{MaxEntries: 50, MaxEntriesPerTenant: 20})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ctx, id := tenantCtx()
			for i := range 500 {
				k := mustKey(t, ctx, strconv.Itoa(i%30))
				switch i % 5 {
				case 0:
					if err := c.Set(ctx, k, id.String()); err != nil {
						t.Error(err)
						return
					}
				case 1:
					if v, ok, err := c.Get(ctx, k); err != nil || (ok && v != id.String()) {
						t.Errorf("read %q %v %v", v, ok, err)
						return
					}
				case 2:
					v, err := c.GetOrLoad(ctx, k, func(context.Context) (string, error) { return id.String(), nil })
					if err != nil || v != id.String() {
						t.Errorf("loaded %q %v", v, err)
						return
					}
				case 3:
					if err := c.Delete(ctx, k); err != nil {
						t.Error(err)
						return
					}
				case 4:
					if i%100 == 4 {
						if err := c.DeleteTenant(ctx); err != nil {
							t.Error(err)
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
	if c.Len() > 50 {
		t.Errorf("%d entries, bound 50", c.Len())
	}
}
