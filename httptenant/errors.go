package httptenant

import (
	"errors"
	"net/http"
)

// ErrNoHost is returned by NormalizeHost and Resolver.Resolve for a request
// with no host at all (an empty Host header, or an empty forwarded host from
// a trusted proxy). The middleware answers 400.
var ErrNoHost = errors.New("no host")

// ErrBadHost is returned by NormalizeHost and Resolver.Resolve for a host that
// is not a valid DNS name after normalization: a character outside
// letters, digits and hyphens, a label or name too long, a bad port, a
// malformed forwarded header. The wrapping message names the rule; it never
// reaches the client. The middleware answers 400.
var ErrBadHost = errors.New("invalid host")

// ErrIPHost is returned by NormalizeHost and Resolver.Resolve for a host that
// is an IPv4 or IPv6 literal (with or without brackets, port or zone, or a
// name whose last label is a number, which URL parsers take for IPv4): no
// tenant lives at an address. The middleware answers 404.
var ErrIPHost = errors.New("host is an IP address")

// ErrUnknownHost is returned by Resolver.Resolve for a well-formed host that
// maps to no tenant: the bare base domain, "www", a subdomain that is not a
// valid slug or is unknown to Config.LookupSlug, a custom domain unknown to
// Config.LookupDomain. There is no fallback tenant. The middleware answers
// 404.
var ErrUnknownHost = errors.New("unknown host")

// ErrLookup is returned by Resolver.Resolve when Config.LookupSlug or
// Config.LookupDomain failed with an error other than tenant.ErrNotFound (the
// directory is unreachable, say); the lookup's error is wrapped too. Such
// failures are not cached. The middleware answers 500.
var ErrLookup = errors.New("tenant lookup failed")

// ErrNoToken is returned by Resolver.Resolve when Config.JWT is set, the
// request carries no bearer token and JWTConfig.AllowAnonymous is false. The
// middleware answers 401.
var ErrNoToken = errors.New("no bearer token")

// ErrBadToken is returned by Resolver.Resolve for a bearer token that is
// malformed, too long, signed with another algorithm or key, expired, not
// yet valid, or from the wrong issuer or audience. The error wraps the
// jwt package's error too (errors.Is(err, jwt.ErrTokenExpired) works). The
// middleware answers 401.
var ErrBadToken = errors.New("invalid bearer token")

// ErrTenantClaim is returned by Resolver.Resolve for a valid token whose
// tenant claim (JWTConfig.TenantClaim) is missing, not a tenant id, or a
// tenant other than the one the host routes to. The middleware answers 403.
var ErrTenantClaim = errors.New("token is not for this tenant")

// ErrBodyTooLarge is returned by DecodeJSON for a body over its size limit,
// including one cut short by the middleware's http.MaxBytesReader; the
// middleware itself answers 413 when the declared Content-Length is over
// Config.MaxBodyBytes.
var ErrBodyTooLarge = errors.New("request body too large")

// ErrBadJSON is returned by DecodeJSON for a body that is empty, not valid
// JSON, not of the target's shape, followed by trailing data, or nested
// deeper than JSONLimits.MaxDepth. WriteError answers 400.
var ErrBadJSON = errors.New("invalid JSON body")

// StatusCode maps an error of this package to the HTTP status the middleware
// and WriteError send: 400 for a missing or malformed host and bad JSON, 401
// for a missing or invalid token, 403 for a token of another tenant, 404 for
// an IP or unknown host, 413 for a body too large, and 500 for anything else
// (a failed lookup included).
func StatusCode(err error) int {
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrBodyTooLarge), errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrNoHost), errors.Is(err, ErrBadHost), errors.Is(err, ErrBadJSON):
		return http.StatusBadRequest
	case errors.Is(err, ErrNoToken), errors.Is(err, ErrBadToken):
		return http.StatusUnauthorized
	case errors.Is(err, ErrTenantClaim):
		return http.StatusForbidden
	case errors.Is(err, ErrIPHost), errors.Is(err, ErrUnknownHost):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// WriteError answers a request that failed with err: the status of
// StatusCode and the status text as a plain-text body. Nothing of the
// request (host, token, body) and nothing of err's message is echoed, so an
// error that names a host or a slug never reaches the client. A 401 carries
// "WWW-Authenticate: Bearer" (RFC 6750).
func WriteError(w http.ResponseWriter, err error) {
	code := StatusCode(err)
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if code == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", "Bearer")
	}
	w.WriteHeader(code)
	_, _ = w.Write([]byte(http.StatusText(code) + "\n"))
}

// kind is the sentinel err matches, for log lines: the wrapped message may
// name a host and is kept out of them.
func kind(err error) string {
	for _, s := range []error{ErrNoHost, ErrBadHost, ErrIPHost, ErrUnknownHost, ErrLookup, ErrNoToken, ErrBadToken, ErrTenantClaim, ErrBodyTooLarge, ErrBadJSON} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return "error"
}
