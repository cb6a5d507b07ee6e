package httptenant

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/landlordhq/landlord/tenant"
)

// jwtSetup returns a resolver requiring tokens under j (Keys filled in from
// the test keys for j.Algorithm when empty).
func jwtSetup(t *testing.T, j JWTConfig) *Resolver {
	t.Helper()
	k := keys(t)
	if j.Keys == nil {
		switch j.Algorithm {
		case "RS256":
			j.Keys = []any{&k.rsa.PublicKey}
		case "EdDSA":
			j.Keys = []any{k.ed.Public()}
		case "HS256":
			j.Keys = []any{k.hmac}
		}
	}
	res, _ := setup(t, func(c *Config) { c.JWT = &j })
	return res
}

// TestJWT covers B06 (SECURITY.md): alg none, algorithm confusion, expiry and
// not-before, issuer and audience, a tenant claim missing, malformed or for
// another tenant, and malformed tokens.
func TestJWT(t *testing.T) {
	t.Parallel()
	k := keys(t)
	rs256 := JWTConfig{Algorithm: "RS256"}
	strict := JWTConfig{Algorithm: "RS256", Issuer: "https://id.shop.example", Audience: "shop-api"}
	with := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := claims(tenantA)
		edit(c)
		return c
	}
	now := time.Now()
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		cfg    JWTConfig
		auth   []string // Authorization header values
		err    error    // nil: resolves to tenantA
		jwtErr error    // also matched when set
	}{
		{name: "valid RS256", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, claims(tenantA))}},
		{name: "scheme in lower case", cfg: rs256, auth: []string{"bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, claims(tenantA))}},
		{name: "valid EdDSA", cfg: JWTConfig{Algorithm: "EdDSA"}, auth: []string{"Bearer " + sign(t, jwt.SigningMethodEdDSA, k.ed, claims(tenantA))}},
		{name: "valid HS256", cfg: JWTConfig{Algorithm: "HS256"}, auth: []string{"Bearer " + sign(t, jwt.SigningMethodHS256, k.hmac, claims(tenantA))}},
		{name: "valid ES256", cfg: JWTConfig{Algorithm: "ES256", Keys: []any{&ecKey.PublicKey}}, auth: []string{"Bearer " + sign(t, jwt.SigningMethodES256, ecKey, claims(tenantA))}},
		{name: "second key of a rotation", cfg: JWTConfig{Algorithm: "RS256", Keys: []any{&otherRSA.PublicKey, &k.rsa.PublicKey}}, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, claims(tenantA))}},
		{name: "tenant id in upper case", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { c["tenant_id"] = strings.ToUpper(tenantA.String()) }))}},

		{name: "no token", cfg: rs256, err: ErrNoToken},
		{name: "basic auth", cfg: rs256, auth: []string{"Basic dXNlcjpwYXNz"}, err: ErrBadToken},
		{name: "empty bearer", cfg: rs256, auth: []string{"Bearer "}, err: ErrBadToken},
		{name: "two headers", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, claims(tenantA)), "Bearer x"}, err: ErrBadToken},
		{name: "malformed", cfg: rs256, auth: []string{"Bearer not-a-token"}, err: ErrBadToken, jwtErr: jwt.ErrTokenMalformed},
		{name: "two segments", cfg: rs256, auth: []string{"Bearer eyJhbGciOiJSUzI1NiJ9.e30"}, err: ErrBadToken, jwtErr: jwt.ErrTokenMalformed},
		{name: "bad base64", cfg: rs256, auth: []string{"Bearer !!!.???.***"}, err: ErrBadToken, jwtErr: jwt.ErrTokenMalformed},
		{name: "too long", cfg: rs256, auth: []string{"Bearer " + strings.Repeat("a", maxTokenLen+1)}, err: ErrBadToken},
		{name: "tampered payload", cfg: rs256, auth: []string{"Bearer " + tamper(t, sign(t, jwt.SigningMethodRS256, k.rsa, claims(tenantA)), claims(tenantB))}, err: ErrBadToken, jwtErr: jwt.ErrTokenSignatureInvalid},

		{name: "alg none", cfg: rs256, auth: []string{"Bearer " + unsigned(t, "none", claims(tenantA))}, err: ErrBadToken, jwtErr: jwt.ErrTokenSignatureInvalid},
		{name: "alg NONE", cfg: rs256, auth: []string{"Bearer " + unsigned(t, "NONE", claims(tenantA))}, err: ErrBadToken},
		{name: "alg none for an HS256 config", cfg: JWTConfig{Algorithm: "HS256"}, auth: []string{"Bearer " + unsigned(t, "none", claims(tenantA))}, err: ErrBadToken},
		{name: "HS256 with the RSA public key (PEM) as secret", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodHS256, k.rsaPEM, claims(tenantA))}, err: ErrBadToken, jwtErr: jwt.ErrTokenSignatureInvalid},
		{name: "HS256 with the RSA public key (DER) as secret", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodHS256, k.rsaDER, claims(tenantA))}, err: ErrBadToken},
		{name: "HS256 with the Ed25519 public key as secret", cfg: JWTConfig{Algorithm: "EdDSA"}, auth: []string{"Bearer " + sign(t, jwt.SigningMethodHS256, []byte(k.ed.Public().(ed25519.PublicKey)), claims(tenantA))}, err: ErrBadToken},
		{name: "RS512 for an RS256 config", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS512, k.rsa, claims(tenantA))}, err: ErrBadToken},
		{name: "PS256 for an RS256 config", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodPS256, k.rsa, claims(tenantA))}, err: ErrBadToken},
		{name: "another RSA key", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, otherRSA, claims(tenantA))}, err: ErrBadToken, jwtErr: jwt.ErrTokenSignatureInvalid},

		{name: "expired", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }))}, err: ErrBadToken, jwtErr: jwt.ErrTokenExpired},
		{name: "expired just now, no leeway", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() }))}, err: ErrBadToken, jwtErr: jwt.ErrTokenExpired},
		{name: "expired just now, within leeway", cfg: JWTConfig{Algorithm: "RS256", Leeway: time.Minute}, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() }))}},
		{name: "no expiry", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { delete(c, "exp") }))}, err: ErrBadToken, jwtErr: jwt.ErrTokenRequiredClaimMissing},
		{name: "not yet valid", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }))}, err: ErrBadToken, jwtErr: jwt.ErrTokenNotValidYet},
		{name: "issued in the future", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() }))}, err: ErrBadToken, jwtErr: jwt.ErrTokenUsedBeforeIssued},

		{name: "issuer and audience", cfg: strict, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) {
			c["iss"] = "https://id.shop.example"
			c["aud"] = []string{"other-api", "shop-api"}
		}))}},
		{name: "wrong issuer", cfg: strict, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example"; c["aud"] = "shop-api" }))}, err: ErrBadToken, jwtErr: jwt.ErrTokenInvalidIssuer},
		{name: "no issuer", cfg: strict, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { c["aud"] = "shop-api" }))}, err: ErrBadToken},
		{name: "wrong audience", cfg: strict, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { c["iss"] = "https://id.shop.example"; c["aud"] = "admin-api" }))}, err: ErrBadToken, jwtErr: jwt.ErrTokenInvalidAudience},

		{name: "claim for another tenant", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, claims(tenantB))}, err: ErrTenantClaim},
		{name: "claim missing", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { delete(c, "tenant_id") }))}, err: ErrTenantClaim},
		{name: "claim a number", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { c["tenant_id"] = 42 }))}, err: ErrTenantClaim},
		{name: "claim a slug", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { c["tenant_id"] = "acme" }))}, err: ErrTenantClaim},
		{name: "claim the zero id", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { c["tenant_id"] = tenant.ID{}.String() }))}, err: ErrTenantClaim},
		{name: "claim a list", cfg: rs256, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { c["tenant_id"] = []string{tenantA.String()} }))}, err: ErrTenantClaim},
		{name: "custom claim name", cfg: JWTConfig{Algorithm: "RS256", TenantClaim: "org"}, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, with(func(c jwt.MapClaims) { c["org"] = tenantA.String(); c["tenant_id"] = tenantB.String() }))}},
		{name: "custom claim name missing", cfg: JWTConfig{Algorithm: "RS256", TenantClaim: "org"}, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, claims(tenantA))}, err: ErrTenantClaim},

		{name: "anonymous allowed", cfg: JWTConfig{Algorithm: "RS256", AllowAnonymous: true}},
		{name: "anonymous allowed, bad token", cfg: JWTConfig{Algorithm: "RS256", AllowAnonymous: true}, auth: []string{"Bearer " + unsigned(t, "none", claims(tenantA))}, err: ErrBadToken},
		{name: "anonymous allowed, other tenant", cfg: JWTConfig{Algorithm: "RS256", AllowAnonymous: true}, auth: []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, claims(tenantB))}, err: ErrTenantClaim},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			res := jwtSetup(t, c.cfg)
			r := request("acme.shop.example", untrusted)
			for _, a := range c.auth {
				r.Header.Add("Authorization", a)
			}
			got, err := res.Resolve(r)
			if c.err == nil {
				if err != nil || got != tenantA {
					t.Fatalf("Resolve = %v, %v; want %v", got, err, tenantA)
				}
				return
			}
			if !errors.Is(err, c.err) || !got.IsZero() {
				t.Fatalf("Resolve = %v, %v; want error %v", got, err, c.err)
			}
			if c.jwtErr != nil && !errors.Is(err, c.jwtErr) {
				t.Fatalf("Resolve: %v, want it to match %v", err, c.jwtErr)
			}
		})
	}
}

