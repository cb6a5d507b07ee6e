package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/shop/platform"
	"github.com/landlordhq/landlord/shop/store"
)

// DemoPassword is the password of every demo login. The demo is meant for
// a shop served on the loopback interface.
const DemoPassword = "demo-password"

// DemoOperator is the platform operator's demo login.
const DemoOperator = "operator@shop.localhost"

// DemoStore is one of the demo's stores.
type DemoStore struct {
	Slug, Name string
	Plan       platform.Plan
	Owner      string // email; the password is DemoPassword
}

// DemoStores are the stores SeedDemo makes, one per plan and so one per
// model.
var DemoStores = []DemoStore{
	{Slug: "corner-shop", Name: "Corner Shop", Plan: platform.PlanFree, Owner: "owner@corner-shop.test"},
	{Slug: "book-store", Name: "Book Store", Plan: platform.PlanPro, Owner: "owner@book-store.test"},
	{Slug: "big-market", Name: "Big Market", Plan: platform.PlanEnterprise, Owner: "owner@big-market.test"},
}

type demoProduct struct {
	sku, title, description string
	price                   int64
	stock                   int
}

var demoProducts = map[string][]demoProduct{
	"corner-shop": {
		{"APL-1", "Apples (1 kg)", "Crisp, from the valley.", 349, 40},
		{"BRD-1", "Sourdough bread", "Baked this morning.", 450, 12},
		{"MLK-1", "Whole milk (1 l)", "", 129, 6},
	},
	"book-store": {
		{"BK-ATLAS", "World atlas", "Maps of every country, 2026 edition.", 3900, 8},
		{"BK-NOVEL", "A quiet novel", "Paperback, 320 pages.", 1499, 25},
		{"BK-POEMS", "Collected poems", "Hardcover.", 2450, 3},
	},
	"big-market": {
		{"BIKE-CITY", "City bike", "Seven gears, lights included.", 54900, 5},
		{"TENT-2P", "Two-person tent", "Weighs 2.1 kg.", 18900, 9},
		{"BOOT-42", "Hiking boots (42)", "Waterproof leather.", 12900, 14},
		{"MAP-ALPS", "Alps hiking map", "1:50,000.", 1490, 30},
	},
}

// SeedDemo makes the demo: the operator, one store per plan with an owner,
// products with stock, and a few orders. Every step looks first and makes
// only what is missing, so a second run, or one after a crash, adds
// nothing twice.
func (a *App) SeedDemo(ctx context.Context) error {
	if _, err := a.Platform.CreateOperator(ctx, DemoOperator, "Platform operator", DemoPassword); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("demo operator: %w", err)
	}
	for _, d := range DemoStores {
		if err := a.seedStore(ctx, d); err != nil {
			return fmt.Errorf("demo store %s: %w", d.Slug, err)
		}
	}
	return nil
}

func (a *App) seedStore(ctx context.Context, d DemoStore) error {
	rec, err := a.Platform.StoreBySlug(ctx, d.Slug)
	if errors.Is(err, store.ErrNotFound) {
		rec, _, err = a.Platform.SignUp(ctx, platform.SignUp{Email: d.Owner, Password: DemoPassword, StoreName: d.Name, Slug: d.Slug, Plan: d.Plan})
	}
	if err != nil {
		return err
	}
	ctx = landlord.WithTenant(ctx, rec.TenantID)
	owner, err := a.Store.Authenticate(ctx, d.Owner, DemoPassword)
	if err != nil {
		return fmt.Errorf("owner: %w", err)
	}
	have, err := a.Store.Products(ctx, store.ProductFilter{PerPage: 100})
	if err != nil {
		return err
	}
	bySKU := map[string]store.Product{}
	for _, p := range have.Items {
		bySKU[p.SKU] = p
	}
	var ids []string
	for _, dp := range demoProducts[d.Slug] {
		p, ok := bySKU[dp.sku]
		if !ok {
			p, err = a.Store.CreateProduct(ctx, owner, store.ProductInput{
				SKU: dp.sku, Title: dp.title, Description: dp.description, PriceCents: dp.price,
				Active: true, LowStockThreshold: 3,
			})
			if err != nil {
				return fmt.Errorf("product %s: %w", dp.sku, err)
			}
			if _, err := a.Store.MoveStock(ctx, owner, p.ID, store.MoveReceipt, dp.stock, "opening stock"); err != nil {
				return fmt.Errorf("stock of %s: %w", dp.sku, err)
			}
		}
		ids = append(ids, p.ID)
	}
	// Orders carry fixed idempotency keys: placing them again returns the
	// first ones.
	customers := []struct{ name, email, address string }{
		{"Ada Lovelace", "ada@example.com", "12 Analytical Row, London"},
		{"Alan Turing", "alan@example.com", "1 Bletchley Park, Milton Keynes"},
		{"Grace Hopper", "grace@example.com", "7 Harbor Lane, Arlington"},
	}
	for i, c := range customers {
		lines := []store.Line{{ProductID: ids[i%len(ids)], Quantity: 1}, {ProductID: ids[(i+1)%len(ids)], Quantity: 2}}
		o, _, err := a.Store.Checkout(ctx, store.CheckoutInput{
			Key: fmt.Sprintf("demo-order-%d", i+1), Name: c.name, Email: c.email, Address: c.address, Lines: lines,
		})
		if err != nil {
			return fmt.Errorf("order %d: %w", i+1, err)
		}
		if i == 0 && o.Status == store.OrderPlaced {
			if _, err := a.Store.Fulfil(ctx, owner, o.ID); err != nil {
				return fmt.Errorf("fulfil order %d: %w", o.Number, err)
			}
		}
	}
	return nil
}
