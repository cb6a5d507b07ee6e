package httptenant

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/tenant"
)

// request builds a request with the given host, peer and extra headers
// (pairs of name and value; a name may repeat).
func request(host, peer string, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Host = host
	r.RemoteAddr = peer
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

const (
	untrusted = "203.0.113.9:52000"
	trusted   = "10.1.2.3:52000"
)

// TestResolveHost covers B05 (SECURITY.md) through Resolve: every host shape,
// the two kinds of mapping, forwarded hosts from trusted and untrusted peers,
// and which lookups run (none for a host that does not normalize).
func TestResolveHost(t *testing.T) {
	t.Parallel()
	xfh := HeaderXForwardedHost
	cases := []struct {
		name        string
		header      string // Config.ForwardedHeader; "" = default
		req         *http.Request
		want        tenant.ID
		err         error
		slugCalls   []string
		domainCalls []string
	}{
		{name: "subdomain", req: request("acme.shop.example", untrusted), want: tenantA, slugCalls: []string{"acme"}},
		{name: "upper case and port", req: request("ACME.Shop.Example:8443", untrusted), want: tenantA, slugCalls: []string{"acme"}},
		{name: "trailing dot", req: request("acme.shop.example.", untrusted), want: tenantA, slugCalls: []string{"acme"}},
		{name: "missing host", req: request("", untrusted), err: ErrNoHost},
		{name: "IPv4 literal", req: request("192.0.2.1:8080", untrusted), err: ErrIPHost},
		{name: "IPv6 literal", req: request("[2001:db8::1]:443", untrusted), err: ErrIPHost},
		{name: "IPv6 with zone", req: request("[fe80::1%25eth0]", untrusted), err: ErrIPHost},
		{name: "malformed", req: request("acme_shop.example", untrusted), err: ErrBadHost},
		{name: "injection", req: request("acme'--.shop.example", untrusted), err: ErrBadHost},
		{name: "bare base domain", req: request("shop.example", untrusted), err: ErrUnknownHost},
		{name: "www", req: request("www.shop.example", untrusted), err: ErrUnknownHost},
		{name: "two labels deep", req: request("a.acme.shop.example", untrusted), err: ErrUnknownHost},
		{name: "subdomain not a slug", req: request("ab.shop.example", untrusted), err: ErrUnknownHost},
		{name: "reserved slug", req: request("admin.shop.example", untrusted), err: ErrUnknownHost},
		{name: "punycode subdomain", req: request("bücher.shop.example", untrusted), err: ErrUnknownHost},
		{name: "homoglyph subdomain", req: request("аcme.shop.example", untrusted), err: ErrUnknownHost},
		{name: "unknown slug", req: request("nope.shop.example", untrusted), err: ErrUnknownHost, slugCalls: []string{"nope"}},
		{name: "suffix without the dot", req: request("evilshop.example", untrusted), err: ErrUnknownHost, domainCalls: []string{"evilshop.example"}},
		{name: "custom domain", req: request("shop.acme-custom.example", untrusted), want: tenantC, domainCalls: []string{"shop.acme-custom.example"}},
		{name: "custom domain normalized", req: request("SHOP.Acme-Custom.Example.:443", untrusted), want: tenantC, domainCalls: []string{"shop.acme-custom.example"}},
		{name: "unknown custom domain", req: request("unknown.example", untrusted), err: ErrUnknownHost, domainCalls: []string{"unknown.example"}},

		// Forwarded hosts from a peer outside TrustedProxies are ignored,
		// well-formed or not.
		{name: "spoofed X-Forwarded-Host", req: request("acme.shop.example", untrusted, xfh, "other.shop.example"), want: tenantA, slugCalls: []string{"acme"}},
		{name: "spoofed malformed X-Forwarded-Host", req: request("acme.shop.example", untrusted, xfh, "\x00[::1"), want: tenantA, slugCalls: []string{"acme"}},
		{name: "spoofed Forwarded", header: HeaderForwarded, req: request("acme.shop.example", untrusted, "Forwarded", "host=other.shop.example"), want: tenantA, slugCalls: []string{"acme"}},
		{name: "peer next to a trusted network", req: request("acme.shop.example", "11.0.0.1:1", xfh, "other.shop.example"), want: tenantA, slugCalls: []string{"acme"}},
		{name: "peer without an address", req: request("acme.shop.example", "@", xfh, "other.shop.example"), want: tenantA, slugCalls: []string{"acme"}},
		{name: "peer without a port", req: request("acme.shop.example", "10.1.2.3", xfh, "other.shop.example"), want: tenantA, slugCalls: []string{"acme"}},

		// From a trusted proxy the forwarded host is used, and only the
		// value the nearest proxy appended.
		{name: "trusted X-Forwarded-Host", req: request("backend.internal", trusted, xfh, "other.shop.example"), want: tenantB, slugCalls: []string{"other"}},
		{name: "trusted IPv6 proxy", req: request("backend.internal", "[fd00::5]:1234", xfh, "other.shop.example"), want: tenantB, slugCalls: []string{"other"}},
		{name: "trusted proxy with zone", req: request("backend.internal", "[fe80::2%eth0]:1234", xfh, "other.shop.example"), want: tenantB, slugCalls: []string{"other"}},
		{name: "trusted IPv4-mapped proxy", req: request("backend.internal", "[::ffff:10.1.2.3]:1234", xfh, "other.shop.example"), want: tenantB, slugCalls: []string{"other"}},
		{name: "nearest of a list wins", req: request("backend.internal", trusted, xfh, "acme.shop.example, other.shop.example"), want: tenantB, slugCalls: []string{"other"}},
		{name: "nearest of three wins", req: request("backend.internal", trusted, xfh, "evil.shop.example, acme.shop.example,other.shop.example"), want: tenantB, slugCalls: []string{"other"}},
		{name: "nearest of several lines wins", req: request("backend.internal", trusted, xfh, "acme.shop.example", xfh, "other.shop.example"), want: tenantB, slugCalls: []string{"other"}},
		{name: "empty nearest value", req: request("acme.shop.example", trusted, xfh, "other.shop.example, "), err: ErrNoHost},
		{name: "forwarded IP", req: request("acme.shop.example", trusted, xfh, "10.0.0.7"), err: ErrIPHost},
		{name: "forwarded malformed", req: request("acme.shop.example", trusted, xfh, "acme.shop.example/x"), err: ErrBadHost},
		{name: "forwarded with port", req: request("backend.internal", trusted, xfh, "OTHER.shop.example:443"), want: tenantB, slugCalls: []string{"other"}},
		{name: "trusted without forwarded header", req: request("acme.shop.example", trusted), want: tenantA, slugCalls: []string{"acme"}},
		{name: "Forwarded ignored when X-Forwarded-Host is configured", req: request("acme.shop.example", trusted, "Forwarded", "host=other.shop.example"), want: tenantA, slugCalls: []string{"acme"}},
		{name: "Forwarded", header: HeaderForwarded, req: request("backend.internal", trusted, "Forwarded", `for=192.0.2.60;host=acme.shop.example, for=10.0.0.1;proto=https;Host="other.shop.example"`), want: tenantB, slugCalls: []string{"other"}},
		{name: "Forwarded lines", header: HeaderForwarded, req: request("backend.internal", trusted, "Forwarded", "host=acme.shop.example", "Forwarded", "host=other.shop.example"), want: tenantB, slugCalls: []string{"other"}},
		{name: "Forwarded quoted comma", header: HeaderForwarded, req: request("backend.internal", trusted, "Forwarded", `for="a,b";host=other.shop.example`), want: tenantB, slugCalls: []string{"other"}},
		{name: "Forwarded nearest without host", header: HeaderForwarded, req: request("acme.shop.example", trusted, "Forwarded", "host=other.shop.example, for=10.0.0.1"), want: tenantA, slugCalls: []string{"acme"}},
		{name: "Forwarded empty host", header: HeaderForwarded, req: request("acme.shop.example", trusted, "Forwarded", `host=""`), err: ErrNoHost},
		{name: "Forwarded unterminated", header: HeaderForwarded, req: request("acme.shop.example", trusted, "Forwarded", `host="other.shop.example`), err: ErrBadHost},
		{name: "Forwarded garbage", header: HeaderForwarded, req: request("acme.shop.example", trusted, "Forwarded", `;;==`), err: ErrBadHost},
		{name: "Forwarded repeated host", header: HeaderForwarded, req: request("acme.shop.example", trusted, "Forwarded", `host=other.shop.example;host=acme.shop.example`), err: ErrBadHost},
		{name: "X-Forwarded-Host ignored when Forwarded is configured", header: HeaderForwarded, req: request("acme.shop.example", trusted, xfh, "other.shop.example"), want: tenantA, slugCalls: []string{"acme"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			res, dir := setup(t, func(cfg *Config) { cfg.ForwardedHeader = c.header })
			got, err := res.Resolve(c.req)
			if c.err != nil {
				if !errors.Is(err, c.err) || !got.IsZero() {
					t.Errorf("Resolve = %v, %v; want error %v", got, err, c.err)
				}
			} else if err != nil || got != c.want {
				t.Errorf("Resolve = %v, %v; want %v", got, err, c.want)
			}
			slugs, domains := dir.calls()
			if !slices.Equal(slugs, c.slugCalls) || !slices.Equal(domains, c.domainCalls) {
				t.Errorf("lookups: slugs %q, domains %q; want %q, %q", slugs, domains, c.slugCalls, c.domainCalls)
			}
		})
	}
}

// TestResolveOneMapping: with only a base domain, other hosts are unknown;
// with only custom domains, subdomain-looking hosts are custom domains too.
func TestResolveOneMapping(t *testing.T) {
	t.Parallel()
	res, dir := setup(t, func(c *Config) { c.LookupDomain = nil })
	if _, err := res.Resolve(request("shop.acme-custom.example", untrusted)); !errors.Is(err, ErrUnknownHost) {
		t.Errorf("custom domain without LookupDomain: %v, want ErrUnknownHost", err)
	}
	if s, d := dir.calls(); len(s)+len(d) != 0 {
		t.Errorf("lookups %q %q, want none", s, d)
	}

	res, dir = setup(t, func(c *Config) { c.BaseDomain, c.LookupSlug = "", nil })
	if _, err := res.Resolve(request("acme.shop.example", untrusted)); !errors.Is(err, ErrUnknownHost) {
		t.Errorf("subdomain without BaseDomain: %v, want ErrUnknownHost", err)
	}
	if s, d := dir.calls(); len(s) != 0 || !slices.Equal(d, []string{"acme.shop.example"}) {
		t.Errorf("lookups %q %q, want one domain lookup", s, d)
	}
}

// TestResolveLookupResults: what a lookup's answers turn into.
func TestResolveLookupResults(t *testing.T) {
	t.Parallel()
	down := errors.New("directory unreachable")
	cases := []struct {
		name string
		slug func(string) (tenant.Tenant, error)
		err  error
	}{
		{"not found", func(string) (tenant.Tenant, error) { return tenant.Tenant{}, tenant.ErrNotFound }, ErrUnknownHost},
		{"zero id without error", func(string) (tenant.Tenant, error) { return tenant.Tenant{}, nil }, ErrUnknownHost},
		{"bad slug", func(string) (tenant.Tenant, error) { return tenant.Tenant{}, tenant.ErrBadSlug }, ErrUnknownHost},
		{"failure", func(string) (tenant.Tenant, error) { return tenant.Tenant{}, down }, ErrLookup},
	}
	for _, c := range cases {
		res, _ := setup(t, func(cfg *Config) {
			cfg.LookupSlug = func(_ context.Context, s string) (tenant.Tenant, error) { return c.slug(s) }
		})
		_, err := res.Resolve(request("acme.shop.example", untrusted))
		if !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
		if c.err == ErrLookup && !errors.Is(err, down) {
			t.Errorf("%s: %v does not wrap the lookup's error", c.name, err)
		}
	}
}

// TestMiddleware: the tenant reaches the handler through the context, and
// every refusal is answered with its status and a generic body that echoes
// nothing of the request, without calling the handler.
func TestMiddleware(t *testing.T) {
	t.Parallel()
	const marker = "zqx-marker" // in hosts, so an echo would show
	cases := []struct {
		name   string
		req    *http.Request
		dirErr error
		code   int
		want   tenant.ID
	}{
		{"tenant", request("acme.shop.example", untrusted), nil, http.StatusOK, tenantA},
		{"custom domain", request("shop.acme-custom.example", untrusted), nil, http.StatusOK, tenantC},
		{"missing host", request("", untrusted), nil, http.StatusBadRequest, tenant.ID{}},
		{"malformed host", request(marker+"_x.example", untrusted), nil, http.StatusBadRequest, tenant.ID{}},
		{"IP host", request("192.0.2.1", untrusted), nil, http.StatusNotFound, tenant.ID{}},
		{"unknown slug", request(marker+".shop.example", untrusted), nil, http.StatusNotFound, tenant.ID{}},
		{"unknown domain", request(marker+".example", untrusted), nil, http.StatusNotFound, tenant.ID{}},
		{"lookup failure", request(marker+".example", untrusted), errors.New("connection refused"), http.StatusInternalServerError, tenant.ID{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			res, dir := setup(t, nil)
			dir.err = c.dirErr
			called := false
			h := res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				called = true
				id, ok := landlord.TenantFrom(r.Context())
				if !ok || id != c.want {
					t.Errorf("handler sees tenant %v, %v; want %v", id, ok, c.want)
				}
			}))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, c.req)
			if w.Code != c.code {
				t.Fatalf("status %d, want %d", w.Code, c.code)
			}
			if called != (c.code == http.StatusOK) {
				t.Fatalf("handler called: %v, with status %d", called, w.Code)
			}
			if c.code != http.StatusOK {
				if body := w.Body.String(); body != http.StatusText(c.code)+"\n" {
					t.Errorf("body %q, want the generic status text", body)
				}
				if strings.Contains(w.Body.String(), marker) {
					t.Errorf("body echoes the host: %q", w.Body.String())
				}
			}
		})
	}
}

