package httptenant

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/tenant"
)

// The fuzz targets below run their seed corpora (testdata/fuzz, taken from
// SECURITY.md, B05-B06) with every go test; see the package documentation for
// how to fuzz longer.

// FuzzNormalizeHost: NormalizeHost either fails with one of its sentinels or
// returns a name that is its own normalization, lower-case ASCII letters,
// digits, hyphens and dots, at most 253 bytes in labels of 1-63, with no
// port, no trailing dot, and not an IP address.
func FuzzNormalizeHost(f *testing.F) {
	f.Add("Acme.Shop.Example.:8443")
	f.Fuzz(func(t *testing.T, host string) {
		got, err := NormalizeHost(host)
		literal := host
		if inner, ok := strings.CutPrefix(host, "["); ok && strings.HasSuffix(inner, "]") {
			literal = strings.TrimSuffix(inner, "]")
		}
		// An address is never accepted. (Which error refuses it can differ:
		// an IPv6 zone may be of any length or not UTF-8, and those checks
		// come first.)
		if _, perr := netip.ParseAddr(literal); perr == nil && err == nil {
			t.Fatalf("NormalizeHost(%.100q) = %q for an IP address", host, got)
		}
		if err != nil {
			if !errors.Is(err, ErrNoHost) && !errors.Is(err, ErrBadHost) && !errors.Is(err, ErrIPHost) {
				t.Fatalf("NormalizeHost(%.100q): error %.200v matches none of the sentinels", host, err)
			}
			if got != "" {
				t.Fatalf("NormalizeHost(%.100q) = %q along with error %v", host, got, err)
			}
			return
		}
		if len(got) == 0 || len(got) > MaxHostLen {
			t.Fatalf("NormalizeHost(%.100q) = %q: %d bytes", host, got, len(got))
		}
		for i := 0; i < len(got); i++ {
			c := got[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '.' {
				t.Fatalf("NormalizeHost(%.100q) = %q: byte %q", host, got, c)
			}
		}
		for _, label := range strings.Split(got, ".") {
			if label == "" || len(label) > MaxLabelLen || label[0] == '-' || label[len(label)-1] == '-' {
				t.Fatalf("NormalizeHost(%.100q) = %q: bad label %q", host, got, label)
			}
		}
		if _, err := netip.ParseAddr(got); err == nil || endsInNumber(got[strings.LastIndexByte(got, '.')+1:]) {
			t.Fatalf("NormalizeHost(%.100q) = %q, an address", host, got)
		}
		again, err := NormalizeHost(got)
		if err != nil || again != got {
			t.Fatalf("NormalizeHost(%.100q) = %q, but NormalizeHost(%q) = %q, %v", host, got, got, again, err)
		}
	})
}

// fuzzResolver returns a resolver over a fresh fakeDir for one forwarded header, whose
// lookups fail t when handed a slug or host that is not normalized.
func fuzzResolver(t *testing.T, header string) *Resolver {
	dir := newFakeDir()
	cfg := Config{
		BaseDomain: "shop.example",
		LookupSlug: func(ctx context.Context, s string) (tenant.Tenant, error) {
			if n, err := tenant.NormalizeSlug(s); err != nil || n != s {
				t.Fatalf("LookupSlug(%q): not a normalized slug", s)
			}
			return dir.slug(ctx, s)
		},
		LookupDomain: func(ctx context.Context, h string) (tenant.ID, error) {
			if n, err := NormalizeHost(h); err != nil || n != h {
				t.Fatalf("LookupDomain(%q): not a normalized host", h)
			}
			if h == "shop.example" || strings.HasSuffix(h, ".shop.example") {
				t.Fatalf("LookupDomain(%q): a name below the base domain", h)
			}
			return dir.domain(ctx, h)
		},
		TrustedProxies:  prefixes(t, testProxies...),
		ForwardedHeader: header,
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type outcome struct {
	id   tenant.ID
	code int
}

func resolveOutcome(r *Resolver, req *http.Request) outcome {
	id, err := r.Resolve(req)
	return outcome{id, StatusCode(err)}
}

// FuzzResolveHost: arbitrary Host, X-Forwarded-Host and Forwarded headers
// and peer addresses never panic, never hand a lookup an un-normalized name,
// never let a forwarded header from an untrusted peer change the outcome,
// from a trusted peer use only the last X-Forwarded-Host value, and are
// answered by the middleware with a generic body.
func FuzzResolveHost(f *testing.F) {
	f.Add("acme.shop.example", "other.shop.example", "host=other.shop.example", "203.0.113.9:1")
	f.Fuzz(func(t *testing.T, host, xfh, fwd, peer string) {
		build := func(host, peer string, withForwarded bool) *http.Request {
			r := &http.Request{Method: http.MethodGet, Host: host, RemoteAddr: peer, Header: http.Header{}}
			r = r.WithContext(context.Background())
			if withForwarded {
				r.Header["X-Forwarded-Host"] = []string{xfh}
				r.Header["Forwarded"] = []string{fwd}
			}
			return r
		}
		for _, header := range []string{HeaderXForwardedHost, HeaderForwarded} {
			got := resolveOutcome(fuzzResolver(t, header), build(host, peer, true))
			if got.id.IsZero() == (got.code == http.StatusOK) {
				t.Fatalf("%s: tenant %v with status %d", header, got.id, got.code)
			}
			if !trustedPeerOracle(peer) {
				plain := resolveOutcome(fuzzResolver(t, header), build(host, peer, false))
				if got != plain {
					t.Fatalf("%s from untrusted peer %q changed the outcome: %v, without it %v", header, peer, got, plain)
				}
			} else if header == HeaderXForwardedHost {
				last := strings.Trim(xfh[strings.LastIndexByte(xfh, ',')+1:], " \t")
				if last == "" || len(xfh) > maxForwardedInput {
					if got.code != http.StatusBadRequest {
						t.Fatalf("empty or oversized last X-Forwarded-Host value %q: status %d, want 400", xfh, got.code)
					}
				} else if want := resolveOutcome(fuzzResolver(t, header), build(last, "203.0.113.9:1", false)); got != want {
					t.Fatalf("X-Forwarded-Host %q from a trusted peer: %v, want the outcome of its last value %q, %v", xfh, got, last, want)
				}
			}

			w := httptest.NewRecorder()
			fuzzResolver(t, header).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, ok := landlord.TenantFrom(r.Context()); !ok {
					t.Fatal("handler reached without a tenant")
				}
			})).ServeHTTP(w, build(host, peer, true))
			if w.Code != got.code {
				t.Fatalf("%s: middleware status %d, Resolve status %d", header, w.Code, got.code)
			}
			if w.Code != http.StatusOK && w.Body.String() != http.StatusText(w.Code)+"\n" {
				t.Fatalf("%s: body %q is not the generic text", header, w.Body.String())
			}
		}
	})
}

