// Package httptenant turns HTTP requests into tenant contexts for the
// landlord handle, failing closed (SECURITY.md, B05-B07).
//
// A Resolver maps the request's host to a tenant: a direct subdomain of a
// base domain is a tenant slug ("acme.shop.example" is tenant "acme", looked
// up with Landlord.TenantBySlug or any function like it), and other hosts go
// to a lookup of custom domains that the application provides. Hosts are
// normalized first (NormalizeHost: lower case, IDNA, no port, no trailing
// dot, DNS length and character rules, no IP addresses); a host that fails
// is refused before any lookup, and an unknown host gets 404, never a
// default tenant. Forwarded hosts (X-Forwarded-Host or Forwarded) count
// only from configured trusted proxies, and then only the value the nearest
// proxy appended. Optionally the bearer token must be a JWT, signed with the
// one configured algorithm and key, valid now, and naming the routed tenant.
//
//	ll, err := landlord.Open(ctx, url, migrations, landlord.Config{})
//	res, err := httptenant.New(httptenant.Config{
//		BaseDomain: "shop.example",
//		LookupSlug: ll.TenantBySlug,
//		JWT: &httptenant.JWTConfig{Algorithm: "EdDSA", Keys: []any{publicKey}},
//	})
//	http.Handle("/", res.Middleware(app)) // app's handlers use r.Context() with ll.Handle()
//
// Errors map to HTTP statuses only at the edge: the middleware and
// WriteError answer with a generic body; callers that use Resolve or
// DecodeJSON directly get this package's sentinel errors.
//
// # Request limits
//
// Middleware caps request bodies (Config.MaxBodyBytes, 413), and
// DecodeJSON decodes a body within a size and a nesting limit (400 for
// nesting deeper than 64 levels by default). What a well-formed request
// makes the database do is out of scope here: a giant IN list or array
// parameter within the body limit is bounded by PostgreSQL's
// statement_timeout (set it for the application role), not by this package.
//
// # Fuzzing
//
// FuzzNormalizeHost, FuzzResolveHost and FuzzJWT run their seed corpora
// (testdata/fuzz) with every go test. To fuzz for longer, one target at a
// time:
//
//	go test -run '^$' -fuzz FuzzNormalizeHost -fuzztime 5m ./httptenant/
//	go test -run '^$' -fuzz FuzzResolveHost -fuzztime 5m ./httptenant/
//	go test -run '^$' -fuzz FuzzJWT -fuzztime 5m ./httptenant/
//
// Fuzzing runs no database test and starts no PostgreSQL server.
package httptenant
