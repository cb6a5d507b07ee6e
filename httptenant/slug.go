package httptenant

import (
	"context"
	"errors"
	"fmt"

	"github.com/landlordhq/landlord/tenant"
)

// ErrNoSlugLookup is returned by Resolver.ResolveSlug when the resolver has no
// Config.BaseDomain and Config.LookupSlug, so it maps no slugs at all: a
// mistake in the server's setup, not in the request. StatusCode answers 500.
var ErrNoSlugLookup = errors.New("slug routing needs Config.BaseDomain and Config.LookupSlug")

// ResolveSlug returns the tenant with slug, for servers that also route by
// path ("/s/<slug>/") beside the host ("<slug>.<base domain>"). It applies
// what the host path applies to a subdomain: the slug must be one that
// tenant.NormalizeSlug accepts and returns unchanged (lower case, no
// reserved name), it is looked up with Config.LookupSlug, and the answer
// shares the host path's cache, so a store served under both forms costs one
// lookup. Errors are the host path's: a slug that is not canonical or maps
// to no tenant is ErrUnknownHost (404 through StatusCode), a failed lookup
// ErrLookup (500), and a resolver without slug routing ErrNoSlugLookup.
//
// No redirect is implied: a caller that wants "/s/Acme/" to reach "acme"
// normalizes the slug itself and redirects to the canonical path.
func (rv *Resolver) ResolveSlug(ctx context.Context, slug string) (tenant.ID, error) {
	if rv.base == "" || rv.lookupSlug == nil {
		return tenant.ID{}, ErrNoSlugLookup
	}
	norm, err := tenant.NormalizeSlug(slug)
	if err != nil || norm != slug {
		return tenant.ID{}, fmt.Errorf("%w: path segment is not a slug", ErrUnknownHost)
	}
	return rv.cached(ctx, "slug\x00"+slug, func() (tenant.ID, error) {
		t, err := rv.lookupSlug(ctx, slug)
		return t.ID, err
	})
}
