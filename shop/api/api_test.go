package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

func TestNewNeedsStore(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a Store: no error")
	}
}

// TestOpenAPIDocument checks the document itself and where it is served.
func TestOpenAPIDocument(t *testing.T) {
	doc, _ := spec(t) // loads and validates it
	if doc.Components.SecuritySchemes["bearer"] == nil {
		t.Fatal("no bearer security scheme")
	}
	// Every route of the handler is in the document, and the reverse.
	h, err := New(Config{Store: &store.Service{}})
	if err != nil {
		t.Fatal(err)
	}
	inDoc := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			inDoc[method+" "+path] = true
		}
	}
	for _, rt := range h.(*api).routes {
		key := rt.method + " " + Prefix + rt.pattern
		if !inDoc[key] {
			t.Errorf("route %s is not in the OpenAPI document", key)
		}
		delete(inDoc, key)
	}
	for key := range inDoc {
		t.Errorf("the OpenAPI document has %s, which the handler does not serve", key)
	}

	e := newEnv(t)
	s := e.newShop("apidoc", tenant.ModelRow)
	for _, c := range []*client{e.rootClient(t), s.client(t, "")} {
		r := c.do("GET", "/openapi.json", nil).want(200)
		if !bytes.Equal(r.body, OpenAPI()) {
			t.Fatalf("%s: served document differs from OpenAPI()", c.base)
		}
	}
	// Without a store, everything else is 404, whatever the token.
	root := e.rootClient(t)
	root.token = s.ownerT
	root.do("GET", "/products", nil).wantError(404, CodeNotFound)
	root.do("POST", "/checkout", map[string]any{}, header("Idempotency-Key", "abcdefgh1"), docCannotTell()).wantError(404, CodeNotFound)
	root.do("GET", "/catalog", nil).wantError(404, CodeNotFound)
	// Unknown routes and methods.
	s.client(t, s.ownerT).do("GET", "/nope", nil, docCannotTell()).wantError(404, CodeNotFound)
	s.client(t, s.ownerT).do("GET", "/products/x/y/z", nil, docCannotTell()).wantError(404, CodeNotFound)
	r := s.client(t, s.ownerT).do("DELETE", "/products", nil, docCannotTell())
	r.wantError(405, CodeMethod)
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Fatalf("405 Allow %q, want GET and POST", allow)
	}
}

