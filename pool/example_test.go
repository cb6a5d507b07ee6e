package pool

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/tenant"
)

func ExampleManager() {
	ctx := context.Background()
	// The resolver turns a target into connection settings. Here it points
	// at the test server (srv.AdminURL); a real one looks the server up in
	// the directory and logs in as t.Role with its password.
	resolve := func(ctx context.Context, t Target) (*pgx.ConnConfig, error) {
		return pgx.ParseConfig(srv.AdminURL(t.Database))
	}
	m, err := New(resolve, Config{MaxConns: 4})
	if err != nil {
		panic(err)
	}
	defer m.Close()

	key := Key{
		Target: Target{Server: "main", Database: "postgres", Role: "postgres"},
		Tenant: tenant.NewID(),
	}
	for range 3 {
		c, err := m.Acquire(ctx, key)
		if err != nil {
			panic(err)
		}
		var n int
		err = c.Conn().QueryRow(ctx, "SELECT 40 + 2").Scan(&n)
		c.Release()
		if err != nil {
			panic(err)
		}
		fmt.Println(n)
	}
	st := m.Stats().Servers[0]
	fmt.Printf("dials %d, affinity hits %d\n", st.Dials, st.AffinityHits)
	// Output:
	// 42
	// 42
	// 42
	// dials 1, affinity hits 2
}
