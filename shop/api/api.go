// Package api is a store's JSON API: products and stock, orders, staff
// users and API tokens for the store's staff (bearer tokens), and the
// public checkout and catalog of its storefront. Its OpenAPI 3.0 document
// is served at GET /api/v1/openapi.json.
//
// The handler serves one store at a time: the store is the tenant in the
// request's context (landlord.WithTenant), put there by the web layer,
// which mounts the handler per store and passes the full path
// (/api/v1/...). Mounted without a tenant (at the platform's root) it
// serves only the OpenAPI document and answers every other route 404.
//
// Every answer is JSON. Errors have one shape:
//
//	{"error": {"code": "validation_failed", "message": "...", "fields": {"price_cents": "must not be negative"}}}
package api

import (
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

// Prefix is the path every route of the API starts with.
const Prefix = "/api/v1"

// MaxBodyBytes caps a request body; a larger one is answered 413.
const MaxBodyBytes = 64 << 10

//go:embed openapi.json
var openapiJSON []byte

// OpenAPI returns the API's OpenAPI 3.0 document (JSON), the one served at
// GET /api/v1/openapi.json.
func OpenAPI() []byte { return append([]byte(nil), openapiJSON...) }

// Config are the settings of New.
type Config struct {
	// Store serves every store; the store of a call is the tenant in its
	// context. Required.
	Store *store.Service
	// Logger gets one line per request and the details of every internal
	// error. Build it on landlord.LogHandler so that each line names the
	// store. Default: discard.
	Logger *slog.Logger
	// Now returns the time (rate limiting, invitation expiry). Default
	// time.Now.
	Now func() time.Time
	// RateLimit bounds the sign-in attempts of POST /api/v1/auth/tokens.
	RateLimit RateLimit
	// InviteTTL is how long an invitation link works. Default 7 days.
	InviteTTL time.Duration
}

// RateLimit bounds the attempts to create a token (password sign-ins) per
// client IP address and store: a token bucket of Burst attempts that
// regains one every Every. The client address is the request's RemoteAddr:
// a web layer behind a proxy sets it from the headers it trusts.
type RateLimit struct {
	// Every is the time to regain one attempt. Default 6 seconds (10 a
	// minute); negative: no limit.
	Every time.Duration
	// Burst is the number of attempts in a row. Default 5.
	Burst int
}

// New returns the API's handler. It fails if cfg has no Store.
func New(cfg Config) (http.Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("api: Config.Store is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RateLimit.Every == 0 {
		cfg.RateLimit.Every = 6 * time.Second
	}
	if cfg.RateLimit.Burst <= 0 {
		cfg.RateLimit.Burst = 5
	}
	if cfg.InviteTTL <= 0 {
		cfg.InviteTTL = 7 * 24 * time.Hour
	}
	a := &api{
		store:   cfg.Store,
		log:     cfg.Logger,
		now:     cfg.Now,
		limiter: newLimiter(cfg.RateLimit),
		invite:  cfg.InviteTTL,
	}
	a.routes = []route{
		newRoute("GET", "/openapi.json", access{public: true, noTenant: true}, a.openAPI),

		newRoute("POST", "/auth/tokens", access{public: true}, a.createToken),
		newRoute("GET", "/auth/tokens", access{}, a.listTokens),
		newRoute("DELETE", "/auth/tokens/{id}", access{}, a.revokeToken),

		newRoute("GET", "/products", access{}, a.listProducts),
		newRoute("POST", "/products", access{}, a.createProduct),
		newRoute("GET", "/products/{id}", access{}, a.getProduct),
		newRoute("PUT", "/products/{id}", access{}, a.updateProduct),
		newRoute("POST", "/products/{id}/stock", access{}, a.moveStock),
		newRoute("GET", "/products/{id}/stock", access{}, a.listMovements),

		newRoute("GET", "/orders", access{}, a.listOrders),
		newRoute("GET", "/orders/{id}", access{}, a.getOrder),
		newRoute("POST", "/orders/{id}/fulfil", access{}, a.fulfil),
		newRoute("POST", "/orders/{id}/cancel", access{}, a.cancel),

		newRoute("POST", "/checkout", access{public: true}, a.checkout),
		newRoute("GET", "/catalog", access{public: true}, a.catalog),

		newRoute("GET", "/users", access{owner: true}, a.listUsers),
		newRoute("POST", "/users", access{owner: true}, a.inviteUser),
		newRoute("PATCH", "/users/{id}", access{owner: true}, a.setRole),
		newRoute("DELETE", "/users/{id}", access{owner: true}, a.removeUser),
	}
	return a, nil
}

// api is the handler New returns.
type api struct {
	store   *store.Service
	log     *slog.Logger
	now     func() time.Time
	limiter limiter
	invite  time.Duration
	routes  []route
}

// access says who may call a route.
type access struct {
	public   bool // no token needed
	owner    bool // owners only (staff: 403)
	noTenant bool // served without a store too
}

// route is one operation: a method and a path under Prefix whose {name}
// segments match any one segment (r.PathValue(name)).
type route struct {
	method  string
	pattern string
	access  access
	handle  func(w http.ResponseWriter, r *http.Request, u *store.User) error
	segs    []string
}

func newRoute(method, pattern string, ac access, h func(w http.ResponseWriter, r *http.Request, u *store.User) error) route {
	return route{method: method, pattern: pattern, access: ac, handle: h, segs: strings.Split(strings.TrimPrefix(pattern, "/"), "/")}
}

// match reports whether path (without Prefix) is the route's pattern and
// sets the path values on r when it is.
func (rt *route) match(segs []string) (map[string]string, bool) {
	if len(segs) != len(rt.segs) {
		return nil, false
	}
	var vals map[string]string
	for i, s := range rt.segs {
		if strings.HasPrefix(s, "{") {
			if segs[i] == "" {
				return nil, false
			}
			if vals == nil {
				vals = map[string]string{}
			}
			vals[strings.Trim(s, "{}")] = segs[i]
			continue
		}
		if s != segs[i] {
			return nil, false
		}
	}
	return vals, true
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	h := rec.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	pattern := a.serve(rec, r)
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "api request",
		slog.String("method", r.Method),
		slog.String("route", pattern),
		slog.String("path", r.URL.Path),
		slog.Int("status", rec.status),
		slog.Int64("bytes", rec.bytes),
		slog.Duration("duration", time.Since(start)),
	)
}

