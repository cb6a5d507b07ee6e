package landlord_test

import (
	"context"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/embedded"
	"github.com/landlordhq/landlord/internal/demo"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// run is the README's "Using it from Go", as written there but for where
// the migrations come from and what it prints.
func run(ctx context.Context, migrations fs.FS) error {
	// The private server the landlord command uses; or pass your own URL
	// (an administrator's) to Open. An empty URL is landlord.ErrNoDatabaseURL.
	srv, err := embedded.StartDefault(ctx, nil)
	if err != nil {
		return err
	}
	defer srv.Stop(context.Background())
	ll, err := landlord.Open(ctx, srv.URL(embedded.ControlDatabase), migrations, landlord.Config{})
	if err != nil {
		return err
	}
	defer ll.Close()

	t, err := ll.CreateTenant(ctx, provision.Request{Slug: "acme", Model: tenant.ModelSchema})
	if err != nil {
		return err
	}
	ctx = landlord.WithTenant(ctx, t.ID) // the tenant travels in the context
	var n int
	err = ll.Handle().QueryRow(ctx, `SELECT count(*) FROM products`).Scan(&n)
	fmt.Printf("%s sees %d products\n", t.Slug, n)
	return err
}

// Example_embeddedDefault runs the README's Go snippet on the embedded
// default, kept in a temporary data directory (LANDLORD_DATA_DIR).
func Example_embeddedDefault() {
	dir, err := os.MkdirTemp("", "landlord-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // the server may run as another user
		log.Fatal(err)
	}
	old, had := os.LookupEnv(embedded.EnvDataDir)
	os.Setenv(embedded.EnvDataDir, filepath.Join(dir, "pgdata"))
	defer func() {
		if had {
			os.Setenv(embedded.EnvDataDir, old)
		} else {
			os.Unsetenv(embedded.EnvDataDir)
		}
	}()
	if err := run(context.Background(), demo.Migrations()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// acme sees 0 products
}
