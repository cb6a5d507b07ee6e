package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Extra is another server for a test that spreads an installation over
// several (Start: a private one, or with LANDLORD_DATABASE_URL the same
// server again), with its owner role made and a database name of the
// test's own.
type Extra struct {
	*Server
	// Host and Port reach it; Database is free for the test to create,
	// and dropped after a test that passed.
	Host     string
	Port     int
	Database string
}

// StartExtra starts an Extra server for t and stops it when t ends.
func StartExtra(t testing.TB) *Extra {
	t.Helper()
	ctx := context.Background()
	s, err := Start(ctx)
	if err != nil {
		t.Fatalf("pgtest: start another server: %v", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	x := &Extra{Server: s, Database: "landlord_" + hex.EncodeToString(b)}
	// Registered first, so that it runs after NewDB's own cleanup.
	t.Cleanup(func() {
		if !t.Failed() {
			if conn, err := pgx.Connect(ctx, s.AdminURL("postgres")); err == nil {
				_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+x.Database+" WITH (FORCE)")
				conn.Close(ctx)
			}
		}
		_ = s.Close()
	})
	s.NewDB(t, nil) // the owner role, which an installation's administrator logs in as
	cfg, err := pgx.ParseConfig(s.AdminURL("postgres"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	x.Host, x.Port = cfg.Host, int(cfg.Port)
	return x
}