// serve routes r and answers it; it returns the matched route's pattern
// for the log line ("" when none matched).
func (a *api) serve(w http.ResponseWriter, r *http.Request) string {
	_, hasStore := tenant.FromContext(r.Context())
	rest, ok := strings.CutPrefix(r.URL.Path, Prefix+"/")
	if !ok {
		a.fail(w, r, errNoRoute)
		return ""
	}
	segs := strings.Split(rest, "/")
	var allowed []string
	for i := range a.routes {
		rt := &a.routes[i]
		vals, ok := rt.match(segs)
		if !ok || (!hasStore && !rt.access.noTenant) {
			continue
		}
		if rt.method != r.Method && !(rt.method == http.MethodGet && r.Method == http.MethodHead) {
			allowed = append(allowed, rt.method)
			continue
		}
		for k, v := range vals {
			r.SetPathValue(k, v)
		}
		pattern := r.Method + " " + Prefix + rt.pattern
		var user *store.User
		if !rt.access.public {
			u, err := a.authenticate(r)
			if err != nil {
				a.fail(w, r, err)
				return pattern
			}
			if rt.access.owner && u.Role != store.RoleOwner {
				a.fail(w, r, fmt.Errorf("%w: only an owner may manage users", store.ErrForbidden))
				return pattern
			}
			user = &u
		}
		if err := rt.handle(w, r, user); err != nil {
			a.fail(w, r, err)
		}
		return pattern
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		a.fail(w, r, errMethod)
		return ""
	}
	a.fail(w, r, errNoRoute)
	return ""
}

// openAPI serves the OpenAPI document.
func (a *api) openAPI(w http.ResponseWriter, r *http.Request, _ *store.User) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openapiJSON)
	return nil
}

// recorder keeps the status and size of a response for the log line.
type recorder struct {
	http.ResponseWriter
	status  int
	bytes   int64
	written bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.written {
		r.status, r.written = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.written = true
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
