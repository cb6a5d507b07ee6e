package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/landlordtest"
	"github.com/landlordhq/landlord/tenant"
)

// testIsolation uses every store's ids and secrets in every other store's
// context, for every pair of models (and two stores of the same model):
// each is ErrNotFound, never data, and neither store changes.
func testIsolation(t *testing.T, in *installation) {
	var all []*testStore
	for _, m := range models {
		all = append(all, in.stores[m]...)
	}
	for _, a := range all {
		for _, b := range all {
			if a == b {
				continue
			}
			t.Run(a.name+"/"+b.name, func(t *testing.T) {
				ctx, svc := a.ctx, a.svc
				beforeA, beforeB := a.state(t), b.state(t)
				notFound := map[string]error{}
				call := func(name string, err error) { notFound[name] = err }
				_, err := svc.Product(ctx, b.product.ID)
				call("Product", err)
				_, err = svc.UpdateProduct(ctx, a.owner, b.product.ID, ProductInput{SKU: "X", Title: "X", Active: true})
				call("UpdateProduct", err)
				_, err = svc.MoveStock(ctx, a.owner, b.product.ID, MoveReceipt, 1, "")
				call("MoveStock", err)
				_, err = svc.Movements(ctx, b.product.ID, 1, 10)
				call("Movements", err)
				_, err = svc.Order(ctx, b.order.ID)
				call("Order", err)
				_, err = svc.Cancel(ctx, a.owner, b.order.ID)
				call("Cancel", err)
				_, err = svc.Fulfil(ctx, a.owner, b.order.ID)
				call("Fulfil", err)
				_, err = svc.User(ctx, b.owner.ID)
				call("User", err)
				_, err = svc.SetRole(ctx, a.owner, b.owner.ID, RoleStaff)
				call("SetRole", err)
				call("RemoveUser", svc.RemoveUser(ctx, a.owner, b.owner.ID))
				_, err = svc.NewSession(ctx, b.owner.ID, time.Hour, "", "")
				call("NewSession", err)
				_, err = svc.SessionOf(ctx, b.session)
				call("SessionOf", err)
				_, err = svc.AcceptInvite(ctx, b.invite, "Mallory", "long enough")
				call("AcceptInvite", err)
				_, err = svc.TokenUser(ctx, b.apiSecret)
				call("TokenUser", err)
				call("RevokeAPIToken", svc.RevokeAPIToken(ctx, a.owner, b.apiToken.ID))
				for name, err := range notFound {
					if !errors.Is(err, ErrNotFound) {
						t.Errorf("%s with %s's id in %s: %v, want ErrNotFound", name, b.name, a.name, err)
					}
				}
				_, _, err = svc.Checkout(ctx, buyer("cross-store-key", Line{b.product.ID, 1}))
				wantField(t, err, "lines[0].product_id")
				_, err = svc.Authenticate(ctx, b.owner.Email, ownerPassword)
				wantErr(t, err, ErrBadCredentials)
				if pg := must(svc.Products(ctx, ProductFilter{}))(t); pg.Total != len(pg.Items) || hasProduct(pg.Items, b.product.ID) {
					t.Errorf("%s's products list %s's product", a.name, b.name)
				}
				a.unchanged(t, beforeA)
				b.unchanged(t, beforeB)
			})
		}
	}
	// B's secrets still work where they belong.
	for _, st := range all {
		if s, err := st.svc.SessionOf(st.ctx, st.session); err != nil || s.User.ID != st.owner.ID {
			t.Errorf("%s: own session: %+v, %v", st.name, s, err)
		}
		if u, err := st.svc.TokenUser(st.ctx, st.apiSecret); err != nil || u.ID != st.owner.ID {
			t.Errorf("%s: own API token: %+v, %v", st.name, u, err)
		}
	}
}

func hasProduct(ps []Product, id string) bool {
	for _, p := range ps {
		if p.ID == id {
			return true
		}
	}
	return false
}

