package platform

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/landlordtest"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/shop/store"
)

var srv *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }

// kit clones one template control database with the store's tables per
// installation; srv is only set once TestMain runs.
var kit = sync.OnceValue(func() landlordtest.Kit {
	return landlordtest.PgtestKitGlobal(srv, store.Migrations(), store.Global(), nil)
})

// env is one installation with the platform open on it.
type env struct {
	ll *landlord.Landlord
	st *store.Service
	p  *Platform
}

// newEnv opens a fresh installation and the platform on it; both close when
// t ends.
func newEnv(t testing.TB) *env {
	t.Helper()
	ll := kit().Open(t, landlord.Config{PurgeKeep: PurgeKeep()})
	t.Cleanup(ll.Close)
	st := store.New(ll.Handle(), store.Options{PasswordCost: bcrypt.MinCost})
	p, err := Open(context.Background(), ll, st, Config{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatalf("open platform: %v", err)
	}
	return &env{ll: ll, st: st, p: p}
}

// super returns a superuser connection to database ("" for the control
// database), closed when t ends.
func (e *env) super(t testing.TB, database string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	if database == "" {
		if err := e.ll.Provisioner().Admin().QueryRow(ctx, `SELECT current_database()`).Scan(&database); err != nil {
			t.Fatal(err)
		}
	}
	c, err := pgx.Connect(ctx, srv.AdminURL(database))
	if err != nil {
		t.Fatalf("connect to %s as superuser: %v", database, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
