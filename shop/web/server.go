// Package web is the shop's web interface, rendered on the server: the
// storefront and back office of every store, the sign-up page and the
// platform operators' admin pages.
//
// A store is reached at http://<slug>.<base domain>/... and at
// http://<base domain>/s/<slug>/...; every link a page renders stays under
// the base it was reached by. The store is the tenant in each request's
// context, so the same handlers serve a store whatever its isolation model.
//
// A store's pages: / (products, ?q= search), /products/{id}, /cart,
// /checkout, /orders/{id}?t=<token> (the thank-you page), /invite/{token},
// and the back office under /manage/ (login, products with their stock,
// orders, staff, API tokens, notifications); /api/v1/ is Config.API with the
// store in the context. The platform's: / (sign-up), /admin/ (operators),
// /healthz, /metrics, /api/v1/openapi.json, /assets/ and /favicon.ico.
//
// Forms are guarded against cross-site posts (http.CrossOriginProtection),
// bodies are capped at MaxFormBytes, sign-in and sign-up are rate limited
// per client address, and every request is logged once with its store.
// Wire Server.ProductsChanged into store.Options.OnProductsChanged so the
// storefront's cached lists follow changes.
package web

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/httptenant"
	"github.com/landlordhq/landlord/shop/platform"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
	"github.com/landlordhq/landlord/tenantcache"
)

// MaxFormBytes caps the body of every form request.
const MaxFormBytes = 64 << 10

// SessionTTL is how long a back-office sign-in lasts.
const SessionTTL = 12 * time.Hour

// Config holds the settings of New.
type Config struct {
	// Landlord routes the stores' traffic and looks stores up. Required.
	Landlord *landlord.Landlord
	// Store serves every store. Required.
	Store *store.Service
	// Platform signs stores up and runs the operators' tools. Required.
	Platform *platform.Platform
	// API is the JSON API, mounted per store at /api/v1/ (with the store in
	// the request's context and the full path /api/v1/...); its
	// /api/v1/openapi.json is also served at the platform root. Optional.
	API http.Handler
	// Registry is served at /metrics. Optional.
	Registry *prometheus.Registry
	// Logger receives one line per request and the errors behind 500
	// pages. Default: discard.
	Logger *slog.Logger
	// BaseDomain is the host of the platform; its direct subdomains are
	// stores. Default "localhost".
	BaseDomain string
	// Secure marks cookies Secure: set it when the site is served over
	// https.
	Secure bool
	// Now returns the time. Default time.Now.
	Now func() time.Time
	// Secret signs the links to order confirmation pages. Default: random
	// per process, so links sent before a restart stop working; set 32
	// bytes or more to keep them.
	Secret []byte
}

// Server is the web interface; it is an http.Handler, safe for concurrent
// use.
type Server struct {
	cfg      Config
	ll       *landlord.Landlord
	st       *store.Service
	log      *slog.Logger
	resolver *httptenant.Resolver
	base     string
	now      func() time.Time
	secret   []byte
	pages    *pages
	products *tenantcache.Cache[store.Page[store.Product]] // the storefront's lists

	loginLimit  *limiter
	signupLimit *limiter

	storeMux    *http.ServeMux
	platformMux *http.ServeMux
	handler     http.Handler
}

// New returns the web interface for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Landlord == nil {
		return nil, errors.New("web config: Landlord is required")
	}
	if cfg.Store == nil {
		return nil, errors.New("web config: Store is required")
	}
	if err := checkPlatform(cfg); err != nil {
		return nil, err
	}
	if cfg.BaseDomain == "" {
		cfg.BaseDomain = "localhost"
	}
	base, err := httptenant.NormalizeHost(cfg.BaseDomain)
	if err != nil {
		return nil, fmt.Errorf("web config: BaseDomain %q: %w", cfg.BaseDomain, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	secret := cfg.Secret
	if len(secret) == 0 {
		secret = make([]byte, 32)
		rand.Read(secret)
	} else if len(secret) < 32 {
		return nil, errors.New("web config: Secret must have at least 32 bytes")
	}
	res, err := httptenant.New(httptenant.Config{BaseDomain: base, LookupSlug: cfg.Landlord.TenantBySlug, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	pg, err := loadPages()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:         cfg,
		ll:          cfg.Landlord,
		st:          cfg.Store,
		log:         cfg.Logger,
		resolver:    res,
		base:        base,
		now:         cfg.Now,
		secret:      secret,
		pages:       pg,
		products:    tenantcache.New[store.Page[store.Product]](tenantcache.Config{MaxEntries: 10_000, MaxEntriesPerTenant: 200, TTL: 30 * time.Second, Now: cfg.Now}),
		loginLimit:  newLimiter(rate.Every(6*time.Second), 10),
		signupLimit: newLimiter(rate.Every(30*time.Second), 5),
	}
	s.storeMux = s.storeRoutes()
	s.platformMux = s.platformRoutes()
	s.handler = s.logRequests(http.NewCrossOriginProtection().Handler(http.HandlerFunc(s.dispatch)))
	return s, nil
}

// ServeHTTP answers a request for a store or for the platform.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// ProductsChanged forgets the cached storefront lists of the store in ctx;
// it fits store.Options.OnProductsChanged.
func (s *Server) ProductsChanged(ctx context.Context) {
	// Without a store in ctx there is nothing to forget.
	_ = s.products.DeleteTenant(ctx)
}

// reqInfo is what the request log learns while the request is served.
type reqInfo struct {
	tenant tenant.ID
	slug   string
	err    error
}

type reqInfoKey struct{}

func infoOf(ctx context.Context) *reqInfo {
	if ri, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests writes one line per request: method, path (secrets in it
// masked), status, duration and the store.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, ri))
		sw := &statusWriter{ResponseWriter: w}
		path := logPath(r.URL.Path)
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("path", path),
			slog.Int("status", sw.status),
			slog.Duration("duration", time.Since(start)),
		}
		if !ri.tenant.IsZero() {
			attrs = append(attrs, slog.String("tenant", ri.tenant.String()), slog.String("store", ri.slug))
		}
		level := slog.LevelInfo
		if sw.status >= 500 {
			level = slog.LevelError
			if ri.err != nil {
				attrs = append(attrs, slog.String("error", ri.err.Error()))
			}
		}
		s.log.LogAttrs(r.Context(), level, "request", attrs...)
	})
}

