package api

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/landlordhq/landlord/pgtest"
)

var srv *pgtest.Server

// TestMain runs the tests on a throwaway PostgreSQL and then, when the
// whole package ran and passed, fails unless every route of the OpenAPI
// document was called successfully at least once.
func TestMain(m *testing.M) {
	code := pgtest.Main(m, &srv)
	if code == 0 && wholeRun() {
		if missing := uncoveredRoutes(); len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: routes of the OpenAPI document that no test called with success:\n")
			for _, r := range missing {
				fmt.Fprintf(os.Stderr, "\t%s\n", r)
			}
			code = 1
		}
	}
	os.Exit(code)
}

// wholeRun reports whether no -run or -skip filter left tests out.
func wholeRun() bool {
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return true
}
