package landlord

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// The conformance suite and the pool alternation run in package
// landlordtest, on any application's tables. These helpers serve the tests
// of this package.

func createTenant(t testing.TB, l *Landlord, slug string, m tenant.Model) tenant.Tenant {
	t.Helper()
	tn, err := l.CreateTenant(context.Background(), provision.Request{Slug: slug, Model: m})
	if err != nil {
		t.Fatalf("create %s tenant %s: %v", m, slug, err)
	}
	return tn
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}