// logPath masks the secrets a path can carry (invitation tokens).
func logPath(p string) string {
	if i := strings.Index(p, "/invite/"); i >= 0 {
		return p[:i] + "/invite/…"
	}
	return p
}

// dispatch sends a request to the platform or to a store.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	host, err := httptenant.NormalizeHost(r.Host)
	switch {
	case errors.Is(err, httptenant.ErrIPHost), err == nil && host == s.base:
		if slug, rest, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/s/"), "/"); strings.HasPrefix(r.URL.Path, "/s/") {
			if !ok {
				if _, err := s.lookupSlug(r.Context(), slug); err == nil {
					http.Redirect(w, r, "/s/"+slug+"/", http.StatusMovedPermanently)
					return
				}
			}
			s.serveSlug(w, r, slug, "/"+rest)
			return
		}
		s.platformMux.ServeHTTP(w, r)
		return
	case err != nil:
		s.errorPage(w, r, nil, http.StatusBadRequest, "This address is not valid.")
		return
	}
	id, err := s.resolver.Resolve(r)
	if err != nil {
		if httptenant.StatusCode(err) == http.StatusNotFound {
			s.notFound(w, r, nil)
			return
		}
		s.fail(w, r, nil, err)
		return
	}
	t, err := s.ll.CachedTenant(r.Context(), id)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	s.serveStore(w, r, t, "")
}

// lookupSlug returns the store with exactly this slug (in its normal
// form), an error wrapping tenant.ErrNotFound otherwise.
func (s *Server) lookupSlug(ctx context.Context, slug string) (tenant.Tenant, error) {
	id, err := s.resolver.ResolveSlug(ctx, slug)
	if err != nil {
		if httptenant.StatusCode(err) == http.StatusNotFound {
			return tenant.Tenant{}, fmt.Errorf("store %q: %w", slug, tenant.ErrNotFound)
		}
		return tenant.Tenant{}, err
	}
	return s.ll.CachedTenant(ctx, id)
}

// serveSlug serves a store reached at /s/<slug>/<rest>.
func (s *Server) serveSlug(w http.ResponseWriter, r *http.Request, slug, rest string) {
	t, err := s.lookupSlug(r.Context(), slug)
	if err != nil {
		if errors.Is(err, tenant.ErrNotFound) {
			s.notFound(w, r, nil)
			return
		}
		s.fail(w, r, nil, err)
		return
	}
	if strings.Contains(rest, "//") || strings.Contains(rest+"/", "/./") || strings.Contains(rest+"/", "/../") {
		s.notFound(w, r, nil)
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = rest
	r2.URL.RawPath = ""
	s.serveStore(w, r2, t, "/s/"+t.Slug)
}

// serveStore serves a request for store t, with the path relative to the
// store's base.
func (s *Server) serveStore(w http.ResponseWriter, r *http.Request, t tenant.Tenant, base string) {
	ri := infoOf(r.Context())
	ri.tenant, ri.slug = t.ID, t.Slug
	ctx := landlord.WithTenant(r.Context(), t.ID)
	sc := &storeCtx{T: t, Base: base}
	ctx = context.WithValue(ctx, storeCtxKey{}, sc)
	r = r.WithContext(ctx)
	switch t.State {
	case tenant.StateActive, tenant.StateReadOnly:
	case tenant.StateSuspended:
		s.errorPage(w, r, sc, http.StatusForbidden, "This store is suspended.")
		return
	default:
		w.Header().Set("Retry-After", "60")
		s.errorPage(w, r, sc, http.StatusServiceUnavailable, "This store is not available at the moment; try again in a minute.")
		return
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		if s.cfg.API == nil {
			s.notFound(w, r, sc)
			return
		}
		s.cfg.API.ServeHTTP(w, r)
		return
	}
	s.storeMux.ServeHTTP(w, r)
}

// storeCtx is the store a request is for and the base its links live under.
type storeCtx struct {
	T    tenant.Tenant
	Base string // "" for the store's own host, "/s/<slug>" on the platform host

	sessLoaded bool
	sess       *store.Session
}

type storeCtxKey struct{}

func storeOf(r *http.Request) *storeCtx {
	sc, _ := r.Context().Value(storeCtxKey{}).(*storeCtx)
	return sc
}

// ReadOnly reports whether the store refuses changes at the moment.
func (sc *storeCtx) ReadOnly() bool { return sc.T.State == tenant.StateReadOnly }

// Name is the store's display name.
func (sc *storeCtx) Name() string {
	if sc.T.DisplayName != "" {
		return sc.T.DisplayName
	}
	return sc.T.Slug
}

// cookiePath is the path the store's cookies are scoped to.
func (sc *storeCtx) cookiePath() string {
	if sc.Base == "" {
		return "/"
	}
	return sc.Base + "/"
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if _, err := s.ll.Directory().Installation(ctx); err != nil {
		infoOf(r.Context()).err = err
		http.Error(w, "database unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok"))
}

func (s *Server) metrics() http.Handler {
	if s.cfg.Registry == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.notFound(w, r, nil) })
	}
	return promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})
}
