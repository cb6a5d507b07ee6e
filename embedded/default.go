package embedded

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
)

// ControlDatabase is the database of the embedded default that holds the
// installation: the one the landlord command uses.
const ControlDatabase = "landlord"

// StartDefault starts the embedded default, the private server the landlord
// command uses when it is given no database URL: its data directory is
// LANDLORD_DATA_DIR, or DefaultDataDir's default, and a server already
// running there is used and left running (Server.Reused). It makes sure the
// control database exists. Open the installation at
// srv.URL(ControlDatabase) and Stop the server when done:
//
//	srv, err := embedded.StartDefault(ctx, nil)
//	...
//	defer srv.Stop(context.Background())
//	ll, err := landlord.Open(ctx, srv.URL(embedded.ControlDatabase), migrations, landlord.Config{})
//
// log may be nil.
func StartDefault(ctx context.Context, log *slog.Logger) (*Server, error) {
	dir, err := DefaultDataDir()
	if err != nil {
		return nil, err
	}
	srv, err := Start(ctx, Config{DataDir: dir, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := srv.EnsureDatabase(ctx, ControlDatabase); err != nil {
		_ = srv.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	return srv, nil
}

// EnsureDatabase creates database on s if it is missing.
func (s *Server) EnsureDatabase(ctx context.Context, database string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to embedded server: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, database).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	if _, err = conn.Exec(ctx, "CREATE DATABASE "+ident.Quote(database)); err != nil {
		return fmt.Errorf("create database %s: %w", database, err)
	}
	return nil
}
