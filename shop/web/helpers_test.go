package web

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/landlordtest"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/shop/platform"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

var srv *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }

const password = "correct horse 1"

// env is one installation with the web server in front of it.
type env struct {
	t    *testing.T
	ll   *landlord.Landlord
	st   *store.Service
	ws   *Server
	ts   *httptest.Server
	port string
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testAPI stands in for the JSON API mounted per store: it answers with the
// email of the bearer token's user in the request's store.
func testAPI(st *store.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/openapi.json" {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"openapi":"3.1.0"}`)
			return
		}
		if _, ok := tenant.FromContext(r.Context()); !ok {
			http.Error(w, "no store", http.StatusNotFound)
			return
		}
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		u, err := st.TokenUser(r.Context(), secret)
		if err != nil {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, r.URL.Path+" "+u.Email)
	})
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ll := landlordtest.PgtestKitGlobal(srv, store.Migrations(), store.Global(), nil).Open(t, landlord.Config{PurgeKeep: platform.PurgeKeep()})
	var ws *Server
	st := store.New(ll.Handle(), store.Options{
		PasswordCost:      bcrypt.MinCost,
		OnProductsChanged: func(ctx context.Context) { ws.ProductsChanged(ctx) },
	})
	logs := &syncBuffer{}
	cfg := Config{
		Landlord: ll,
		Store:    st,
		API:      testAPI(st),
		Logger:   slog.New(slog.NewTextHandler(logs, nil)),
	}
	setupPlatform(t, ll, st, &cfg)
	var err error
	ws, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Tests sign in far more often than people do; TestEdges checks the limits.
	ws.loginLimit = newLimiter(rate.Inf, 1)
	ws.signupLimit = newLimiter(rate.Inf, 1)
	ts := httptest.NewServer(ws)
	t.Cleanup(ts.Close)
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
	return &env{t: t, ll: ll, st: st, ws: ws, ts: ts, port: port, logs: logs}
}

// shop is a store with an owner, an active staff user, a product with
// stock, an inactive product and an order.
type shop struct {
	T        tenant.Tenant
	Owner    store.User
	Staff    store.User
	Product  store.Product
	Hidden   store.Product
	Order    store.Order
	OrderTok string
}

func (e *env) ctx(id tenant.ID) context.Context {
	return landlord.WithTenant(context.Background(), id)
}

