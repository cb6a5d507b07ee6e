package pgtest

import (
	"context"
	"testing"

	"github.com/landlordhq/landlord/embedded"
)

// PgBouncer starts a PgBouncer in transaction pooling mode in front of the
// test server, for the duration of t. Connect to 127.0.0.1 and its Port with
// the database and role you would use on the server. It needs the embedded
// server (PgBouncer forwards over its unix socket with trust); on an
// external server the test is skipped.
func (s *Server) PgBouncer(t testing.TB) *embedded.Bouncer {
	t.Helper()
	if s.emb == nil {
		t.Skip("PgBouncer tests need the embedded server, not " + EnvDatabaseURL)
	}
	b, err := embedded.StartPgBouncer(context.Background(), embedded.BouncerConfig{Server: s.emb})
	if err != nil {
		t.Fatalf("start pgbouncer: %v", err)
	}
	t.Cleanup(b.Stop)
	return b
}