// FuzzJWT: an arbitrary token string is accepted only when its header names
// the configured algorithm and its signature verifies, by the standard
// library's own primitives, under the configured key; and then only for the
// routed tenant. A refusal's error never contains the token.
func FuzzJWT(f *testing.F) {
	k := keys(f)
	type config struct {
		alg    string
		res    *Resolver
		verify func(signed, sig []byte) bool
	}
	var configs []config
	for _, c := range []struct {
		alg    string
		key    any
		verify func(signed, sig []byte) bool
	}{
		{"EdDSA", k.ed.Public(), func(signed, sig []byte) bool {
			return ed25519.Verify(k.ed.Public().(ed25519.PublicKey), signed, sig)
		}},
		{"RS256", &k.rsa.PublicKey, func(signed, sig []byte) bool {
			h := sha256.Sum256(signed)
			return rsa.VerifyPKCS1v15(&k.rsa.PublicKey, crypto.SHA256, h[:], sig) == nil
		}},
		{"HS256", k.hmac, func(signed, sig []byte) bool {
			m := hmac.New(sha256.New, k.hmac)
			m.Write(signed)
			return hmac.Equal(m.Sum(nil), sig)
		}},
	} {
		res, _ := setup(f, func(cfg *Config) { cfg.JWT = &JWTConfig{Algorithm: c.alg, Keys: []any{c.key}} })
		configs = append(configs, config{c.alg, res, c.verify})
	}
	f.Add("eyJhbGciOiJub25lIn0.eyJ0ZW5hbnRfaWQiOiIwMTk1MDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMGEifQ.")
	f.Fuzz(func(t *testing.T, tok string) {
		for _, c := range configs {
			r := request("acme.shop.example", untrusted)
			r.Header.Set("Authorization", "Bearer "+tok)
			id, err := c.res.Resolve(r)
			if err != nil {
				if code := StatusCode(err); code != http.StatusUnauthorized && code != http.StatusForbidden {
					t.Fatalf("%s: token %q: %v, status %d", c.alg, tok, err, code)
				}
				if len(tok) >= 8 && strings.Contains(err.Error(), tok) {
					t.Fatalf("%s: error %q contains the token", c.alg, err)
				}
				continue
			}
			if id != tenantA {
				t.Fatalf("%s: token %q resolved to %v", c.alg, tok, id)
			}
			parts := strings.Split(strings.Trim(tok, " \t"), ".")
			if len(parts) != 3 {
				t.Fatalf("%s: accepted token %q has %d parts", c.alg, tok, len(parts))
			}
			rawHeader, err1 := base64.RawURLEncoding.Strict().DecodeString(parts[0])
			sig, err2 := base64.RawURLEncoding.Strict().DecodeString(parts[2])
			var header struct {
				Alg string `json:"alg"`
			}
			if err1 != nil || err2 != nil || json.Unmarshal(rawHeader, &header) != nil {
				t.Fatalf("%s: accepted token %q does not decode", c.alg, tok)
			}
			if header.Alg != c.alg {
				t.Fatalf("%s: accepted token %q with alg %q", c.alg, tok, header.Alg)
			}
			if !c.verify([]byte(parts[0]+"."+parts[1]), sig) {
				t.Fatalf("%s: accepted token %q whose signature does not verify", c.alg, tok)
			}
		}
	})
}

