package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStore runs every case once per model, each on a store of that model
// of one installation, then the isolation cases for every pair of stores
// and the read-only cases.
func TestStore(t *testing.T) {
	in := openInstallation(t)
	t.Run("isolation", func(t *testing.T) { testIsolation(t, in) })
	cases := []struct {
		name string
		run  func(t *testing.T, st *testStore)
	}{
		{"owner-and-sign-in", testOwnerAndSignIn},
		{"sessions", testSessions},
		{"invitations-and-roles", testInvitationsAndRoles},
		{"api-tokens", testAPITokens},
		{"products", testProducts},
		{"stock", testStock},
		{"checkout", testCheckout},
		{"checkout-concurrent-stock", testCheckoutConcurrentStock},
		{"checkout-concurrent-key", testCheckoutConcurrentKey},
		{"cancel-and-fulfil", testCancelAndFulfil},
		{"outbox", testOutbox},
		{"orders-list-and-summary", testOrdersList},
		{"notifications", testNotifications},
		{"reference-data", testReferenceData},
	}
	for _, m := range models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			st := in.stores[m][0]
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) { c.run(t, st) })
			}
		})
	}
	for _, m := range models {
		t.Run("read-only/"+string(m), func(t *testing.T) {
			t.Parallel()
			testReadOnly(t, in, m)
		})
	}
}

func testOwnerAndSignIn(t *testing.T, st *testStore) {
	ctx, svc := st.ctx, st.svc
	if st.owner.Email != "owner@"+st.name+".example" || st.owner.Role != RoleOwner || !st.owner.Active {
		t.Fatalf("owner = %+v", st.owner)
	}
	before := st.state(t)
	for _, c := range []struct{ email, name, password, field string }{
		{"not an email", "N", "password1", "email"},
		{"", "N", "password1", "email"},
		{"x@y.example", "", "password1", "name"},
		{"x@y.example", strings.Repeat("n", 201), "password1", "name"},
		{"x@y.example", "N", "short", "password"},
		{"x@y.example", "N", strings.Repeat("p", 73), "password"},
	} {
		_, err := svc.CreateOwner(ctx, c.email, c.name, c.password)
		wantField(t, err, c.field)
	}
	_, err := svc.CreateOwner(ctx, "second@owner.example", "Second", "password1")
	wantErr(t, err, ErrConflict)
	st.unchanged(t, before)

	u := must(svc.Authenticate(ctx, "  OWNER@"+strings.ToUpper(st.name)+".example ", ownerPassword))(t)
	if u.ID != st.owner.ID {
		t.Fatalf("Authenticate = %+v, want the owner", u)
	}
	_, err = svc.Authenticate(ctx, st.owner.Email, ownerPassword+"x")
	wantErr(t, err, ErrBadCredentials)
	_, err = svc.Authenticate(ctx, "nobody@"+st.name+".example", ownerPassword)
	wantErr(t, err, ErrBadCredentials)
	_, err = svc.Authenticate(ctx, "invited@"+st.name+".example", "") // pending invitation: not active
	wantErr(t, err, ErrBadCredentials)
}

func testSessions(t *testing.T, st *testStore) {
	now := time.Now()
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	svc := st.withClock(&clock)
	ctx := st.ctx

	token := must(svc.NewSession(ctx, st.owner.ID, time.Hour, "operator@platform", "ticket 42"))(t)
	if len(token) != 43 || strings.ContainsAny(token, "+/=") {
		t.Fatalf("token %q is not 32 bytes of base64url without padding", token)
	}
	if n := st.count(t, `SELECT count(*) FROM sessions WHERE token_hash = sha256(convert_to($1, 'UTF8'))`, token); n != 1 {
		t.Fatalf("%d sessions stored under the token's SHA-256, want 1", n)
	}
	if n := st.count(t, `SELECT count(*) FROM sessions WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'`, token); n != 0 {
		t.Fatal("the token is stored in clear")
	}
	s := must(svc.SessionOf(ctx, token))(t)
	if s.User.ID != st.owner.ID || s.ImpersonatedBy != "operator@platform" || s.Reason != "ticket 42" ||
		!s.ExpiresAt.Equal(now.Add(time.Hour).Truncate(time.Microsecond)) {
		t.Fatalf("SessionOf = %+v", s)
	}
	later := now.Add(time.Hour + time.Second)
	clock.Store(&later)
	_, err := svc.SessionOf(ctx, token)
	wantErr(t, err, ErrNotFound)
	clock.Store(&now)
	must(svc.SessionOf(ctx, token))(t)

	must(0, svc.EndSession(ctx, token))(t)
	_, err = svc.SessionOf(ctx, token)
	wantErr(t, err, ErrNotFound)
	must(0, svc.EndSession(ctx, token))(t) // twice is no error

	before := st.state(t)
	for _, id := range []string{"", "nope", "00000000-0000-0000-0000-000000000000"} {
		_, err = svc.NewSession(ctx, id, time.Hour, "", "")
		wantErr(t, err, ErrNotFound)
	}
	_, err = svc.NewSession(ctx, st.owner.ID, time.Hour, "", strings.Repeat("r", 501))
	wantField(t, err, "reason")
	st.unchanged(t, before)
	for _, tok := range []string{"", "garbage", newSecret()} {
		_, err = svc.SessionOf(ctx, tok)
		wantErr(t, err, ErrNotFound)
	}
}

