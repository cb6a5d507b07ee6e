package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

// TestStore runs the storefront and back office of one store through both
// of its addresses, on one installation.
func TestStore(t *testing.T) {
	e := newEnv(t)
	a := e.newShop(t, "alpha", tenant.ModelRow)
	for _, form := range []string{"host", "path"} {
		base := e.bases("alpha")[form]
		prefix := ""
		if form == "path" {
			prefix = "/s/alpha"
		}
		t.Run(form, func(t *testing.T) {
			t.Run("storefront", func(t *testing.T) { testStorefront(t, e, a, base, prefix) })
			t.Run("checkout", func(t *testing.T) { testCheckout(t, e, a, base) })
			t.Run("back office", func(t *testing.T) { testBackOffice(t, e, a, base) })
			t.Run("staff", func(t *testing.T) { testStaff(t, e, a, base, form) })
			t.Run("tokens", func(t *testing.T) { testTokens(t, e, a, base) })
		})
	}
	t.Run("request log", func(t *testing.T) {
		logs := e.logs.String()
		for _, s := range []string{"method=GET", "status=200", "duration=", "tenant=" + a.T.ID.String(), "store=alpha"} {
			if !strings.Contains(logs, s) {
				t.Fatalf("request log lacks %q:\n%s", s, clip(logs))
			}
		}
		if strings.Contains(logs, password) {
			t.Fatal("a password is in the log")
		}
	})
}

func testStorefront(t *testing.T, e *env, a *shop, base, prefix string) {
	c := e.client(t)
	r := c.get(base + "/")
	want(t, r, http.StatusOK, "Shop alpha", "Product of alpha", "12.50 EUR", `href="`+prefix+`/products/`+a.Product.ID+`"`, `href="`+prefix+`/assets/style.css"`)
	lacks(t, r, "Hidden of alpha")
	if prefix != "" {
		lacks(t, r, `href="/products/`, `href="/cart"`, `href="/manage/`, `action="/cart"`, `href="/"`)
	}
	want(t, c.get(base+"/?q=product+OF"), http.StatusOK, "Product of alpha")
	r = c.get(base + "/?q=nothing-matches")
	want(t, r, http.StatusOK, "No products match")
	lacks(t, r, "Product of alpha")
	want(t, c.get(base+"/?page=99"), http.StatusOK, "No products")

	want(t, c.get(base+"/products/"+a.Product.ID), http.StatusOK, "Product of alpha", "Add to cart")
	want(t, c.get(base+"/products/"+a.Hidden.ID), http.StatusNotFound, "Not found")
	want(t, c.get(base+"/products/not-a-uuid"), http.StatusNotFound)
	want(t, c.get(base+"/products/00000000-0000-4000-8000-000000000000"), http.StatusNotFound)
	want(t, c.get(base+"/no/such/page"), http.StatusNotFound, "There is nothing at this address")

	want(t, c.get(base+"/cart"), http.StatusOK, "Your cart is empty")
	r = c.post(base+"/cart", url.Values{"action": {"add"}, "product_id": {a.Product.ID}, "quantity": {"2"}})
	want(t, r, http.StatusOK, "Added Product of alpha to your cart", "25.00 EUR")
	r = c.post(base+"/cart", url.Values{"action": {"update"}, "product_id": {a.Product.ID}, "quantity": {"3"}})
	want(t, r, http.StatusOK, "Cart updated", "37.50 EUR")
	for _, bad := range []url.Values{
		{"action": {"add"}, "product_id": {a.Hidden.ID}},
		{"action": {"add"}, "product_id": {"nope"}},
		{"action": {"update"}, "product_id": {a.Hidden.ID}, "quantity": {"1"}},
		{"action": {"remove"}, "product_id": {a.Hidden.ID}},
	} {
		want(t, c.post(base+"/cart", bad), http.StatusNotFound)
	}
	for _, bad := range []url.Values{
		{"action": {"add"}, "product_id": {a.Product.ID}, "quantity": {"-1"}},
		{"action": {"add"}, "product_id": {a.Product.ID}, "quantity": {"two"}},
		{"action": {"add"}, "product_id": {a.Product.ID}, "quantity": {"1000"}},
		{"action": {"explode"}, "product_id": {a.Product.ID}},
	} {
		want(t, c.post(base+"/cart", bad), http.StatusBadRequest)
	}
	want(t, c.get(base+"/cart"), http.StatusOK, "37.50 EUR")
	r = c.post(base+"/cart", url.Values{"action": {"remove"}, "product_id": {a.Product.ID}})
	want(t, r, http.StatusOK, "Removed from your cart", "Your cart is empty")

	want(t, c.get(base+"/favicon.ico"), http.StatusOK, "<svg")
	r = c.get(base + "/assets/style.css")
	want(t, r, http.StatusOK, ":focus-visible")
}

