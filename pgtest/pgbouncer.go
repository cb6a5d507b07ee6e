package pgtest

import (
	"context"
	"testing"

	"github.com/landlordhq/landlord/embedded"
)

// PgBouncer starts PgBouncer as the pooler in transaction mode in front of
// the test server, for the duration of t. Connect to 127.0.0.1 and its Port
// with the database and role you would use on the server. It needs the
// embedded server (the pooler forwards over its unix socket with trust); on
// an external server the test is skipped.
func (s *Server) PgBouncer(t testing.TB) *embedded.Pooler {
	t.Helper()
	if s.emb == nil {
		t.Skip("tests through the pooler need the embedded server, not " + EnvDatabaseURL)
	}
	b, err := embedded.StartPgBouncer(context.Background(), embedded.PoolerConfig{Server: s.emb})
	if err != nil {
		t.Fatalf("start pgbouncer: %v", err)
	}
	t.Cleanup(b.Stop)
	return b
}