func testInvitationsAndRoles(t *testing.T, st *testStore) {
	ctx, svc, owner := st.ctx, st.svc, st.owner
	before := st.state(t)
	_, err := svc.InviteUser(ctx, owner, "bad", RoleStaff, time.Hour)
	wantField(t, err, "email")
	_, err = svc.InviteUser(ctx, owner, "x@y.example", "admin", time.Hour)
	wantField(t, err, "role")
	_, err = svc.InviteUser(ctx, owner, owner.Email, RoleStaff, time.Hour)
	wantField(t, err, "email")
	_, err = svc.InviteUser(ctx, User{}, "x@y.example", RoleStaff, time.Hour)
	wantErr(t, err, ErrForbidden)
	st.unchanged(t, before)

	inv := must(svc.InviteUser(ctx, owner, " Staff@Roles.example ", RoleStaff, time.Hour))(t)
	if inv.User.Email != "staff@roles.example" || inv.User.Active || inv.User.Role != RoleStaff || len(inv.Token) != 43 {
		t.Fatalf("InviteUser = %+v", inv)
	}
	before = st.state(t)
	_, err = svc.AcceptInvite(ctx, inv.Token, "Sam", "short")
	wantField(t, err, "password")
	_, err = svc.AcceptInvite(ctx, inv.Token, " ", "long enough")
	wantField(t, err, "name")
	_, err = svc.AcceptInvite(ctx, "not-a-token", "Sam", "long enough")
	wantErr(t, err, ErrNotFound)
	st.unchanged(t, before)
	staff := must(svc.AcceptInvite(ctx, inv.Token, " Sam ", "long enough"))(t)
	if staff.ID != inv.User.ID || !staff.Active || staff.Name != "Sam" || staff.Role != RoleStaff {
		t.Fatalf("AcceptInvite = %+v", staff)
	}
	_, err = svc.AcceptInvite(ctx, inv.Token, "Sam", "long enough")
	wantErr(t, err, ErrNotFound) // works once
	must(svc.Authenticate(ctx, "staff@roles.example", "long enough"))(t)

	// An expired invitation.
	now := time.Now()
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	clocked := st.withClock(&clock)
	old := must(clocked.InviteUser(ctx, owner, "late@roles.example", RoleStaff, time.Minute))(t)
	later := now.Add(2 * time.Minute)
	clock.Store(&later)
	_, err = clocked.AcceptInvite(ctx, old.Token, "Late", "long enough")
	wantErr(t, err, ErrNotFound)
	// Inviting the pending user again replaces the invitation.
	again := must(clocked.InviteUser(ctx, owner, "late@roles.example", RoleOwner, time.Hour))(t)
	if again.User.ID != old.User.ID || again.User.Role != RoleOwner {
		t.Fatalf("second invitation = %+v, first %+v", again, old)
	}
	if n := st.count(t, `SELECT count(*) FROM invitations WHERE user_id = $1`, old.User.ID); n != 1 {
		t.Fatalf("%d invitations for the user, want 1", n)
	}

	// Staff are refused the owner's actions.
	for name, err := range map[string]error{
		"invite": func() error {
			_, err := svc.InviteUser(ctx, staff, "z@roles.example", RoleStaff, time.Hour)
			return err
		}(),
		"set role": func() error { _, err := svc.SetRole(ctx, staff, staff.ID, RoleOwner); return err }(),
		"remove":   svc.RemoveUser(ctx, staff, owner.ID),
	} {
		if !errors.Is(err, ErrForbidden) {
			t.Errorf("staff %s: %v, want ErrForbidden", name, err)
		}
	}
	// A stale copy of a demoted owner is refused too.
	_, err = svc.SetRole(ctx, User{ID: staff.ID, Role: RoleOwner, Active: true}, staff.ID, RoleOwner)
	wantErr(t, err, ErrForbidden)

	// The last owner stays.
	_, err = svc.SetRole(ctx, owner, owner.ID, RoleStaff)
	wantErr(t, err, ErrConflict)
	wantErr(t, svc.RemoveUser(ctx, owner, owner.ID), ErrConflict)
	_, err = svc.SetRole(ctx, owner, staff.ID, "boss")
	wantField(t, err, "role")
	_, err = svc.SetRole(ctx, owner, "nope", RoleOwner)
	wantErr(t, err, ErrNotFound)
	wantErr(t, svc.RemoveUser(ctx, owner, "00000000-0000-0000-0000-000000000000"), ErrNotFound)

	// With two owners, one may step down; then the other is the last.
	promoted := must(svc.SetRole(ctx, owner, staff.ID, RoleOwner))(t)
	if promoted.Role != RoleOwner {
		t.Fatalf("SetRole = %+v", promoted)
	}
	users := must(svc.Users(ctx))(t)
	if len(users) < 3 || users[0].Role != RoleOwner || users[1].Role != RoleOwner || users[len(users)-1].Role != RoleStaff {
		t.Fatalf("Users, owners first: %+v", users)
	}
	must(svc.SetRole(ctx, promoted, owner.ID, RoleStaff))(t)
	_, err = svc.SetRole(ctx, promoted, promoted.ID, RoleStaff)
	wantErr(t, err, ErrConflict)
	must(svc.SetRole(ctx, promoted, owner.ID, RoleOwner))(t)

	// Removing a user ends their sessions and tokens.
	sess := must(svc.NewSession(ctx, staff.ID, time.Hour, "", ""))(t)
	secret, _, err := svc.CreateAPIToken(ctx, staff, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.RemoveUser(ctx, owner, staff.ID); err != nil {
		t.Fatal(err)
	}
	_, err = svc.SessionOf(ctx, sess)
	wantErr(t, err, ErrNotFound)
	_, err = svc.TokenUser(ctx, secret)
	wantErr(t, err, ErrNotFound)
	_, err = svc.User(ctx, staff.ID)
	wantErr(t, err, ErrNotFound)
	must(0, svc.RemoveUser(ctx, owner, old.User.ID))(t)
	if got := must(svc.User(ctx, owner.ID))(t); got.Role != RoleOwner {
		t.Fatalf("owner is %+v at the end", got)
	}
}

func testAPITokens(t *testing.T, st *testStore) {
	ctx, svc, owner := st.ctx, st.svc, st.owner
	inv := must(svc.InviteUser(ctx, owner, "tokens@staff.example", RoleStaff, time.Hour))(t)
	staff := must(svc.AcceptInvite(ctx, inv.Token, "Tok", "long enough"))(t)
	defer func() { must(0, svc.RemoveUser(ctx, owner, staff.ID))(t) }()

	before := st.state(t)
	_, _, err := svc.CreateAPIToken(ctx, staff, "  ")
	wantField(t, err, "name")
	_, _, err = svc.CreateAPIToken(ctx, staff, strings.Repeat("n", 101))
	wantField(t, err, "name")
	_, _, err = svc.CreateAPIToken(ctx, User{}, "x")
	wantErr(t, err, ErrForbidden)
	st.unchanged(t, before)

	now := time.Now()
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	clocked := st.withClock(&clock)
	secret, tok, err := clocked.CreateAPIToken(ctx, staff, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "llst_") || len(secret) != 5+43 || tok.UserID != staff.ID || tok.Name != "ci" || tok.LastUsed != nil {
		t.Fatalf("CreateAPIToken = %q, %+v", secret, tok)
	}
	if u := must(clocked.TokenUser(ctx, secret))(t); u.ID != staff.ID {
		t.Fatalf("TokenUser = %+v", u)
	}
	lastUsed := func() time.Time {
		var at time.Time
		if err := st.db.QueryRow(ctx, `SELECT last_used_at FROM api_tokens WHERE id = $1`, tok.ID).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	first := lastUsed()
	if !first.Equal(now.Truncate(time.Microsecond)) {
		t.Fatalf("last_used_at %v, want %v", first, now)
	}
	soon := now.Add(30 * time.Second)
	clock.Store(&soon)
	must(clocked.TokenUser(ctx, secret))(t)
	if got := lastUsed(); !got.Equal(first) {
		t.Fatalf("last_used_at moved to %v within a minute", got)
	}
	later := now.Add(61 * time.Second)
	clock.Store(&later)
	must(clocked.TokenUser(ctx, secret))(t)
	if got := lastUsed(); !got.Equal(later.Truncate(time.Microsecond)) {
		t.Fatalf("last_used_at %v after a minute, want %v", got, later)
	}
	for _, s := range []string{"", "llst_", strings.TrimPrefix(secret, "llst_"), secret + "x", "llst_" + newSecret()} {
		_, err := svc.TokenUser(ctx, s)
		wantErr(t, err, ErrNotFound)
	}

	ownerSecret, ownerTok, err := svc.CreateAPIToken(ctx, owner, "owner's")
	if err != nil {
		t.Fatal(err)
	}
	mine := must(svc.APITokens(ctx, staff))(t)
	if len(mine) != 1 || mine[0].ID != tok.ID {
		t.Fatalf("staff's APITokens = %+v", mine)
	}
	all := must(svc.APITokens(ctx, owner))(t)
	ids := map[string]bool{}
	for _, x := range all {
		ids[x.ID] = true
	}
	if !ids[tok.ID] || !ids[ownerTok.ID] {
		t.Fatalf("owner's APITokens = %+v", all)
	}
	wantErr(t, svc.RevokeAPIToken(ctx, staff, ownerTok.ID), ErrForbidden)
	wantErr(t, svc.RevokeAPIToken(ctx, staff, "nope"), ErrNotFound)
	must(0, svc.RevokeAPIToken(ctx, owner, tok.ID))(t)
	wantErr(t, svc.RevokeAPIToken(ctx, owner, tok.ID), ErrNotFound)
	_, err = svc.TokenUser(ctx, secret)
	wantErr(t, err, ErrNotFound)
	must(0, svc.RevokeAPIToken(ctx, owner, ownerTok.ID))(t)
	_, err = svc.TokenUser(ctx, ownerSecret)
	wantErr(t, err, ErrNotFound)
}

func testProducts(t *testing.T, st *testStore) {
	ctx, svc, owner := st.ctx, st.svc, st.owner
	before := st.state(t)
	good := ProductInput{SKU: "P-1", Title: "Plum", PriceCents: 250, Active: true, LowStockThreshold: 3}
	for _, c := range []struct {
		mod   func(*ProductInput)
		field string
	}{
		{func(p *ProductInput) { p.SKU = "" }, "sku"},
		{func(p *ProductInput) { p.SKU = "has space" }, "sku"},
		{func(p *ProductInput) { p.SKU = strings.Repeat("s", 65) }, "sku"},
		{func(p *ProductInput) { p.Title = "  " }, "title"},
		{func(p *ProductInput) { p.Title = strings.Repeat("t", 201) }, "title"},
		{func(p *ProductInput) { p.Description = strings.Repeat("d", 5001) }, "description"},
		{func(p *ProductInput) { p.PriceCents = -1 }, "price_cents"},
		{func(p *ProductInput) { p.PriceCents = 10_000_000_001 }, "price_cents"},
		{func(p *ProductInput) { p.LowStockThreshold = -1 }, "low_stock_threshold"},
		{func(p *ProductInput) { p.SKU = "FIX-1" }, "sku"}, // the fixture's
	} {
		in := good
		c.mod(&in)
		_, err := svc.CreateProduct(ctx, owner, in)
		wantField(t, err, c.field)
	}
	_, err := svc.CreateProduct(ctx, User{Role: RoleStaff}, good)
	wantErr(t, err, ErrForbidden)
	st.unchanged(t, before)

	changed := st.changedCalls.Load()
	in := good
	in.SKU, in.Title, in.Description = " P-1 ", " Plum ", " Sweet "
	p := must(svc.CreateProduct(ctx, owner, in))(t)
	if p.SKU != "P-1" || p.Title != "Plum" || p.Description != "Sweet" || p.PriceCents != 250 || !p.Active ||
		p.Stock != 0 || p.LowStockThreshold != 3 || p.Currency != "EUR" {
		t.Fatalf("CreateProduct = %+v", p)
	}
	if st.changedCalls.Load() == changed {
		t.Fatal("OnProductsChanged was not called")
	}
	got := must(svc.Product(ctx, p.ID))(t)
	if got != p {
		t.Fatalf("Product = %+v, want %+v", got, p)
	}
	for _, id := range []string{"", "x", "00000000-0000-0000-0000-000000000000"} {
		_, err := svc.Product(ctx, id)
		wantErr(t, err, ErrNotFound)
		_, err = svc.UpdateProduct(ctx, owner, id, good)
		wantErr(t, err, ErrNotFound)
	}
	before = st.state(t)
	dup := good
	dup.SKU = "FIX-1"
	_, err = svc.UpdateProduct(ctx, owner, p.ID, dup)
	wantField(t, err, "sku")
	bad := good
	bad.PriceCents = -5
	_, err = svc.UpdateProduct(ctx, owner, p.ID, bad)
	wantField(t, err, "price_cents")
	st.unchanged(t, before)

	up := ProductInput{SKU: "P-1b", Title: "Plum, ripe", Description: "d", PriceCents: 300, Active: false, LowStockThreshold: 0}
	u := must(svc.UpdateProduct(ctx, owner, p.ID, up))(t)
	if u.SKU != "P-1b" || u.Title != "Plum, ripe" || u.PriceCents != 300 || u.Active || u.LowStockThreshold != 0 ||
		u.ID != p.ID || u.CreatedAt != p.CreatedAt || u.UpdatedAt.Before(p.UpdatedAt) {
		t.Fatalf("UpdateProduct = %+v", u)
	}

	// Lists: newest first, paging, the title filter and active only.
	for i := range 5 {
		must(svc.CreateProduct(ctx, owner, ProductInput{SKU: fmt.Sprintf("LIST-%d", i), Title: fmt.Sprintf("Listed Pear %d", i),
			PriceCents: 1, Active: i%2 == 0}))(t)
	}
	pg := must(svc.Products(ctx, ProductFilter{Query: "pear", PerPage: 2}))(t)
	if pg.Total != 5 || len(pg.Items) != 2 || pg.Pages() != 3 || pg.Page != 1 || pg.Items[0].SKU != "LIST-4" || pg.Items[1].SKU != "LIST-3" {
		t.Fatalf("Products page 1 = %+v", pg)
	}
	pg = must(svc.Products(ctx, ProductFilter{Query: "PEAR", PerPage: 2, Page: 3}))(t)
	if pg.Total != 5 || len(pg.Items) != 1 || pg.Items[0].SKU != "LIST-0" {
		t.Fatalf("Products page 3 = %+v", pg)
	}
	pg = must(svc.Products(ctx, ProductFilter{Query: "pear", PerPage: 2, Page: 9}))(t)
	if pg.Total != 5 || len(pg.Items) != 0 {
		t.Fatalf("Products past the end = %+v", pg)
	}
	pg = must(svc.Products(ctx, ProductFilter{Query: "pear", ActiveOnly: true}))(t)
	if pg.Total != 3 || len(pg.Items) != 3 || pg.PerPage != 20 {
		t.Fatalf("Products active only = %+v", pg)
	}
	pg = must(svc.Products(ctx, ProductFilter{Query: "%", PerPage: 1000}))(t)
	if pg.Total != 0 || pg.PerPage != 100 {
		t.Fatalf("Products matching %%: %+v", pg)
	}
}

// product creates an active product with stock.
func (st *testStore) newProduct(t *testing.T, sku string, price int64, stock, threshold int) Product {
	t.Helper()
	p := must(st.svc.CreateProduct(st.ctx, st.owner, ProductInput{SKU: sku, Title: "Item " + sku, PriceCents: price,
		Active: true, LowStockThreshold: threshold}))(t)
	if stock > 0 {
		p = must(st.svc.MoveStock(st.ctx, st.owner, p.ID, MoveReceipt, stock, "initial"))(t)
	}
	return p
}

// ledger returns the sum of a product's movements and its level.
func (st *testStore) ledger(t *testing.T, productID string) (sum, onHand int) {
	t.Helper()
	err := st.db.QueryRow(st.ctx, `SELECT (SELECT coalesce(sum(quantity), 0) FROM stock_movements WHERE product_id = $1),
		(SELECT coalesce(sum(on_hand), 0) FROM stock_levels WHERE product_id = $1)`, productID).Scan(&sum, &onHand)
	if err != nil {
		t.Fatal(err)
	}
	return sum, onHand
}

func testStock(t *testing.T, st *testStore) {
	ctx, svc, owner := st.ctx, st.svc, st.owner
	p := st.newProduct(t, "STOCK-1", 100, 0, 2)
	before := st.state(t)
	for _, c := range []struct {
		kind  string
		qty   int
		note  string
		field string
	}{
		{MoveSale, -1, "", "kind"},
		{MoveReturn, 1, "", "kind"},
		{"gift", 1, "", "kind"},
		{MoveReceipt, 0, "", "quantity"},
		{MoveReceipt, -3, "", "quantity"},
		{MoveAdjustment, 0, "", "quantity"},
		{MoveReceipt, 2_000_000, "", "quantity"},
		{MoveReceipt, 1, strings.Repeat("n", 501), "note"},
	} {
		_, err := svc.MoveStock(ctx, owner, p.ID, c.kind, c.qty, c.note)
		wantField(t, err, c.field)
	}
	_, err := svc.MoveStock(ctx, owner, "nope", MoveReceipt, 1, "")
	wantErr(t, err, ErrNotFound)
	_, err = svc.MoveStock(ctx, owner, "00000000-0000-0000-0000-000000000000", MoveReceipt, 1, "")
	wantErr(t, err, ErrNotFound)
	_, err = svc.MoveStock(ctx, User{}, p.ID, MoveReceipt, 1, "")
	wantErr(t, err, ErrForbidden)
	_, err = svc.MoveStock(ctx, owner, p.ID, MoveAdjustment, -1, "below zero")
	wantErr(t, err, ErrOutOfStock)
	st.unchanged(t, before)

	changed := st.changedCalls.Load()
	got := must(svc.MoveStock(ctx, owner, p.ID, MoveReceipt, 7, " delivery "))(t)
	if got.Stock != 7 || got.ID != p.ID {
		t.Fatalf("MoveStock = %+v", got)
	}
	if st.changedCalls.Load() == changed {
		t.Fatal("OnProductsChanged was not called")
	}
	got = must(svc.MoveStock(ctx, owner, p.ID, MoveAdjustment, -2, "count"))(t)
	if got.Stock != 5 {
		t.Fatalf("after adjustment: %+v", got)
	}
	_, err = svc.MoveStock(ctx, owner, p.ID, MoveAdjustment, -6, "")
	wantErr(t, err, ErrOutOfStock)
	if sum, onHand := st.ledger(t, p.ID); sum != 5 || onHand != 5 {
		t.Fatalf("ledger %d, level %d, want 5 and 5", sum, onHand)
	}

	// The level changes only through the ledger; the database refuses a
	// negative level whoever writes it.
	if _, err := st.db.Exec(ctx, `UPDATE stock_levels SET on_hand = -1 WHERE product_id = $1`, p.ID); err == nil {
		t.Fatal("UPDATE stock_levels SET on_hand = -1 succeeded")
	}
	if _, err := st.db.Exec(ctx, `INSERT INTO stock_movements (product_id, kind, quantity) VALUES ($1, 'adjustment', -100)`, p.ID); !errors.Is(dbErr("", err), ErrOutOfStock) {
		t.Fatalf("raw movement below zero: %v", err)
	}

	mv := must(svc.Movements(ctx, p.ID, 1, 1))(t)
	if mv.Total != 2 || len(mv.Items) != 1 || mv.Items[0].Kind != MoveAdjustment || mv.Items[0].Quantity != -2 || mv.Items[0].Note != "count" {
		t.Fatalf("Movements page 1 = %+v", mv)
	}
	mv = must(svc.Movements(ctx, p.ID, 2, 1))(t)
	if mv.Total != 2 || len(mv.Items) != 1 || mv.Items[0].Kind != MoveReceipt || mv.Items[0].Quantity != 7 ||
		mv.Items[0].Note != "delivery" || mv.Items[0].ProductID != p.ID || mv.Items[0].OrderID != "" {
		t.Fatalf("Movements page 2 = %+v", mv)
	}
	mv = must(svc.Movements(ctx, p.ID, 3, 1))(t)
	if mv.Total != 2 || len(mv.Items) != 0 {
		t.Fatalf("Movements past the end = %+v", mv)
	}
	empty := st.newProduct(t, "STOCK-2", 1, 0, 0)
	mv = must(svc.Movements(ctx, empty.ID, 1, 0))(t)
	if mv.Total != 0 || len(mv.Items) != 0 || mv.PerPage != 20 {
		t.Fatalf("Movements of a new product = %+v", mv)
	}
	for _, id := range []string{"x", "00000000-0000-0000-0000-000000000000"} {
		_, err = svc.Movements(ctx, id, 1, 10)
		wantErr(t, err, ErrNotFound)
	}
}

// buyer returns a checkout of lines with key.
func buyer(key string, lines ...Line) CheckoutInput {
	return CheckoutInput{Key: key, Name: "Grace Hopper", Email: "Grace@Example.com", Address: "1 Navy Yard", Lines: lines}
}

func testCheckout(t *testing.T, st *testStore) {
	ctx, svc, owner := st.ctx, st.svc, st.owner
	a := st.newProduct(t, "CO-A", 250, 10, 0)
	b := st.newProduct(t, "CO-B", 1000, 3, 0)
	off := must(svc.CreateProduct(ctx, owner, ProductInput{SKU: "CO-OFF", Title: "Off", PriceCents: 5, Active: false}))(t)

	before := st.state(t)
	long := make([]Line, 51)
	for i := range long {
		long[i] = Line{ProductID: a.ID, Quantity: 1}
	}
	for _, c := range []struct {
		in    CheckoutInput
		field string
	}{
		{buyer("short", Line{a.ID, 1}), "key"},
		{buyer("has space in it", Line{a.ID, 1}), "key"},
		{buyer(strings.Repeat("k", 101), Line{a.ID, 1}), "key"},
		{CheckoutInput{Key: "checkout-bad-1", Name: " ", Email: "g@example.com", Address: "a", Lines: []Line{{a.ID, 1}}}, "customer_name"},
		{CheckoutInput{Key: "checkout-bad-2", Name: "G", Email: "nope", Address: "a", Lines: []Line{{a.ID, 1}}}, "customer_email"},
		{CheckoutInput{Key: "checkout-bad-3", Name: "G", Email: "g@example.com", Address: "", Lines: []Line{{a.ID, 1}}}, "address"},
		{buyer("checkout-bad-4"), "lines"},
		{buyer("checkout-bad-5", long...), "lines"},
		{buyer("checkout-bad-6", Line{a.ID, 1}, Line{b.ID, 0}), "lines[1].quantity"},
		{buyer("checkout-bad-7", Line{a.ID, 1001}), "lines[0].quantity"},
		{buyer("checkout-bad-8", Line{a.ID, 600}, Line{a.ID, 600}), "lines[1].quantity"},
		{buyer("checkout-bad-9", Line{"nope", 1}), "lines[0].product_id"},
		{buyer("checkout-bad-10", Line{a.ID, 1}, Line{"00000000-0000-0000-0000-000000000000", 1}), "lines[1].product_id"},
		{buyer("checkout-bad-11", Line{a.ID, 1}, Line{off.ID, 1}), "lines[1].product_id"},
	} {
		_, _, err := svc.Checkout(ctx, c.in)
		wantField(t, err, c.field)
	}
	// One line over the stock fails the whole order.
	_, _, err := svc.Checkout(ctx, buyer("checkout-oos", Line{a.ID, 2}, Line{b.ID, 4}))
	wantErr(t, err, ErrOutOfStock)
	st.unchanged(t, before)

	changed := st.changedCalls.Load()
	start := time.Now()
	o, created, err := svc.Checkout(ctx, buyer(" checkout-ok-1 ", Line{a.ID, 2}, Line{b.ID, 1}, Line{a.ID, 1}))
	if err != nil || !created {
		t.Fatalf("Checkout: %v, created %v", err, created)
	}
	want := []OrderLine{{a.ID, "CO-A", "Item CO-A", 3, 250}, {b.ID, "CO-B", "Item CO-B", 1, 1000}}
	if o.Status != OrderPlaced || o.CustomerEmail != "grace@example.com" || o.TotalCents != 1750 || o.Currency != "EUR" ||
		o.Payment != "test" || o.Number < 1 || fmt.Sprint(o.Lines) != fmt.Sprint(want) || o.CreatedAt.Before(start.Add(-time.Minute)) {
		t.Fatalf("Checkout = %+v", o)
	}
	if st.changedCalls.Load() == changed {
		t.Fatal("OnProductsChanged was not called")
	}
	got := must(svc.Order(ctx, o.ID))(t)
	if fmt.Sprint(got) != fmt.Sprint(o) {
		t.Fatalf("Order = %+v\nCheckout gave %+v", got, o)
	}
	if p := must(svc.Product(ctx, a.ID))(t); p.Stock != 7 {
		t.Fatalf("stock of A %d, want 7", p.Stock)
	}
	mv := must(svc.Movements(ctx, a.ID, 1, 1))(t).Items[0]
	if mv.Kind != MoveSale || mv.Quantity != -3 || mv.OrderID != o.ID {
		t.Fatalf("sale movement = %+v", mv)
	}

	// The same key again: the first order, unchanged, and nothing written.
	before = st.state(t)
	again, created, err := svc.Checkout(ctx, buyer("checkout-ok-1", Line{b.ID, 2}))
	if err != nil || created || fmt.Sprint(again) != fmt.Sprint(got) {
		t.Fatalf("repeat: %+v, created %v, %v", again, created, err)
	}
	st.unchanged(t, before)

	// Prices are taken when the order is placed; numbers go up by one.
	must(svc.UpdateProduct(ctx, owner, a.ID, ProductInput{SKU: "CO-A", Title: "Renamed", PriceCents: 300, Active: true}))(t)
	o2, _, err := svc.Checkout(ctx, buyer("checkout-ok-2", Line{a.ID, 1}))
	if err != nil || o2.Number != o.Number+1 || o2.TotalCents != 300 || o2.Lines[0].Title != "Renamed" {
		t.Fatalf("second order %+v: %v", o2, err)
	}
	if first := must(svc.Order(ctx, o.ID))(t); first.Lines[0].PriceCents != 250 || first.Lines[0].Title != "Item CO-A" {
		t.Fatalf("the first order changed with the product: %+v", first)
	}
	for _, id := range []string{"", "x", "00000000-0000-0000-0000-000000000000"} {
		_, err := svc.Order(ctx, id)
		wantErr(t, err, ErrNotFound)
	}
}

func testCheckoutConcurrentStock(t *testing.T, st *testStore) {
	p := st.newProduct(t, "RUSH-1", 500, 10, 5)
	if _, err := DrainOutbox(st.ctx, st.db, 1000, func(context.Context, []OutboxEvent) error { return nil }); err != nil {
		t.Fatal(err)
	}
	const buyers = 50
	var wg sync.WaitGroup
	var placed, out atomic.Int64
	errs := make(chan error, buyers)
	for i := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, created, err := st.svc.Checkout(st.ctx, buyer(fmt.Sprintf("rush-%03d-key", i), Line{p.ID, 1}))
			switch {
			case err == nil && created:
				placed.Add(1)
			case errors.Is(err, ErrOutOfStock):
				out.Add(1)
			default:
				errs <- fmt.Errorf("buyer %d: created %v, %v", i, created, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if placed.Load() != 10 || out.Load() != 40 {
		t.Fatalf("%d orders and %d out of stock, want 10 and 40", placed.Load(), out.Load())
	}
	if n := st.count(t, `SELECT count(*) FROM order_lines WHERE product_id = $1`, p.ID); n != 10 {
		t.Fatalf("%d order lines, want 10", n)
	}
	if sum, onHand := st.ledger(t, p.ID); sum != 0 || onHand != 0 {
		t.Fatalf("ledger sums to %d, level %d; want 0 and 0", sum, onHand)
	}
	// From 5 to 4 happened once: one event.
	if n := st.count(t, `SELECT count(*) FROM outbox WHERE payload->>'product_id' = $1`, p.ID); n != 1 {
		t.Fatalf("%d low_stock events, want 1", n)
	}
}

func testCheckoutConcurrentKey(t *testing.T, st *testStore) {
	p := st.newProduct(t, "SAMEKEY-1", 500, 100, 0)
	const callers = 10
	ids := make([]string, callers)
	createdN := atomic.Int64{}
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, created, err := st.svc.Checkout(st.ctx, buyer("same-key-for-all", Line{p.ID, 2}))
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
				return
			}
			if created {
				createdN.Add(1)
			}
			ids[i] = o.ID
		}()
	}
	wg.Wait()
	if createdN.Load() != 1 {
		t.Fatalf("%d callers created the order, want 1", createdN.Load())
	}
	for i, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("caller %d got order %q, caller 0 %q", i, id, ids[0])
		}
	}
	if _, onHand := st.ledger(t, p.ID); onHand != 98 {
		t.Fatalf("level %d, want 98", onHand)
	}
	_, created, err := st.svc.Checkout(st.ctx, buyer("same-key-for-all", Line{p.ID, 2}))
	if err != nil || created {
		t.Fatalf("sequential repeat: created %v, %v", created, err)
	}
}

