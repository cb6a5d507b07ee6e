package httptenant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/landlordhq/landlord/tenant"
)

// Defaults of Config.
const (
	DefaultMaxBodyBytes     = 1 << 20
	DefaultCacheSize        = 10_000
	DefaultCacheTTL         = 30 * time.Second
	DefaultNegativeCacheTTL = 5 * time.Second
)

// Config holds the settings of New. At least one way of mapping hosts is
// required: BaseDomain with LookupSlug, LookupDomain, or both.
type Config struct {
	// BaseDomain is the domain whose direct subdomains are tenants:
	// with "shop.example", "acme.shop.example" is the tenant with slug
	// "acme". The base domain itself, "www" and deeper names
	// ("a.acme.shop.example") are not tenants. It is normalized like a host
	// (NormalizeHost) and must not carry a port.
	BaseDomain string
	// LookupSlug returns the tenant with a slug; it is required with
	// BaseDomain. Landlord.TenantBySlug fits. It is called only with a slug
	// that tenant.NormalizeSlug accepts and returns unchanged, and its
	// answers are cached (CacheTTL, NegativeCacheTTL). An error matching
	// tenant.ErrNotFound, or a tenant with a zero id, means no such tenant
	// (404); any other error fails the request with ErrLookup (500) and
	// is not cached.
	LookupSlug func(ctx context.Context, slug string) (tenant.Tenant, error)
	// LookupDomain returns the tenant a custom domain ("shop.acme.example")
	// belongs to, for hosts outside BaseDomain. It is called only with the
	// output of NormalizeHost (lower-case ASCII, Punycode for
	// international names, no port, no trailing dot), so it can be an
	// exact match against names stored in that form. Errors and caching
	// are as for LookupSlug.
	LookupDomain func(ctx context.Context, host string) (tenant.ID, error)
	// TrustedProxies are the networks of the reverse proxies in front of
	// the server. Only when the direct peer (http.Request.RemoteAddr) is
	// in one of them is the host taken from ForwardedHeader, and then only
	// the last value, the one that peer appended. From any other peer the
	// forwarded headers are ignored. Empty (the default): the Host header
	// is always used. A prefix of length 0 (trusting everyone) and
	// IPv4-mapped IPv6 prefixes are refused.
	TrustedProxies []netip.Prefix
	// ForwardedHeader is the one header the trusted proxies record the
	// original host in: HeaderXForwardedHost (the default) or
	// HeaderForwarded (RFC 7239, its host= parameter). Only one is read:
	// a proxy that sets one of them passes the other one through from the
	// client unchanged.
	ForwardedHeader string
	// JWT, when set, also requires a bearer token for the routed tenant;
	// see JWTConfig.
	JWT *JWTConfig
	// MaxBodyBytes caps request bodies under Middleware. Default
	// DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// CacheSize bounds the cache of lookups: found tenants and unknown
	// names are kept in two lists of this many entries each. Default
	// DefaultCacheSize.
	CacheSize int
	// CacheTTL is how long a found tenant is remembered. Default 30s. A
	// slug or domain that moves to another tenant is seen within it; the
	// tenant handle checks the tenant's state on every call regardless.
	CacheTTL time.Duration
	// NegativeCacheTTL is how long an unknown slug or domain is remembered,
	// so repeated requests for it do not reach the lookup. Default 5s: a
	// tenant created meanwhile is served at most this late.
	NegativeCacheTTL time.Duration
	// Logger receives the middleware's refusals (at debug level, with the
	// status and the kind of error; never a host, a token or a body) and
	// failed lookups (at error level, with the lookup's error). Default:
	// discard.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	switch {
	case c.BaseDomain == "" && c.LookupDomain == nil:
		return errors.New("httptenant config: set BaseDomain with LookupSlug, LookupDomain, or both")
	case c.BaseDomain != "" && c.LookupSlug == nil:
		return errors.New("httptenant config: LookupSlug is required with BaseDomain")
	case c.BaseDomain == "" && c.LookupSlug != nil:
		return errors.New("httptenant config: LookupSlug needs BaseDomain")
	case c.MaxBodyBytes < 0:
		return errors.New("httptenant config: MaxBodyBytes must not be negative")
	case c.CacheSize < 0:
		return errors.New("httptenant config: CacheSize must not be negative")
	case c.CacheTTL < 0:
		return errors.New("httptenant config: CacheTTL must not be negative")
	case c.NegativeCacheTTL < 0:
		return errors.New("httptenant config: NegativeCacheTTL must not be negative")
	}
	if c.BaseDomain != "" {
		if strings.Contains(c.BaseDomain, ":") {
			return errors.New("httptenant config: BaseDomain must not carry a port")
		}
		if _, err := NormalizeHost(c.BaseDomain); err != nil {
			return fmt.Errorf("httptenant config: BaseDomain %q: %w", c.BaseDomain, err)
		}
	}
	for i, p := range c.TrustedProxies {
		switch {
		case !p.IsValid():
			return fmt.Errorf("httptenant config: TrustedProxies[%d] is not a valid prefix", i)
		case p.Bits() == 0:
			return fmt.Errorf("httptenant config: TrustedProxies[%d] %s trusts every address", i, p)
		case p.Addr().Is4In6():
			return fmt.Errorf("httptenant config: TrustedProxies[%d] %s is IPv4-mapped; use the IPv4 form", i, p)
		}
	}
	switch c.ForwardedHeader {
	case "", HeaderXForwardedHost, HeaderForwarded:
	default:
		return fmt.Errorf("httptenant config: ForwardedHeader %q must be %q or %q", c.ForwardedHeader, HeaderXForwardedHost, HeaderForwarded)
	}
	if c.ForwardedHeader != "" && len(c.TrustedProxies) == 0 {
		return errors.New("httptenant config: ForwardedHeader has no effect without TrustedProxies")
	}
	if c.JWT != nil {
		return c.JWT.validate()
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.ForwardedHeader == "" {
		c.ForwardedHeader = HeaderXForwardedHost
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultCacheTTL
	}
	if c.NegativeCacheTTL == 0 {
		c.NegativeCacheTTL = DefaultNegativeCacheTTL
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Resolver turns requests into tenants. It is safe for concurrent use.
type Resolver struct {
	base         string // normalized BaseDomain, "" for none
	lookupSlug   func(ctx context.Context, slug string) (tenant.Tenant, error)
	lookupDomain func(ctx context.Context, host string) (tenant.ID, error)
	trusted      []netip.Prefix
	header       string
	jwt          *verifier // nil without Config.JWT
	maxBody      int64
	cache        *lookupCache
	log          *slog.Logger
}

// New returns a Resolver for cfg, or an error naming the first setting that
// is wrong.
func New(cfg Config) (*Resolver, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	r := &Resolver{
		lookupSlug:   cfg.LookupSlug,
		lookupDomain: cfg.LookupDomain,
		header:       cfg.ForwardedHeader,
		maxBody:      cfg.MaxBodyBytes,
		cache:        newLookupCache(cfg.CacheSize, cfg.CacheTTL, cfg.NegativeCacheTTL),
		log:          cfg.Logger,
	}
	if cfg.BaseDomain != "" {
		r.base, _ = NormalizeHost(cfg.BaseDomain) // checked by validate
	}
	for _, p := range cfg.TrustedProxies {
		r.trusted = append(r.trusted, p.Masked())
	}
	if cfg.JWT != nil {
		r.jwt = newVerifier(*cfg.JWT)
	}
	return r, nil
}

// Resolve returns the tenant a request is for, failing closed: the host
// (Host, or the forwarded host from a trusted proxy) must normalize, must map
// to a tenant, and with Config.JWT the bearer token must be valid and for
// that tenant. Errors match this package's sentinels (StatusCode maps them);
// nothing is looked up for a host that does not normalize, and there is no
// default tenant.
func (rv *Resolver) Resolve(r *http.Request) (tenant.ID, error) {
	id, _, err := rv.resolve(r)
	return id, err
}

func (rv *Resolver) resolve(r *http.Request) (tenant.ID, jwt.MapClaims, error) {
	host, err := rv.requestHost(r)
	if err != nil {
		return tenant.ID{}, nil, err
	}
	// The token is checked before the lookup: a request without a valid
	// token costs no directory query and learns nothing about which hosts
	// are tenants.
	var claims jwt.MapClaims
	var claimed tenant.ID
	if rv.jwt != nil {
		tok, err := bearerToken(r)
		if err != nil {
			return tenant.ID{}, nil, err
		}
		switch {
		case tok != "":
			if claims, err = rv.jwt.verify(tok); err != nil {
				return tenant.ID{}, nil, err
			}
			if claimed, err = rv.jwt.tenantOf(claims); err != nil {
				return tenant.ID{}, nil, err
			}
		case !rv.jwt.anonymous:
			return tenant.ID{}, nil, ErrNoToken
		}
	}
	id, err := rv.lookupHost(r.Context(), host)
	if err != nil {
		return tenant.ID{}, nil, err
	}
	if claims != nil && claimed != id {
		return tenant.ID{}, nil, fmt.Errorf("%w: token is for tenant %s, host routes to %s", ErrTenantClaim, claimed, id)
	}
	return id, claims, nil
}

// requestHost returns the normalized host the request was sent to.
func (rv *Resolver) requestHost(r *http.Request) (string, error) {
	raw := r.Host
	if peerTrusted(r.RemoteAddr, rv.trusted) {
		fwd, ok, err := forwardedHost(r.Header, rv.header)
		if err != nil {
			return "", err
		}
		if ok {
			raw = fwd
		}
	}
	return NormalizeHost(raw)
}

// lookupHost maps a normalized host to its tenant.
func (rv *Resolver) lookupHost(ctx context.Context, host string) (tenant.ID, error) {
	if rv.base != "" {
		if host == rv.base {
			return tenant.ID{}, fmt.Errorf("%w: the base domain is not a tenant", ErrUnknownHost)
		}
		if sub, ok := strings.CutSuffix(host, "."+rv.base); ok {
			if strings.Contains(sub, ".") {
				return tenant.ID{}, fmt.Errorf("%w: more than one label below the base domain", ErrUnknownHost)
			}
			if sub == "www" {
				return tenant.ID{}, fmt.Errorf("%w: www is not a tenant", ErrUnknownHost)
			}
			slug, err := tenant.NormalizeSlug(sub)
			if err != nil || slug != sub {
				return tenant.ID{}, fmt.Errorf("%w: subdomain is not a slug", ErrUnknownHost)
			}
			return rv.cached(ctx, "slug\x00"+slug, func() (tenant.ID, error) {
				t, err := rv.lookupSlug(ctx, slug)
				return t.ID, err
			})
		}
	}
	if rv.lookupDomain == nil {
		return tenant.ID{}, fmt.Errorf("%w: not below the base domain", ErrUnknownHost)
	}
	return rv.cached(ctx, "domain\x00"+host, func() (tenant.ID, error) {
		return rv.lookupDomain(ctx, host)
	})
}

// cached answers from the cache or runs lookup and remembers its answer.
func (rv *Resolver) cached(ctx context.Context, key string, lookup func() (tenant.ID, error)) (tenant.ID, error) {
	if id, ok := rv.cache.get(key, time.Now()); ok {
		if id.IsZero() {
			return tenant.ID{}, fmt.Errorf("%w: no such tenant (cached)", ErrUnknownHost)
		}
		return id, nil
	}
	id, err := lookup()
	switch {
	case errors.Is(err, tenant.ErrNotFound), errors.Is(err, tenant.ErrBadSlug), err == nil && id.IsZero():
		rv.cache.put(key, tenant.ID{}, time.Now())
		return tenant.ID{}, fmt.Errorf("%w: no such tenant", ErrUnknownHost)
	case err != nil:
		return tenant.ID{}, fmt.Errorf("%w: %w", ErrLookup, err)
	}
	rv.cache.put(key, id, time.Now())
	return id, nil
}

type claimsKey struct{}

// Middleware resolves each request's tenant (see Resolve) and calls next
// with the tenant in the context (tenant.WithContext, or landlord.WithTenant), so every Handle call
// the handler makes with r.Context() runs as that tenant, and with the
// token's claims (ClaimsFrom) when Config.JWT is set. The request body is
// capped at Config.MaxBodyBytes: a declared Content-Length over it is
// answered 413 at once, and reading past it fails with an
// *http.MaxBytesError (DecodeJSON turns it into ErrBodyTooLarge, which
// WriteError answers 413).
//
// A request that fails is answered here (400, 401, 403, 404, 413 or 500;
// see StatusCode) with a short generic body that never echoes its host or
// token, and next is not called.
func (rv *Resolver) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > rv.maxBody {
			rv.refuse(w, r, fmt.Errorf("%w: Content-Length %d over %d", ErrBodyTooLarge, r.ContentLength, rv.maxBody))
			return
		}
		id, claims, err := rv.resolve(r)
		if err != nil {
			rv.refuse(w, r, err)
			return
		}
		ctx := tenant.WithContext(r.Context(), id)
		if claims != nil {
			ctx = context.WithValue(ctx, claimsKey{}, claims)
		}
		r = r.WithContext(ctx)
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, rv.maxBody)
		}
		next.ServeHTTP(w, r)
	})
}

func (rv *Resolver) refuse(w http.ResponseWriter, r *http.Request, err error) {
	code := StatusCode(err)
	if code >= http.StatusInternalServerError {
		// Only lookups fail this way; their errors carry no token.
		rv.log.ErrorContext(r.Context(), "tenant lookup failed", "status", code, "err", err)
	} else {
		rv.log.DebugContext(r.Context(), "request refused", "status", code, "reason", kind(err))
	}
	WriteError(w, err)
}

// ClaimsFrom returns the verified claims of the request's bearer token, as
// Middleware stored them; ok is false when Config.JWT is not set or the
// request was let through anonymously (JWTConfig.AllowAnonymous).
func ClaimsFrom(ctx context.Context) (claims jwt.MapClaims, ok bool) {
	claims, ok = ctx.Value(claimsKey{}).(jwt.MapClaims)
	return claims, ok
}
