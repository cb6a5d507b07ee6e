package httptenant_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/httptenant"
	"github.com/landlordhq/landlord/tenant"
)

func ExampleNormalizeHost() {
	for _, h := range []string{"ACME.Shop.Example.:8443", "bücher.example", "[::1]:443", "acme_shop.example"} {
		name, err := httptenant.NormalizeHost(h)
		fmt.Printf("%q -> %q %v\n", h, name, err)
	}
	// Output:
	// "ACME.Shop.Example.:8443" -> "acme.shop.example" <nil>
	// "bücher.example" -> "xn--bcher-kva.example" <nil>
	// "[::1]:443" -> "" host is an IP address
	// "acme_shop.example" -> "" invalid host: idna: disallowed rune U+005F
}

func ExampleResolver_Middleware() {
	acme, _ := tenant.ParseID("01950000-0000-7000-8000-00000000000a")
	res, err := httptenant.New(httptenant.Config{
		BaseDomain: "shop.example",
		// In an application: ll.TenantBySlug of an open *landlord.Landlord.
		LookupSlug: func(_ context.Context, slug string) (tenant.Tenant, error) {
			if slug == "acme" {
				return tenant.Tenant{ID: acme, Slug: slug}, nil
			}
			return tenant.Tenant{}, tenant.ErrNotFound
		},
	})
	if err != nil {
		panic(err)
	}
	app := res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := landlord.TenantFrom(r.Context()) // what ll.Handle() runs as
		fmt.Fprintln(w, "tenant", id)
	}))
	for _, host := range []string{"acme.shop.example", "nope.shop.example", "shop.example", "192.0.2.1"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = host
		w := httptest.NewRecorder()
		app.ServeHTTP(w, r)
		fmt.Printf("%s: %d %s", host, w.Code, w.Body.String())
	}
	// Output:
	// acme.shop.example: 200 tenant 01950000-0000-7000-8000-00000000000a
	// nope.shop.example: 404 Not Found
	// shop.example: 404 Not Found
	// 192.0.2.1: 404 Not Found
}
