package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/demo"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// helpMigrations and helpExitCodes end the Long help of every tenants and
// servers command, so that each says how it opens the installation and what
// its exit code means.
const (
	helpMigrations = `
Opening the installation needs the application's tenant-table migrations:
--migrations DIR names the directory holding its NNN_name.up.sql files.
Without --migrations the demo's migrations (one products table) are used,
which suits only an installation made by "landlord demo" or by these commands
without --migrations.`

	helpExitCodes = `
Exit codes: 0 done; 1 the operation failed, which includes a tenant, server or
installation that is not there, a slug that is already taken and a database
that does not answer; 2 bad command line or bad input (a malformed slug, model,
state, display name, id or database URL, a missing --reason or --yes, a
malformed or edited migration set, or one older than the installation's), in
which case nothing was changed; 130 interrupted by Ctrl-C, to be run again.
With --json, a list prints one JSON object per line and nothing when empty;
every other command prints exactly one JSON object.`
)

// addMigrationsFlag adds --migrations to parent and, through persistence,
// to all of its subcommands.
func addMigrationsFlag(parent *cobra.Command, dir *string) {
	parent.PersistentFlags().StringVar(dir, "migrations", "",
		"directory of the application's NNN_name.up.sql tenant-table migrations (default: the demo's)")
}

// loadMigrations returns the migrations in dir, or the demo's when dir is
// empty. A directory that cannot be read or holds no usable set is bad
// input, reported before any database is touched.
func loadMigrations(dir string) (fs.FS, error) {
	if dir == "" {
		return demo.Migrations(), nil
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, usageError{fmt.Errorf("--migrations: %w", err)}
	}
	if !st.IsDir() {
		return nil, usageError{fmt.Errorf("--migrations %q: not a directory", dir)}
	}
	fsys := os.DirFS(dir)
	if _, err := migration.Load(fsys); err != nil {
		return nil, usageError{fmt.Errorf("--migrations %q: %w", dir, err)}
	}
	return fsys, nil
}

// installation is an open Landlord installation for the length of one
// command: one administrator pool, the Landlord's own.
type installation struct {
	ll  *landlord.Landlord
	dir *directory.Directory // the Landlord's
	// base is the administrator's connection settings of the control
	// database, from which those of other servers and databases derive.
	base *pgx.ConnConfig
}

// withInstallation opens the installation at the control database (given,
// or the embedded server's; see globals.withDatabase) with the migrations in
// migrationsDir, runs fn, and closes everything again, the embedded server
// included. The migrations are checked before anything is started.
func withInstallation(ctx context.Context, g *globals, stderr io.Writer, migrationsDir string, install provision.Install, fn func(in *installation) error) error {
	migrations, err := loadMigrations(migrationsDir)
	if err != nil {
		return err
	}
	return g.withDatabase(ctx, stderr, func(url string) error {
		in, err := openInstallation(ctx, url, migrations, g.logger(stderr), install)
		if err != nil {
			return err
		}
		defer g.close(in)
		return fn(in)
	})
}

// openInstallation opens the installation at url with migrations; install
// says what it may change there (looking: nothing). A
// command's tenant traffic is a few calls at most, so it gets few
// connections, and the isolation audit is the audit command's job.
func openInstallation(ctx context.Context, url string, migrations fs.FS, log *slog.Logger, install provision.Install) (*installation, error) {
	ll, err := landlord.Open(ctx, url, migrations, landlord.Config{Logger: log, MaxConns: 2, StartupAudit: landlord.AuditOff, Install: install})
	if errors.Is(err, provision.ErrNotInstalled) {
		return nil, fmt.Errorf("%w: run \"landlord init\" to install Landlord there (creating the first tenant does too)", err)
	}
	if badMigrationSet(err) {
		return nil, usageError{err}
	}
	if err != nil {
		return nil, err
	}
	if err := ll.Provisioner().Newer(); err != nil {
		// Every answer would be about an older installation than the real
		// one: status would call it at the head, create would make tenants
		// of the old shape.
		ll.Close()
		return nil, usageError{fmt.Errorf("--migrations: %w; pass the installation's migrations (the newer set) with --migrations DIR", err)}
	}
	base, err := ll.Provisioner().ConnConfig(ctx, directory.DefaultServer, "", "")
	if err != nil {
		ll.Close()
		return nil, err
	}
	return &installation{ll: ll, dir: ll.Directory(), base: base}, nil
}

