package landlord_test

import (
	"context"
	"fmt"
	"log"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/itemschema"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// Open an installation, create tenants in two models, and run the same SQL
// as each: every tenant sees its own rows only, and a call without a tenant
// sends nothing.
func ExampleOpen() {
	ctx := context.Background()
	url := landlord.ScratchDatabase("example_open") // an administrator's URL of an empty database
	ll, err := landlord.Open(ctx, url, itemschema.FS(), landlord.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer ll.Close()

	acme, err := ll.CreateTenant(ctx, provision.Request{Slug: "acme", Model: tenant.ModelSchema})
	if err != nil {
		log.Fatal(err)
	}
	globex, err := ll.CreateTenant(ctx, provision.Request{Slug: "globex", Model: tenant.ModelRow})
	if err != nil {
		log.Fatal(err)
	}
	h := ll.Handle()
	if _, err := h.Exec(landlord.WithTenant(ctx, acme.ID), `INSERT INTO items (id, sku, secret) VALUES (1, 'anvil', 'acme only')`); err != nil {
		log.Fatal(err)
	}
	for _, t := range []tenant.Tenant{acme, globex} {
		var n int
		if err := h.QueryRow(landlord.WithTenant(ctx, t.ID), `SELECT count(*) FROM items`).Scan(&n); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s (%s) sees %d item(s)\n", t.Slug, t.Model, n)
	}
	_, err = h.Exec(ctx, `SELECT 1`)
	fmt.Println(err)
	// Output:
	// acme (schema) sees 1 item(s)
	// globex (row) sees 0 item(s)
	// no tenant in context
}

// An admin scope reaches every tenant, one at a time, and logs its reason
// with each use.
func ExampleLandlord_Admin() {
	ctx := context.Background()
	ll, err := landlord.Open(ctx, landlord.ScratchDatabase("example_admin"), itemschema.FS(), landlord.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer ll.Close()
	for i, m := range tenant.Models {
		t, err := ll.CreateTenant(ctx, provision.Request{Slug: fmt.Sprintf("shop-%d", i), Model: m})
		if err != nil {
			log.Fatal(err)
		}
		for id := range i + 1 {
			if _, err := ll.Handle().Exec(landlord.WithTenant(ctx, t.ID), `INSERT INTO items (id, sku, secret) VALUES ($1, $2, 'x')`, id, fmt.Sprint("sku-", id)); err != nil {
				log.Fatal(err)
			}
		}
	}
	admin, err := ll.Admin(ctx, "count items for the monthly report")
	if err != nil {
		log.Fatal(err)
	}
	err = admin.Each(ctx, directory.Filter{}, func(ctx context.Context, t tenant.Tenant, q landlord.Querier) error {
		var n int
		if err := q.QueryRow(ctx, `SELECT count(*) FROM items`).Scan(&n); err != nil {
			return err
		}
		fmt.Printf("%s: %d\n", t.Slug, n)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// shop-0: 1
	// shop-1: 2
	// shop-2: 3
}
