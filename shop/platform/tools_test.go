package platform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/archive"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/move"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

// shop is a signed-up store of the tools test, with its owner.
type testShop struct {
	rec   StoreRecord
	owner store.User
	ctx   context.Context // carries the store's tenant
	skus  map[string]string
}

// openShop signs a store up and stocks products (sku → price in cents).
func openShop(t *testing.T, e *env, slug string, plan Plan, prices map[string]int64) *testShop {
	t.Helper()
	ctx := context.Background()
	rec, owner, err := e.p.SignUp(ctx, SignUp{Email: "owner@" + slug + ".example", Password: "owner password", StoreName: "Store " + slug, Slug: slug, Plan: plan})
	must(t, err)
	s := &testShop{rec: rec, owner: owner, ctx: landlord.WithTenant(ctx, rec.TenantID), skus: map[string]string{}}
	for sku, price := range prices {
		pr, err := e.st.CreateProduct(s.ctx, owner, store.ProductInput{SKU: sku, Title: "Title " + sku, PriceCents: price, Active: true})
		must(t, err)
		_, err = e.st.MoveStock(s.ctx, owner, pr.ID, store.MoveReceipt, 100, "")
		must(t, err)
		s.skus[sku] = pr.ID
	}
	return s
}

var orderSeq int

// order places an order of sku → quantity.
func (s *testShop) order(t *testing.T, e *env, lines map[string]int) store.Order {
	t.Helper()
	orderSeq++
	in := store.CheckoutInput{Key: fmt.Sprintf("order-key-%06d", orderSeq), Name: "Customer", Email: "c@customer.example", Address: "1 Street"}
	for sku, q := range lines {
		in.Lines = append(in.Lines, store.Line{ProductID: s.skus[sku], Quantity: q})
	}
	o, created, err := e.st.Checkout(s.ctx, in)
	must(t, err)
	if !created {
		t.Fatal("checkout found an earlier order")
	}
	return o
}