// tamper replaces a token's payload and keeps its signature.
func tamper(t *testing.T, tok string, c jwt.MapClaims) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	forged := strings.Split(unsigned(t, "RS256", c), ".")
	return parts[0] + "." + forged[1] + "." + parts[2]
}

// TestJWTNoLookupWithoutToken: a request without a valid token costs no
// lookup.
func TestJWTNoLookupWithoutToken(t *testing.T) {
	t.Parallel()
	k := keys(t)
	res, dir := setup(t, func(c *Config) { c.JWT = &JWTConfig{Algorithm: "RS256", Keys: []any{&k.rsa.PublicKey}} })
	for _, auth := range []string{"", "Bearer x.y.z", "Bearer " + unsigned(t, "none", claims(tenantA))} {
		r := request("acme.shop.example", untrusted)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		if _, err := res.Resolve(r); err == nil {
			t.Fatalf("%q resolved", auth)
		}
	}
	if s, d := dir.calls(); len(s)+len(d) != 0 {
		t.Fatalf("lookups %q %q without a valid token", s, d)
	}
}

// TestJWTMiddleware: statuses, claims in the context, and the token never
// in a body or a log line.
func TestJWTMiddleware(t *testing.T) {
	t.Parallel()
	k := keys(t)
	var logs strings.Builder
	res, _ := setup(t, func(c *Config) {
		c.JWT = &JWTConfig{Algorithm: "RS256", Keys: []any{&k.rsa.PublicKey}}
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	var sawSub any
	h := res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := ClaimsFrom(r.Context())
		if !ok {
			t.Error("no claims in the context")
		}
		sawSub = c["sub"]
	}))
	valid := sign(t, jwt.SigningMethodRS256, k.rsa, claims(tenantA))
	other := sign(t, jwt.SigningMethodRS256, k.rsa, claims(tenantB))
	expired := sign(t, jwt.SigningMethodRS256, k.rsa, jwt.MapClaims{"tenant_id": tenantA.String(), "exp": time.Now().Add(-time.Hour).Unix()})
	confused := sign(t, jwt.SigningMethodHS256, k.rsaPEM, claims(tenantA))
	cases := []struct {
		tok  string
		code int
	}{
		{valid, http.StatusOK},
		{"", http.StatusUnauthorized},
		{unsigned(t, "none", claims(tenantA)), http.StatusUnauthorized},
		{confused, http.StatusUnauthorized},
		{expired, http.StatusUnauthorized},
		{"garbage-token-zqx", http.StatusUnauthorized},
		{other, http.StatusForbidden},
	}
	for _, c := range cases {
		r := request("acme.shop.example", untrusted)
		if c.tok != "" {
			bearer(r, c.tok)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.code {
			t.Errorf("token %.20q…: status %d, want %d", c.tok, w.Code, c.code)
		}
		if c.code == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("401 without WWW-Authenticate: Bearer")
		}
		if c.tok != "" && c.code != http.StatusOK && strings.Contains(w.Body.String(), c.tok) {
			t.Errorf("body echoes the token")
		}
		if c.tok != "" {
			sig := c.tok[strings.LastIndexByte(c.tok, '.')+1:]
			if strings.Contains(logs.String(), c.tok) || (len(sig) > 8 && strings.Contains(logs.String(), sig)) {
				t.Errorf("log carries a token:\n%s", logs.String())
			}
		}
	}
	if sawSub != "user-1" {
		t.Errorf("handler saw sub %v, want user-1", sawSub)
	}
	if !strings.Contains(logs.String(), "status=401") || !strings.Contains(logs.String(), "status=403") {
		t.Errorf("refusals not logged:\n%s", logs.String())
	}
}