// badMigrationSet reports whether err is about the migrations given rather
// than the database: a malformed set, or one that disagrees with what the
// installation applied (an edited or missing file). That is bad input,
// whichever command finds it, and nothing was changed.
func badMigrationSet(err error) bool {
	for _, target := range []error{
		migration.ErrBadMigration, migration.ErrChecksumMismatch, migration.ErrUnknownVersion,
		migration.ErrMissingVersion, migration.ErrShape,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// close closes in, after the beforeClose hook.
func (g *globals) close(in *installation) {
	if g.beforeClose != nil {
		g.beforeClose(in)
	}
	in.ll.Close()
}

// serverConnConfig returns the settings that reach database on server s as
// the administrator: those of the control database URL, with the host and
// port of s when it has its own. This is how provisioning reaches a server
// (provision.Provisioner.ConnConfig).
func (in *installation) serverConnConfig(s directory.Server, database string) *pgx.ConnConfig {
	return s.ConnConfig(in.base, database)
}

// server returns the directory's entry for server id.
func (in *installation) server(ctx context.Context, id string) (directory.Server, error) {
	servers, err := in.dir.Servers(ctx)
	if err != nil {
		return directory.Server{}, err
	}
	for _, s := range servers {
		if s.ID == id {
			return s, nil
		}
	}
	return directory.Server{}, fmt.Errorf("server %q is not in the directory: %w", id, provision.ErrUnknownServer)
}

// tenantRef is a tenant as the command line names it: by id or by slug.
type tenantRef struct {
	arg  string
	id   tenant.ID // zero when arg is not an id
	slug string    // normalized; "" when arg is not a valid slug
}

// parseTenantRef reads an ID|SLUG argument. An id is tried first; an
// argument that is neither an id nor a valid slug is bad input.
func parseTenantRef(arg string) (tenantRef, error) {
	ref := tenantRef{arg: arg}
	if id, err := tenant.ParseID(arg); err == nil {
		if id.IsZero() {
			return ref, usageError{fmt.Errorf("tenant id %q: %w: the zero id names no tenant", arg, tenant.ErrBadID)}
		}
		ref.id = id
	}
	slug, err := tenant.NormalizeSlug(arg)
	if err == nil {
		ref.slug = slug
	} else if ref.id.IsZero() {
		return ref, usageError{fmt.Errorf("%w (and not a tenant id either)", err)}
	}
	return ref, nil
}

// lookup finds the tenant ref names. An argument that is both an id and a
// valid slug (32 hex digits starting with a letter) falls back to the slug
// when no tenant has that id.
func (r tenantRef) lookup(ctx context.Context, dir *directory.Directory) (tenant.Tenant, error) {
	if !r.id.IsZero() {
		t, err := dir.Get(ctx, r.id)
		if err == nil || r.slug == "" || !errors.Is(err, tenant.ErrNotFound) {
			return t, err
		}
	}
	return dir.GetBySlug(ctx, r.slug)
}

// withTenantAdmin opens the existing installation, looks up the tenant ref
// names, opens an admin scope for reason (a refused scope is a usage
// error) and calls fn with them, for the commands that act on one tenant
// as an administrator.
func withTenantAdmin(ctx context.Context, g *globals, cmd *cobra.Command, migrationsDir string, ref tenantRef, reason string,
	fn func(in *installation, t tenant.Tenant, admin *landlord.Admin) error) error {
	return withInstallation(ctx, g, cmd.ErrOrStderr(), migrationsDir, provision.InstallExisting, func(in *installation) error {
		t, err := ref.lookup(ctx, in.dir)
		if err != nil {
			return err
		}
		admin, err := in.ll.Admin(ctx, reason)
		if err != nil {
			return usageError{err}
		}
		return fn(in, t, admin)
	})
}

// tenantArg is the usage text of commands that take one tenant.
const tenantArg = "ID|SLUG"

// placement describes where a tenant's tables live, for tables meant for
// people: the schema (row and schema models) or the database, with the
// server when it is not the directory's own.
func placement(t tenant.Tenant) string {
	p := t.Schema
	if t.Model == tenant.ModelDatabase {
		p = t.Database + " (database)"
	}
	if t.Server != "" && t.Server != directory.DefaultServer {
		p += " on " + t.Server
	}
	return p
}

// oneLine keeps error text that is printed inside a table on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
