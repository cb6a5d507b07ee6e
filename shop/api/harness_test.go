package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"golang.org/x/crypto/bcrypt"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/landlordtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

// The OpenAPI document, loaded once, and the routes called with success.
var (
	specOnce   sync.Once
	specDoc    *openapi3.T
	specRouter routers.Router
	specErr    error
	covered    sync.Map // "METHOD /path" -> true
)

func spec(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	specOnce.Do(func() {
		// Format uuid is not checked unless defined.
		openapi3.DefineStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562))
		loader := openapi3.NewLoader()
		specDoc, specErr = loader.LoadFromData(OpenAPI())
		if specErr != nil {
			return
		}
		if specErr = specDoc.Validate(context.Background()); specErr != nil {
			return
		}
		specRouter, specErr = legacy.NewRouter(specDoc)
	})
	if specErr != nil {
		t.Fatalf("OpenAPI document: %v", specErr)
	}
	return specDoc, specRouter
}

// uncoveredRoutes lists the operations of the document no test called with
// a 2xx answer.
func uncoveredRoutes() []string {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		return []string{"cannot load the document: " + err.Error()}
	}
	var missing []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if _, ok := covered.Load(method + " " + path); !ok {
				missing = append(missing, method+" "+path)
			}
		}
	}
	slices.Sort(missing)
	return missing
}

var kit = sync.OnceValue(func() landlordtest.Kit {
	return landlordtest.PgtestKitGlobal(srv, store.Migrations(), store.Global(), nil)
})

// env is one installation with the API served over HTTP: a store's API at
// /s/<slug>/api/v1/..., the platform-root mount (no store) at /api/v1/....
type env struct {
	t    *testing.T
	ll   *landlord.Landlord
	svc  *store.Service
	url  string
	logs *syncBuffer
}

// clock is a settable time for rate limiting.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// newEnv opens an installation and serves the API with cfg (Store and
// Logger are filled in; rate limiting is off unless cfg sets it).
func newEnv(t *testing.T) *env {
	t.Helper()
	ll := kit().Open(t, landlord.Config{})
	t.Cleanup(ll.Close)
	e := &env{t: t, ll: ll, svc: store.New(ll.Handle(), store.Options{PasswordCost: bcrypt.MinCost}), logs: &syncBuffer{}}
	e.url = e.serve(Config{RateLimit: RateLimit{Every: -1}})
	return e
}

// serve starts a server for a handler built with cfg and returns its URL.
func (e *env) serve(cfg Config) string {
	e.t.Helper()
	cfg.Store = e.svc
	if cfg.Logger == nil {
		cfg.Logger = slog.New(landlord.LogHandler(slog.NewJSONHandler(e.logs, nil)))
	}
	h, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	s := httptest.NewServer(storeMount(e.ll, h))
	e.t.Cleanup(s.Close)
	return s.URL
}

// storeMount is the web layer's mounting in miniature: /s/<slug>/... runs
// h with the store's tenant in the context and the prefix stripped;
// anything else runs h without a tenant. The X-Test-Client header stands
// for the client's address.
func storeMount(ll *landlord.Landlord, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := r.Header.Get("X-Test-Client"); c != "" {
			r.RemoteAddr = c + ":1234"
		}
		rest, ok := strings.CutPrefix(r.URL.Path, "/s/")
		if !ok {
			h.ServeHTTP(w, r)
			return
		}
		slug, path, _ := strings.Cut(rest, "/")
		tn, err := ll.TenantBySlug(r.Context(), slug)
		if err != nil {
			http.Error(w, "unknown store", http.StatusNotFound)
			return
		}
		r2 := r.Clone(landlord.WithTenant(r.Context(), tn.ID))
		r2.URL.Path = "/" + path
		r2.URL.RawPath = ""
		h.ServeHTTP(w, r2)
	})
}

// shop is one store of an env with its owner and staff member and their
// tokens.
type shop struct {
	e            *env
	slug         string
	model        tenant.Model
	id           tenant.ID
	ctx          context.Context // carries the store's tenant
	owner        store.User
	staff        store.User
	ownerT       string // bearer tokens
	staffT       string
	ownerTokenID string
}

const password = "correct horse battery staple"

