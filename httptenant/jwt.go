package httptenant

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/landlordhq/landlord/tenant"
)

// DefaultTenantClaim is the claim that names the token's tenant when
// JWTConfig.TenantClaim is empty.
const DefaultTenantClaim = "tenant_id"

// MaxLeeway bounds JWTConfig.Leeway: clock skew between servers is seconds,
// and a larger leeway would keep expired tokens alive.
const MaxLeeway = 5 * time.Minute

// maxTokenLen bounds the bearer token looked at; longer ones are refused
// before any decoding.
const maxTokenLen = 8 << 10

// minRSABits is the smallest RSA modulus accepted as a verification key.
const minRSABits = 2048

// JWTConfig turns on the bearer-token check (SECURITY.md, B06): every request
// must carry "Authorization: Bearer <JWT>" signed with one of Keys under
// Algorithm, currently valid, and naming the routed tenant in TenantClaim.
type JWTConfig struct {
	// Algorithm is the one signing algorithm accepted: "EdDSA", "RS256",
	// "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
	// "ES512", "HS256", "HS384" or "HS512". A token whose header names
	// any other algorithm ("none" included) is refused before its
	// signature is looked at, so a token signed with HS256 using the RSA
	// public key as the secret is refused when Algorithm is RS256
	// (algorithm confusion). Required.
	Algorithm string
	// Keys verify the signature: ed25519.PublicKey for EdDSA,
	// *rsa.PublicKey of at least 2048 bits for RS* and PS*,
	// *ecdsa.PublicKey on the algorithm's curve for ES*, and a []byte
	// secret at least as long as the hash (32 bytes for HS256) for HS*.
	// Several keys are tried in turn, for key rotation. Required.
	Keys []any
	// Issuer, when set, must equal the token's "iss" claim.
	Issuer string
	// Audience, when set, must be one of the token's "aud" values.
	Audience string
	// Leeway is the clock skew allowed when checking "exp", "nbf" and
	// "iat". Default 0; at most MaxLeeway. Tokens without "exp" are
	// always refused.
	Leeway time.Duration
	// TenantClaim is the claim holding the tenant id the token is for.
	// Default DefaultTenantClaim ("tenant_id").
	TenantClaim string
	// AllowAnonymous lets requests without an Authorization header through
	// with no claims (a public storefront page, say); a request that does
	// carry a token is still refused unless the token is valid and for
	// the routed tenant. Handlers then tell the two apart with ClaimsFrom.
	AllowAnonymous bool
}

// checkKey checks that key fits alg's family, so a configuration that would
// let one algorithm's key verify another's is refused up front.
func checkKey(alg string, key any) error {
	switch alg[:2] {
	case "HS":
		b, ok := key.([]byte)
		if !ok {
			return fmt.Errorf("%s needs a []byte secret, not %T", alg, key)
		}
		if need := hashBytes(alg); len(b) < need {
			return fmt.Errorf("%s secret of %d bytes; use at least %d", alg, len(b), need)
		}
	case "RS", "PS":
		k, ok := key.(*rsa.PublicKey)
		if !ok || k == nil || k.N == nil {
			return fmt.Errorf("%s needs an *rsa.PublicKey, not %T", alg, key)
		}
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("%s key of %d bits; use at least %d", alg, k.N.BitLen(), minRSABits)
		}
	case "ES":
		k, ok := key.(*ecdsa.PublicKey)
		if !ok || k == nil {
			return fmt.Errorf("%s needs an *ecdsa.PublicKey, not %T", alg, key)
		}
		want := elliptic.P256()
		switch alg {
		case "ES384":
			want = elliptic.P384()
		case "ES512":
			want = elliptic.P521()
		}
		if k.Curve != want {
			return fmt.Errorf("%s needs a key on %s", alg, want.Params().Name)
		}
	default: // EdDSA
		k, ok := key.(ed25519.PublicKey)
		if !ok || len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%s needs an ed25519.PublicKey, not %T", alg, key)
		}
	}
	return nil
}

func hashBytes(alg string) int {
	switch alg[len(alg)-3:] {
	case "384":
		return 48
	case "512":
		return 64
	}
	return 32
}

func (c *JWTConfig) validate() error {
	switch c.Algorithm {
	case "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512":
	case "":
		return errors.New("httptenant config: JWT.Algorithm is required")
	default:
		return fmt.Errorf("httptenant config: JWT.Algorithm %q is not supported", c.Algorithm)
	}
	if len(c.Keys) == 0 {
		return errors.New("httptenant config: JWT.Keys needs at least one key")
	}
	for i, k := range c.Keys {
		if err := checkKey(c.Algorithm, k); err != nil {
			return fmt.Errorf("httptenant config: JWT.Keys[%d]: %s", i, err)
		}
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		return fmt.Errorf("httptenant config: JWT.Leeway must be between 0 and %s", MaxLeeway)
	}
	return nil
}

// verifier checks bearer tokens against one JWTConfig.
type verifier struct {
	parser    *jwt.Parser
	keyFunc   jwt.Keyfunc
	claim     string
	anonymous bool
}

func newVerifier(c JWTConfig) *verifier {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{c.Algorithm}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(c.Leeway),
		jwt.WithStrictDecoding(),
	}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	// The key is chosen by configuration alone, never by the token's
	// header: a token cannot pick its own key ("kid", "jku") or algorithm.
	var key any = c.Keys[0]
	if len(c.Keys) > 1 {
		set := jwt.VerificationKeySet{}
		for _, k := range c.Keys {
			set.Keys = append(set.Keys, k)
		}
		key = set
	}
	claim := c.TenantClaim
	if claim == "" {
		claim = DefaultTenantClaim
	}
	return &verifier{
		parser:    jwt.NewParser(opts...),
		keyFunc:   func(*jwt.Token) (any, error) { return key, nil },
		claim:     claim,
		anonymous: c.AllowAnonymous,
	}
}

// bearerToken returns the request's bearer token, or "" when it has no
// Authorization header.
func bearerToken(r *http.Request) (string, error) {
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", fmt.Errorf("%w: more than one Authorization header", ErrBadToken)
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: Authorization is not a bearer token", ErrBadToken)
	}
	tok = strings.Trim(tok, " \t")
	switch {
	case tok == "":
		return "", fmt.Errorf("%w: empty bearer token", ErrBadToken)
	case len(tok) > maxTokenLen:
		return "", fmt.Errorf("%w: token longer than %d bytes", ErrBadToken, maxTokenLen)
	}
	return tok, nil
}

// verify checks tok's signature, algorithm and time and issuer claims, and
// returns its claims. The error never contains the token.
func (v *verifier) verify(tok string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(tok, claims, v.keyFunc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	return claims, nil
}

// tenantOf returns the tenant the claims are for.
func (v *verifier) tenantOf(claims jwt.MapClaims) (tenant.ID, error) {
	raw, ok := claims[v.claim]
	if !ok {
		return tenant.ID{}, fmt.Errorf("%w: claim %q missing", ErrTenantClaim, v.claim)
	}
	s, ok := raw.(string)
	if !ok {
		return tenant.ID{}, fmt.Errorf("%w: claim %q is not a string", ErrTenantClaim, v.claim)
	}
	id, err := tenant.ParseID(s)
	if err != nil || id.IsZero() {
		return tenant.ID{}, fmt.Errorf("%w: claim %q is not a tenant id", ErrTenantClaim, v.claim)
	}
	return id, nil
}
