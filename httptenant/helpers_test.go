package httptenant

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/landlordhq/landlord/tenant"
)

// Tenants of the tests that need no database.
var (
	tenantA = mustID("01950000-0000-7000-8000-00000000000a") // slug "acme"
	tenantB = mustID("01950000-0000-7000-8000-00000000000b") // slug "other"
	tenantC = mustID("01950000-0000-7000-8000-00000000000c") // custom domain "shop.acme-custom.example"
)

func mustID(s string) tenant.ID {
	id, err := tenant.ParseID(s)
	if err != nil {
		panic(err)
	}
	return id
}

// fakeDir is a tenant directory as plain Go functions, recording every
// lookup.
type fakeDir struct {
	mu          sync.Mutex
	slugs       map[string]tenant.ID
	domains     map[string]tenant.ID
	err         error // returned by every lookup when set
	slugCalls   []string
	domainCalls []string
}

func newFakeDir() *fakeDir {
	return &fakeDir{
		slugs:   map[string]tenant.ID{"acme": tenantA, "other": tenantB},
		domains: map[string]tenant.ID{"shop.acme-custom.example": tenantC},
	}
}

func (d *fakeDir) slug(_ context.Context, s string) (tenant.Tenant, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.slugCalls = append(d.slugCalls, s)
	if d.err != nil {
		return tenant.Tenant{}, d.err
	}
	id, ok := d.slugs[s]
	if !ok {
		return tenant.Tenant{}, fmt.Errorf("tenant %q: %w", s, tenant.ErrNotFound)
	}
	return tenant.Tenant{ID: id, Slug: s}, nil
}

func (d *fakeDir) domain(_ context.Context, h string) (tenant.ID, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.domainCalls = append(d.domainCalls, h)
	if d.err != nil {
		return tenant.ID{}, d.err
	}
	id, ok := d.domains[h]
	if !ok {
		return tenant.ID{}, tenant.ErrNotFound
	}
	return id, nil
}

func (d *fakeDir) calls() (slugs, domains []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.slugCalls), slices.Clone(d.domainCalls)
}

// testProxies are the proxy networks the tests trust.
var testProxies = []string{"10.0.0.0/8", "fd00::/8", "fe80::/10"}

func prefixes(t testing.TB, ss ...string) []netip.Prefix {
	t.Helper()
	var ps []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// setup returns a resolver over a fresh fakeDir, with base domain
// "shop.example", custom domains and the test proxies; edit adjusts cfg.
func setup(t testing.TB, edit func(*Config)) (*Resolver, *fakeDir) {
	t.Helper()
	dir := newFakeDir()
	cfg := Config{
		BaseDomain:     "shop.example",
		LookupSlug:     dir.slug,
		LookupDomain:   dir.domain,
		TrustedProxies: prefixes(t, testProxies...),
	}
	if edit != nil {
		edit(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r, dir
}

// Keys of the token tests. The RSA key is a fixed test key, so that the
// committed fuzz seeds signed with it stay valid.
type testKeys struct {
	ed     ed25519.PrivateKey
	rsa    *rsa.PrivateKey
	rsaPEM []byte // the public key, PEM-encoded, as a server would publish it
	rsaDER []byte // the public key, PKIX DER
	hmac   []byte
}

var loadKeys = sync.OnceValues(func() (*testKeys, error) {
	k := &testKeys{
		ed:   ed25519.NewKeyFromSeed([]byte("httptenant test key, 32 bytes!!!")),
		hmac: []byte("httptenant test HMAC secret of at least 32 bytes"),
	}
	raw, err := os.ReadFile("testdata/rsa_test_key.pem")
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("testdata/rsa_test_key.pem: no PEM block")
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	k.rsa = priv.(*rsa.PrivateKey)
	if k.rsaDER, err = x509.MarshalPKIXPublicKey(&k.rsa.PublicKey); err != nil {
		return nil, err
	}
	k.rsaPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: k.rsaDER})
	return k, nil
})

func keys(t testing.TB) *testKeys {
	t.Helper()
	k, err := loadKeys()
	if err != nil {
		t.Fatalf("load test keys: %v", err)
	}
	return k
}

// claims returns valid claims for id, expiring in an hour.
func claims(id tenant.ID) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub":       "user-1",
		"tenant_id": id.String(),
		"iat":       now.Add(-time.Minute).Unix(),
		"exp":       now.Add(time.Hour).Unix(),
	}
}

// sign signs c with method and key.
func sign(t testing.TB, method jwt.SigningMethod, key any, c jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s token: %v", method.Alg(), err)
	}
	return s
}

// unsigned builds an "alg": "none" token by hand, as an attacker would.
func unsigned(t testing.TB, alg string, c jwt.MapClaims) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": alg, "typ": "JWT"}) + "." + enc(c) + "."
}

func bearer(r *http.Request, tok string) *http.Request {
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}
