package httptenant

import (
	"flag"
	"os"
	"testing"

	"github.com/landlordhq/landlord/pgtest"
)

// srv is the PostgreSQL server of the one database test (integration_test.go);
// nil while fuzzing.
var srv *pgtest.Server

// TestMain starts the test server like every database test binary, except
// when the binary is fuzzing: the fuzz targets need no database, and each of
// the fuzzing engine's worker processes runs TestMain again, so starting a
// server there would start one per worker.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		os.Exit(m.Run())
	}
	os.Exit(pgtest.Main(m, &srv))
}