// TestWorkflow runs the API as its users do, on one store: staff manage
// products, stock and orders, customers check out, the owner manages staff
// and tokens.
func TestWorkflow(t *testing.T) {
	e := newEnv(t)
	s := e.newShop("flow", tenant.ModelSchema)
	owner, staff, anon := s.client(t, s.ownerT), s.client(t, s.staffT), s.client(t, "")

	var p, p2 struct {
		ID         string `json:"id"`
		Stock      int    `json:"stock"`
		Active     bool   `json:"active"`
		PriceCents int64  `json:"price_cents"`
		Currency   string `json:"currency"`
		UpdatedAt  string `json:"updated_at"`
	}
	t.Run("products", func(t *testing.T) {
		staff := s.client(t, s.staffT)
		r := staff.do("POST", "/products", map[string]any{"sku": "MUG-1", "title": "Blue mug", "description": "Holds tea", "price_cents": 1250}).want(201).decode(&p)
		if !p.Active || p.Stock != 0 || p.PriceCents != 1250 || p.Currency == "" {
			t.Fatalf("new product %+v", p)
		}
		if loc := r.header.Get("Location"); loc != Prefix+"/products/"+p.ID {
			t.Fatalf("Location %q", loc)
		}
		staff.do("POST", "/products", map[string]any{"sku": "OLD-1", "title": "Old mug", "price_cents": 900, "active": false, "low_stock_threshold": 0}).want(201).decode(&p2)
		staff.do("GET", "/products/"+p.ID, nil).want(200).decode(&p)
		staff.do("PUT", "/products/"+p.ID, map[string]any{"sku": "MUG-1", "title": "Blue mug, large", "price_cents": 1500, "low_stock_threshold": 3}).want(200).decode(&p)
		if p.PriceCents != 1500 {
			t.Fatalf("updated product %+v", p)
		}
		staff.do("POST", "/products/"+p.ID+"/stock", map[string]any{"kind": "receipt", "quantity": 12, "note": "delivery"}).want(201).decode(&p)
		staff.do("POST", "/products/"+p.ID+"/stock", map[string]any{"kind": "adjustment", "quantity": -2}).want(201).decode(&p)
		if p.Stock != 10 {
			t.Fatalf("stock %d, want 10", p.Stock)
		}
		staff.do("POST", "/products/"+p.ID+"/stock", map[string]any{"kind": "adjustment", "quantity": -11}).wantError(409, CodeOutOfStock)
		var moves struct {
			Items []struct {
				Kind     string `json:"kind"`
				Quantity int    `json:"quantity"`
			} `json:"items"`
			Total int `json:"total"`
		}
		staff.do("GET", "/products/"+p.ID+"/stock?page=1&per_page=10", nil).want(200).decode(&moves)
		if moves.Total != 2 || moves.Items[0].Kind != "adjustment" || moves.Items[1].Quantity != 12 {
			t.Fatalf("movements %+v", moves)
		}
		var list struct {
			Items []struct{ ID string } `json:"items"`
			Total int                   `json:"total"`
			Pages int                   `json:"pages"`
		}
		staff.do("GET", "/products?q=mug&page=1&per_page=1", nil).want(200).decode(&list)
		if list.Total != 2 || len(list.Items) != 1 || list.Pages != 2 {
			t.Fatalf("products q=mug %+v", list)
		}
		staff.do("GET", "/products?active=true", nil).want(200).decode(&list)
		if list.Total != 1 || list.Items[0].ID != p.ID {
			t.Fatalf("active products %+v", list)
		}
		// The storefront sees active products only, without a token.
		s.client(t, "").do("GET", "/catalog?q=mug&page=1&per_page=5", nil).want(200).decode(&list)
		if list.Total != 1 || list.Items[0].ID != p.ID {
			t.Fatalf("catalog %+v", list)
		}
	})

	var order struct {
		ID         string `json:"id"`
		Number     int64  `json:"number"`
		Status     string `json:"status"`
		TotalCents int64  `json:"total_cents"`
	}
	t.Run("checkout", func(t *testing.T) {
		anon := s.client(t, "")
		body := map[string]any{"customer_name": "Cora Customer", "customer_email": "cora@example.com", "address": "1 Main St",
			"lines": []map[string]any{{"product_id": p.ID, "quantity": 2}}}
		r := anon.do("POST", "/checkout", body, header("Idempotency-Key", "order-0001")).want(201).decode(&order)
		if order.Status != "placed" || order.TotalCents != 3000 || order.Number != 1 {
			t.Fatalf("order %+v", order)
		}
		if loc := r.header.Get("Location"); loc != Prefix+"/orders/"+order.ID {
			t.Fatalf("Location %q", loc)
		}
		// The same key again: the same order, 200, no second sale.
		var again struct {
			ID     string `json:"id"`
			Number int64  `json:"number"`
		}
		anon.do("POST", "/checkout", body, header("Idempotency-Key", "order-0001")).want(200).decode(&again)
		if again.ID != order.ID || again.Number != order.Number {
			t.Fatalf("second checkout with the key gave %+v, want order %s", again, order.ID)
		}
		s.client(t, s.staffT).do("GET", "/products/"+p.ID, nil).want(200).decode(&p)
		if p.Stock != 8 {
			t.Fatalf("stock after one order of 2: %d, want 8", p.Stock)
		}
		// Over the stock: the whole order fails, nothing taken.
		body["lines"] = []map[string]any{{"product_id": p.ID, "quantity": 9}}
		anon.do("POST", "/checkout", body, header("Idempotency-Key", "order-0002")).wantError(409, CodeOutOfStock)
		// An inactive product is not for sale.
		body["lines"] = []map[string]any{{"product_id": p2.ID, "quantity": 1}}
		anon.do("POST", "/checkout", body, header("Idempotency-Key", "order-0003")).wantField(422, CodeValidation, "lines[0].product_id")
	})

	t.Run("orders", func(t *testing.T) {
		staff := s.client(t, s.staffT)
		var list struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
			Total int `json:"total"`
		}
		from := url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
		to := url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))
		staff.do("GET", "/orders?status=placed&q=cora&from="+from+"&to="+to+"&page=1&per_page=5", nil).want(200).decode(&list)
		if list.Total != 1 || list.Items[0].ID != order.ID {
			t.Fatalf("orders %+v", list)
		}
		staff.do("GET", "/orders?status=fulfilled", nil).want(200).decode(&list)
		if list.Total != 0 {
			t.Fatalf("fulfilled orders %+v", list)
		}
		staff.do("GET", "/orders/"+order.ID, nil).want(200).decode(&order)
		staff.do("POST", "/orders/"+order.ID+"/fulfil", nil).want(200).decode(&order)
		if order.Status != "fulfilled" {
			t.Fatalf("fulfilled order %+v", order)
		}
		staff.do("POST", "/orders/"+order.ID+"/fulfil", nil).wantError(409, CodeConflict)
		staff.do("POST", "/orders/"+order.ID+"/cancel", nil).wantError(409, CodeConflict)
		// A placed order cancelled gives its stock back.
		var o2 struct{ ID, Status string }
		s.client(t, "").do("POST", "/checkout", map[string]any{"customer_name": "Dan", "customer_email": "dan@example.com", "address": "2 Main St",
			"lines": []map[string]any{{"product_id": p.ID, "quantity": 3}}}, header("Idempotency-Key", "order-0004")).want(201).decode(&o2)
		staff.do("POST", "/orders/"+o2.ID+"/cancel", nil).want(200).decode(&o2)
		staff.do("GET", "/products/"+p.ID, nil).want(200).decode(&p)
		if o2.Status != "cancelled" || p.Stock != 8 {
			t.Fatalf("after cancel: order %+v, stock %d (want 8)", o2, p.Stock)
		}
	})

	t.Run("users", func(t *testing.T) {
		owner := s.client(t, s.ownerT)
		var inv struct {
			User struct {
				ID     string `json:"id"`
				Role   string `json:"role"`
				Active bool   `json:"active"`
			} `json:"user"`
			Token string `json:"token"`
		}
		owner.do("POST", "/users", map[string]any{"email": "New@Flow.test", "role": "staff"}).want(201).decode(&inv)
		if inv.Token == "" || inv.User.Active || inv.User.Role != "staff" {
			t.Fatalf("invite %+v", inv)
		}
		// The link's token works once, in the store.
		if _, err := e.svc.AcceptInvite(s.ctx, inv.Token, "Nia New", password); err != nil {
			t.Fatalf("accept the API's invitation: %v", err)
		}
		var users struct {
			Items []struct {
				ID, Email, Role string
				Active          bool
			} `json:"items"`
		}
		owner.do("GET", "/users", nil).want(200).decode(&users)
		if len(users.Items) != 3 || users.Items[0].Role != "owner" {
			t.Fatalf("users %+v", users)
		}
		var u struct{ ID, Role string }
		owner.do("PATCH", "/users/"+inv.User.ID, map[string]any{"role": "owner"}).want(200).decode(&u)
		if u.Role != "owner" {
			t.Fatalf("set role: %+v", u)
		}
		owner.do("PATCH", "/users/"+inv.User.ID, map[string]any{"role": "staff"}).want(200)
		// The last owner stays one.
		owner.do("PATCH", "/users/"+s.owner.ID, map[string]any{"role": "staff"}).wantError(409, CodeConflict)
		owner.do("DELETE", "/users/"+s.owner.ID, nil).wantError(409, CodeConflict)
		owner.do("POST", "/users", map[string]any{"email": "new@flow.test", "role": "staff"}).wantField(422, CodeValidation, "email")
		owner.do("DELETE", "/users/"+inv.User.ID, nil).want(204)
		owner.do("DELETE", "/users/"+inv.User.ID, nil).wantError(404, CodeNotFound)
	})

	t.Run("tokens", func(t *testing.T) {
		anon := s.client(t, "")
		var tok struct{ Token, ID, Name string }
		anon.do("POST", "/auth/tokens", map[string]any{"email": s.staff.Email, "password": password, "name": "laptop"}).want(201).decode(&tok)
		if !strings.HasPrefix(tok.Token, TokenPrefix) || tok.Name != "laptop" {
			t.Fatalf("token %+v", tok)
		}
		mine := s.client(t, tok.Token)
		var toks struct {
			Items []struct {
				ID         string  `json:"id"`
				UserID     string  `json:"user_id"`
				LastUsedAt *string `json:"last_used_at"`
			} `json:"items"`
		}
		mine.do("GET", "/auth/tokens", nil).want(200).decode(&toks)
		if len(toks.Items) != 2 { // the staff member's two tokens
			t.Fatalf("staff tokens %+v", toks)
		}
		for _, it := range toks.Items {
			if it.UserID != s.staff.ID {
				t.Fatalf("staff sees a token of %s", it.UserID)
			}
		}
		s.client(t, s.ownerT).do("GET", "/auth/tokens", nil).want(200).decode(&toks)
		if len(toks.Items) != 3 {
			t.Fatalf("owner sees %d tokens, want 3", len(toks.Items))
		}
		// Staff may not revoke the owner's token; each may revoke their own.
		mine.do("DELETE", "/auth/tokens/"+s.ownerTokenID, nil).wantError(403, CodeForbidden)
		mine.do("DELETE", "/auth/tokens/"+tok.ID, nil).want(204)
		r := mine.do("GET", "/products", nil)
		r.wantError(401, CodeUnauthorized)
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("401 without WWW-Authenticate: Bearer: %q", r.header.Get("WWW-Authenticate"))
		}
		anon.do("POST", "/auth/tokens", map[string]any{"email": s.staff.Email, "password": "wrong password", "name": "x"}).wantError(401, CodeUnauthorized)
		anon.do("POST", "/auth/tokens", map[string]any{"email": "nobody@flow.test", "password": password, "name": "x"}).wantError(401, CodeUnauthorized)
	})

	// One log line per request, naming the store.
	var sawTenant bool
	for _, line := range strings.Split(e.logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "api request" {
			continue
		}
		if rec["tenant"] == s.id.String() && rec["route"] == "POST /api/v1/checkout" && rec["status"] == float64(201) {
			sawTenant = true
		}
	}
	if !sawTenant {
		t.Fatalf("no request log line with the store's tenant for the checkout:\n%s", e.logs.String())
	}
	_, _, _ = owner, staff, anon
}