func (e *env) newShop(t *testing.T, slug string, model tenant.Model) *shop {
	t.Helper()
	tn, err := e.ll.CreateTenant(context.Background(), provision.Request{Slug: slug, Model: model, DisplayName: "Shop " + slug})
	if err != nil {
		t.Fatal(err)
	}
	ctx := e.ctx(tn.ID)
	sh := &shop{T: tn}
	if sh.Owner, err = e.st.CreateOwner(ctx, "owner@"+slug+".test", "Owner "+slug, password); err != nil {
		t.Fatal(err)
	}
	inv, err := e.st.InviteUser(ctx, sh.Owner, "staff@"+slug+".test", store.RoleStaff, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if sh.Staff, err = e.st.AcceptInvite(ctx, inv.Token, "Staff "+slug, password); err != nil {
		t.Fatal(err)
	}
	if sh.Product, err = e.st.CreateProduct(ctx, sh.Owner, store.ProductInput{SKU: slug + "-1", Title: "Product of " + slug, PriceCents: 1250, Active: true, LowStockThreshold: 2}); err != nil {
		t.Fatal(err)
	}
	if sh.Product, err = e.st.MoveStock(ctx, sh.Owner, sh.Product.ID, store.MoveReceipt, 10, "first delivery"); err != nil {
		t.Fatal(err)
	}
	if sh.Hidden, err = e.st.CreateProduct(ctx, sh.Owner, store.ProductInput{SKU: slug + "-hidden", Title: "Hidden of " + slug, PriceCents: 500, Active: false}); err != nil {
		t.Fatal(err)
	}
	if sh.Order, _, err = e.st.Checkout(ctx, store.CheckoutInput{Key: "seed-order-" + slug, Name: "Customer of " + slug, Email: "c@" + slug + ".test", Address: "1 Road", Lines: []store.Line{{ProductID: sh.Product.ID, Quantity: 1}}}); err != nil {
		t.Fatal(err)
	}
	sh.OrderTok = e.ws.orderToken(tn.ID, sh.Order.ID)
	return sh
}

// setState changes a store's state through an admin scope and waits until
// the web server sees it.
func (e *env) setState(t *testing.T, id tenant.ID, s tenant.State) {
	t.Helper()
	a, err := e.ll.Admin(context.Background(), "test: set state")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetState(context.Background(), id, s); err != nil {
		t.Fatal(err)
	}
}

// hostBase and pathBase are the two addresses of a store.
func (e *env) hostBase(slug string) string { return "http://" + slug + ".localhost:" + e.port }
func (e *env) pathBase(slug string) string { return "http://localhost:" + e.port + "/s/" + slug }
func (e *env) platform() string            { return "http://localhost:" + e.port }

// bases are both addresses of a store, by name.
func (e *env) bases(slug string) map[string]string {
	return map[string]string{"host": e.hostBase(slug), "path": e.pathBase(slug)}
}

// client is a browser: a cookie jar, every host dialled to the test server.
type client struct {
	t      *testing.T
	hc     *http.Client
	follow bool
	header http.Header
}

func (e *env) client(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	addr := e.ts.Listener.Addr().String()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	c := &client{t: t, follow: true, header: http.Header{}}
	c.hc = &http.Client{Jar: jar, Transport: tr, Timeout: 60 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if !c.follow {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return c
}

type resp struct {
	Status   int
	Body     string
	URL      string // after redirects
	Location string
	Header   http.Header
}

func (c *client) do(req *http.Request) resp {
	c.t.Helper()
	for k, v := range c.header {
		req.Header[k] = v
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{Status: res.StatusCode, Body: string(b), URL: res.Request.URL.String(), Location: res.Header.Get("Location"), Header: res.Header}
}

func (c *client) get(u string) resp {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.do(req)
}

func (c *client) post(u string, form url.Values) resp {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

// login signs in at base and checks that the back office answers.
func (c *client) login(base, email string) {
	c.t.Helper()
	r := c.post(base+"/manage/login", url.Values{"email": {email}, "password": {password}})
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "Signed in as "+email) {
		c.t.Fatalf("login %s at %s: %d %s", email, base, r.Status, r.Body)
	}
}

// cookie returns the value of the named cookie the jar sends to u.
func (c *client) cookie(u, name string) string {
	pu, _ := url.Parse(u)
	for _, ck := range c.hc.Jar.Cookies(pu) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

func (c *client) setCookie(u, name, value string) {
	pu, _ := url.Parse(u)
	c.hc.Jar.SetCookies(pu, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

func want(t *testing.T, r resp, status int, contains ...string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d (at %s); body:\n%s", r.Status, status, r.URL, clip(r.Body))
	}
	for _, s := range contains {
		if !strings.Contains(r.Body, s) {
			t.Fatalf("body at %s lacks %q:\n%s", r.URL, s, clip(r.Body))
		}
	}
}

func lacks(t *testing.T, r resp, s ...string) {
	t.Helper()
	for _, x := range s {
		if strings.Contains(r.Body, x) {
			t.Fatalf("body at %s has %q:\n%s", r.URL, x, clip(r.Body))
		}
	}
}

func clip(s string) string {
	if len(s) > 1500 {
		return s[:1500] + "…"
	}
	return s
}

var hiddenKey = regexp.MustCompile(`name="key" value="([^"]+)"`)

func formKey(t *testing.T, body string) string {
	t.Helper()
	m := hiddenKey.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no idempotency key in the checkout form:\n%s", clip(body))
	}
	return m[1]
}

// counts is what a store holds, to check that nothing was written.
type counts struct {
	Products, Orders, Users, Tokens, Movements int
	Stock                                      int
	Titles                                     string
	Statuses                                   string
}

func (e *env) counts(t *testing.T, sh *shop) counts {
	t.Helper()
	ctx := e.ctx(sh.T.ID)
	var c counts
	q := func(sql string, dst any) {
		if err := e.ll.Handle().QueryRow(ctx, sql).Scan(dst); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	q(`SELECT count(*) FROM products`, &c.Products)
	q(`SELECT count(*) FROM orders`, &c.Orders)
	q(`SELECT count(*) FROM users`, &c.Users)
	q(`SELECT count(*) FROM api_tokens`, &c.Tokens)
	q(`SELECT count(*) FROM stock_movements`, &c.Movements)
	q(`SELECT coalesce(sum(on_hand), 0)::int FROM stock_levels`, &c.Stock)
	q(`SELECT coalesce(string_agg(sku || ':' || title || ':' || price_cents || ':' || active, ',' ORDER BY sku), '') FROM products`, &c.Titles)
	q(`SELECT coalesce(string_agg(number || ':' || status, ',' ORDER BY number), '') FROM orders`, &c.Statuses)
	return c
}