// TestFuzzJWTSeeds: the committed valid token seeds still verify under
// their configurations (and under no other), so FuzzJWT's corpus keeps
// exercising the path where a token is accepted.
func TestFuzzJWTSeeds(t *testing.T) {
	t.Parallel()
	k := keys(t)
	configs := map[string]JWTConfig{
		"EdDSA": {Algorithm: "EdDSA", Keys: []any{k.ed.Public()}},
		"RS256": {Algorithm: "RS256", Keys: []any{&k.rsa.PublicKey}},
		"HS256": {Algorithm: "HS256", Keys: []any{k.hmac}},
	}
	seeds := map[string]string{"b06_valid_eddsa": "EdDSA", "b06_valid_rs256": "RS256", "b06_valid_hs256": "HS256"}
	for file, alg := range seeds {
		raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzJWT", file))
		if err != nil {
			t.Fatal(err)
		}
		line := strings.TrimSpace(strings.Split(string(raw), "\n")[1])
		tok, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, "string("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for name, j := range configs {
			res, _ := setup(t, func(c *Config) { c.JWT = &j })
			_, err := res.Resolve(bearer(request("acme.shop.example", untrusted), tok))
			if (err == nil) != (name == alg) {
				t.Errorf("seed %s under %s: %v", file, name, err)
			}
		}
	}
}

// trustedPeerOracle says whether peer, a RemoteAddr, is one of testProxies,
// worked out apart from the code under test (by hand, and package net
// rather than netip): "ip:port" with a decimal port of
// at most 65535, an IPv6 address in brackets (a zone allowed and ignored),
// an IPv4 one bare or mapped into IPv6.
func trustedPeerOracle(peer string) bool {
	var host, port string
	bracketed := strings.HasPrefix(peer, "[")
	if bracketed {
		i := strings.LastIndex(peer, "]:")
		if i < 0 {
			return false
		}
		host, port = peer[1:i], peer[i+2:]
	} else {
		i := strings.LastIndexByte(peer, ':')
		if i < 0 {
			return false
		}
		host, port = peer[:i], peer[i+1:]
	}
	if port == "" || len(port) > 5 {
		return false
	}
	n := 0
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return false
	}
	if i := strings.IndexByte(host, '%'); i >= 0 {
		if !bracketed || i == len(host)-1 {
			return false
		}
		host = host[:i]
	}
	ip := net.ParseIP(host)
	if ip == nil || bracketed != strings.Contains(host, ":") {
		return false
	}
	for _, cidr := range testProxies {
		_, network, err := net.ParseCIDR(cidr)
		if err != nil {
			panic(err)
		}
		if network.Contains(ip) {
			return true
		}
	}
	return false
}