// TestStoreStates: a read-only store browses but refuses writes; a
// suspended one refuses everything.
func TestStoreStates(t *testing.T) {
	e := newEnv(t)
	s := e.newShop("states", tenant.ModelRow)
	p := s.product("CUP-1", 500, 3)
	admin, err := e.ll.Admin(context.Background(), "api test: store states")
	if err != nil {
		t.Fatal(err)
	}
	staff := s.client(t, s.staffT)
	if _, err := admin.SetState(context.Background(), s.id, tenant.StateReadOnly); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the read-only state to reach the API", func() bool {
		r := staff.do("POST", "/products/"+p.ID+"/stock", map[string]any{"kind": "receipt", "quantity": 1})
		if r.status == 201 {
			return false
		}
		r.wantError(409, CodeReadOnly)
		return true
	})
	staff.do("GET", "/products/"+p.ID, nil).want(200)
	s.client(t, "").do("POST", "/checkout", map[string]any{"customer_name": "Ro", "customer_email": "ro@example.com", "address": "3 Main St",
		"lines": []map[string]any{{"product_id": p.ID, "quantity": 1}}}, header("Idempotency-Key", "readonly-1")).wantError(409, CodeReadOnly)

	if _, err := admin.SetState(context.Background(), s.id, tenant.StateSuspended); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the suspension to reach the API", func() bool {
		r := s.client(t, "").do("GET", "/catalog", nil)
		if r.status == 200 {
			return false
		}
		r.wantError(403, CodeSuspended)
		return true
	})
	staff.do("GET", "/products", nil).wantError(403, CodeSuspended)
}

