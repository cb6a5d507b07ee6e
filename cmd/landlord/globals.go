package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/embedded"
	"github.com/landlordhq/landlord/internal/ident"
)

// globals holds the flags every command shares.
type globals struct {
	databaseURL string
	verbose     bool
	// beforeClose, when set, is called with each installation a command
	// opened, after the command's work and before it is closed: tests
	// look at its connections with it.
	beforeClose func(in *installation)
}

func (g *globals) logger(w io.Writer) *slog.Logger {
	if !g.verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// controlDatabase is the database the embedded server keeps the installation in.
const controlDatabase = "landlord"

// withDatabase runs fn with the control database URL: the one given, or that
// of the embedded server, which it starts (or finds running after a crash)
// and stops again when fn returns, also on Ctrl-C.
func (g *globals) withDatabase(ctx context.Context, stderr io.Writer, fn func(url string) error) error {
	if g.databaseURL != "" {
		return fn(g.databaseURL)
	}
	dir, err := embedded.DefaultDataDir()
	if err != nil {
		return err
	}
	log := g.logger(stderr)
	srv, err := embedded.Start(ctx, embedded.Config{DataDir: dir, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := srv.Stop(sctx); err != nil {
			fmt.Fprintln(stderr, "landlord: stop embedded server:", err)
		}
	}()
	if err := ensureDatabase(ctx, srv.URL("postgres"), controlDatabase); err != nil {
		return err
	}
	return fn(srv.URL(controlDatabase))
}

// ensureDatabase creates database on the server at url if it is missing.
func ensureDatabase(ctx context.Context, url, database string) error {
	conn, err := pgx.Connect(ctx, url)
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
	_, err = conn.Exec(ctx, "CREATE DATABASE "+ident.Quote(database))
	return err
}
