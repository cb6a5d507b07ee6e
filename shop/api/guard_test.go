package api

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

// snapshot fingerprints every table of a store, so that a test can tell
// that nothing was written (the tokens' last use aside).
func (s *shop) snapshot(t testing.TB) map[string]string {
	t.Helper()
	tables := map[string]string{
		"products":        "SELECT * FROM products",
		"stock_levels":    "SELECT * FROM stock_levels",
		"stock_movements": "SELECT * FROM stock_movements",
		"orders":          "SELECT * FROM orders",
		"order_lines":     "SELECT * FROM order_lines",
		"counters":        "SELECT * FROM counters",
		"users":           "SELECT * FROM users",
		"invitations":     "SELECT * FROM invitations",
		"api_tokens":      "SELECT id, user_id, name, token_hash, created_at FROM api_tokens",
		"outbox":          "SELECT * FROM outbox",
	}
	out := map[string]string{}
	for name, q := range tables {
		var fp string
		err := s.e.ll.Handle().QueryRow(s.ctx, `SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM (`+q+`) x`).Scan(&fp)
		if err != nil {
			t.Fatalf("snapshot %s of %s: %v", name, s.slug, err)
		}
		out[name] = fp
	}
	return out
}

func (s *shop) wantUnchanged(t testing.TB, before map[string]string) {
	t.Helper()
	after := s.snapshot(t)
	for _, name := range slices.Sorted(maps.Keys(before)) {
		if before[name] != after[name] {
			t.Errorf("store %s: table %s changed (%s -> %s)", s.slug, name, before[name], after[name])
		}
	}
}