// newShop creates a store of model with an owner and a staff member, each
// with an API token made through the API.
func (e *env) newShop(slug string, model tenant.Model) *shop {
	e.t.Helper()
	ctx := context.Background()
	tn, err := e.ll.CreateTenant(ctx, provision.Request{Slug: slug, Model: model})
	if err != nil {
		e.t.Fatalf("create store %s: %v", slug, err)
	}
	s := &shop{e: e, slug: slug, model: model, id: tn.ID, ctx: landlord.WithTenant(ctx, tn.ID)}
	s.owner, err = e.svc.CreateOwner(s.ctx, "owner@"+slug+".test", "Olive Owner", password)
	if err != nil {
		e.t.Fatalf("create owner of %s: %v", slug, err)
	}
	inv, err := e.svc.InviteUser(s.ctx, s.owner, "staff@"+slug+".test", store.RoleStaff, time.Hour)
	if err != nil {
		e.t.Fatalf("invite staff of %s: %v", slug, err)
	}
	if s.staff, err = e.svc.AcceptInvite(s.ctx, inv.Token, "Sam Staff", password); err != nil {
		e.t.Fatalf("accept invite of %s: %v", slug, err)
	}
	anon := s.client(e.t, "")
	var tok struct{ Token, ID string }
	anon.do("POST", "/auth/tokens", map[string]any{"email": s.owner.Email, "password": password, "name": "owner cli"}).want(201).decode(&tok)
	s.ownerT, s.ownerTokenID = tok.Token, tok.ID
	anon.do("POST", "/auth/tokens", map[string]any{"email": s.staff.Email, "password": password, "name": "staff cli"}).want(201).decode(&tok)
	s.staffT = tok.Token
	return s
}

// product creates a product with stock through the service.
func (s *shop) product(sku string, priceCents int64, stock int) store.Product {
	s.e.t.Helper()
	p, err := s.e.svc.CreateProduct(s.ctx, s.owner, store.ProductInput{SKU: sku, Title: "Product " + sku, PriceCents: priceCents, Active: true, LowStockThreshold: 2})
	if err != nil {
		s.e.t.Fatalf("create product %s: %v", sku, err)
	}
	if stock > 0 {
		if p, err = s.e.svc.MoveStock(s.ctx, s.owner, p.ID, store.MoveReceipt, stock, "initial"); err != nil {
			s.e.t.Fatalf("stock product %s: %v", sku, err)
		}
	}
	return p
}

// client calls the API of s with token ("" for none).
func (s *shop) client(t testing.TB, token string) *client {
	return &client{t: t, base: s.e.url + "/s/" + s.slug, token: token}
}

// rootClient calls the platform-root mount (no store).
func (e *env) rootClient(t testing.TB) *client { return &client{t: t, base: e.url} }

// client sends requests through the checking transport.
type client struct {
	t     testing.TB
	base  string
	token string
	hdr   http.Header
}

// Request modes: what the document must say about a request.
type mode int

const (
	docValid   mode = iota // the document must accept the request
	docInvalid             // the document must refuse it (bad input the schema describes)
	docSilent              // the document cannot tell (oversized body, trailing data, unknown route)
)

// call is one request's options.
type call struct {
	mode   mode
	raw    []byte
	hasRaw bool
	header http.Header
}

type opt func(*call)

// invalid marks a request the document itself refuses.
func docRefuses() opt { return func(c *call) { c.mode = docInvalid } }

// silent marks a request the document cannot judge.
func docCannotTell() opt { return func(c *call) { c.mode = docSilent } }

// raw sends body as it is.
func raw(body string) opt {
	return func(c *call) { c.raw, c.hasRaw = []byte(body), true }
}

// header adds a request header.
func header(k, v string) opt {
	return func(c *call) {
		if c.header == nil {
			c.header = http.Header{}
		}
		c.header.Set(k, v)
	}
}

// resp is an answer.
type resp struct {
	t      testing.TB
	req    string
	status int
	header http.Header
	body   []byte
}

func (r *resp) want(status int) *resp {
	r.t.Helper()
	if r.status != status {
		r.t.Fatalf("%s: status %d, want %d; body %s", r.req, r.status, status, r.body)
	}
	return r
}

func (r *resp) decode(v any) *resp {
	r.t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		r.t.Fatalf("%s: decode %s: %v", r.req, r.body, err)
	}
	return r
}

// apiErr is the error body.
type apiErr struct {
	Error struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Fields  map[string]string `json:"fields"`
	} `json:"error"`
}