func testCancelAndFulfil(t *testing.T, st *testStore) {
	ctx, svc, owner := st.ctx, st.svc, st.owner
	a := st.newProduct(t, "CAN-A", 100, 5, 0)
	b := st.newProduct(t, "CAN-B", 100, 5, 0)
	o := must3(svc.Checkout(ctx, buyer("cancel-me-1", Line{a.ID, 2}, Line{b.ID, 3})))(t)
	_, err := svc.Cancel(ctx, User{}, o.ID)
	wantErr(t, err, ErrForbidden)
	changed := st.changedCalls.Load()
	c := must(svc.Cancel(ctx, owner, o.ID))(t)
	if c.Status != OrderCancelled || len(c.Lines) != 2 {
		t.Fatalf("Cancel = %+v", c)
	}
	if st.changedCalls.Load() == changed {
		t.Fatal("OnProductsChanged was not called")
	}
	for _, p := range []Product{a, b} {
		if sum, onHand := st.ledger(t, p.ID); sum != 5 || onHand != 5 {
			t.Fatalf("%s: ledger %d, level %d after cancel; want 5", p.SKU, sum, onHand)
		}
		mv := must(svc.Movements(ctx, p.ID, 1, 1))(t).Items[0]
		if mv.Kind != MoveReturn || mv.Quantity <= 0 || mv.OrderID != o.ID {
			t.Fatalf("%s: last movement %+v, want the return", p.SKU, mv)
		}
	}
	before := st.state(t)
	_, err = svc.Cancel(ctx, owner, o.ID)
	wantErr(t, err, ErrConflict)
	_, err = svc.Fulfil(ctx, owner, o.ID)
	wantErr(t, err, ErrConflict)
	for _, id := range []string{"x", "00000000-0000-0000-0000-000000000000"} {
		_, err = svc.Cancel(ctx, owner, id)
		wantErr(t, err, ErrNotFound)
		_, err = svc.Fulfil(ctx, owner, id)
		wantErr(t, err, ErrNotFound)
	}
	st.unchanged(t, before)

	o2 := must3(svc.Checkout(ctx, buyer("fulfil-me-1", Line{a.ID, 1})))(t)
	_, err = svc.Fulfil(ctx, User{}, o2.ID)
	wantErr(t, err, ErrForbidden)
	f := must(svc.Fulfil(ctx, owner, o2.ID))(t)
	if f.Status != OrderFulfilled || f.Number != o2.Number || len(f.Lines) != 1 || f.UpdatedAt.Before(o2.UpdatedAt) {
		t.Fatalf("Fulfil = %+v", f)
	}
	_, err = svc.Cancel(ctx, owner, o2.ID)
	wantErr(t, err, ErrConflict)
	_, err = svc.Fulfil(ctx, owner, o2.ID)
	wantErr(t, err, ErrConflict)
}

