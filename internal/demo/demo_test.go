package demo

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/landlordhq/landlord/pgtest"
)

var server *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &server)) }

// TestRun runs the demo twice on one database: the second run replaces the
// first one's tenants. Run itself fails if any tenant sees another's rows.
func TestRun(t *testing.T) {
	t.Parallel()
	db := server.NewDB(t, nil)
	ctx := context.Background()
	for run := 1; run <= 2; run++ {
		var out bytes.Buffer
		if err := Run(ctx, db.URL, &out); err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out.String())
		}
		text := out.String()
		for _, want := range []string{
			"demo-corner-shop  row", "apples, bread",
			"demo-book-store   schema", "atlas, novel, poems",
			"demo-big-market   database", "bikes, tents, boots, maps",
			"permission denied for schema", "no tenant in context",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("run %d: output lacks %q:\n%s", run, want, text)
			}
		}
		if n := strings.Count(text, "refused:"); n != 6 {
			t.Errorf("run %d: %d refusals, want 6 (each tenant reading each other):\n%s", run, n, text)
		}
	}
}
