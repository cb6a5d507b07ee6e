package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/archive"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/shop/platform"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

const (
	operatorEmail = "olga@platform.test"
	operatorName  = "Olga"
)

// setupPlatform opens the platform on ll with one operator, and a metrics
// registry.
func setupPlatform(t *testing.T, ll *landlord.Landlord, st *store.Service, cfg *Config) {
	t.Helper()
	p, err := platform.Open(context.Background(), ll, st, platform.Config{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateOperator(context.Background(), operatorEmail, operatorName, password); err != nil {
		t.Fatal(err)
	}
	cfg.Platform = p
	cfg.Registry = prometheus.NewRegistry()
	cfg.Registry.MustRegister(collectors.NewGoCollector())
}

func (e *env) tenants(t *testing.T) int {
	t.Helper()
	ts, err := e.ll.Directory().List(context.Background(), directory.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(ts)
}

func TestPlatform(t *testing.T) {
	e := newEnv(t)
	home := e.platform()

	t.Run("sign-up refusals", func(t *testing.T) {
		c := e.client(t)
		want(t, c.get(home+"/"), http.StatusOK, "Open your store", `name="slug"`, `<option value="enterprise"`)
		before := e.tenants(t)
		for name, f := range map[string]url.Values{
			"missing":       {"plan": {"free"}},
			"bad email":     {"email": {"nope"}, "password": {password}, "name": {"Shop"}, "slug": {"goodslug"}, "plan": {"free"}},
			"short pass":    {"email": {"a@b.test"}, "password": {"short"}, "name": {"Shop"}, "slug": {"goodslug"}, "plan": {"free"}},
			"bad slug":      {"email": {"a@b.test"}, "password": {password}, "name": {"Shop"}, "slug": {"9 bad!"}, "plan": {"free"}},
			"reserved slug": {"email": {"a@b.test"}, "password": {password}, "name": {"Shop"}, "slug": {"admin"}, "plan": {"free"}},
			"bad plan":      {"email": {"a@b.test"}, "password": {password}, "name": {"Shop"}, "slug": {"goodslug"}, "plan": {"gold"}},
		} {
			r := c.post(home+"/", f)
			want(t, r, http.StatusUnprocessableEntity, `aria-invalid="true"`)
			lacks(t, r, password)
			if v := f.Get("name"); v != "" && !strings.Contains(r.Body, `value="`+v+`"`) {
				t.Fatalf("%s: the store name was not kept", name)
			}
		}
		big := url.Values{"email": {"a@b.test"}, "password": {password}, "name": {strings.Repeat("n", MaxFormBytes)}, "slug": {"goodslug"}, "plan": {"free"}}
		want(t, c.post(home+"/", big), http.StatusRequestEntityTooLarge)
		if got := e.tenants(t); got != before {
			t.Fatalf("refused sign-ups created stores: %d, was %d", got, before)
		}
	})

	shops := map[string]string{} // plan -> slug
	t.Run("sign-up", func(t *testing.T) {
		for _, plan := range []string{"free", "pro", "enterprise"} {
			c := e.client(t)
			slug := "shop-" + plan
			r := c.post(home+"/", url.Values{"email": {"owner@" + slug + ".test"}, "password": {password}, "name": {"The " + plan + " shop"}, "slug": {slug}, "plan": {plan}})
			want(t, r, http.StatusOK, "Welcome to The "+plan+" shop", "Back office", "owner@"+slug+".test")
			if !strings.HasSuffix(r.URL, "/s/"+slug+"/manage/") {
				t.Fatalf("sign-up went to %s", r.URL)
			}
			shops[plan] = slug
			tn, err := e.ll.TenantBySlug(context.Background(), slug)
			if err != nil {
				t.Fatal(err)
			}
			if p, _ := platform.ParsePlan(plan); tn.Model != p.Model() {
				t.Fatalf("%s store in model %s", plan, tn.Model)
			}
			// The store answers at its own host too; the new owner signs in there.
			o := e.client(t)
			o.login(e.hostBase(slug), "owner@"+slug+".test")
			r = o.post(e.hostBase(slug)+"/manage/products/new", url.Values{"sku": {"s1"}, "title": {"Seller of " + plan}, "price": {"3.00"}, "active": {"1"}})
			want(t, r, http.StatusOK, "created")
			pid := r.URL[strings.LastIndex(r.URL, "/")+1:]
			want(t, o.post(e.hostBase(slug)+"/manage/products/"+pid+"/stock", url.Values{"kind": {"receipt"}, "quantity": {"9"}}), http.StatusOK, "now 9")
			b := e.client(t)
			b.post(e.hostBase(slug)+"/cart", url.Values{"action": {"add"}, "product_id": {pid}, "quantity": {"2"}})
			page := b.get(e.hostBase(slug) + "/checkout")
			want(t, b.post(e.hostBase(slug)+"/checkout", url.Values{"key": {formKey(t, page.Body)}, "name": {"Buyer"}, "email": {"b@x.test"}, "address": {"Street"}}), http.StatusOK, "Thank you")
		}
		before := e.tenants(t)
		r := e.client(t).post(home+"/", url.Values{"email": {"x@y.test"}, "password": {password}, "name": {"Again"}, "slug": {"shop-free"}, "plan": {"free"}})
		want(t, r, http.StatusUnprocessableEntity, "is taken")
		if got := e.tenants(t); got != before {
			t.Fatal("a taken slug created a store")
		}
	})

	t.Run("operator sign-in", func(t *testing.T) {
		c := e.client(t)
		r := c.get(home + "/admin/")
		want(t, r, http.StatusOK, "Operator sign-in")
		want(t, c.post(home+"/admin/stores/"+tenant.NewID().String()+"/state", url.Values{"state": {"suspended"}, "reason": {"x"}}), http.StatusForbidden)
		want(t, c.post(home+"/admin/login", url.Values{"email": {operatorEmail}, "password": {"wrong one"}}), http.StatusUnauthorized, "Wrong email or password")
		want(t, c.post(home+"/admin/login", url.Values{}), http.StatusUnprocessableEntity, "Enter your email")
		// A store owner's session is no operator's.
		o := e.client(t)
		o.login(e.pathBase("shop-free"), "owner@shop-free.test")
		want(t, o.get(home+"/admin/"), http.StatusOK, "Operator sign-in")
	})

	op := e.client(t)
	want(t, op.post(home+"/admin/login", url.Values{"email": {operatorEmail}, "password": {password}}), http.StatusOK, "Stores")

	id := func(slug string) tenant.ID {
		tn, err := e.ll.TenantBySlug(context.Background(), slug)
		if err != nil {
			t.Fatal(err)
		}
		return tn.ID
	}

	t.Run("stores", func(t *testing.T) {
		r := op.get(home + "/admin/")
		want(t, r, http.StatusOK, "shop-free", "shop-pro", "shop-enterprise", "<td>row</td>", "<td>schema</td>", "<td>database</td>", "Suspend", "Read-only")
		free := id("shop-free")
		r = op.post(home+"/admin/stores/"+free.String()+"/state", url.Values{"state": {"suspended"}, "reason": {" "}})
		want(t, r, http.StatusUnprocessableEntity, "Give a reason")
		want(t, e.client(t).get(e.hostBase("shop-free")+"/"), http.StatusOK, "Seller of free")
		want(t, op.post(home+"/admin/stores/"+free.String()+"/state", url.Values{"state": {"deleting"}, "reason": {"x"}}), http.StatusBadRequest)
		want(t, op.post(home+"/admin/stores/not-an-id/state", url.Values{"state": {"active"}, "reason": {"x"}}), http.StatusNotFound)
		want(t, op.post(home+"/admin/stores/"+tenant.NewID().String()+"/state", url.Values{"state": {"active"}, "reason": {"x"}}), http.StatusNotFound)

		want(t, op.post(home+"/admin/stores/"+free.String()+"/state", url.Values{"state": {"suspended"}, "reason": {"unpaid invoice"}}), http.StatusOK, "Store shop-free is now suspended")
		want(t, e.client(t).get(e.hostBase("shop-free")+"/"), http.StatusForbidden, "This store is suspended")
		want(t, op.post(home+"/admin/stores/"+free.String()+"/state", url.Values{"state": {"read_only"}, "reason": {"paid, checking"}}), http.StatusOK, "now read_only")
		want(t, e.client(t).get(e.hostBase("shop-free")+"/"), http.StatusOK, "read-only at the moment")
		want(t, op.post(home+"/admin/stores/"+free.String()+"/state", url.Values{"state": {"active"}, "reason": {"all good"}}), http.StatusOK, "now active")
	})

	t.Run("browse", func(t *testing.T) {
		pro := id("shop-pro").String()
		want(t, op.get(home+"/admin/stores/"+pro), http.StatusOK, "Reason for looking")
		want(t, op.post(home+"/admin/stores/"+pro, url.Values{}), http.StatusUnprocessableEntity, "Give a reason")
		r := op.post(home+"/admin/stores/"+pro, url.Values{"reason": {"ticket 42"}})
		want(t, r, http.StatusOK, "Seller of pro", "Buyer", "owner@shop-pro.test", "Read-only view", "ticket 42")
		want(t, op.get(home+"/admin/stores/"+tenant.NewID().String()), http.StatusNotFound)
	})

	t.Run("impersonate", func(t *testing.T) {
		ent := id("shop-enterprise")
		users, err := e.st.Users(e.ctx(ent))
		if err != nil {
			t.Fatal(err)
		}
		owner := users[0]
		path := home + "/admin/stores/" + ent.String() + "/impersonate"
		want(t, op.post(path, url.Values{"user_id": {owner.ID}, "reason": {""}, "minutes": {"30"}}), http.StatusUnprocessableEntity, "Give a reason")
		want(t, op.post(path, url.Values{"user_id": {owner.ID}, "reason": {"help"}, "minutes": {"61"}}), http.StatusUnprocessableEntity, "1 to 60 minutes")
		want(t, op.post(path, url.Values{"user_id": {owner.ID}, "reason": {"help"}, "minutes": {"ten"}}), http.StatusUnprocessableEntity, "1 to 60 minutes")
		want(t, op.post(path, url.Values{"user_id": {tenant.NewID().String()}, "reason": {"help"}, "minutes": {"5"}}), http.StatusNotFound)
		r := op.post(path, url.Values{"user_id": {owner.ID}, "reason": {"fix the prices"}, "minutes": {"30"}})
		want(t, r, http.StatusOK, "Operator "+operatorEmail+" is acting as "+owner.Email+": fix the prices — ends at", "Back office")
		base := e.pathBase("shop-enterprise")
		want(t, op.get(base+"/manage/products"), http.StatusOK, "is acting as", "Seller of enterprise")
		want(t, op.get(base+"/manage/staff"), http.StatusForbidden, "signed in themself")
		want(t, op.post(base+"/manage/staff", url.Values{"email": {"spy@x.test"}, "role": {"owner"}}), http.StatusForbidden)
		want(t, op.get(base+"/manage/tokens"), http.StatusForbidden)
		want(t, op.post(base+"/manage/tokens", url.Values{"name": {"backdoor"}}), http.StatusForbidden)
		if ts, _ := e.st.APITokens(e.ctx(ent), owner); len(ts) != 0 {
			t.Fatal("a token was created under impersonation")
		}
		want(t, op.get(home+"/admin/impersonations"), http.StatusOK, "fix the prices", "shop-enterprise")
	})

	t.Run("export", func(t *testing.T) {
		pro := id("shop-pro").String()
		want(t, op.get(home+"/admin/stores/"+pro), http.StatusOK, "Reason for exporting", "Export store data")
		want(t, op.post(home+"/admin/stores/"+pro+"/export", url.Values{}), http.StatusUnprocessableEntity, "Give a reason")
		want(t, op.post(home+"/admin/stores/"+tenant.NewID().String()+"/export", url.Values{"export_reason": {"x"}}), http.StatusNotFound)
		r := op.post(home+"/admin/stores/"+pro+"/export", url.Values{"export_reason": {"data request 9"}})
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Disposition"), `attachment; filename="shop-pro-`) {
			t.Fatalf("export: %d %v", r.Status, r.Header)
		}
		m, err := archive.Verify(strings.NewReader(r.Body))
		if err != nil {
			t.Fatalf("the download is no sound archive: %v", err)
		}
		if m.Tenant.Slug != "shop-pro" || m.Rows() == 0 {
			t.Errorf("manifest %+v", m)
		}
		// Signed-out visitors get nothing.
		anon := e.client(t)
		if r := anon.post(home+"/admin/stores/"+pro+"/export", url.Values{"export_reason": {"x"}}); r.Status != http.StatusForbidden || r.Header.Get("Content-Disposition") != "" {
			t.Errorf("anonymous export: %d %v", r.Status, r.Header)
		}
	})

	t.Run("change plan", func(t *testing.T) {
		free := id("shop-free").String()
		page := home + "/admin/stores/" + free
		want(t, op.get(page), http.StatusOK, "Change plan and move", "New plan")
		want(t, op.post(page+"/plan", url.Values{"plan": {"pro"}}), http.StatusUnprocessableEntity, "Give a reason")
		want(t, op.post(page+"/plan", url.Values{"plan": {"gold"}, "plan_reason": {"x"}}), http.StatusUnprocessableEntity, "Choose free, pro or enterprise")
		want(t, op.post(page+"/plan", url.Values{"plan": {"free"}, "plan_reason": {"x"}}), http.StatusUnprocessableEntity, "on this plan already")
		want(t, op.post(page+"/plan", url.Values{"plan": {"pro"}, "plan_reason": {"upgraded"}}), http.StatusOK, "is moving to the pro plan")
		e.ws.cfg.Platform.WaitMoves()
		want(t, op.get(page), http.StatusOK, "pro plan · schema", "Last moved from row to schema", "requests paused")
		// It kept its data, and sells at its new placement.
		want(t, e.client(t).get(e.hostBase("shop-free")+"/"), http.StatusOK, "Seller of free")
	})

	t.Run("report", func(t *testing.T) {
		r := op.get(home + "/admin/report")
		want(t, r, http.StatusOK, "Run report")
		want(t, op.get(home+"/admin/report?from=yesterday&to=2026-01-01"), http.StatusBadRequest, "Enter a date like")
		want(t, op.get(home+"/admin/report?from=2026-02-01&to=2026-01-01"), http.StatusBadRequest, "before the start date")
		day := time.Now().UTC().Format("2006-01-02")
		r = op.get(home + "/admin/report?from=" + day + "&to=" + day)
		want(t, r, http.StatusOK, "The free shop", "The enterprise shop", "6.00 EUR", "Seller of pro")
	})

	t.Run("delete", func(t *testing.T) {
		pro := id("shop-pro").String()
		page := home + "/admin/stores/" + pro
		want(t, op.get(page), http.StatusOK, "Delete store", "Keep for days")
		want(t, op.post(page+"/delete", url.Values{"days": {"7"}}), http.StatusUnprocessableEntity, "Give a reason")
		want(t, op.post(page+"/delete", url.Values{"delete_reason": {"closing"}, "days": {"100"}}), http.StatusUnprocessableEntity, "Enter 0 to 90 days")
		want(t, op.post(page+"/purge", url.Values{"purge_reason": {"now"}}), http.StatusConflict, "delete it first")
		want(t, op.post(page+"/delete", url.Values{"delete_reason": {"closing"}, "days": {"7"}}), http.StatusOK, "can be restored for 7 days")
		want(t, op.get(page), http.StatusOK, "This store is deleted", "purged after", "Restore store", "Purge now")
		if r := e.client(t).get(e.pathBase("shop-pro") + "/"); r.Status == http.StatusOK {
			t.Errorf("a deleted store's storefront answers %d", r.Status)
		}
		want(t, op.post(page+"/restore", url.Values{"restore_reason": {"came back"}}), http.StatusOK, "is restored")
		want(t, e.client(t).get(e.pathBase("shop-pro")+"/"), http.StatusOK)
		want(t, op.post(page+"/delete", url.Values{"delete_reason": {"for good"}, "days": {"0"}}), http.StatusOK, "deleted and purged")
		want(t, op.get(page), http.StatusNotFound)
	})

	t.Run("operator sign-out", func(t *testing.T) {
		want(t, op.post(home+"/admin/logout", nil), http.StatusOK, "Operator sign-in")
		want(t, op.get(home+"/admin/report"), http.StatusOK, "Operator sign-in")
	})

	t.Run("endpoints", func(t *testing.T) {
		c := e.client(t)
		want(t, c.get(home+"/api/v1/openapi.json"), http.StatusOK, `"openapi"`)
		want(t, c.get(home+"/metrics"), http.StatusOK, "go_goroutines")
		want(t, c.get(home+"/healthz"), http.StatusOK, "ok")
	})

	t.Run("sign-up rate limit", func(t *testing.T) {
		e.ws.signupLimit = newLimiter(rate.Every(time.Hour), 1)
		defer func() { e.ws.signupLimit = newLimiter(rate.Inf, 1) }()
		c := e.client(t)
		c.post(home+"/", url.Values{"plan": {"free"}})
		want(t, c.post(home+"/", url.Values{"plan": {"free"}}), http.StatusTooManyRequests, "Too many attempts")
	})
}