// TestPermissions runs every route as no one, as staff and as the owner.
func TestPermissions(t *testing.T) {
	e := newEnv(t)
	s := e.newShop("perms", tenant.ModelRow)
	p := s.product("PERM-1", 700, 100)

	n := 0
	fresh := func() string { n++; return fmt.Sprint(n) }
	newProduct := func() string { return s.product("P-"+fresh(), 100, 5).ID }
	newOrder := func() string {
		o, _, err := e.svc.Checkout(s.ctx, store.CheckoutInput{Key: "perm-order-" + fresh(), Name: "Pat", Email: "pat@example.com", Address: "4 Main St",
			Lines: []store.Line{{ProductID: p.ID, Quantity: 1}}})
		if err != nil {
			t.Fatalf("checkout: %v", err)
		}
		return o.ID
	}
	newInvitee := func() string {
		inv, err := e.svc.InviteUser(s.ctx, s.owner, "invitee"+fresh()+"@perms.test", store.RoleStaff, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return inv.User.ID
	}
	newToken := func(u store.User) string {
		_, tok, err := e.svc.CreateAPIToken(s.ctx, u, "perm "+fresh())
		if err != nil {
			t.Fatal(err)
		}
		return tok.ID
	}
	checkout := func() (string, string, any, []opt) {
		return "POST", "/checkout", map[string]any{"customer_name": "Pat", "customer_email": "pat@example.com", "address": "4 Main St",
			"lines": []map[string]any{{"product_id": p.ID, "quantity": 1}}}, []opt{header("Idempotency-Key", "perm-checkout-"+fresh())}
	}

	type who int
	const (
		nobody who = iota
		staff
		owner
	)
	type req func(w who) (method, path string, body any, opts []opt)
	simple := func(method, path string, body any) req {
		return func(who) (string, string, any, []opt) { return method, path, body, nil }
	}
	cases := []struct {
		name                 string
		req                  req
		nobody, staff, owner int
	}{
		{"openapi", simple("GET", "/openapi.json", nil), 200, 200, 200},
		{"catalog", simple("GET", "/catalog", nil), 200, 200, 200},
		{"checkout", func(who) (string, string, any, []opt) { return checkout() }, 201, 201, 201},
		{"create token", simple("POST", "/auth/tokens", map[string]any{"email": s.staff.Email, "password": password, "name": "perm"}), 201, 201, 201},
		{"list tokens", simple("GET", "/auth/tokens", nil), 401, 200, 200},
		{"revoke own token", func(w who) (string, string, any, []opt) {
			u := s.staff
			if w == owner {
				u = s.owner
			}
			return "DELETE", "/auth/tokens/" + newToken(u), nil, nil
		}, 401, 204, 204},
		{"revoke another's token", func(w who) (string, string, any, []opt) {
			u := s.owner
			if w == owner {
				u = s.staff
			}
			return "DELETE", "/auth/tokens/" + newToken(u), nil, nil
		}, 401, 403, 204},
		{"list products", simple("GET", "/products", nil), 401, 200, 200},
		{"create product", func(who) (string, string, any, []opt) {
			return "POST", "/products", map[string]any{"sku": "NEW-" + fresh(), "title": "New", "price_cents": 1}, nil
		}, 401, 201, 201},
		{"get product", simple("GET", "/products/"+p.ID, nil), 401, 200, 200},
		{"update product", func(who) (string, string, any, []opt) {
			return "PUT", "/products/" + newProduct(), map[string]any{"sku": "UPD-" + fresh(), "title": "Updated", "price_cents": 2}, nil
		}, 401, 200, 200},
		{"move stock", simple("POST", "/products/"+p.ID+"/stock", map[string]any{"kind": "receipt", "quantity": 1}), 401, 201, 201},
		{"list stock", simple("GET", "/products/"+p.ID+"/stock", nil), 401, 200, 200},
		{"list orders", simple("GET", "/orders", nil), 401, 200, 200},
		{"get order", func(who) (string, string, any, []opt) { return "GET", "/orders/" + newOrder(), nil, nil }, 401, 200, 200},
		{"fulfil order", func(who) (string, string, any, []opt) { return "POST", "/orders/" + newOrder() + "/fulfil", nil, nil }, 401, 200, 200},
		{"cancel order", func(who) (string, string, any, []opt) { return "POST", "/orders/" + newOrder() + "/cancel", nil, nil }, 401, 200, 200},
		{"list users", simple("GET", "/users", nil), 401, 403, 200},
		{"invite user", func(who) (string, string, any, []opt) {
			return "POST", "/users", map[string]any{"email": "new" + fresh() + "@perms.test", "role": "staff"}, nil
		}, 401, 403, 201},
		{"set role", func(who) (string, string, any, []opt) {
			return "PATCH", "/users/" + newInvitee(), map[string]any{"role": "owner"}, nil
		}, 401, 403, 200},
		{"remove user", func(who) (string, string, any, []opt) { return "DELETE", "/users/" + newInvitee(), nil, nil }, 401, 403, 204},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, w := range []who{nobody, staff, owner} {
				want := []int{c.nobody, c.staff, c.owner}[w]
				token := []string{"", s.staffT, s.ownerT}[w]
				method, path, body, opts := c.req(w)
				if want == 401 {
					opts = append(opts, docRefuses()) // the document requires the token too
				}
				before := s.snapshot(t)
				r := s.client(t, token).do(method, path, body, opts...)
				switch want {
				case 401:
					r.wantError(401, CodeUnauthorized)
					s.wantUnchanged(t, before)
				case 403:
					r.wantError(403, CodeForbidden)
					s.wantUnchanged(t, before)
				default:
					r.want(want)
				}
			}
		})
	}
}