// TestJWTConfigRefused: keys that do not fit the algorithm (the
// configuration side of algorithm confusion), weak keys and bad settings.
func TestJWTConfigRefused(t *testing.T) {
	t.Parallel()
	k := keys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		j     JWTConfig
		field string
	}{
		{"no algorithm", JWTConfig{Keys: []any{k.hmac}}, "JWT.Algorithm"},
		{"none", JWTConfig{Algorithm: "none", Keys: []any{k.hmac}}, "JWT.Algorithm"},
		{"unknown", JWTConfig{Algorithm: "HS1", Keys: []any{k.hmac}}, "JWT.Algorithm"},
		{"no keys", JWTConfig{Algorithm: "RS256"}, "JWT.Keys"},
		{"HS256 with an RSA key", JWTConfig{Algorithm: "HS256", Keys: []any{&k.rsa.PublicKey}}, "JWT.Keys[0]"},
		{"HS256 short secret", JWTConfig{Algorithm: "HS256", Keys: []any{[]byte("secret")}}, "JWT.Keys[0]"},
		{"HS512 32-byte secret", JWTConfig{Algorithm: "HS512", Keys: []any{k.hmac[:32]}}, "JWT.Keys[0]"},
		{"RS256 with a secret", JWTConfig{Algorithm: "RS256", Keys: []any{k.rsaPEM}}, "JWT.Keys[0]"},
		{"RS256 with a private key", JWTConfig{Algorithm: "RS256", Keys: []any{k.rsa}}, "JWT.Keys[0]"},
		{"RS256 with 1024 bits", JWTConfig{Algorithm: "RS256", Keys: []any{&small.PublicKey}}, "JWT.Keys[0]"},
		{"RS256 second key wrong", JWTConfig{Algorithm: "RS256", Keys: []any{&k.rsa.PublicKey, k.hmac}}, "JWT.Keys[1]"},
		{"ES256 on P-384", JWTConfig{Algorithm: "ES256", Keys: []any{&p384.PublicKey}}, "JWT.Keys[0]"},
		{"EdDSA private key", JWTConfig{Algorithm: "EdDSA", Keys: []any{k.ed}}, "JWT.Keys[0]"},
		{"nil key", JWTConfig{Algorithm: "RS256", Keys: []any{nil}}, "JWT.Keys[0]"},
		{"negative leeway", JWTConfig{Algorithm: "HS256", Keys: []any{k.hmac}, Leeway: -time.Second}, "JWT.Leeway"},
		{"huge leeway", JWTConfig{Algorithm: "HS256", Keys: []any{k.hmac}, Leeway: time.Hour}, "JWT.Leeway"},
	}
	for _, c := range cases {
		j := c.j
		_, err := New(Config{BaseDomain: "shop.example", LookupSlug: newFakeDir().slug, JWT: &j})
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: New = %v, want an error naming %s", c.name, err, c.field)
		}
	}
}
