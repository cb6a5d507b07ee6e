package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"

	"github.com/landlordhq/landlord/embedded"
)

// ServerSettings are the postgresql.conf settings of the server StartServer
// starts. Durability is on, as in production: fsync, synchronous_commit and
// full_page_writes keep their defaults (on), unlike the test servers, which
// turn them off. The rest:
//   - shared_buffers 512MB holds every case's data, as in the full run
//     the README's Performance section reports;
//   - max_connections 400 leaves room for the database-zipf case's budget
//     of 200 next to the other pools, while a pool per tenant database
//     still runs out of connections, which that case shows;
//   - pg_stat_statements with track_planning counts replans, and a max of
//     10,000 statements keeps one entry per schema tenant's lookup;
//   - log_line_prefix carries the pid, so that the memory contexts each
//     backend logs (pg_log_backend_memory_contexts) can be told apart.
func ServerSettings() map[string]string {
	return map[string]string{
		"shared_buffers":                    "512MB",
		"max_connections":                   "400",
		"shared_preload_libraries":          "pg_stat_statements",
		"pg_stat_statements.track_planning": "on",
		"pg_stat_statements.max":            "10000",
		"log_line_prefix":                   "%m [%p] ",
	}
}

// StartServer starts a private PostgreSQL for Run in a new temporary
// directory, with ServerSettings, and returns it with a function that stops
// it and removes the directory. The data directory is not a temporary one
// in embedded's sense: that would switch durability off.
func StartServer(ctx context.Context, logger *slog.Logger) (*embedded.Server, func(context.Context) error, error) {
	parent, err := os.MkdirTemp("", "landlord-bench-")
	if err != nil {
		return nil, nil, err
	}
	// The server may run as another OS user (when this process is root),
	// which must be able to enter the directory.
	if err := os.Chmod(parent, 0o755); err != nil {
		os.RemoveAll(parent)
		return nil, nil, err
	}
	settings := ServerSettings()
	if bin, err := embedded.FindBinDir(); err == nil && !hasLibrary(bin, "pg_stat_statements") {
		delete(settings, "shared_preload_libraries")
		delete(settings, "pg_stat_statements.track_planning")
		delete(settings, "pg_stat_statements.max")
	}
	srv, err := embedded.Start(ctx, embedded.Config{
		DataDir:  filepath.Join(parent, "pgdata"),
		Settings: maps.Clone(settings),
		Logger:   logger,
	})
	if err != nil {
		os.RemoveAll(parent)
		return nil, nil, fmt.Errorf("start benchmark server: %w", err)
	}
	stop := func(ctx context.Context) error {
		err := srv.Stop(ctx)
		return errors.Join(err, os.RemoveAll(parent))
	}
	return srv, stop, nil
}

// hasLibrary reports whether the server binaries in bin come with the
// shared library name (Debian ships pg_stat_statements with the server;
// other packagings may not).
func hasLibrary(bin, name string) bool {
	for _, dir := range []string{filepath.Join(bin, "..", "lib"), filepath.Join(bin, "..", "lib", "postgresql")} {
		if _, err := os.Stat(filepath.Join(dir, name+".so")); err == nil {
			return true
		}
	}
	return false
}