// testReadOnly turns a new filled store of model read-only: reads work,
// writes are ErrReadOnly.
func testReadOnly(t *testing.T, in *installation, m tenant.Model) {
	st := newStore(t, in.ll, "ro-"+string(m), m)
	st.fill(t)
	ctx, svc, owner := st.ctx, st.svc, st.owner
	admin, err := in.ll.Admin(context.Background(), "test: a read-only store")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SetState(context.Background(), st.id, tenant.StateReadOnly); err != nil {
		t.Fatal(err)
	}
	// Routing caches follow the state change through a notification.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		_, err := svc.Notify(ctx, "probe", fmt.Sprintf("probe %d", i))
		if errors.Is(err, ErrReadOnly) {
			break
		}
		if err != nil {
			t.Fatalf("write while turning read-only: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the store did not turn read-only within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := st.state(t)

	reads := map[string]error{}
	_, reads["Product"] = svc.Product(ctx, st.product.ID)
	_, reads["Products"] = svc.Products(ctx, ProductFilter{})
	_, reads["Movements"] = svc.Movements(ctx, st.product.ID, 1, 10)
	_, reads["Order"] = svc.Order(ctx, st.order.ID)
	_, reads["Orders"] = svc.Orders(ctx, OrderFilter{})
	_, reads["Users"] = svc.Users(ctx)
	_, reads["User"] = svc.User(ctx, owner.ID)
	_, reads["Authenticate"] = svc.Authenticate(ctx, owner.Email, ownerPassword)
	_, reads["SessionOf"] = svc.SessionOf(ctx, st.session)
	_, reads["TokenUser"] = svc.TokenUser(ctx, st.apiSecret) // cannot record the use; still signs in
	_, reads["APITokens"] = svc.APITokens(ctx, owner)
	_, reads["Notifications"] = svc.Notifications(ctx, 10)
	_, reads["SalesSummary"] = svc.SalesSummary(ctx, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	for name, err := range reads {
		if err != nil {
			t.Errorf("%s on a read-only store: %v", name, err)
		}
	}

	writes := map[string]error{}
	_, writes["CreateOwner"] = svc.CreateOwner(ctx, "new@ro.example", "New", "long enough")
	_, writes["NewSession"] = svc.NewSession(ctx, owner.ID, time.Hour, "", "")
	writes["EndSession"] = svc.EndSession(ctx, st.session)
	_, writes["InviteUser"] = svc.InviteUser(ctx, owner, "x@ro.example", RoleStaff, time.Hour)
	_, writes["AcceptInvite"] = svc.AcceptInvite(ctx, st.invite, "Name", "long enough")
	_, writes["SetRole"] = svc.SetRole(ctx, owner, owner.ID, RoleOwner)
	writes["RemoveUser"] = svc.RemoveUser(ctx, owner, owner.ID)
	_, _, writes["CreateAPIToken"] = svc.CreateAPIToken(ctx, owner, "ro")
	writes["RevokeAPIToken"] = svc.RevokeAPIToken(ctx, owner, st.apiToken.ID)
	_, writes["CreateProduct"] = svc.CreateProduct(ctx, owner, ProductInput{SKU: "RO-1", Title: "t", Active: true})
	_, writes["UpdateProduct"] = svc.UpdateProduct(ctx, owner, st.product.ID, ProductInput{SKU: "RO-1", Title: "t", Active: true})
	_, writes["MoveStock"] = svc.MoveStock(ctx, owner, st.product.ID, MoveReceipt, 1, "")
	_, _, writes["Checkout"] = svc.Checkout(ctx, buyer("read-only-order", Line{st.product.ID, 1}))
	_, writes["Cancel"] = svc.Cancel(ctx, owner, st.order.ID)
	_, writes["Fulfil"] = svc.Fulfil(ctx, owner, st.order.ID)
	_, writes["Notify"] = svc.Notify(ctx, "k", "m")
	_, writes["DrainOutbox"] = DrainOutbox(ctx, st.db, 10, func(context.Context, []OutboxEvent) error { return nil })
	for name, err := range writes {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s on a read-only store: %v, want ErrReadOnly", name, err)
		}
	}
	st.unchanged(t, before)
}

// TestConformance runs Landlord's conformance suite on the store's tables,
// each filled through the handle.
func TestConformance(t *testing.T) {
	t.Parallel()
	landlordtest.Conformance(t, landlordtest.PgtestKitGlobal(srv, Migrations(), Global(), seed))
}

// seed writes a row of the tenant in ctx to every table of the store.
func seed(ctx context.Context, q landlord.Querier) error {
	var user, product, order string
	steps := []struct {
		sql  string
		args []any
		into *string
	}{
		{`INSERT INTO users (email, name, role, password_hash) VALUES ('seed@example.com', 'Seed', 'owner', 'x') RETURNING id`, nil, &user},
		{`INSERT INTO invitations (token_hash, user_id, expires_at) VALUES ('\x01', $1, now() + interval '1 day')`, []any{&user}, nil},
		{`INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ('\x02', $1, now() + interval '1 day')`, []any{&user}, nil},
		{`INSERT INTO api_tokens (user_id, name, token_hash) VALUES ($1, 'seed', '\x03')`, []any{&user}, nil},
		{`INSERT INTO products (sku, title, price_cents) VALUES ('SEED-1', 'Seed', 100) RETURNING id`, nil, &product},
		{`INSERT INTO stock_movements (product_id, kind, quantity) VALUES ($1, 'receipt', 10)`, []any{&product}, nil},
		{`INSERT INTO counters (name, value) VALUES ('orders', 1)`, nil, nil},
		{`INSERT INTO orders (number, customer_name, customer_email, address, total_cents, currency, idempotency_key)
			VALUES (1, 'Ada', 'ada@example.com', 'Road 1', 100, 'EUR', 'seed-key-1') RETURNING id`, nil, &order},
		{`INSERT INTO order_lines (order_id, line, product_id, sku, title, quantity, price_cents)
			VALUES ($1, 1, $2, 'SEED-1', 'Seed', 1, 100)`, []any{&order, &product}, nil},
		{`INSERT INTO outbox (kind, payload) VALUES ('low_stock', '{"sku": "SEED-1"}')`, nil, nil},
		{`INSERT INTO notifications (kind, message) VALUES ('daily_summary', 'Seeded')`, nil, nil},
	}
	for _, s := range steps {
		args := make([]any, len(s.args))
		for i, a := range s.args {
			args[i] = *a.(*string)
		}
		var err error
		if s.into != nil {
			err = q.QueryRow(ctx, s.sql, args...).Scan(s.into)
		} else {
			_, err = q.Exec(ctx, s.sql, args...)
		}
		if err != nil {
			return fmt.Errorf("seed: %s: %w", s.sql, err)
		}
	}
	return nil
}