// must3 is must for Checkout's results.
func must3(o Order, created bool, err error) func(testing.TB) Order {
	return func(t testing.TB) Order {
		t.Helper()
		if err != nil || !created {
			t.Fatalf("Checkout: created %v, %v", created, err)
		}
		return o
	}
}

func testOutbox(t *testing.T, st *testStore) {
	ctx, svc := st.ctx, st.svc
	drainAll := func() {
		t.Helper()
		if _, err := DrainOutbox(ctx, st.db, 1000, func(context.Context, []OutboxEvent) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	drainAll()
	low := st.newProduct(t, "OUT-1", 100, 6, 4)
	other := st.newProduct(t, "OUT-2", 100, 3, 1)

	// A failed checkout writes no event and moves no stock.
	before := st.state(t)
	calls := st.outboxCalls.Load()
	_, _, err := svc.Checkout(ctx, buyer("outbox-fail-1", Line{low.ID, 3}, Line{other.ID, 4}))
	wantErr(t, err, ErrOutOfStock)
	st.unchanged(t, before)
	if st.outboxCalls.Load() != calls {
		t.Fatal("OnOutbox called for a rolled-back checkout")
	}

	// 6 -> 4: still at the threshold, no event.
	must3(svc.Checkout(ctx, buyer("outbox-ok-1", Line{low.ID, 2})))(t)
	if n := st.count(t, `SELECT count(*) FROM outbox`); n != 0 || st.outboxCalls.Load() != calls {
		t.Fatalf("%d events (%d calls) for a sale that stays at the threshold", n, st.outboxCalls.Load()-calls)
	}
	// 4 -> 3 crosses; the other line (3 -> 2, threshold 1) does not.
	st.outboxVisible.Store(-1)
	must3(svc.Checkout(ctx, buyer("outbox-ok-2", Line{low.ID, 1}, Line{other.ID, 1})))(t)
	if st.outboxCalls.Load() != calls+1 {
		t.Fatalf("OnOutbox called %d times, want 1", st.outboxCalls.Load()-calls)
	}
	if v := st.outboxVisible.Load(); v != 1 {
		t.Fatalf("OnOutbox saw %d committed events, want 1 (called before the commit?)", v)
	}
	if v, n := st.movesVisible.Load(), st.count(t, `SELECT count(*) FROM stock_movements`); v != int64(n) {
		t.Fatalf("OnProductsChanged saw %d movements, %d committed", v, n)
	}
	// 3 -> 2: already below, no new event.
	must3(svc.Checkout(ctx, buyer("outbox-ok-3", Line{low.ID, 1})))(t)

	failing := errors.New("queue is down")
	_, err = DrainOutbox(ctx, st.db, 10, func(context.Context, []OutboxEvent) error { return failing })
	wantErr(t, err, failing)
	var got []OutboxEvent
	n, err := DrainOutbox(ctx, st.db, 10, func(_ context.Context, evs []OutboxEvent) error { got = evs; return nil })
	if err != nil || n != 1 || len(got) != 1 || got[0].Kind != "low_stock" {
		t.Fatalf("DrainOutbox = %d, %v, %+v", n, err, got)
	}
	var payload map[string]any
	if err := json.Unmarshal(got[0].Payload, &payload); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(payload) != fmt.Sprint(map[string]any{"product_id": low.ID, "sku": "OUT-1", "title": "Item OUT-1",
		"on_hand": 3.0, "threshold": 4.0}) {
		t.Fatalf("payload %s", got[0].Payload)
	}
	if n := st.count(t, `SELECT count(*) FROM outbox`); n != 0 {
		t.Fatalf("%d events left after draining", n)
	}
	n, err = DrainOutbox(ctx, st.db, 10, func(context.Context, []OutboxEvent) error {
		t.Error("fn called for an empty outbox")
		return nil
	})
	if n != 0 || err != nil {
		t.Fatalf("DrainOutbox of nothing = %d, %v", n, err)
	}

	// Oldest first, at most limit.
	for i := range 3 {
		if _, err := st.db.Exec(ctx, `INSERT INTO outbox (kind, payload) VALUES ('test', jsonb_build_object('i', $1::int))`, i); err != nil {
			t.Fatal(err)
		}
	}
	var order []string
	for range 2 {
		if _, err := DrainOutbox(ctx, st.db, 2, func(_ context.Context, evs []OutboxEvent) error {
			for _, e := range evs {
				order = append(order, string(e.Payload))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(order) != `[{"i": 0} {"i": 1} {"i": 2}]` {
		t.Fatalf("drained %v", order)
	}
}

func testOrdersList(t *testing.T, st *testStore) {
	ctx, svc, owner := st.ctx, st.svc, st.owner
	p := st.newProduct(t, "LISTO-1", 1000, 100, 0)
	// The database's clock: orders placed from now on are created at or
	// after it, those before strictly before.
	var from time.Time
	if err := st.db.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&from); err != nil {
		t.Fatal(err)
	}
	to := from.Add(time.Hour)
	sum0 := must(svc.SalesSummary(ctx, from, to))(t)
	if sum0.Orders != 0 || sum0.Currency != "EUR" {
		t.Fatalf("SalesSummary before = %+v", sum0)
	}
	earlier := must(svc.SalesSummary(ctx, from.Add(-time.Hour), from))(t)
	mk := func(key, name, email string, qty int) Order {
		return must3(svc.Checkout(ctx, CheckoutInput{Key: key, Name: name, Email: email, Address: "a", Lines: []Line{{p.ID, qty}}}))(t)
	}
	o1 := mk("list-orders-1", "Zelda Quux", "zq@list.example", 1)
	o2 := mk("list-orders-2", "Ada Lovelace", "ada@list.example", 2)
	o3 := mk("list-orders-3", "Alan Turing", "alan@QUUX.example", 3)
	must(svc.Cancel(ctx, owner, o2.ID))(t)
	must(svc.Fulfil(ctx, owner, o3.ID))(t)

	sum := must(svc.SalesSummary(ctx, from, to))(t)
	if sum.Orders != 2 || sum.RevenueCents != o1.TotalCents+o3.TotalCents {
		t.Fatalf("SalesSummary = %+v, want 2 orders of %d", sum, o1.TotalCents+o3.TotalCents)
	}
	if s := must(svc.SalesSummary(ctx, from.Add(-time.Hour), from))(t); s != earlier {
		t.Fatalf("SalesSummary of the hour before = %+v, was %+v", s, earlier)
	}

	ids := func(pg Page[Order]) string {
		var s []string
		for _, o := range pg.Items {
			s = append(s, o.ID)
		}
		return strings.Join(s, ",")
	}
	join := func(os ...Order) string {
		var s []string
		for _, o := range os {
			s = append(s, o.ID)
		}
		return strings.Join(s, ",")
	}
	for _, c := range []struct {
		f    OrderFilter
		want []Order
	}{
		{OrderFilter{From: from}, []Order{o3, o2, o1}},
		{OrderFilter{From: from, Query: "quux"}, []Order{o3, o1}},
		{OrderFilter{From: from, Query: "ADA@"}, []Order{o2}},
		{OrderFilter{Query: fmt.Sprint(o2.Number)}, []Order{o2}},
		{OrderFilter{Query: fmt.Sprintf("#%d", o3.Number)}, []Order{o3}},
		{OrderFilter{From: from, Status: OrderPlaced}, []Order{o1}},
		{OrderFilter{From: from, Status: OrderCancelled}, []Order{o2}},
		{OrderFilter{From: from, To: o2.CreatedAt}, []Order{o1}},
		{OrderFilter{To: from, Query: "quux"}, nil},
	} {
		pg := must(svc.Orders(ctx, c.f))(t)
		if ids(pg) != join(c.want...) || pg.Total != len(c.want) {
			t.Errorf("Orders(%+v): %d items %s, total %d; want %s", c.f, len(pg.Items), ids(pg), pg.Total, join(c.want...))
		}
	}
	pg := must(svc.Orders(ctx, OrderFilter{From: from, PerPage: 2, Page: 2}))(t)
	if pg.Total != 3 || len(pg.Items) != 1 || pg.Items[0].ID != o1.ID || len(pg.Items[0].Lines) != 1 || pg.Items[0].Lines[0].Quantity != 1 {
		t.Fatalf("Orders page 2 = %+v", pg)
	}
	pg = must(svc.Orders(ctx, OrderFilter{From: from, PerPage: 2, Page: 5}))(t)
	if pg.Total != 3 || len(pg.Items) != 0 {
		t.Fatalf("Orders past the end = %+v", pg)
	}
	_, err := svc.Orders(ctx, OrderFilter{Status: "lost"})
	wantField(t, err, "status")
}

func testNotifications(t *testing.T, st *testStore) {
	ctx, svc := st.ctx, st.svc
	before := st.state(t)
	_, err := svc.Notify(ctx, "", "m")
	wantField(t, err, "kind")
	_, err = svc.Notify(ctx, strings.Repeat("k", 51), "m")
	wantField(t, err, "kind")
	_, err = svc.Notify(ctx, "low_stock", "  ")
	wantField(t, err, "message")
	_, err = svc.Notify(ctx, "low_stock", strings.Repeat("m", 2001))
	wantField(t, err, "message")
	st.unchanged(t, before)
	var made []Notification
	for i := range 3 {
		made = append(made, must(svc.Notify(ctx, "daily_summary", fmt.Sprintf(" day %d ", i)))(t))
	}
	if made[0].Message != "day 0" || made[0].Kind != "daily_summary" || made[0].ID == 0 {
		t.Fatalf("Notify = %+v", made[0])
	}
	got := must(svc.Notifications(ctx, 2))(t)
	if len(got) != 2 || got[0] != made[2] || got[1] != made[1] {
		t.Fatalf("Notifications(2) = %+v", got)
	}
}

// testReferenceData: the platform's countries and currencies are read with
// the same SQL in every model, orders reference them, and the database
// refuses a code it does not know and any write to them.
func testReferenceData(t *testing.T, st *testStore) {
	ctx, svc := st.ctx, st.svc
	cs := must(svc.Countries(ctx))(t)
	if len(cs) < 10 || !slices.Contains(cs, Country{Code: "DE", Name: "Germany"}) {
		t.Fatalf("countries = %v, want the platform's (Germany among them)", cs)
	}
	o, created, err := svc.Checkout(ctx, CheckoutInput{Key: "country-de-1", Name: "Ada", Email: "ada@example.com",
		Address: "1 Road", Country: "de", Lines: []Line{{ProductID: st.product.ID, Quantity: 1}}})
	if err != nil || !created || o.Country != "DE" {
		t.Fatalf("checkout to DE = %+v, %v, %v", o, created, err)
	}
	if again := must(svc.Order(ctx, o.ID))(t); again.Country != "DE" || again.Currency != "EUR" {
		t.Fatalf("order read back: country %q currency %q", again.Country, again.Currency)
	}
	before := st.state(t)
	for _, bad := range []string{"XX", "D", "1A"} {
		_, _, err := svc.Checkout(ctx, CheckoutInput{Key: "country-bad-" + bad, Name: "Ada", Email: "ada@example.com",
			Address: "1 Road", Country: bad, Lines: []Line{{ProductID: st.product.ID, Quantity: 1}}})
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Fields["country"] == "" {
			t.Errorf("checkout to %q = %v, want a ValidationError on country", bad, err)
		}
	}
	if after := st.state(t); after != before {
		t.Errorf("refused checkouts wrote something:\nbefore %s\nafter  %s", before, after)
	}
	for _, sql := range []string{
		`INSERT INTO global.countries (code, name) VALUES ('ZZ', 'Nowhere')`,
		`UPDATE global.currencies SET minor_units = 3`,
		`DELETE FROM global.countries WHERE code = 'DE'`,
	} {
		if _, err := st.db.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "42501") {
			t.Errorf("%s as the store = %v, want permission denied (42501)", sql, err)
		}
	}
}