func testCheckout(t *testing.T, e *env, a *shop, base string) {
	c := e.client(t)
	before := e.counts(t, a)
	c.post(base+"/cart", url.Values{"action": {"add"}, "product_id": {a.Product.ID}, "quantity": {"2"}})
	r := c.get(base + "/checkout")
	want(t, r, http.StatusOK, "Test payment — no money moves", "25.00 EUR")
	key := formKey(t, r.Body)

	// Bad input: nothing is written, the input is kept.
	r = c.post(base+"/checkout", url.Values{"key": {key}, "name": {"Ann"}, "email": {"not-an-email"}, "address": {""}})
	want(t, r, http.StatusUnprocessableEntity, "Enter an email address", "Enter the address", `value="Ann"`, `aria-invalid="true"`, `aria-describedby="e-email"`)
	r = c.post(base+"/checkout", url.Values{"key": {"bad key!"}, "name": {"Ann"}, "email": {"ann@example.com"}, "address": {"1 Road"}})
	want(t, r, http.StatusBadRequest, "bad idempotency key")
	r = c.post(base+"/checkout", url.Values{"key": {"short"}, "name": {"Ann"}, "email": {"ann@example.com"}, "address": {"1 Road"}})
	want(t, r, http.StatusBadRequest)
	big := url.Values{"key": {key}, "name": {strings.Repeat("x", MaxFormBytes)}, "email": {"ann@example.com"}, "address": {"1 Road"}}
	want(t, c.post(base+"/checkout", big), http.StatusRequestEntityTooLarge)
	c.post(base+"/cart", url.Values{"action": {"update"}, "product_id": {a.Product.ID}, "quantity": {"999"}})
	r = c.post(base+"/checkout", url.Values{"key": {key}, "name": {"Ann"}, "email": {"ann@example.com"}, "address": {"1 Road"}})
	want(t, r, http.StatusConflict, "do not have enough stock")
	if got := e.counts(t, a); got != before {
		t.Fatalf("bad checkouts wrote: %+v, was %+v", got, before)
	}

	// The order, then the same form again: one order.
	c.post(base+"/cart", url.Values{"action": {"update"}, "product_id": {a.Product.ID}, "quantity": {"2"}})
	form := url.Values{"key": {key}, "name": {"Ann"}, "email": {"ann@example.com"}, "address": {"1 Road"}}
	r = c.post(base+"/checkout", form)
	want(t, r, http.StatusOK, "Thank you for your order", "your order is placed", "25.00 EUR", "Ann")
	receipt := r.URL
	c.post(base+"/cart", url.Values{"action": {"add"}, "product_id": {a.Product.ID}, "quantity": {"2"}})
	r = c.post(base+"/checkout", form)
	want(t, r, http.StatusOK, "Thank you for your order")
	if r.URL != receipt {
		t.Fatalf("second submit went to %s, first to %s", r.URL, receipt)
	}
	after := e.counts(t, a)
	if after.Orders != before.Orders+1 || after.Stock != before.Stock-2 {
		t.Fatalf("double submit: orders %d -> %d, stock %d -> %d", before.Orders, after.Orders, before.Stock, after.Stock)
	}
	want(t, c.get(base+"/cart"), http.StatusOK, "Your cart is empty")
	r = c.post(base+"/checkout", form) // once more, the cart empty now
	want(t, r, http.StatusOK, "Thank you for your order")
	if r.URL != receipt {
		t.Fatalf("third submit went to %s, first to %s", r.URL, receipt)
	}
	if got := e.counts(t, a); got != after {
		t.Fatalf("third submit wrote: %+v, was %+v", got, after)
	}
	// Another visitor with the same key and no session gets no order.
	r = e.client(t).post(base+"/checkout", form)
	want(t, r, http.StatusUnprocessableEntity, "Your cart is empty")
	lacks(t, r, "Thank you for your order")
	r = c.post(base+"/checkout", form) // once more, the cart empty now
	want(t, r, http.StatusOK, "Thank you for your order")
	if r.URL != receipt {
		t.Fatalf("third submit went to %s, first to %s", r.URL, receipt)
	}
	if got := e.counts(t, a); got != after {
		t.Fatalf("third submit wrote: %+v, was %+v", got, after)
	}
	// Another visitor with the same key and no session gets no order.
	r = e.client(t).post(base+"/checkout", form)
	want(t, r, http.StatusUnprocessableEntity, "Your cart is empty")
	lacks(t, r, "Thank you for your order")

	// The receipt needs its token.
	u, _ := url.Parse(receipt)
	other := e.client(t)
	want(t, other.get(receipt), http.StatusOK, "Thank you for your order")
	want(t, other.get(base+u.Path), http.StatusNotFound)
	want(t, other.get(base+u.Path+"?t=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), http.StatusNotFound)
	want(t, other.get(base+"/orders/"+a.Order.ID), http.StatusNotFound)
	lacks(t, other.get(base+"/orders/"+a.Order.ID), "Customer of alpha")

	// An empty cart cannot be ordered.
	c2 := e.client(t)
	r = c2.get(base + "/checkout")
	want(t, r, http.StatusOK, "Your cart is empty")
	r = c2.post(base+"/checkout", url.Values{"key": {formKey(t, r.Body)}, "name": {"Bo"}, "email": {"bo@example.com"}, "address": {"2 Road"}})
	want(t, r, http.StatusUnprocessableEntity, "Your cart is empty")
}

func testBackOffice(t *testing.T, e *env, a *shop, base string) {
	anon := e.client(t)
	r := anon.get(base + "/manage/products")
	want(t, r, http.StatusOK, "Sign in to Shop alpha")
	if !strings.Contains(r.URL, "/manage/login?next=") {
		t.Fatalf("anonymous back office went to %s", r.URL)
	}
	want(t, anon.post(base+"/manage/products/new", url.Values{"sku": {"x"}, "title": {"x"}, "price": {"1"}}), http.StatusForbidden, "Sign in first")
	r = anon.post(base+"/manage/login", url.Values{"email": {a.Owner.Email}, "password": {"wrong password"}})
	want(t, r, http.StatusUnauthorized, "Wrong email or password", `value="`+a.Owner.Email+`"`)
	lacks(t, r, "wrong password")
	want(t, anon.post(base+"/manage/login", url.Values{"email": {""}, "password": {""}}), http.StatusUnprocessableEntity, "Enter your email address", "Enter your password")

	c := e.client(t)
	c.login(base, a.Staff.Email)
	sid := c.cookie(base+"/manage/", sessionCookie)
	if sid == "" {
		t.Fatal("no session cookie")
	}
	r = c.get(base + "/manage/")
	want(t, r, http.StatusOK, "Back office", a.Staff.Email)
	lacks(t, r, `/manage/staff"`) // staff do not see the staff page

	// Products: list, filter, create with bad input, create, edit.
	want(t, c.get(base+"/manage/products"), http.StatusOK, "Product of alpha", "Hidden of alpha")
	r = c.get(base + "/manage/products?active=1&q=of")
	want(t, r, http.StatusOK, "Product of alpha")
	lacks(t, r, "Hidden of alpha")
	want(t, c.get(base+"/manage/products/new"), http.StatusOK, "New product")
	before := e.counts(t, a)
	for name, f := range map[string]url.Values{
		"missing":          {},
		"negative price":   {"sku": {"n-1"}, "title": {"Neg"}, "price": {"-1.00"}},
		"price not number": {"sku": {"n-1"}, "title": {"Neg"}, "price": {"twelve"}},
		"three decimals":   {"sku": {"n-1"}, "title": {"Neg"}, "price": {"1.005"}},
		"threshold":        {"sku": {"n-1"}, "title": {"Neg"}, "price": {"1"}, "low_stock_threshold": {"-3"}},
		"bad sku":          {"sku": {"has space"}, "title": {"Neg"}, "price": {"1"}},
		"taken sku":        {"sku": {a.Product.SKU}, "title": {"Dup"}, "price": {"1"}},
	} {
		r := c.post(base+"/manage/products/new", f)
		if r.Status != http.StatusUnprocessableEntity && r.Status != http.StatusConflict {
			t.Fatalf("%s: status %d:\n%s", name, r.Status, clip(r.Body))
		}
		want(t, r, r.Status, `aria-invalid="true"`, `class="error"`)
		if v := f.Get("title"); v != "" && !strings.Contains(r.Body, `value="`+v+`"`) {
			t.Fatalf("%s: the title was not kept", name)
		}
	}
	if got := e.counts(t, a); got != before {
		t.Fatalf("bad product forms wrote: %+v, was %+v", got, before)
	}
	sku := "new-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	dl := "Desk lamp " + sku
	r = c.post(base+"/manage/products/new", url.Values{"sku": {sku}, "title": {"Lamp"}, "price": {"19.9"}, "active": {"1"}, "low_stock_threshold": {"1"}, "description": {"A lamp."}})
	want(t, r, http.StatusOK, "Product Lamp created", `value="19.90"`)
	pid := r.URL[strings.LastIndex(r.URL, "/")+1:]
	p, err := e.st.Product(e.ctx(a.T.ID), pid)
	if err != nil || p.PriceCents != 1990 || !p.Active || p.SKU != sku {
		t.Fatalf("created product %+v, %v", p, err)
	}
	// The storefront's cached list follows the change.
	want(t, e.client(t).get(base+"/"), http.StatusOK, "Lamp")
	r = c.post(base+"/manage/products/"+pid, url.Values{"sku": {sku}, "title": {dl}, "price": {"21"}, "low_stock_threshold": {"1"}})
	want(t, r, http.StatusOK, "Product "+dl+" saved")
	lacks(t, e.client(t).get(base+"/"), dl) // inactive now
	want(t, c.post(base+"/manage/products/"+pid, url.Values{"sku": {sku}, "title": {dl}, "price": {"21"}, "low_stock_threshold": {"1"}, "active": {"1"}}), http.StatusOK, "saved")
	want(t, e.client(t).get(base+"/"), http.StatusOK, dl)
	r = c.post(base+"/manage/products/"+pid, url.Values{"sku": {sku}, "title": {""}, "price": {"21"}})
	want(t, r, http.StatusUnprocessableEntity, "Enter a title")
	want(t, c.get(base+"/manage/products/"+pid), http.StatusOK, dl)

	// Stock.
	r = c.get(base + "/manage/products/" + pid + "/stock")
	want(t, r, http.StatusOK, "On hand: <strong>0</strong>", "No movements yet")
	r = c.post(base+"/manage/products/"+pid+"/stock", url.Values{"kind": {"receipt"}, "quantity": {"5"}, "note": {"delivery 7"}})
	want(t, r, http.StatusOK, "Stock of "+dl+" is now 5", "delivery 7")
	before = e.counts(t, a)
	for name, f := range map[string]url.Values{
		"below zero":       {"kind": {"adjustment"}, "quantity": {"-6"}},
		"negative receipt": {"kind": {"receipt"}, "quantity": {"-1"}},
		"zero":             {"kind": {"adjustment"}, "quantity": {"0"}},
		"not a number":     {"kind": {"receipt"}, "quantity": {"many"}},
		"sale by hand":     {"kind": {"sale"}, "quantity": {"-1"}},
	} {
		r := c.post(base+"/manage/products/"+pid+"/stock", f)
		if r.Status != http.StatusUnprocessableEntity && r.Status != http.StatusConflict {
			t.Fatalf("%s: status %d", name, r.Status)
		}
		want(t, r, r.Status, `aria-invalid="true"`)
	}
	want(t, c.post(base+"/manage/products/00000000-0000-4000-8000-000000000000/stock", url.Values{"kind": {"receipt"}, "quantity": {"1"}}), http.StatusNotFound)
	if got := e.counts(t, a); got != before {
		t.Fatalf("bad stock forms wrote: %+v, was %+v", got, before)
	}
	r = c.post(base+"/manage/products/"+pid+"/stock", url.Values{"kind": {"adjustment"}, "quantity": {"-2"}, "note": {"broken"}})
	want(t, r, http.StatusOK, "is now 3", "broken", "adjustment")

	// Orders: list, filters, detail, fulfil, cancel.
	r = c.get(base + "/manage/orders")
	want(t, r, http.StatusOK, "Customer of alpha", "#1")
	r = c.get(base + "/manage/orders?status=cancelled")
	want(t, r, http.StatusOK)
	want(t, c.get(base+"/manage/orders?q=Customer+of+alpha&from=2000-01-01&to=2999-01-01"), http.StatusOK, "Customer of alpha")
	want(t, c.get(base+"/manage/orders?from=yesterday"), http.StatusBadRequest, "Enter a date like")
	want(t, c.get(base+"/manage/orders?status=lost"), http.StatusBadRequest, "Choose a status")
	want(t, c.get(base+"/manage/orders?from=2020-02-01&to=2020-01-01"), http.StatusBadRequest, "before the start date")
	ctx := e.ctx(a.T.ID)
	o, _, err := e.st.Checkout(ctx, store.CheckoutInput{Key: "bo-" + sku, Name: "Dora", Email: "dora@example.com", Address: "3 Road", Lines: []store.Line{{ProductID: pid, Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	want(t, c.get(base+"/manage/orders/"+o.ID), http.StatusOK, "Dora", "Mark fulfilled", "Cancel order")
	want(t, c.post(base+"/manage/orders/"+o.ID+"/cancel", nil), http.StatusOK, "cancelled; its stock is back")
	want(t, c.post(base+"/manage/orders/"+o.ID+"/fulfil", nil), http.StatusConflict, "not open any more")
	if p, _ := e.st.Product(ctx, pid); p.Stock != 3 {
		t.Fatalf("stock after cancel %d, want 3", p.Stock)
	}
	o2, _, err := e.st.Checkout(ctx, store.CheckoutInput{Key: "bo2-" + sku, Name: "Ed", Email: "ed@example.com", Address: "4 Road", Lines: []store.Line{{ProductID: pid, Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	want(t, c.post(base+"/manage/orders/"+o2.ID+"/fulfil", nil), http.StatusOK, "fulfilled")
	want(t, c.get(base+"/manage/orders/00000000-0000-4000-8000-000000000000"), http.StatusNotFound)

	// Notifications.
	if _, err := e.st.Notify(ctx, "low_stock", "Low: "+dl); err != nil {
		t.Fatal(err)
	}
	want(t, c.get(base+"/manage/notifications"), http.StatusOK, "Low: "+dl)

	// Staff are not owners.
	want(t, c.get(base+"/manage/staff"), http.StatusForbidden, "Only the store&#39;s owner")
	want(t, c.post(base+"/manage/staff", url.Values{"email": {"x@y.test"}, "role": {"owner"}}), http.StatusForbidden)

	// Sign out ends the session.
	want(t, c.post(base+"/manage/logout", nil), http.StatusOK, "Signed out")
	if _, err := e.st.SessionOf(ctx, sid); err == nil {
		t.Fatal("the session outlived sign-out")
	}
}

func testStaff(t *testing.T, e *env, a *shop, base, form string) {
	c := e.client(t)
	c.login(base, a.Owner.Email)
	want(t, c.get(base+"/manage/staff"), http.StatusOK, a.Staff.Email, a.Owner.Email)
	before := e.counts(t, a)
	want(t, c.post(base+"/manage/staff", url.Values{"email": {"nobody"}, "role": {"staff"}}), http.StatusUnprocessableEntity, "Enter an email address", `value="nobody"`)
	want(t, c.post(base+"/manage/staff", url.Values{"email": {"n@alpha.test"}, "role": {"king"}}), http.StatusUnprocessableEntity, "Choose owner or staff")
	r := c.post(base+"/manage/staff", url.Values{"email": {a.Staff.Email}, "role": {"staff"}})
	if r.Status != http.StatusConflict && r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("inviting a user twice: %d", r.Status)
	}
	if got := e.counts(t, a); got != before {
		t.Fatalf("bad invitations wrote: %+v, was %+v", got, before)
	}
	email := "new-" + form + "@alpha.test"
	r = c.post(base+"/manage/staff", url.Values{"email": {email}, "role": {"staff"}})
	want(t, r, http.StatusOK, "Invitation created", base+"/invite/")
	link := base + "/invite/" + strings.SplitN(strings.SplitN(r.Body, base+"/invite/", 2)[1], `"`, 2)[0]

	n := e.client(t)
	want(t, n.get(link), http.StatusOK, "Join Shop alpha")
	want(t, n.post(link, url.Values{"name": {"Nia"}, "password": {"short"}}), http.StatusUnprocessableEntity, "at least 8 characters", `value="Nia"`)
	want(t, n.post(link, url.Values{"name": {"Nia"}, "password": {password}}), http.StatusOK, "Welcome, Nia", "Back office")
	want(t, e.client(t).post(link, url.Values{"name": {"Eve"}, "password": {password}}), http.StatusNotFound, "not valid")

	users, _ := e.st.Users(e.ctx(a.T.ID))
	var nu store.User
	for _, u := range users {
		if u.Email == email {
			nu = u
		}
	}
	want(t, c.post(base+"/manage/staff/"+nu.ID+"/role", url.Values{"role": {"owner"}}), http.StatusOK, email+" is now owner")
	want(t, c.post(base+"/manage/staff/"+nu.ID+"/role", url.Values{"role": {"king"}}), http.StatusBadRequest)
	want(t, c.post(base+"/manage/staff/"+nu.ID+"/remove", nil), http.StatusOK, email+" was removed")
	want(t, n.get(base+"/manage/products"), http.StatusOK, "Sign in to") // their session went with them
	want(t, c.post(base+"/manage/staff/"+nu.ID+"/remove", nil), http.StatusNotFound)
	want(t, c.post(base+"/manage/staff/"+a.Owner.ID+"/role", url.Values{"role": {"staff"}}), http.StatusConflict, "at least one owner")
}

func testTokens(t *testing.T, e *env, a *shop, base string) {
	c := e.client(t)
	c.login(base, a.Owner.Email)
	want(t, c.post(base+"/manage/tokens", url.Values{"name": {""}}), http.StatusUnprocessableEntity, "Enter a name")
	r := c.post(base+"/manage/tokens", url.Values{"name": {"sync"}})
	want(t, r, http.StatusOK, "Token created", "shown only once")
	secret := strings.SplitN(strings.SplitN(r.Body, `id="token-secret" type="text" readonly value="`, 2)[1], `"`, 2)[0]
	r = c.get(base + "/manage/tokens")
	want(t, r, http.StatusOK, "sync")
	lacks(t, r, secret)

	// The API is mounted for the store with the full /api/v1 path.
	api := e.client(t)
	api.header.Set("Authorization", "Bearer "+secret)
	want(t, api.get(base+"/api/v1/products"), http.StatusOK, "/api/v1/products "+a.Owner.Email)

	ts, _ := e.st.APITokens(e.ctx(a.T.ID), a.Owner)
	var id string
	for _, tk := range ts {
		if tk.Name == "sync" {
			id = tk.ID
		}
	}
	want(t, c.post(base+"/manage/tokens/"+id+"/revoke", nil), http.StatusOK, "Token revoked")
	want(t, api.get(base+"/api/v1/products"), http.StatusUnauthorized)
	want(t, c.post(base+"/manage/tokens/"+id+"/revoke", nil), http.StatusNotFound)

	// A staff user has their own tokens and no staff page.
	s := e.client(t)
	s.login(base, a.Staff.Email)
	want(t, s.get(base+"/manage/tokens"), http.StatusOK, "New token")
}

// TestCrossStore uses one store's ids, tokens and cookies under another
// store's addresses: every case is refused, shows nothing of the other
// store and writes nothing. The table runs once per model of the store
// addressed, against a store in another model.
func TestCrossStore(t *testing.T) {
	e := newEnv(t)
	models := []tenant.Model{tenant.ModelRow, tenant.ModelSchema, tenant.ModelDatabase}
	shops := map[tenant.Model]*shop{}
	secrets := map[tenant.Model]string{}
	invites := map[tenant.Model]string{}
	sessions := map[tenant.Model]string{}
	for _, m := range models {
		sh := e.newShop(t, "x-"+string(m), m)
		shops[m] = sh
		ctx := e.ctx(sh.T.ID)
		secret, _, err := e.st.CreateAPIToken(ctx, sh.Owner, "cross")
		if err != nil {
			t.Fatal(err)
		}
		secrets[m] = secret
		inv, err := e.st.InviteUser(ctx, sh.Owner, "invitee@"+string(m)+".test", store.RoleStaff, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		invites[m] = inv.Token
		tok, err := e.st.NewSession(ctx, sh.Owner.ID, time.Hour, "", "")
		if err != nil {
			t.Fatal(err)
		}
		sessions[m] = tok
	}

	type target struct {
		B       *shop
		Secret  string // B's API token
		Invite  string // B's invitation token
		Session string // B's owner's session token
	}
	type cas struct {
		name   string
		signIn bool // as A's owner
		do     func(c *client, base string, b target) resp
	}
	get := func(p func(b target) string) func(c *client, base string, b target) resp {
		return func(c *client, base string, b target) resp { return c.get(base + p(b)) }
	}
	post := func(p func(b target) string, f url.Values) func(c *client, base string, b target) resp {
		return func(c *client, base string, b target) resp { return c.post(base+p(b), f) }
	}
	cases := []cas{
		{"storefront product", false, get(func(b target) string { return "/products/" + b.B.Product.ID })},
		{"add product to cart", false, func(c *client, base string, b target) resp {
			return c.post(base+"/cart", url.Values{"action": {"add"}, "product_id": {b.B.Product.ID}})
		}},
		{"receipt with its token", false, get(func(b target) string { return "/orders/" + b.B.Order.ID + "?t=" + b.B.OrderTok })},
		{"accept invitation", false, post(func(b target) string { return "/invite/" + b.Invite }, url.Values{"name": {"Mallory"}, "password": {password}})},
		{"edit product page", true, get(func(b target) string { return "/manage/products/" + b.B.Product.ID })},
		{"edit product", true, post(func(b target) string { return "/manage/products/" + b.B.Product.ID }, url.Values{"sku": {"evil"}, "title": {"Evil"}, "price": {"0"}})},
		{"stock page", true, get(func(b target) string { return "/manage/products/" + b.B.Product.ID + "/stock" })},
		{"stock receipt", true, post(func(b target) string { return "/manage/products/" + b.B.Product.ID + "/stock" }, url.Values{"kind": {"receipt"}, "quantity": {"5"}})},
		{"order page", true, get(func(b target) string { return "/manage/orders/" + b.B.Order.ID })},
		{"fulfil order", true, post(func(b target) string { return "/manage/orders/" + b.B.Order.ID + "/fulfil" }, nil)},
		{"cancel order", true, post(func(b target) string { return "/manage/orders/" + b.B.Order.ID + "/cancel" }, nil)},
		{"change role", true, post(func(b target) string { return "/manage/staff/" + b.B.Staff.ID + "/role" }, url.Values{"role": {"owner"}})},
		{"remove user", true, post(func(b target) string { return "/manage/staff/" + b.B.Staff.ID + "/remove" }, nil)},
		{"revoke token", true, func(c *client, base string, b target) resp {
			ts, _ := e.st.APITokens(e.ctx(b.B.T.ID), b.B.Owner)
			return c.post(base+"/manage/tokens/"+ts[0].ID+"/revoke", nil)
		}},
		{"session cookie, page", false, func(c *client, base string, b target) resp {
			c.setCookie(base+"/", sessionCookie, b.Session)
			c.follow = false
			defer func() { c.follow = true }()
			r := c.get(base + "/manage/orders")
			if r.Status == http.StatusSeeOther && strings.Contains(r.Location, "/manage/login") {
				r.Status = http.StatusForbidden // sent to sign in: not signed in as anyone here
			}
			return r
		}},
		{"session cookie, form", false, func(c *client, base string, b target) resp {
			c.setCookie(base+"/", sessionCookie, b.Session)
			return c.post(base+"/manage/products/new", url.Values{"sku": {"evil"}, "title": {"Evil"}, "price": {"1"}})
		}},
		{"API token", false, func(c *client, base string, b target) resp {
			c.header.Set("Authorization", "Bearer "+b.Secret)
			defer c.header.Del("Authorization")
			r := c.get(base + "/api/v1/products")
			if r.Status == http.StatusUnauthorized {
				r.Status = http.StatusForbidden
			}
			return r
		}},
	}
	for i, m := range models {
		a, bm := shops[m], models[(i+1)%len(models)]
		b := target{B: shops[bm], Secret: secrets[bm], Invite: invites[bm], Session: sessions[bm]}
		t.Run(string(m)+"-vs-"+string(bm), func(t *testing.T) {
			before := e.counts(t, b.B)
			beforeA := e.counts(t, a)
			for form, base := range e.bases(a.T.Slug) {
				owner := e.client(t)
				owner.login(base, a.Owner.Email)
				for _, tc := range cases {
					t.Run(form+"/"+tc.name, func(t *testing.T) {
						c := e.client(t)
						if tc.signIn {
							c = owner
						}
						r := tc.do(c, base, b)
						if r.Status != http.StatusNotFound && r.Status != http.StatusForbidden {
							t.Fatalf("status %d, want 404 or 403:\n%s", r.Status, clip(r.Body))
						}
						lacks(t, r, b.B.Product.Title, "Customer of "+b.B.T.Slug, b.B.Staff.Email, b.B.Owner.Email, b.B.T.DisplayName)
					})
				}
			}
			if got := e.counts(t, b.B); got != before {
				t.Fatalf("store %s changed: %+v, was %+v", b.B.T.Slug, got, before)
			}
			if got := e.counts(t, a); got != beforeA {
				t.Fatalf("store %s changed: %+v, was %+v", a.T.Slug, got, beforeA)
			}
			ctx := e.ctx(b.B.T.ID)
			if _, err := e.st.SessionOf(ctx, b.Session); err != nil {
				t.Fatalf("B's session: %v", err)
			}
			if _, err := e.st.TokenUser(ctx, b.Secret); err != nil {
				t.Fatalf("B's token: %v", err)
			}
			// The same requests with A's own ids succeed: the refusals
			// above are about the store, not the requests.
			for _, base := range e.bases(a.T.Slug) {
				c := e.client(t)
				c.login(base, a.Owner.Email)
				want(t, c.get(base+"/products/"+a.Product.ID), http.StatusOK, a.Product.Title)
				want(t, c.get(base+"/manage/products/"+a.Product.ID+"/stock"), http.StatusOK, a.Product.Title)
				want(t, c.get(base+"/manage/orders/"+a.Order.ID), http.StatusOK, "Customer of "+a.T.Slug)
				want(t, c.get(base+"/orders/"+a.Order.ID+"?t="+a.OrderTok), http.StatusOK, "Thank you")
			}
		})
	}
}

// TestStates covers unknown, suspended and read-only stores.
func TestStates(t *testing.T) {
	e := newEnv(t)
	s := e.newShop(t, "sleepy", tenant.ModelSchema)
	r := e.newShop(t, "frozen", tenant.ModelRow)
	c := e.client(t)

	t.Run("unknown store", func(t *testing.T) {
		for _, u := range []string{e.hostBase("nosuch") + "/", e.pathBase("nosuch") + "/", e.pathBase("NoSuch") + "/", e.pathBase("Sleepy") + "/", e.hostBase("a.b") + "/", e.platform() + "/s/x/"} {
			r := c.get(u)
			want(t, r, http.StatusNotFound, "Not found")
			lacks(t, r, "Product of")
		}
	})
	t.Run("slug without slash", func(t *testing.T) {
		want(t, c.get(e.pathBase("sleepy")), http.StatusOK, "Product of sleepy")
	})

	owner := e.client(t)
	for _, base := range e.bases("frozen") {
		owner.login(base, r.Owner.Email)
	}
	e.setState(t, s.T.ID, tenant.StateSuspended)
	e.setState(t, r.T.ID, tenant.StateReadOnly)

	t.Run("suspended", func(t *testing.T) {
		for _, base := range e.bases("sleepy") {
			for _, p := range []string{"/", "/products/" + s.Product.ID, "/manage/login", "/cart"} {
				r := c.get(base + p)
				want(t, r, http.StatusForbidden, "This store is suspended")
				lacks(t, r, "Product of sleepy")
			}
			want(t, c.post(base+"/manage/login", url.Values{"email": {s.Owner.Email}, "password": {password}}), http.StatusForbidden, "This store is suspended")
		}
	})
	t.Run("read-only", func(t *testing.T) {
		for _, base := range e.bases("frozen") {
			before := e.counts(t, r)
			want(t, c.get(base+"/"), http.StatusOK, "Product of frozen", "read-only at the moment")
			c.post(base+"/cart", url.Values{"action": {"add"}, "product_id": {r.Product.ID}})
			page := c.get(base + "/checkout")
			want(t, page, http.StatusOK, "orders cannot be placed", "disabled")
			res := c.post(base+"/checkout", url.Values{"key": {formKey(t, page.Body)}, "name": {"Ann"}, "email": {"ann@example.com"}, "address": {"1 Road"}})
			want(t, res, http.StatusConflict, "read-only")
			want(t, owner.get(base+"/manage/products/"+r.Product.ID), http.StatusOK, "Product of frozen", "disabled")
			want(t, owner.post(base+"/manage/products/"+r.Product.ID, url.Values{"sku": {"z"}, "title": {"Z"}, "price": {"1"}}), http.StatusConflict, "read-only")
			want(t, owner.post(base+"/manage/products/"+r.Product.ID+"/stock", url.Values{"kind": {"receipt"}, "quantity": {"1"}}), http.StatusConflict, "read-only")
			want(t, owner.post(base+"/manage/orders/"+r.Order.ID+"/cancel", nil), http.StatusConflict, "read-only")
			if got := e.counts(t, r); got != before {
				t.Fatalf("a read-only store changed: %+v, was %+v", got, before)
			}
		}
	})
	t.Run("resumed", func(t *testing.T) {
		e.setState(t, s.T.ID, tenant.StateActive)
		deadline := time.Now().Add(30 * time.Second)
		for {
			res := c.get(e.hostBase("sleepy") + "/")
			if res.Status == http.StatusOK {
				want(t, res, http.StatusOK, "Product of sleepy")
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still %d after resume", res.Status)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// TestEdges covers what is the same for every store: cross-origin posts,
// rate limits, health, metrics.
func TestEdges(t *testing.T) {
	e := newEnv(t)
	a := e.newShop(t, "edge", tenant.ModelRow)
	base := e.hostBase("edge")

	t.Run("cross-origin post", func(t *testing.T) {
		before := e.counts(t, a)
		c := e.client(t)
		c.login(base, a.Owner.Email)
		c.header.Set("Origin", "http://evil.example")
		r := c.post(base+"/manage/products/new", url.Values{"sku": {"csrf"}, "title": {"CSRF"}, "price": {"1"}})
		if r.Status != http.StatusForbidden {
			t.Fatalf("cross-origin post: %d", r.Status)
		}
		c.header.Del("Origin")
		c.header.Set("Sec-Fetch-Site", "cross-site")
		want(t, c.post(base+"/manage/products/new", url.Values{"sku": {"csrf"}, "title": {"CSRF"}, "price": {"1"}}), http.StatusForbidden)
		c.header.Set("Sec-Fetch-Site", "same-origin")
		want(t, c.post(base+"/cart", url.Values{"action": {"add"}, "product_id": {a.Product.ID}}), http.StatusOK, "Added")
		if got := e.counts(t, a); got != before {
			t.Fatalf("cross-origin posts wrote: %+v, was %+v", got, before)
		}
	})
	t.Run("login rate limit", func(t *testing.T) {
		e.ws.loginLimit = newLimiter(rate.Every(time.Hour), 2)
		defer func() { e.ws.loginLimit = newLimiter(rate.Inf, 1) }()
		c := e.client(t)
		for range 2 {
			want(t, c.post(base+"/manage/login", url.Values{"email": {a.Owner.Email}, "password": {"nope nope"}}), http.StatusUnauthorized)
		}
		r := c.post(base+"/manage/login", url.Values{"email": {a.Owner.Email}, "password": {password}})
		want(t, r, http.StatusTooManyRequests, "Too many attempts")
		if r.Header.Get("Retry-After") == "" {
			t.Fatal("no Retry-After")
		}
	})
	t.Run("cookies", func(t *testing.T) {
		for form, b := range e.bases("edge") {
			c := e.client(t)
			c.follow = false
			r := c.post(b+"/manage/login", url.Values{"email": {a.Owner.Email}, "password": {password}})
			if r.Status != http.StatusSeeOther {
				t.Fatalf("%s: login %d", form, r.Status)
			}
			set := strings.Join(r.Header.Values("Set-Cookie"), "\n")
			wantPath := "Path=/;"
			if form == "path" {
				wantPath = "Path=/s/edge/;"
			}
			for _, s := range []string{"session=", "HttpOnly", "SameSite=Lax", wantPath} {
				if !strings.Contains(set, s) {
					t.Fatalf("%s: Set-Cookie lacks %q: %s", form, s, set)
				}
			}
			if strings.Contains(set, "Secure") {
				t.Fatalf("%s: Secure cookie over http", form)
			}
		}
	})
	t.Run("platform", func(t *testing.T) {
		c := e.client(t)
		want(t, c.get(e.platform()+"/healthz"), http.StatusOK, "ok")
		want(t, c.get(e.platform()+"/favicon.ico"), http.StatusOK, "<svg")
		want(t, c.get(e.platform()+"/assets/style.css"), http.StatusOK, "system-ui")
		want(t, c.get(e.platform()+"/nothing"), http.StatusNotFound, "Not found")
		want(t, c.get(e.platform()+"/metrics"), http.StatusOK, "go_goroutines")
	})
	t.Run("products cache", func(t *testing.T) {
		c := e.client(t)
		want(t, c.get(base+"/"), http.StatusOK, "Product of edge")
		// A change through the store calls ProductsChanged.
		if _, err := e.st.UpdateProduct(e.ctx(a.T.ID), a.Owner, a.Product.ID, store.ProductInput{SKU: a.Product.SKU, Title: "Renamed edge", PriceCents: 1, Active: true}); err != nil {
			t.Fatal(err)
		}
		want(t, c.get(base+"/"), http.StatusOK, "Renamed edge")
		// A change the server was not told about is served from the cache
		// until it expires; ProductsChanged drops it.
		if _, err := e.ll.Handle().Exec(e.ctx(a.T.ID), `UPDATE products SET title = 'Quiet edge' WHERE id = $1`, a.Product.ID); err != nil {
			t.Fatal(err)
		}
		want(t, c.get(base+"/"), http.StatusOK, "Renamed edge")
		e.ws.ProductsChanged(context.Background()) // no store: nothing happens
		e.ws.ProductsChanged(e.ctx(a.T.ID))
		want(t, c.get(base+"/"), http.StatusOK, "Quiet edge")
	})
}

func TestParsePrice(t *testing.T) {
	for in, want := range map[string]int64{"12.50": 1250, "12.5": 1250, "12": 1200, "0": 0, "0.01": 1, " 3.00 ": 300} {
		if got, err := parsePrice(in); err != nil || got != want {
			t.Errorf("parsePrice(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.005", "1,50", "abc", ".5", "5.", "1e3", "9999999999999", "+1"} {
		if _, err := parsePrice(in); err == nil {
			t.Errorf("parsePrice(%q) succeeded", in)
		}
	}
	if decimal(1250) != "12.50" || decimal(5) != "0.05" || money(100, "EUR") != "1.00 EUR" {
		t.Error("decimal formatting")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/manage/orders?status=placed": "/manage/orders?status=placed",
		"/manage/../../admin":          "/manage/",
		"//evil.example/manage/":       "/manage/",
		"/manage//evil.example":        "/manage/",
		"https://evil.example/manage/": "/manage/",
		"/cart":                        "/manage/",
		"":                             "/manage/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCartCookie(t *testing.T) {
	id1, id2 := "0b7e2c1a-1111-4222-8333-444455556666", "0b7e2c1a-1111-4222-8333-444455556667"
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: cartCookie, Value: id1 + "_2." + id2 + "_0.junk_1." + id1 + "_5.not-a-uuid_3." + id2 + "_1000." + id2 + "_7"})
	c := readCart(r)
	if len(c.IDs) != 2 || c.Qty[id1] != 2 || c.Qty[id2] != 7 || c.count() != 9 {
		t.Fatalf("cart %+v", c)
	}
	c.set(id1, 0)
	if len(c.IDs) != 1 || c.IDs[0] != id2 {
		t.Fatalf("after removal %+v", c)
	}
}
