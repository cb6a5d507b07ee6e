package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/landlordtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
	"golang.org/x/crypto/bcrypt"
)

var models = []tenant.Model{tenant.ModelRow, tenant.ModelSchema, tenant.ModelDatabase}

const ownerPassword = "correct horse battery"

// testStore is one store of the test installation with its service, an
// owner, and the hooks' records.
type testStore struct {
	name  string
	model tenant.Model
	id    tenant.ID
	ctx   context.Context
	db    *landlord.Handle
	svc   *Service
	owner User

	outboxCalls   atomic.Int64
	outboxVisible atomic.Int64 // outbox rows another transaction saw in the last OnOutbox
	changedCalls  atomic.Int64
	movesVisible  atomic.Int64 // ledger rows another transaction saw in the last OnProductsChanged

	// What the isolation cases use from the other store.
	session   string
	invite    string
	apiSecret string
	apiToken  APIToken
	product   Product
	order     Order
}

// options returns the options of the store's services: the cheapest bcrypt
// cost and hooks that record what a separate transaction sees when they
// are called.
func (st *testStore) options(now func() time.Time) Options {
	return Options{
		PasswordCost: bcrypt.MinCost,
		Now:          now,
		OnOutbox: func(ctx context.Context) {
			var n int64
			if err := st.db.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err == nil {
				st.outboxVisible.Store(n)
			}
			st.outboxCalls.Add(1)
		},
		OnProductsChanged: func(ctx context.Context) {
			var n int64
			if err := st.db.QueryRow(ctx, `SELECT count(*) FROM stock_movements`).Scan(&n); err == nil {
				st.movesVisible.Store(n)
			}
			st.changedCalls.Add(1)
		},
	}
}

// withClock returns a service of the store whose clock is *now.
func (st *testStore) withClock(now *atomic.Pointer[time.Time]) *Service {
	return New(st.db, st.options(func() time.Time { return *now.Load() }))
}

// newStore creates a tenant of model with an owner.
func newStore(t *testing.T, ll *landlord.Landlord, slug string, model tenant.Model) *testStore {
	t.Helper()
	tn, err := ll.CreateTenant(context.Background(), provision.Request{Slug: slug, Model: model})
	if err != nil {
		t.Fatalf("create tenant %s: %v", slug, err)
	}
	st := &testStore{name: slug, model: model, id: tn.ID, db: ll.Handle(),
		ctx: landlord.WithTenant(context.Background(), tn.ID)}
	st.svc = New(st.db, st.options(nil))
	st.owner = must(st.svc.CreateOwner(st.ctx, "Owner@"+slug+".example", "Owner of "+slug, ownerPassword))(t)
	return st
}

// fill gives st what the isolation cases look for in another store: a
// session, a pending invitation, an API token, a product in stock and an
// order.
func (st *testStore) fill(t *testing.T) {
	t.Helper()
	st.session = must(st.svc.NewSession(st.ctx, st.owner.ID, time.Hour, "", ""))(t)
	st.invite = must(st.svc.InviteUser(st.ctx, st.owner, "invited@"+st.name+".example", RoleStaff, time.Hour))(t).Token
	var err error
	st.apiSecret, st.apiToken, err = st.svc.CreateAPIToken(st.ctx, st.owner, "fixture")
	if err != nil {
		t.Fatal(err)
	}
	st.product = must(st.svc.CreateProduct(st.ctx, st.owner, ProductInput{SKU: "FIX-1", Title: "Fixture", PriceCents: 100, Active: true}))(t)
	must(st.svc.MoveStock(st.ctx, st.owner, st.product.ID, MoveReceipt, 100, ""))(t)
	o, _, err := st.svc.Checkout(st.ctx, CheckoutInput{Key: "fixture-order", Name: "Ada", Email: "ada@example.com",
		Address: "1 Road", Lines: []Line{{ProductID: st.product.ID, Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	st.order = o
}

// installation is the test installation with stores of every model.
type installation struct {
	ll     *landlord.Landlord
	stores map[tenant.Model][]*testStore // two per model, filled
}

// openInstallation opens an installation for t (closed when t ends) with
// two filled stores of every model.
func openInstallation(t *testing.T) *installation {
	t.Helper()
	ll := landlordtest.PgtestKitGlobal(srv, Migrations(), Global(), nil).Open(t, landlord.Config{})
	t.Cleanup(ll.Close)
	in := &installation{ll: ll, stores: map[tenant.Model][]*testStore{}}
	for _, m := range models {
		for _, x := range []string{"a", "b"} {
			st := newStore(t, ll, fmt.Sprintf("%s-%s", m, x), m)
			st.fill(t)
			in.stores[m] = append(in.stores[m], st)
		}
	}
	return in
}

// must returns a function that fails t on err and returns v:
// must(call(...))(t).
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// count runs a count query as the store.
func (st *testStore) count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := st.db.QueryRow(st.ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// state is a summary of everything the store holds, to show that a refused
// input wrote nothing.
func (st *testStore) state(t testing.TB) string {
	t.Helper()
	var s string
	err := st.db.QueryRow(st.ctx, `SELECT concat_ws(' ',
		(SELECT count(*) FROM users), (SELECT string_agg(id || role || name || (password_hash IS NULL), ',' ORDER BY id) FROM users),
		(SELECT count(*) FROM invitations), (SELECT count(*) FROM sessions), (SELECT count(*) FROM api_tokens),
		(SELECT string_agg(id || sku || title || price_cents || active || low_stock_threshold, ',' ORDER BY id) FROM products),
		(SELECT string_agg(product_id || ':' || on_hand, ',' ORDER BY product_id) FROM stock_levels),
		(SELECT count(*) FROM stock_movements), (SELECT string_agg(id || status, ',' ORDER BY id) FROM orders),
		(SELECT count(*) FROM order_lines), (SELECT count(*) FROM outbox), (SELECT count(*) FROM notifications),
		(SELECT string_agg(name || value, ',') FROM counters))`).Scan(&s)
	if err != nil {
		t.Fatalf("state: %v", err)
	}
	return s
}

// unchanged fails t when the store's state differs from before.
func (st *testStore) unchanged(t testing.TB, before string) {
	t.Helper()
	if after := st.state(t); after != before {
		t.Errorf("a refused call changed the store:\nbefore %s\nafter  %s", before, after)
	}
}

// wantField fails t unless err is a *ValidationError naming field.
func wantField(t testing.TB, err error, field string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v, want a ValidationError on %q", err, field)
	}
	if _, ok := ve.Fields[field]; !ok {
		t.Fatalf("ValidationError %v does not name %q", ve, field)
	}
}

// wantErr fails t unless err is target.
func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
}