// TestBadInput sends bad input to every route: each is a 4xx with a clear
// message (naming the field when there is one), and nothing is written.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	s := e.newShop("bad-input", tenant.ModelRow)
	p := s.product("BAD-1", 500, 10)
	o, _, err := e.svc.Checkout(s.ctx, store.CheckoutInput{Key: "bad-input-order", Name: "Bo", Email: "bo@example.com", Address: "5 Main St",
		Lines: []store.Line{{ProductID: p.ID, Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	const unknown = "6f1c2a52-3c5e-4d7e-9a3b-0c6f7e2d1a90"
	key := header("Idempotency-Key", "bad-input-key-1")
	line := func(l map[string]any) map[string]any {
		return map[string]any{"customer_name": "Bo", "customer_email": "bo@example.com", "address": "5 Main St", "lines": []map[string]any{l}}
	}
	big := `{"sku":"BIG-1","title":"Big","price_cents":1,"description":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	padded := `{"sku":"BIG-2","title":"Big","price_cents":1}` + strings.Repeat(" ", MaxBodyBytes)
	deep := strings.Repeat(`{"a":`, 20) + "1" + strings.Repeat("}", 20)

	cases := []struct {
		name         string
		token        string // "" owner
		method, path string
		body         any
		opts         []opt
		status       int
		code, field  string
	}{
		// Tokens.
		{"token: missing fields", "-", "POST", "/auth/tokens", map[string]any{"email": s.owner.Email}, []opt{docRefuses()}, 422, CodeValidation, "password"},
		{"token: wrong type", "-", "POST", "/auth/tokens", map[string]any{"email": 1, "password": password, "name": "x"}, []opt{docRefuses()}, 400, CodeBadRequest, "email"},
		{"token: unknown field", "-", "POST", "/auth/tokens", map[string]any{"email": s.owner.Email, "password": password, "name": "x", "admin": true}, []opt{docRefuses()}, 400, CodeBadRequest, "admin"},
		{"token: empty name", "-", "POST", "/auth/tokens", map[string]any{"email": s.owner.Email, "password": password, "name": ""}, []opt{docRefuses()}, 422, CodeValidation, "name"},
		{"token: trailing data", "-", "POST", "/auth/tokens", nil, []opt{raw(`{"email":"a@b.c","password":"xxxxxxxx","name":"x"} {}`), docCannotTell()}, 400, CodeBadRequest, ""},
		{"token: malformed JSON", "-", "POST", "/auth/tokens", nil, []opt{raw(`{"email":`), docRefuses()}, 400, CodeBadRequest, ""},
		{"revoke: unknown token", "", "DELETE", "/auth/tokens/" + unknown, nil, nil, 404, CodeNotFound, ""},
		{"revoke: malformed id", "", "DELETE", "/auth/tokens/nope", nil, nil, 404, CodeNotFound, ""},
		{"bearer: unknown token", "llst_unknown", "GET", "/products", nil, nil, 401, CodeUnauthorized, ""},
		{"bearer: not a store token", "eyJhbGciOiJIUzI1NiJ9.e30.x", "GET", "/orders", nil, nil, 401, CodeUnauthorized, ""},
		{"bearer: basic auth", "-", "GET", "/products", nil, []opt{header("Authorization", "Basic b3duZXI6cHc="), docRefuses()}, 401, CodeUnauthorized, ""},

		// Products.
		{"product: negative price", "", "POST", "/products", map[string]any{"sku": "N-1", "title": "Neg", "price_cents": -1}, []opt{docRefuses()}, 422, CodeValidation, "price_cents"},
		{"product: price as string", "", "POST", "/products", map[string]any{"sku": "N-1", "title": "Neg", "price_cents": "12.50"}, []opt{docRefuses()}, 400, CodeBadRequest, "price_cents"},
		{"product: price as float", "", "POST", "/products", map[string]any{"sku": "N-1", "title": "Neg", "price_cents": 12.5}, []opt{docRefuses()}, 400, CodeBadRequest, "price_cents"},
		{"product: missing title", "", "POST", "/products", map[string]any{"sku": "N-1", "price_cents": 1}, []opt{docRefuses()}, 422, CodeValidation, "title"},
		{"product: blank title", "", "POST", "/products", map[string]any{"sku": "N-1", "title": "   ", "price_cents": 1}, []opt{docCannotTell()}, 422, CodeValidation, "title"},
		{"product: bad sku", "", "POST", "/products", map[string]any{"sku": "no spaces", "title": "T", "price_cents": 1}, []opt{docRefuses()}, 422, CodeValidation, "sku"},
		{"product: sku taken", "", "POST", "/products", map[string]any{"sku": "BAD-1", "title": "T", "price_cents": 1}, nil, 422, CodeValidation, "sku"},
		{"product: unknown field", "", "POST", "/products", map[string]any{"sku": "N-1", "title": "T", "price_cents": 1, "stock": 5}, []opt{docRefuses()}, 400, CodeBadRequest, "stock"},
		{"product: oversized body", "", "POST", "/products", nil, []opt{raw(big), docRefuses()}, 413, CodeBodyTooLarge, ""},
		{"product: oversized padding", "", "POST", "/products", nil, []opt{raw(padded), docCannotTell()}, 413, CodeBodyTooLarge, ""},
		{"product: too deep", "", "POST", "/products", nil, []opt{raw(deep), docRefuses()}, 400, CodeBadRequest, ""},
		{"product: array body", "", "POST", "/products", nil, []opt{raw(`[]`), docRefuses()}, 400, CodeBadRequest, ""},
		{"product: empty body", "", "POST", "/products", nil, []opt{raw(``), docRefuses()}, 400, CodeBadRequest, ""},
		{"product: not JSON", "", "POST", "/products", nil, []opt{raw(`sku=N-1`), header("Content-Type", "application/x-www-form-urlencoded"), docRefuses()}, 415, CodeUnsupportedMedia, ""},
		{"product: get unknown", "", "GET", "/products/" + unknown, nil, nil, 404, CodeNotFound, ""},
		{"product: get malformed id", "", "GET", "/products/42", nil, nil, 404, CodeNotFound, ""},
		{"product: update unknown", "", "PUT", "/products/" + unknown, map[string]any{"sku": "U-1", "title": "T", "price_cents": 1}, nil, 404, CodeNotFound, ""},
		{"product: update malformed id", "", "PUT", "/products/x'or'1", map[string]any{"sku": "U-1", "title": "T", "price_cents": 1}, nil, 404, CodeNotFound, ""},
		{"product: update negative threshold", "", "PUT", "/products/" + p.ID, map[string]any{"sku": "BAD-1", "title": "T", "price_cents": 1, "low_stock_threshold": -1}, []opt{docRefuses()}, 422, CodeValidation, "low_stock_threshold"},
		{"product: update missing sku", "", "PUT", "/products/" + p.ID, map[string]any{"title": "T", "price_cents": 1}, []opt{docRefuses()}, 422, CodeValidation, "sku"},
		{"products: page 0", "", "GET", "/products?page=0", nil, []opt{docRefuses()}, 400, CodeBadRequest, "page"},
		{"products: per_page 101", "", "GET", "/products?per_page=101", nil, []opt{docRefuses()}, 400, CodeBadRequest, "per_page"},
		{"products: page not a number", "", "GET", "/products?page=two", nil, []opt{docRefuses()}, 400, CodeBadRequest, "page"},
		{"products: active not a boolean", "", "GET", "/products?active=yes", nil, []opt{docRefuses()}, 400, CodeBadRequest, "active"},
		{"catalog: per_page 0", "-", "GET", "/catalog?per_page=0", nil, []opt{docRefuses()}, 400, CodeBadRequest, "per_page"},

		// Stock.
		{"stock: sale kind", "", "POST", "/products/" + p.ID + "/stock", map[string]any{"kind": "sale", "quantity": -1}, []opt{docRefuses()}, 422, CodeValidation, "kind"},
		{"stock: zero", "", "POST", "/products/" + p.ID + "/stock", map[string]any{"kind": "adjustment", "quantity": 0}, []opt{docRefuses()}, 422, CodeValidation, "quantity"},
		{"stock: negative receipt", "", "POST", "/products/" + p.ID + "/stock", map[string]any{"kind": "receipt", "quantity": -3}, []opt{docCannotTell()}, 422, CodeValidation, "quantity"},
		{"stock: quantity as string", "", "POST", "/products/" + p.ID + "/stock", map[string]any{"kind": "receipt", "quantity": "3"}, []opt{docRefuses()}, 400, CodeBadRequest, "quantity"},
		{"stock: missing kind", "", "POST", "/products/" + p.ID + "/stock", map[string]any{"quantity": 3}, []opt{docRefuses()}, 422, CodeValidation, "kind"},
		{"stock: below zero", "", "POST", "/products/" + p.ID + "/stock", map[string]any{"kind": "adjustment", "quantity": -11}, nil, 409, CodeOutOfStock, ""},
		{"stock: unknown product", "", "POST", "/products/" + unknown + "/stock", map[string]any{"kind": "receipt", "quantity": 3}, nil, 404, CodeNotFound, ""},
		{"stock: list unknown product", "", "GET", "/products/" + unknown + "/stock", nil, nil, 404, CodeNotFound, ""},
		{"stock: list malformed id", "", "GET", "/products/zzz/stock", nil, nil, 404, CodeNotFound, ""},

		// Orders.
		{"orders: bad status", "", "GET", "/orders?status=lost", nil, []opt{docRefuses()}, 400, CodeBadRequest, "status"},
		{"orders: bad from", "", "GET", "/orders?from=yesterday", nil, []opt{docRefuses()}, 400, CodeBadRequest, "from"},
		{"orders: to before from", "", "GET", "/orders?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", nil, []opt{docCannotTell()}, 400, CodeBadRequest, "to"},
		{"order: unknown", "", "GET", "/orders/" + unknown, nil, nil, 404, CodeNotFound, ""},
		{"order: malformed id", "", "GET", "/orders/1", nil, nil, 404, CodeNotFound, ""},
		{"order: fulfil unknown", "", "POST", "/orders/" + unknown + "/fulfil", nil, nil, 404, CodeNotFound, ""},
		{"order: cancel malformed id", "", "POST", "/orders/%2e%2e/cancel", nil, nil, 404, CodeNotFound, ""},

		// Checkout.
		{"checkout: no key", "-", "POST", "/checkout", line(map[string]any{"product_id": p.ID, "quantity": 1}), []opt{docRefuses()}, 400, CodeBadRequest, "Idempotency-Key"},
		{"checkout: short key", "-", "POST", "/checkout", line(map[string]any{"product_id": p.ID, "quantity": 1}), []opt{header("Idempotency-Key", "short"), docRefuses()}, 400, CodeBadRequest, "Idempotency-Key"},
		{"checkout: bad key", "-", "POST", "/checkout", line(map[string]any{"product_id": p.ID, "quantity": 1}), []opt{header("Idempotency-Key", "has spaces in it"), docRefuses()}, 400, CodeBadRequest, "Idempotency-Key"},
		{"checkout: long key", "-", "POST", "/checkout", line(map[string]any{"product_id": p.ID, "quantity": 1}), []opt{header("Idempotency-Key", strings.Repeat("k", 101)), docRefuses()}, 400, CodeBadRequest, "Idempotency-Key"},
		{"checkout: missing lines", "-", "POST", "/checkout", map[string]any{"customer_name": "Bo", "customer_email": "bo@example.com", "address": "5 Main St"}, []opt{key, docRefuses()}, 422, CodeValidation, "lines"},
		{"checkout: no lines", "-", "POST", "/checkout", map[string]any{"customer_name": "Bo", "customer_email": "bo@example.com", "address": "5 Main St", "lines": []any{}}, []opt{key, docRefuses()}, 422, CodeValidation, "lines"},
		{"checkout: zero quantity", "-", "POST", "/checkout", line(map[string]any{"product_id": p.ID, "quantity": 0}), []opt{key, docRefuses()}, 422, CodeValidation, "lines[0].quantity"},
		{"checkout: quantity as string", "-", "POST", "/checkout", line(map[string]any{"product_id": p.ID, "quantity": "1"}), []opt{key, docRefuses()}, 400, CodeBadRequest, "lines.quantity"},
		{"checkout: missing product", "-", "POST", "/checkout", line(map[string]any{"quantity": 1}), []opt{key, docRefuses()}, 422, CodeValidation, "lines[0].product_id"},
		{"checkout: unknown product", "-", "POST", "/checkout", line(map[string]any{"product_id": unknown, "quantity": 1}), []opt{key}, 404, CodeNotFound, "lines[0].product_id"},
		{"checkout: malformed product", "-", "POST", "/checkout", line(map[string]any{"product_id": "PERM-1", "quantity": 1}), []opt{key, docRefuses()}, 404, CodeNotFound, "lines[0].product_id"},
		{"checkout: unknown line field", "-", "POST", "/checkout", line(map[string]any{"product_id": p.ID, "quantity": 1, "price_cents": 0}), []opt{key, docRefuses()}, 400, CodeBadRequest, "price_cents"},
		{"checkout: bad email", "-", "POST", "/checkout", map[string]any{"customer_name": "Bo", "customer_email": "not an email", "address": "5 Main St", "lines": []map[string]any{{"product_id": p.ID, "quantity": 1}}}, []opt{key, docCannotTell()}, 422, CodeValidation, "customer_email"},
		{"checkout: over the stock", "-", "POST", "/checkout", line(map[string]any{"product_id": p.ID, "quantity": 10}), []opt{key}, 409, CodeOutOfStock, ""},

		// Users.
		{"invite: bad role", "", "POST", "/users", map[string]any{"email": "x@bad-input.test", "role": "admin"}, []opt{docRefuses()}, 422, CodeValidation, "role"},
		{"invite: missing email", "", "POST", "/users", map[string]any{"role": "staff"}, []opt{docRefuses()}, 422, CodeValidation, "email"},
		{"invite: bad email", "", "POST", "/users", map[string]any{"email": "nope", "role": "staff"}, []opt{docCannotTell()}, 422, CodeValidation, "email"},
		{"invite: role as number", "", "POST", "/users", map[string]any{"email": "x@bad-input.test", "role": 1}, []opt{docRefuses()}, 400, CodeBadRequest, "role"},
		{"role: bad role", "", "PATCH", "/users/" + s.staff.ID, map[string]any{"role": "root"}, []opt{docRefuses()}, 422, CodeValidation, "role"},
		{"role: unknown user", "", "PATCH", "/users/" + unknown, map[string]any{"role": "owner"}, nil, 404, CodeNotFound, ""},
		{"role: malformed id", "", "PATCH", "/users/me", map[string]any{"role": "owner"}, nil, 404, CodeNotFound, ""},
		{"role: unknown field", "", "PATCH", "/users/" + s.staff.ID, map[string]any{"role": "owner", "active": true}, []opt{docRefuses()}, 400, CodeBadRequest, "active"},
		{"remove: unknown user", "", "DELETE", "/users/" + unknown, nil, nil, 404, CodeNotFound, ""},
	}
	_ = o
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			token := c.token
			switch token {
			case "":
				token = s.ownerT
			case "-":
				token = ""
			}
			before := s.snapshot(t)
			r := s.client(t, token).do(c.method, c.path, c.body, c.opts...)
			if c.field != "" {
				r.wantField(c.status, c.code, c.field)
			} else {
				r.wantError(c.status, c.code)
			}
			if c.status == http.StatusInternalServerError {
				t.Fatal("internal error")
			}
			s.wantUnchanged(t, before)
		})
	}
}

// TestCrossStore tries, for each model, store B's ids and token under store
// A's URLs and in A's bodies: A never finds them, B never changes and none
// of B's data comes back.
func TestCrossStore(t *testing.T) {
	e := newEnv(t)
	models := []tenant.Model{tenant.ModelRow, tenant.ModelSchema, tenant.ModelDatabase}
	shops := make([]*shop, len(models))
	secrets := make([]store.Product, len(models))
	orders := make([]store.Order, len(models))
	for i, m := range models {
		shops[i] = e.newShop("cross-"+string(m), m)
		secrets[i] = shops[i].product("SECRET-"+strings.ToUpper(string(m)), 4242, 20)
		o, _, err := e.svc.Checkout(shops[i].ctx, store.CheckoutInput{Key: "cross-order-" + string(m), Name: "Secret Customer " + string(m), Email: "secret@" + string(m) + ".test",
			Address: "Secret Lane", Lines: []store.Line{{ProductID: secrets[i].ID, Quantity: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		orders[i] = o
	}
	for i, m := range models {
		j := (i + 1) % len(models)
		a, b := shops[i], shops[j]
		bp, bo := secrets[j], orders[j]
		t.Run(fmt.Sprintf("%s-vs-%s", m, b.model), func(t *testing.T) {
			ap := a.product("OWN-"+fresh(), 100, 5)
			cases := []struct {
				name         string
				token        string
				method, path string
				body         any
				opts         []opt
				status       int
			}{
				{"B's product", a.ownerT, "GET", "/products/" + bp.ID, nil, nil, 404},
				{"B's product update", a.ownerT, "PUT", "/products/" + bp.ID, map[string]any{"sku": "HIJACK", "title": "Hijacked", "price_cents": 0}, nil, 404},
				{"B's product stock", a.staffT, "POST", "/products/" + bp.ID + "/stock", map[string]any{"kind": "adjustment", "quantity": -5}, nil, 404},
				{"B's product ledger", a.staffT, "GET", "/products/" + bp.ID + "/stock", nil, nil, 404},
				{"B's order", a.ownerT, "GET", "/orders/" + bo.ID, nil, nil, 404},
				{"B's order fulfil", a.staffT, "POST", "/orders/" + bo.ID + "/fulfil", nil, nil, 404},
				{"B's order cancel", a.ownerT, "POST", "/orders/" + bo.ID + "/cancel", nil, nil, 404},
				{"B's user role", a.ownerT, "PATCH", "/users/" + b.staff.ID, map[string]any{"role": "owner"}, nil, 404},
				{"B's user removal", a.ownerT, "DELETE", "/users/" + b.staff.ID, nil, nil, 404},
				{"B's owner removal", a.ownerT, "DELETE", "/users/" + b.owner.ID, nil, nil, 404},
				{"B's token revoked", a.ownerT, "DELETE", "/auth/tokens/" + b.ownerTokenID, nil, nil, 404},
				{"B's product in a checkout", "", "POST", "/checkout", map[string]any{"customer_name": "Eve", "customer_email": "eve@example.com", "address": "6 Main St",
					"lines": []map[string]any{{"product_id": bp.ID, "quantity": 1}}}, []opt{header("Idempotency-Key", "cross-key-"+fresh())}, 404},
				{"B's product beside A's in a checkout", "", "POST", "/checkout", map[string]any{"customer_name": "Eve", "customer_email": "eve@example.com", "address": "6 Main St",
					"lines": []map[string]any{{"product_id": ap.ID, "quantity": 1}, {"product_id": bp.ID, "quantity": 1}}}, []opt{header("Idempotency-Key", "cross-key-"+fresh())}, 404},
				{"B's checkout key", "", "POST", "/checkout", map[string]any{"customer_name": "Eve", "customer_email": "eve@example.com", "address": "6 Main St",
					"lines": []map[string]any{{"product_id": bp.ID, "quantity": 1}}}, []opt{header("Idempotency-Key", "cross-order-"+string(b.model))}, 404},
				{"B's bearer: products", b.ownerT, "GET", "/products", nil, nil, 401},
				{"B's bearer: B's product", b.ownerT, "GET", "/products/" + bp.ID, nil, nil, 401},
				{"B's bearer: create", b.ownerT, "POST", "/products", map[string]any{"sku": "B-IN-A", "title": "B in A", "price_cents": 1}, nil, 401},
				{"B's bearer: users", b.ownerT, "GET", "/users", nil, nil, 401},
				{"B's bearer: invite", b.ownerT, "POST", "/users", map[string]any{"email": "mole@example.com", "role": "owner"}, nil, 401},
				{"B's bearer: tokens", b.staffT, "GET", "/auth/tokens", nil, nil, 401},
				{"B's bearer: revoke B's token", b.ownerT, "DELETE", "/auth/tokens/" + b.ownerTokenID, nil, nil, 401},
				{"B's bearer: B's order", b.staffT, "GET", "/orders/" + bo.ID, nil, nil, 401},
				{"B's password", "", "POST", "/auth/tokens", map[string]any{"email": b.owner.Email, "password": password, "name": "mole"}, nil, 401},
			}
			beforeA, beforeB := a.snapshot(t), b.snapshot(t)
			leaks := []string{bp.ID, bp.SKU, bo.ID, b.staff.ID, b.owner.ID, b.ownerTokenID, b.owner.Email, "Secret Customer " + string(b.model)}
			for _, c := range cases {
				r := a.client(t, c.token).do(c.method, c.path, c.body, c.opts...)
				if r.status != c.status {
					t.Errorf("%s: %s %s: status %d, want %d; body %s", c.name, c.method, c.path, r.status, c.status, r.body)
				}
				for _, l := range leaks {
					if strings.Contains(string(r.body), l) {
						t.Errorf("%s: the answer shows B's %q: %s", c.name, l, r.body)
					}
				}
			}
			// Lists under A show none of B's.
			for _, path := range []string{"/products?per_page=100", "/orders?per_page=100", "/users", "/auth/tokens"} {
				r := a.client(t, a.ownerT).do("GET", path, nil).want(200)
				for _, l := range leaks {
					if strings.Contains(string(r.body), l) {
						t.Errorf("GET %s in A shows B's %q", path, l)
					}
				}
			}
			r := a.client(t, "").do("GET", "/catalog?q=secret", nil).want(200)
			if strings.Contains(string(r.body), bp.ID) {
				t.Errorf("A's catalog shows B's product")
			}
			a.wantUnchanged(t, beforeA)
			b.wantUnchanged(t, beforeB)
		})
	}
}

var freshN struct {
	sync.Mutex
	n int
}

// fresh returns a new number for unique names.
func fresh() string {
	freshN.Lock()
	defer freshN.Unlock()
	freshN.n++
	return fmt.Sprint(freshN.n)
}

// TestConcurrentCheckout: 50 concurrent checkouts of the last 10 units
// place exactly 10 orders and leave the stock at 0, in every model.
func TestConcurrentCheckout(t *testing.T) {
	e := newEnv(t)
	for _, m := range []tenant.Model{tenant.ModelRow, tenant.ModelSchema, tenant.ModelDatabase} {
		t.Run(string(m), func(t *testing.T) {
			s := e.newShop("rush-"+string(m), m)
			p := s.product("LAST-10", 999, 10)
			const buyers = 50
			statuses := make([]int, buyers)
			var wg sync.WaitGroup
			for i := range buyers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := s.client(t, "").do("POST", "/checkout", map[string]any{"customer_name": fmt.Sprint("Buyer ", i), "customer_email": fmt.Sprintf("buyer%d@example.com", i),
						"address": "7 Main St", "lines": []map[string]any{{"product_id": p.ID, "quantity": 1}}}, header("Idempotency-Key", fmt.Sprintf("rush-%s-%03d", m, i)))
					statuses[i] = r.status
					if r.status == 409 {
						var ae apiErr
						r.decode(&ae)
						if ae.Error.Code != CodeOutOfStock {
							t.Errorf("buyer %d: 409 %s, want out_of_stock", i, r.body)
						}
					}
				}()
			}
			wg.Wait()
			count := map[int]int{}
			for _, st := range statuses {
				count[st]++
			}
			if count[201] != 10 || count[409] != buyers-10 {
				t.Fatalf("statuses %v, want 10 × 201 and %d × 409", count, buyers-10)
			}
			var got struct {
				Stock int `json:"stock"`
			}
			s.client(t, s.staffT).do("GET", "/products/"+p.ID, nil).want(200).decode(&got)
			var orders struct {
				Total int `json:"total"`
			}
			s.client(t, s.staffT).do("GET", "/orders?per_page=100", nil).want(200).decode(&orders)
			if got.Stock != 0 || orders.Total != 10 {
				t.Fatalf("after the rush: stock %d, %d orders; want 0 and 10", got.Stock, orders.Total)
			}
		})
	}
}