// TestMiddlewareNoDefaultTenant: a context that already carries a tenant
// (set by an outer layer, say) does not rescue an unknown host.
func TestMiddlewareNoDefaultTenant(t *testing.T) {
	t.Parallel()
	res, _ := setup(t, nil)
	h := res.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("handler called for an unknown host")
	}))
	r := request("nope.shop.example", untrusted)
	r = r.WithContext(landlord.WithTenant(r.Context(), tenantB))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNotFound {
		t.Fatalf("status %d, want 404", w.Code)
	}
}

// TestCache: lookups are remembered for their TTLs, unknown names too, and
// failures not at all; a flood of unknown names never evicts a tenant.
func TestCache(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		res, dir := setup(t, func(c *Config) {
			c.CacheSize = 4
			c.CacheTTL = time.Minute
			c.NegativeCacheTTL = 5 * time.Second
		})
		resolve := func(host string) error {
			_, err := res.Resolve(request(host, untrusted))
			return err
		}
		count := func(want string) int {
			s, d := dir.calls()
			n := 0
			for _, x := range append(s, d...) {
				if x == want {
					n++
				}
			}
			return n
		}

		for range 3 {
			if err := resolve("acme.shop.example"); err != nil {
				t.Fatal(err)
			}
			if err := resolve("nope.shop.example"); !errors.Is(err, ErrUnknownHost) {
				t.Fatal(err)
			}
			if err := resolve("shop.acme-custom.example"); err != nil {
				t.Fatal(err)
			}
		}
		if a, n, c := count("acme"), count("nope"), count("shop.acme-custom.example"); a != 1 || n != 1 || c != 1 {
			t.Fatalf("lookups acme %d, nope %d, custom %d; want 1 each", a, n, c)
		}

		time.Sleep(5 * time.Second) // the unknown name expires, the tenants do not
		_ = resolve("nope.shop.example")
		_ = resolve("acme.shop.example")
		if a, n := count("acme"), count("nope"); a != 1 || n != 2 {
			t.Fatalf("after the negative TTL: lookups acme %d, nope %d; want 1, 2", a, n)
		}

		// A flood of random unknown subdomains: each is looked up once,
		// the unknown list stays at its size, and acme stays cached.
		for i := range 50 {
			host := "rnd" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ".shop.example"
			_ = resolve(host)
			_ = resolve(host)
		}
		if a := count("acme"); a != 1 {
			t.Fatalf("a flood of unknown names evicted a tenant: %d lookups of acme", a)
		}
		res.cache.mu.Lock()
		found, unknown := res.cache.found.len(), res.cache.unknown.len()
		res.cache.mu.Unlock()
		if found > 4 || unknown > 4 {
			t.Fatalf("cache holds %d found and %d unknown entries, over its size 4", found, unknown)
		}

		time.Sleep(time.Minute) // now the tenants expire too
		_ = resolve("acme.shop.example")
		if a := count("acme"); a != 2 {
			t.Fatalf("after the TTL: %d lookups of acme, want 2", a)
		}

		// Failures are not remembered.
		dir.err = errors.New("down")
		_ = resolve("fail.shop.example")
		_ = resolve("fail.shop.example")
		if n := count("fail"); n != 2 {
			t.Fatalf("a failed lookup was cached: %d lookups, want 2", n)
		}
	})
}