// TestRateLimit: sign-in attempts are limited per client address and
// store, with Retry-After, and come back with time.
func TestRateLimit(t *testing.T) {
	e := newEnv(t)
	a := e.newShop("limit-a", tenant.ModelRow)
	b := e.newShop("limit-b", tenant.ModelRow)
	clk := newClock()
	base := e.serve(Config{Now: clk.Now, RateLimit: RateLimit{Every: 10 * time.Second, Burst: 2}})
	at := func(s *shop) *client { return &client{t: t, base: base + "/s/" + s.slug} }
	ip := func(addr string) opt { return header("X-Test-Client", addr) }
	good := map[string]any{"email": a.owner.Email, "password": password, "name": "limited"}
	bad := map[string]any{"email": a.owner.Email, "password": "wrong password", "name": "limited"}

	at(a).do("POST", "/auth/tokens", bad, ip("192.0.2.1")).want(401)
	at(a).do("POST", "/auth/tokens", good, ip("192.0.2.1")).want(201)
	r := at(a).do("POST", "/auth/tokens", good, ip("192.0.2.1"))
	r.wantError(429, CodeRateLimited)
	if ra := r.header.Get("Retry-After"); ra != "10" {
		t.Fatalf("Retry-After %q, want 10", ra)
	}
	// Another address, another store: their own buckets.
	at(a).do("POST", "/auth/tokens", good, ip("192.0.2.2")).want(201)
	at(b).do("POST", "/auth/tokens", map[string]any{"email": b.owner.Email, "password": password, "name": "x"}, ip("192.0.2.1")).want(201)
	// Time gives attempts back.
	clk.Advance(10 * time.Second)
	at(a).do("POST", "/auth/tokens", good, ip("192.0.2.1")).want(201)
	at(a).do("POST", "/auth/tokens", good, ip("192.0.2.1")).want(429)
}