// TestOperatorTools runs the operator tools over three stores, one of each
// plan, on one installation.
func TestOperatorTools(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	p := e.p
	op, err := p.CreateOperator(ctx, "ops@platform.example", "Olga", "operator password")
	must(t, err)

	// free: A 10.00, B 2.00; two orders in the period (2200), one cancelled
	// and one from two days ago, neither counted.
	free := openShop(t, e, "free-shop", PlanFree, map[string]int64{"A": 1000, "B": 200})
	free.order(t, e, map[string]int{"A": 2})
	free.order(t, e, map[string]int{"B": 1})
	cancelled := free.order(t, e, map[string]int{"A": 1})
	_, err = e.st.Cancel(free.ctx, free.owner, cancelled.ID)
	must(t, err)
	old := free.order(t, e, map[string]int{"A": 3})
	_, err = e.super(t, "").Exec(ctx, `UPDATE shared.orders SET created_at = now() - interval '2 days' WHERE tenant_id = $1 AND id = $2`, free.rec.TenantID, old.ID)
	must(t, err)
	// pro: C 50.00 in two orders (15000); an invited user who has not
	// accepted yet.
	pro := openShop(t, e, "pro-shop", PlanPro, map[string]int64{"C": 5000})
	pro.order(t, e, map[string]int{"C": 1})
	pro.order(t, e, map[string]int{"C": 2})
	invite, err := e.st.InviteUser(pro.ctx, pro.owner, "staff@pro-shop.example", store.RoleStaff, time.Hour)
	must(t, err)
	// enterprise: D 3.00 ×5 and E 1.00 in one order (1600), and ten
	// products P01..P10 at 0.01..0.10 in another (55).
	prices := map[string]int64{"D": 300, "E": 100}
	many := map[string]int{}
	for i := 1; i <= 10; i++ {
		sku := fmt.Sprintf("P%02d", i)
		prices[sku] = int64(i)
		many[sku] = 1
	}
	ent := openShop(t, e, "enterprise-shop", PlanEnterprise, prices)
	ent.order(t, e, map[string]int{"D": 5, "E": 1})
	ent.order(t, e, many)
	// A tenant that is not a store is left out of every tool.
	_, err = e.ll.CreateTenant(ctx, provision.Request{Slug: "not-a-store", Model: tenant.ModelRow})
	must(t, err)
	shops := []*testShop{ent, free, pro} // by slug

	accessRows := func(t *testing.T, id tenant.ID, action string) []string {
		t.Helper()
		rows, err := e.ll.Provisioner().Admin().Query(ctx, `SELECT detail || '|' || reason FROM shop.admin_access
			WHERE operator_id = $1 AND tenant_id = $2 AND action = $3 ORDER BY id`, op.ID, id, action)
		must(t, err)
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			must(t, rows.Scan(&s))
			out = append(out, s)
		}
		must(t, rows.Err())
		return out
	}

	t.Run("stores", func(t *testing.T) {
		// The stores' traffic so far, as every process writes it.
		must(t, e.ll.FlushTenantStats(ctx))
		infos, err := p.Stores(ctx, op)
		must(t, err)
		for _, in := range infos {
			if in.Traffic == nil || in.Traffic.Calls == 0 || in.Traffic.Tenant != in.TenantID {
				t.Errorf("%s: traffic %+v, want the calls its fixture made", in.Slug, in.Traffic)
			}
		}
		want := []struct {
			slug                    string
			model                   tenant.Model
			products, orders, users int64
		}{
			{"enterprise-shop", tenant.ModelDatabase, 12, 2, 1},
			{"free-shop", tenant.ModelRow, 2, 4, 1},
			{"pro-shop", tenant.ModelSchema, 1, 2, 2},
		}
		if len(infos) != len(want) {
			t.Fatalf("%d stores, want %d: %+v", len(infos), len(want), infos)
		}
		for i, w := range want {
			in := infos[i]
			if in.Slug != w.slug || in.Tenant.Model != w.model || in.Tenant.ID != in.TenantID || in.Tenant.State != tenant.StateActive ||
				in.Products != w.products || in.Orders != w.orders || in.Users != w.users || in.Err != "" {
				t.Errorf("store %d: %+v, want %+v", i, in, w)
			}
			if in.SizeBytes <= 0 {
				t.Errorf("%s: size %d", in.Slug, in.SizeBytes)
			}
		}
		// A database holds more than a schema, which holds more than a
		// few rows.
		if !(infos[0].SizeBytes > infos[2].SizeBytes && infos[2].SizeBytes > infos[1].SizeBytes) {
			t.Errorf("sizes: database %d, schema %d, rows %d", infos[0].SizeBytes, infos[2].SizeBytes, infos[1].SizeBytes)
		}
		if _, err := p.Stores(ctx, Operator{}); err == nil {
			t.Error("Stores without an operator")
		}
		// One store, read from it alone: what the list says of it.
		for _, in := range infos {
			one, err := p.Store(ctx, op, in.TenantID)
			in.Traffic = nil
			if err != nil || one != in {
				t.Errorf("Store(%s) = %+v, %v; want %+v", in.Slug, one, err, in)
			}
		}
		if _, err := p.Store(ctx, op, tenant.NewID()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Store of an unknown id: %v, want store.ErrNotFound", err)
		}
		if _, err := p.Store(ctx, Operator{}, infos[0].TenantID); err == nil {
			t.Error("Store without an operator")
		}
	})

	t.Run("set state", func(t *testing.T) {
		if _, err := p.SetState(ctx, op, pro.rec.TenantID, tenant.StateSuspended, " "); !errors.Is(err, landlord.ErrNoReason) {
			t.Fatalf("no reason: %v", err)
		}
		tn, err := p.SetState(ctx, op, pro.rec.TenantID, tenant.StateSuspended, "unpaid invoice")
		must(t, err)
		if tn.State != tenant.StateSuspended {
			t.Fatalf("state %s, want suspended", tn.State)
		}
		if got, err := e.ll.Tenant(ctx, pro.rec.TenantID); err != nil || got.State != tenant.StateSuspended {
			t.Fatalf("directory says %s, %v", got.State, err)
		}
		// The store's own traffic is refused; the operators still see it.
		if _, err := e.st.Products(pro.ctx, store.ProductFilter{}); !errors.Is(err, tenant.ErrSuspended) {
			t.Fatalf("suspended store's traffic: %v, want tenant.ErrSuspended", err)
		}
		infos, err := p.Stores(ctx, op)
		must(t, err)
		if in := infos[2]; in.Tenant.State != tenant.StateSuspended || in.Products != 1 || in.Err != "" {
			t.Fatalf("suspended store listed as %+v", in)
		}
		if got := accessRows(t, pro.rec.TenantID, "set_state"); len(got) != 1 || got[0] != "suspended|unpaid invoice" {
			t.Fatalf("admin_access rows %q", got)
		}
		if _, err := p.SetState(ctx, op, pro.rec.TenantID, tenant.StateDeleting, "no"); err == nil {
			t.Fatal("state deleting set by hand")
		}
	})

	t.Run("browse", func(t *testing.T) {
		// The suspended pro store and the others.
		for _, s := range shops {
			bctx, svc, err := p.Browse(ctx, op, s.rec.TenantID, "customer ticket 42")
			must(t, err)
			if id, ok := landlord.TenantFrom(bctx); !ok || id != s.rec.TenantID {
				t.Fatalf("%s: the context carries %v", s.rec.Slug, id)
			}
			page, err := svc.Products(bctx, store.ProductFilter{PerPage: 100})
			must(t, err)
			if page.Total != len(s.skus) {
				t.Fatalf("%s: browsing sees %d products, want %d", s.rec.Slug, page.Total, len(s.skus))
			}
			if _, err := svc.Orders(bctx, store.OrderFilter{}); err != nil {
				t.Fatalf("%s: orders: %v", s.rec.Slug, err)
			}
			if u, err := svc.User(bctx, s.owner.ID); err != nil || u.ID != s.owner.ID {
				t.Fatalf("%s: user: %v", s.rec.Slug, err)
			}
			// Writes, in single statements and in transactions, are
			// refused by the database.
			refused := func(what string, err error) {
				t.Helper()
				var pgErr *pgconn.PgError
				if !errors.Is(err, store.ErrReadOnly) && !(errors.As(err, &pgErr) && pgErr.Code == "25006") {
					t.Errorf("%s: %s through Browse: %v, want a read-only refusal", s.rec.Slug, what, err)
				}
			}
			_, err = svc.CreateProduct(bctx, s.owner, store.ProductInput{SKU: "NEW", Title: "New", PriceCents: 1, Active: true})
			refused("create product", err)
			for _, id := range s.skus {
				_, err = svc.MoveStock(bctx, s.owner, id, store.MoveAdjustment, -1, "")
				refused("move stock", err)
				break
			}
			_, _, err = svc.Checkout(bctx, store.CheckoutInput{Key: "browse-key-1", Name: "x", Email: "x@y.example", Address: "x",
				Lines: []store.Line{{ProductID: s.owner.ID, Quantity: 1}}})
			if err == nil {
				t.Errorf("%s: checkout through Browse succeeded", s.rec.Slug)
			}
			_, err = svc.Notify(bctx, "note", "written while browsing")
			refused("notify", err)
			if got := accessRows(t, s.rec.TenantID, "browse"); len(got) != 1 || got[0] != "|customer ticket 42" {
				t.Fatalf("%s: admin_access rows %q", s.rec.Slug, got)
			}
			// Browsing holds no connection once its calls returned: a
			// list read to its end ends its read-only transaction.
			if n := e.ll.Stats().Pool.Servers[0].Conns.InUse; n != 0 {
				t.Fatalf("%s: %d tenant connections still in use after browsing", s.rec.Slug, n)
			}
		}
		infos, err := p.Stores(ctx, op)
		must(t, err)
		for i, n := range []int64{12, 2, 1} {
			if infos[i].Products != n {
				t.Fatalf("%s has %d products after browsing, want %d", infos[i].Slug, infos[i].Products, n)
			}
		}
		if _, _, err := p.Browse(ctx, op, free.rec.TenantID, ""); !errors.Is(err, landlord.ErrNoReason) {
			t.Fatalf("browse without a reason: %v", err)
		}
		if _, _, err := p.Browse(ctx, op, tenant.NewID(), "x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("browse an unknown store: %v", err)
		}
	})

	t.Run("impersonate", func(t *testing.T) {
		token, err := p.Impersonate(ctx, op, free.rec.TenantID, free.owner.ID, "reproduce a checkout bug", 30*time.Minute)
		must(t, err)
		sess, err := e.st.SessionOf(free.ctx, token)
		must(t, err)
		if sess.User.ID != free.owner.ID || sess.ImpersonatedBy != op.Email || sess.Reason != "reproduce a checkout bug" {
			t.Fatalf("session %+v", sess)
		}
		ims, err := p.Impersonations(ctx, 10)
		must(t, err)
		if len(ims) != 1 {
			t.Fatalf("%d impersonations, want 1", len(ims))
		}
		im := ims[0]
		if im.Operator != op.Email || im.TenantID != free.rec.TenantID || im.Slug != "free-shop" || im.UserID != free.owner.ID ||
			im.Reason != "reproduce a checkout bug" || im.ExpiresAt.Sub(im.StartedAt) != 30*time.Minute {
			t.Fatalf("impersonation %+v", im)
		}
		// Refusals write nothing.
		for _, c := range []struct {
			name   string
			id     tenant.ID
			user   string
			reason string
			ttl    time.Duration
			want   error
		}{
			{"no reason", free.rec.TenantID, free.owner.ID, "  ", time.Minute, landlord.ErrNoReason},
			{"ttl over an hour", free.rec.TenantID, free.owner.ID, "x", time.Hour + time.Second, nil},
			{"no ttl", free.rec.TenantID, free.owner.ID, "x", 0, nil},
			{"unknown user", free.rec.TenantID, "00000000-0000-4000-8000-000000000000", "x", time.Minute, store.ErrNotFound},
			{"not a user id", free.rec.TenantID, "owner'; --", "x", time.Minute, store.ErrNotFound},
			{"another store's user", free.rec.TenantID, pro.owner.ID, "x", time.Minute, store.ErrNotFound},
			{"unknown store", tenant.NewID(), free.owner.ID, "x", time.Minute, store.ErrNotFound},
			{"invited user", pro.rec.TenantID, invite.User.ID, "x", time.Minute, store.ErrConflict},
		} {
			_, err := p.Impersonate(ctx, op, c.id, c.user, c.reason, c.ttl)
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Errorf("%s: %v, want %v", c.name, err, c.want)
			}
		}
		if _, err := p.Impersonate(ctx, Operator{}, free.rec.TenantID, free.owner.ID, "x", time.Minute); err == nil {
			t.Error("impersonation without an operator")
		}
		if ims, err := p.Impersonations(ctx, 0); err != nil || len(ims) != 1 {
			t.Fatalf("after refusals: %d impersonations, %v; want 1", len(ims), err)
		}
		// The suspended pro store's owner can be impersonated too.
		_, err = p.Impersonate(ctx, op, pro.rec.TenantID, pro.owner.ID, "check the suspension notice", time.Minute)
		must(t, err)
		ims, err = p.Impersonations(ctx, 1)
		must(t, err)
		if len(ims) != 1 || ims[0].Slug != "pro-shop" {
			t.Fatalf("newest impersonation %+v, want pro-shop's", ims)
		}
	})

	t.Run("export", func(t *testing.T) {
		if _, err := p.Export(ctx, op, ent.rec.TenantID, " ", io.Discard); !errors.Is(err, landlord.ErrNoReason) {
			t.Fatalf("no reason: %v", err)
		}
		if _, err := p.Export(ctx, op, tenant.NewID(), "ticket 7", io.Discard); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown store: %v", err)
		}
		var buf bytes.Buffer
		m, err := p.Export(ctx, op, ent.rec.TenantID, "customer asked for their data", &buf)
		must(t, err)
		if got := accessRows(t, ent.rec.TenantID, "export"); len(got) != 1 || got[0] != "|customer asked for their data" {
			t.Fatalf("admin_access rows %q", got)
		}
		if m.Tenant.ID != ent.rec.TenantID || m.Rows() == 0 {
			t.Fatalf("manifest %+v", m)
		}
		// The archive loads as a store of its own in another model: the
		// same products with the same stock, which the stock ledger's
		// trigger does not count twice.
		admin, err := e.ll.Admin(ctx, "export test")
		must(t, err)
		cp, _, err := admin.ImportTenant(ctx, bytes.NewReader(buf.Bytes()), archive.ImportOptions{Slug: "enterprise-copy", Model: tenant.ModelSchema})
		must(t, err)
		stock := func(ctx context.Context) map[string]int64 {
			t.Helper()
			page, err := e.st.Products(ctx, store.ProductFilter{PerPage: 100})
			must(t, err)
			out := map[string]int64{}
			for _, pr := range page.Items {
				out[pr.SKU] = int64(pr.Stock)
			}
			return out
		}
		want, got := stock(ent.ctx), stock(landlord.WithTenant(ctx, cp.ID))
		if len(want) != 12 || !maps.Equal(want, got) {
			t.Errorf("stock of the copy %v, of the store %v", got, want)
		}
		must(t, e.ll.DeleteTenant(ctx, cp.ID)) // not a store: the report must not count it
	})

	t.Run("change plan", func(t *testing.T) {
		id := pro.rec.TenantID
		if err := p.ChangePlan(ctx, op, id, PlanEnterprise, " "); !errors.Is(err, landlord.ErrNoReason) {
			t.Fatalf("no reason: %v", err)
		}
		if err := p.ChangePlan(ctx, op, id, PlanPro, "x"); !errors.Is(err, ErrSamePlan) {
			t.Fatalf("the same plan: %v", err)
		}
		if err := p.ChangePlan(ctx, op, id, "gold", "x"); err == nil {
			t.Fatal("an unknown plan was taken")
		}
		if err := p.ChangePlan(ctx, op, tenant.NewID(), PlanFree, "x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown store: %v", err)
		}
		// Suspended (set state, above): not moved.
		if err := p.ChangePlan(ctx, op, id, PlanEnterprise, "x"); !errors.Is(err, tenant.ErrSuspended) {
			t.Fatalf("a suspended store: %v", err)
		}
		_, err := p.SetState(ctx, op, id, tenant.StateActive, "paid")
		must(t, err)
		orders := func() int64 {
			t.Helper()
			page, err := e.st.Orders(pro.ctx, store.OrderFilter{PerPage: 100})
			must(t, err)
			return int64(page.Total)
		}
		before := orders()
		must(t, p.ChangePlan(ctx, op, id, PlanEnterprise, "grew out of its schema"))
		p.WaitMoves()
		m, ok, err := p.MoveOf(ctx, id)
		must(t, err)
		if !ok || m.Phase != "done" || m.From.Model != tenant.ModelSchema || m.To.Model != tenant.ModelDatabase {
			t.Fatalf("the move: %v %+v", ok, m)
		}
		got, err := e.ll.Tenant(ctx, id)
		must(t, err)
		if got.Model != tenant.ModelDatabase {
			t.Errorf("after the change the store is %s", got.Model)
		}
		infos, err := p.Stores(ctx, op)
		must(t, err)
		for _, in := range infos {
			if in.TenantID == id && in.Plan != PlanEnterprise {
				t.Errorf("the store's plan is %s", in.Plan)
			}
		}
		if after := orders(); after != before || before == 0 {
			t.Errorf("orders before the move %d, after %d", before, after)
		}
		if got := accessRows(t, id, "change_plan"); len(got) != 1 || got[0] != "enterprise|grew out of its schema" {
			t.Errorf("admin_access rows %q", got)
		}
	})

	// pro-shop is on the enterprise plan now (change plan, above).
	t.Run("report", func(t *testing.T) {
		now := time.Now()
		var calls [][2]int
		rep, err := p.Report(ctx, op, now.Add(-time.Hour), now.Add(time.Hour), func(done, total int) { calls = append(calls, [2]int{done, total}) })
		must(t, err)
		if len(rep.Failed) != 0 {
			t.Fatalf("failed: %q", rep.Failed)
		}
		want := []StoreSales{
			{TenantID: ent.rec.TenantID, Slug: "enterprise-shop", Name: "Store enterprise-shop", Model: tenant.ModelDatabase, Orders: 2, RevenueCents: 1655, Currency: "EUR"},
			{TenantID: free.rec.TenantID, Slug: "free-shop", Name: "Store free-shop", Model: tenant.ModelRow, Orders: 2, RevenueCents: 2200, Currency: "EUR"},
			{TenantID: pro.rec.TenantID, Slug: "pro-shop", Name: "Store pro-shop", Model: tenant.ModelDatabase, Orders: 2, RevenueCents: 15000, Currency: "EUR"},
		}
		if fmt.Sprint(rep.Stores) != fmt.Sprint(want) {
			t.Fatalf("stores\n got %+v\nwant %+v", rep.Stores, want)
		}
		var top []string
		for _, ps := range rep.TopProducts {
			top = append(top, fmt.Sprintf("%s/%s:%d:%d", ps.Slug, ps.SKU, ps.Units, ps.RevenueCents))
			if ps.Title != "Title "+ps.SKU {
				t.Errorf("%s: title %q", ps.SKU, ps.Title)
			}
		}
		wantTop := "pro-shop/C:3:15000 free-shop/A:2:2000 enterprise-shop/D:5:1500 free-shop/B:1:200 enterprise-shop/E:1:100 " +
			"enterprise-shop/P10:1:10 enterprise-shop/P09:1:9 enterprise-shop/P08:1:8 enterprise-shop/P07:1:7 enterprise-shop/P06:1:6"
		if strings.Join(top, " ") != wantTop {
			t.Fatalf("top products\n got %s\nwant %s", strings.Join(top, " "), wantTop)
		}
		// Four tenants (the three stores and the tenant that is not one).
		if len(calls) != 4 || calls[len(calls)-1] != [2]int{4, 4} {
			t.Fatalf("progress calls %v, want 4 ending at 4 of 4", calls)
		}
		// Two days ago: only the order moved there.
		rep, err = p.Report(ctx, op, now.Add(-49*time.Hour), now.Add(-47*time.Hour), nil)
		must(t, err)
		for _, s := range rep.Stores {
			want := StoreSales{}
			if s.Slug == "free-shop" {
				want = StoreSales{Orders: 1, RevenueCents: 3000, Currency: "EUR"}
			}
			if s.Orders != want.Orders || s.RevenueCents != want.RevenueCents || s.Currency != want.Currency {
				t.Errorf("two days ago, %s: %+v, want %+v", s.Slug, s, want)
			}
		}
		if len(rep.TopProducts) != 1 || rep.TopProducts[0].SKU != "A" || rep.TopProducts[0].Units != 3 {
			t.Errorf("two days ago: top %+v, want free-shop's A ×3", rep.TopProducts)
		}
		if _, err := p.Report(ctx, op, now, now, nil); err == nil {
			t.Error("an empty period accepted")
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := p.Report(cctx, op, now.Add(-time.Hour), now, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled report: %v", err)
		}
	})

	// After the report, which counts every store: stores of each model
	// deleted with a grace period, restored, deleted again and purged; the
	// operators' records outlive them.
	t.Run("delete", func(t *testing.T) {
		for _, plan := range []Plan{PlanFree, PlanPro, PlanEnterprise} {
			s := openShop(t, e, "gone-"+string(plan), plan, map[string]int64{"G": 100})
			id := s.rec.TenantID
			if err := p.DeleteStore(ctx, op, id, " ", time.Hour); !errors.Is(err, landlord.ErrNoReason) {
				t.Fatalf("no reason: %v", err)
			}
			if err := p.DeleteStore(ctx, op, id, "closing", 100*24*time.Hour); err == nil {
				t.Fatal("a grace of 100 days accepted")
			}
			if _, err := p.PurgeStore(ctx, op, id, "now"); !errors.Is(err, ErrNotDeleted) {
				t.Fatalf("purge of a live store: %v", err)
			}
			must(t, p.DeleteStore(ctx, op, id, "closing", 24*time.Hour))
			if _, err := e.st.Products(s.ctx, store.ProductFilter{}); err == nil {
				t.Fatalf("%s: a deleted store still serves", plan)
			}
			at, ok, err := p.PurgeAfter(ctx, id)
			must(t, err)
			if !ok || time.Until(at) < 23*time.Hour {
				t.Errorf("%s: purge after %v (%v), want in a day", plan, at, ok)
			}
			tn, err := p.RestoreStore(ctx, op, id, "customer came back")
			must(t, err)
			if tn.State != tenant.StateActive {
				t.Fatalf("restored to %s", tn.State)
			}
			if page, err := e.st.Products(s.ctx, store.ProductFilter{}); err != nil || page.Total != 1 {
				t.Fatalf("%s after the restore: %v %v", plan, page.Total, err)
			}
			must(t, p.DeleteStore(ctx, op, id, "closing for good", time.Hour))
			rep, err := p.PurgeStore(ctx, op, id, "data request")
			must(t, err)
			if !rep.Clean() {
				t.Errorf("%s: the purge left something", plan)
			}
			if _, err := e.ll.Tenant(ctx, id); !errors.Is(err, tenant.ErrNotFound) {
				t.Errorf("%s: the tenant is still in the directory: %v", plan, err)
			}
			var actions string
			must(t, e.ll.Provisioner().Admin().QueryRow(ctx, `SELECT string_agg(action, ',' ORDER BY id) FROM shop.admin_access
				WHERE tenant_id = $1`, id).Scan(&actions))
			if actions != "delete,restore,delete,purge" {
				t.Errorf("%s: the operators' records after the purge: %q", plan, actions)
			}
		}
	})
}