// TestCacheEvictsLeastRecentlyUsed: a full list drops the entry used
// longest ago.
func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	c := newLookupCache(2, time.Hour, time.Hour)
	now := time.Now()
	c.put("a", tenantA, now)
	c.put("b", tenantB, now)
	if _, ok := c.get("a", now); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	c.put("c", tenantC, now)
	if _, ok := c.get("b", now); ok {
		t.Error("b survived; it was the least recently used")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.get(k, now); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	// A name that becomes known leaves the unknown list, and back.
	c.put("d", tenant.ID{}, now)
	c.put("d", tenantA, now)
	if id, ok := c.get("d", now); !ok || id != tenantA {
		t.Errorf("d = %v, %v after it became known", id, ok)
	}
	if n := c.unknown.len(); n != 0 {
		t.Errorf("d is still in the unknown list (%d entries) after it became known", n)
	}
	c.put("d", tenant.ID{}, now)
	if id, ok := c.get("d", now); !ok || !id.IsZero() {
		t.Errorf("d = %v, %v after it became unknown", id, ok)
	}
}

// TestConfigRefused: each bad setting is refused with a message naming it.
func TestConfigRefused(t *testing.T) {
	t.Parallel()
	dir := newFakeDir()
	base := func() Config {
		return Config{BaseDomain: "shop.example", LookupSlug: dir.slug}
	}
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"BaseDomain", func(c *Config) { c.BaseDomain, c.LookupSlug = "", nil }},
		{"LookupSlug", func(c *Config) { c.LookupSlug = nil }},
		{"LookupSlug", func(c *Config) { c.BaseDomain = ""; c.LookupDomain = dir.domain }},
		{"BaseDomain", func(c *Config) { c.BaseDomain = "shop.example:443" }},
		{"BaseDomain", func(c *Config) { c.BaseDomain = "shop_example" }},
		{"BaseDomain", func(c *Config) { c.BaseDomain = "192.0.2.1" }},
		{"TrustedProxies", func(c *Config) { c.TrustedProxies = prefixes(t, "0.0.0.0/0") }},
		{"TrustedProxies", func(c *Config) { c.TrustedProxies = prefixes(t, "::/0") }},
		{"TrustedProxies", func(c *Config) { c.TrustedProxies = prefixes(t, "::ffff:10.0.0.0/104") }},
		{"TrustedProxies", func(c *Config) { c.TrustedProxies = make([]netip.Prefix, 1) }},
		{"ForwardedHeader", func(c *Config) { c.ForwardedHeader = "X-Real-Host"; c.TrustedProxies = prefixes(t, "10.0.0.0/8") }},
		{"ForwardedHeader", func(c *Config) { c.ForwardedHeader = HeaderForwarded }},
		{"MaxBodyBytes", func(c *Config) { c.MaxBodyBytes = -1 }},
		{"CacheSize", func(c *Config) { c.CacheSize = -1 }},
		{"CacheTTL", func(c *Config) { c.CacheTTL = -time.Second }},
		{"NegativeCacheTTL", func(c *Config) { c.NegativeCacheTTL = -time.Second }},
		{"JWT.Algorithm", func(c *Config) { c.JWT = &JWTConfig{Keys: []any{[]byte(strings.Repeat("k", 32))}} }},
	}
	for _, c := range cases {
		cfg := base()
		c.edit(&cfg)
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: New = %v, want an error naming %s", c.field, err, c.field)
		}
	}
	if _, err := New(base()); err != nil {
		t.Fatalf("the base config is refused: %v", err)
	}
}

// TestRefusalsLogged: refusals are logged with their kind, failed lookups
// with their error.
func TestRefusalsLogged(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	res, dir := setup(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	h := res.Middleware(http.NotFoundHandler())
	h.ServeHTTP(httptest.NewRecorder(), request("nope.shop.example", untrusted))
	dir.err = errors.New("connection refused")
	h.ServeHTTP(httptest.NewRecorder(), request("down.shop.example", untrusted))
	out := buf.String()
	for _, want := range []string{"status=404", `reason="unknown host"`, "status=500", "connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
