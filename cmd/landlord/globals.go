package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/embedded"
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

// controlDatabase is the database the embedded server keeps the installation
// in, as for embedded.StartDefault.
const controlDatabase = embedded.ControlDatabase

// withDatabase runs fn with the control database URL: the one given, or that
// of the embedded server. A server already running on the data directory
// ("landlord server start", or one started by hand) is used and left
// running; otherwise withDatabase starts one and stops it again when fn
// returns, also on Ctrl-C.
func (g *globals) withDatabase(ctx context.Context, stderr io.Writer, fn func(url string) error) error {
	if g.databaseURL != "" {
		// A URL that cannot be parsed is bad input, found before anything
		// is tried; one that parses but does not answer is a failure.
		// pgx's parse errors never contain the password.
		if _, err := pgx.ParseConfig(g.databaseURL); err != nil {
			return usageError{fmt.Errorf("--database-url: %w", err)}
		}
		return fn(g.databaseURL)
	}
	return g.withEmbedded(ctx, stderr, func(srv *embedded.Server) error {
		return fn(srv.URL(controlDatabase))
	})
}

// embeddedConfig is the configuration of the embedded server on the data
// directory of LANDLORD_DATA_DIR or its default.
func (g *globals) embeddedConfig(stderr io.Writer) (embedded.Config, error) {
	dir, err := embedded.DefaultDataDir()
	if err != nil {
		return embedded.Config{}, err
	}
	return embedded.Config{DataDir: dir, Logger: g.logger(stderr)}, nil
}

// withEmbedded runs fn with the embedded server and its control database,
// starting the server when none runs and stopping it after fn only then.
func (g *globals) withEmbedded(ctx context.Context, stderr io.Writer, fn func(srv *embedded.Server) error) error {
	cfg, err := g.embeddedConfig(stderr)
	if err != nil {
		return err
	}
	srv, err := embedded.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		// Stop leaves a server that was already running as it found it;
		// one that "server start" adopted while fn ran stays running too.
		if !srv.Reused() && kept(srv) {
			return
		}
		if err := srv.Stop(sctx); err != nil {
			fmt.Fprintln(stderr, "landlord: stop embedded server:", err)
		}
	}()
	if err := srv.EnsureDatabase(ctx, controlDatabase); err != nil {
		return err
	}
	return fn(srv)
}