// TestResumePlanChanges: the plan changes of a process that stopped are
// taken over. A move that stopped before its fence is undone, one whose
// mover is alive is left alone, and a store moved without its plan
// recorded gets the plan of the model it is in.
func TestResumePlanChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	p := e.p
	admin, err := e.ll.Admin(ctx, "plan change test")
	must(t, err)
	prov := e.ll.Provisioner()

	// Moved by an operator with the landlord command: the shop never
	// recorded the plan.
	byHand := openShop(t, e, "moved-by-hand", PlanFree, map[string]int64{"A": 100})
	_, err = admin.MoveTenant(ctx, byHand.rec.TenantID, tenant.ModelSchema, "", move.Config{Settle: time.Millisecond})
	must(t, err)
	// stopped records a move to a database that no process runs, as a
	// mover that died right after it began leaves it.
	stopped := func(s *testShop) {
		t.Helper()
		tn, err := e.ll.Tenant(ctx, s.rec.TenantID)
		must(t, err)
		dst, err := prov.Placement(ctx, tn, tenant.ModelDatabase, tn.Server)
		must(t, err)
		_, err = prov.Directory().StartMove(ctx, directory.Move{Tenant: tn.ID, From: tn, To: dst})
		must(t, err)
	}
	dead := openShop(t, e, "mover-died", PlanPro, nil)
	stopped(dead)
	alive := openShop(t, e, "mover-alive", PlanPro, nil)
	stopped(alive)
	release, held := make(chan struct{}), make(chan error, 1)
	locked := make(chan struct{})
	go func() {
		held <- prov.WithTenantLock(ctx, alive.rec.TenantID, func(*pgx.Conn) error {
			close(locked)
			<-release
			return nil
		})
	}()
	<-locked
	for _, s := range []*testShop{dead, alive} {
		if held, err := p.tenantLocked(ctx, s.rec.TenantID); err != nil || held != (s == alive) {
			t.Fatalf("%s: tenant lock seen held %v (%v), want %v", s.rec.Slug, held, err, s == alive)
		}
	}

	changed, err := p.ResumePlanChanges(ctx)
	close(release)
	must(t, <-held)
	must(t, err)
	if len(changed) != 1 || changed[0] != byHand.rec.TenantID {
		t.Errorf("plans recorded for %v, want only %s", changed, byHand.rec.TenantID)
	}
	plan := func(s *testShop) Plan {
		t.Helper()
		rec, err := p.StoreBySlug(ctx, s.rec.Slug)
		must(t, err)
		return rec.Plan
	}
	if got := plan(byHand); got != PlanPro {
		t.Errorf("the store moved to a schema by hand is on plan %s, want pro", got)
	}
	for _, s := range []*testShop{dead, alive} {
		m, unfinished, err := prov.Directory().UnfinishedMove(ctx, s.rec.TenantID)
		must(t, err)
		tn, err := e.ll.Tenant(ctx, s.rec.TenantID)
		must(t, err)
		if s == dead && unfinished {
			t.Errorf("the move whose mover died is still %s", m.Phase)
		}
		if s == alive && !unfinished {
			t.Error("the move whose mover holds the lock was taken over")
		}
		if tn.Model != tenant.ModelSchema || tn.State != tenant.StateActive || plan(s) != PlanPro {
			t.Errorf("%s is %s, %s on plan %s; want schema, active, pro", s.rec.Slug, tn.Model, tn.State, plan(s))
		}
	}
	// Its mover gone too now, the second move is undone by the next call;
	// nothing else changes.
	changed, err = p.ResumePlanChanges(ctx)
	must(t, err)
	if _, unfinished, _ := prov.Directory().UnfinishedMove(ctx, alive.rec.TenantID); unfinished || len(changed) != 0 {
		t.Errorf("second call: move unfinished %v, plans recorded %v", unfinished, changed)
	}
}