// wantError checks the status, the code, and that the message is not empty.
func (r *resp) wantError(status int, code string) apiErr {
	r.t.Helper()
	r.want(status)
	var e apiErr
	r.decode(&e)
	if e.Error.Code != code || e.Error.Message == "" {
		r.t.Fatalf("%s: error %+v, want code %q with a message", r.req, e.Error, code)
	}
	return e
}

// wantField checks a 4xx error naming field.
func (r *resp) wantField(status int, code, field string) apiErr {
	r.t.Helper()
	e := r.wantError(status, code)
	if e.Error.Fields[field] == "" {
		r.t.Fatalf("%s: error %+v does not name field %q", r.req, e.Error, field)
	}
	return e
}

// do sends method path (under /api/v1) with body (JSON-encoded unless nil)
// and checks request and response against the document.
func (c *client) do(method, path string, body any, opts ...opt) *resp {
	c.t.Helper()
	var o call
	for _, f := range opts {
		f(&o)
	}
	var rd io.Reader
	if o.hasRaw {
		rd = bytes.NewReader(o.raw)
	} else if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+Prefix+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range o.header {
		req.Header[k] = v
	}
	hc := &http.Client{Transport: &checker{t: c.t, mode: o.mode}}
	res, err := hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusNoContent && ct != "application/json" {
		c.t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return &resp{t: c.t, req: method + " " + path, status: res.StatusCode, header: res.Header, body: data}
}

// checker is the RoundTripper that validates every request and response
// against the OpenAPI document and records the routes answered 2xx.
type checker struct {
	t    testing.TB
	mode mode
}

var specOptions = &openapi3filter.Options{
	IncludeResponseStatus: true,
	SkipSettingDefaults:   true,
	MultiError:            false,
	AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
		h := in.RequestValidationInput.Request.Header.Get("Authorization")
		if !strings.HasPrefix(h, "Bearer ") || len(h) == len("Bearer ") {
			return errors.New("no bearer token")
		}
		return nil
	},
}

func (c *checker) RoundTrip(req *http.Request) (*http.Response, error) {
	c.t.Helper()
	doc, router := spec(c.t)
	var reqBody []byte
	if req.Body != nil {
		var err error
		if reqBody, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	name := req.Method + " " + req.URL.Path

	// The document's view: the path without the store's mount prefix.
	dreq := req.Clone(req.Context())
	dreq.URL.Path = stripMount(req.URL.Path)
	dreq.URL.RawPath = ""
	dreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, findErr := router.FindRoute(dreq)
	var in *openapi3filter.RequestValidationInput
	if findErr == nil {
		in = &openapi3filter.RequestValidationInput{Request: dreq, PathParams: params, Route: route, Options: specOptions}
		err := openapi3filter.ValidateRequest(req.Context(), in)
		switch {
		case c.mode == docValid && err != nil:
			c.t.Errorf("%s: the OpenAPI document refuses the request: %v", name, err)
		case c.mode == docInvalid && err == nil:
			c.t.Errorf("%s: the OpenAPI document accepts a request the test sends as invalid (body %s)", name, reqBody)
		}
	} else if c.mode != docSilent {
		c.t.Errorf("%s: not a route of the OpenAPI document: %v", name, findErr)
	}

	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))

	if in != nil {
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in,
			Status:                 res.StatusCode,
			Header:                 res.Header,
			Body:                   io.NopCloser(bytes.NewReader(body)),
			Options:                specOptions,
		}
		if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
			c.t.Errorf("%s: answer %d does not match the OpenAPI document: %v\nbody: %s", name, res.StatusCode, err, body)
		}
		if res.StatusCode < 300 {
			covered.Store(req.Method+" "+route.Path, true)
		}
	} else if res.StatusCode >= 400 {
		// No operation to check it against: it must still be an Error.
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			c.t.Errorf("%s: answer %d is not JSON: %s", name, res.StatusCode, body)
		} else if err := doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
			c.t.Errorf("%s: answer %d is not an Error: %v\nbody: %s", name, res.StatusCode, err, body)
		}
	}
	return res, nil
}

// stripMount removes the test mount's /s/<slug> from path.
func stripMount(path string) string {
	rest, ok := strings.CutPrefix(path, "/s/")
	if !ok {
		return path
	}
	_, p, _ := strings.Cut(rest, "/")
	return "/" + p
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var _ = fmt.Sprintf
