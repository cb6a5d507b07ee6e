package httptenant

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

func TestResolveSlug(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("found", func(t *testing.T) {
		res, _ := setup(t, nil)
		for slug, want := range map[string]tenant.ID{"acme": tenantA, "other": tenantB} {
			id, err := res.ResolveSlug(ctx, slug)
			if err != nil || id != want {
				t.Errorf("ResolveSlug(%q) = %v, %v; want %v", slug, id, err, want)
			}
		}
	})

	t.Run("unknown is the host path's 404", func(t *testing.T) {
		res, _ := setup(t, nil)
		_, slugErr := res.ResolveSlug(ctx, "nope")
		_, hostErr := res.Resolve(request("nope.shop.example", untrusted))
		if !errors.Is(slugErr, ErrUnknownHost) || !errors.Is(hostErr, ErrUnknownHost) {
			t.Fatalf("slug: %v, host: %v; want both ErrUnknownHost", slugErr, hostErr)
		}
		if c := StatusCode(slugErr); c != http.StatusNotFound {
			t.Fatalf("StatusCode = %d, want 404", c)
		}
	})

	t.Run("not canonical: refused before any lookup", func(t *testing.T) {
		res, dir := setup(t, nil)
		for _, slug := range []string{
			"", "Acme", "ACME", " acme", "acme ", "ac", "www", "admin", "postgres", "pg-acme",
			"a--b", "acme-", "1acme", "acme/x", "../acme", "acme%2F", "acme.shop.example",
			"acme\x00", "ACMÉ", "acme'--", strings.Repeat("a", 41), strings.Repeat("a", 10_000),
		} {
			id, err := res.ResolveSlug(ctx, slug)
			if !errors.Is(err, ErrUnknownHost) || !id.IsZero() {
				t.Errorf("ResolveSlug(%q) = %v, %v; want ErrUnknownHost", slug, id, err)
			}
		}
		if s, _ := dir.calls(); len(s) != 0 {
			t.Fatalf("slugs that are not canonical reached the lookup: %q", s)
		}
	})

	t.Run("one cache with the host path", func(t *testing.T) {
		res, dir := setup(t, nil)
		for range 3 {
			if _, err := res.Resolve(request("acme.shop.example", untrusted)); err != nil {
				t.Fatal(err)
			}
			if id, err := res.ResolveSlug(ctx, "acme"); err != nil || id != tenantA {
				t.Fatalf("ResolveSlug = %v, %v", id, err)
			}
			if _, err := res.ResolveSlug(ctx, "nope"); !errors.Is(err, ErrUnknownHost) {
				t.Fatal(err)
			}
			if _, err := res.Resolve(request("nope.shop.example", untrusted)); !errors.Is(err, ErrUnknownHost) {
				t.Fatal(err)
			}
		}
		s, _ := dir.calls()
		if strings.Join(s, ",") != "acme,nope" {
			t.Fatalf("lookups %q, want one of acme and one of nope", s)
		}
	})

	t.Run("failed lookup is a 500 and not cached", func(t *testing.T) {
		res, dir := setup(t, nil)
		dir.err = errors.New("directory down")
		for range 2 {
			_, err := res.ResolveSlug(ctx, "acme")
			if !errors.Is(err, ErrLookup) || !errors.Is(err, dir.err) || StatusCode(err) != http.StatusInternalServerError {
				t.Fatalf("err = %v, want ErrLookup wrapping the lookup's error, 500", err)
			}
		}
		if s, _ := dir.calls(); len(s) != 2 {
			t.Fatalf("%d lookups, want 2: a failure must not be cached", len(s))
		}
	})

	t.Run("no slug routing configured", func(t *testing.T) {
		res, dir := setup(t, func(c *Config) { c.BaseDomain, c.LookupSlug = "", nil })
		_, err := res.ResolveSlug(ctx, "acme")
		if !errors.Is(err, ErrNoSlugLookup) || StatusCode(err) != http.StatusInternalServerError {
			t.Fatalf("err = %v, want ErrNoSlugLookup, 500", err)
		}
		if s, d := dir.calls(); len(s)+len(d) != 0 {
			t.Fatalf("lookups without slug routing: %q %q", s, d)
		}
	})
}

// TestResolveSlugThroughLandlord resolves slugs with Landlord.TenantBySlug on
// a real installation.
func TestResolveSlugThroughLandlord(t *testing.T) {
	t.Parallel()
	if srv == nil {
		t.Skip("no test server while fuzzing")
	}
	ctx := context.Background()
	db := srv.NewDB(t, template)
	ll, err := landlord.Open(ctx, db.URL, migrations(), landlord.Config{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(ll.Close)
	tn, err := ll.CreateTenant(ctx, provision.Request{Slug: "acme", Model: tenant.ModelRow})
	if err != nil {
		t.Fatal(err)
	}
	res, err := New(Config{BaseDomain: "localhost", LookupSlug: ll.TenantBySlug})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := res.ResolveSlug(ctx, "acme"); err != nil || id != tn.ID {
		t.Fatalf("ResolveSlug(acme) = %v, %v; want %v", id, err, tn.ID)
	}
	if id, err := res.Resolve(request("acme.localhost:8080", untrusted)); err != nil || id != tn.ID {
		t.Fatalf("Resolve(acme.localhost:8080) = %v, %v; want %v", id, err, tn.ID)
	}
	if _, err := res.ResolveSlug(ctx, "nope"); !errors.Is(err, ErrUnknownHost) || StatusCode(err) != http.StatusNotFound {
		t.Fatalf("ResolveSlug(nope) = %v, want ErrUnknownHost (404)", err)
	}
}
