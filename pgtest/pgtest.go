// Package pgtest gives every test its own PostgreSQL database, cloned from a
// template that is set up once per server, on one server per test binary.
//
// The server is a private one started from the machine's own binaries (see
// package embedded), or the one named by LANDLORD_DATABASE_URL. Tests
// connect as pgtest_owner, a role that owns its database but is neither
// superuser nor BYPASSRLS, so row-level security applies to them:
//
//	var srv *pgtest.Server
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		db := srv.NewDB(t, migrated)
//		...
//	}
//
// The database of a failed test is kept, and so is the server when any test
// failed, with instructions on how to reach and stop it.
package pgtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/landlordhq/landlord/embedded"
)

// EnvDatabaseURL names the environment variable holding the URL of an
// existing server to use instead of starting one. Its role needs SUPERUSER,
// or CREATEDB and CREATEROLE.
const EnvDatabaseURL = "LANDLORD_DATABASE_URL"

// OwnerRole is the role tests connect as and that owns every test database.
const OwnerRole = "pgtest_owner"

const (
	startTimeout = 2 * time.Minute
	dropTimeout  = time.Minute
	dataSubdir   = "pgdata"
)

// Server is the PostgreSQL server of a test binary. Its methods are safe for
// concurrent use.
type Server struct {
	emb *embedded.Server // nil for an external server
	dir string           // temporary directory holding emb's data directory and marker

	base          string // admin connection string; user and database are replaced per use
	adminDB       string // database the harness's own connections go to
	adminSuper    bool
	ownerPassword string // "" when pgtest_owner authenticates without one

	ownerMu    sync.Mutex
	ownerReady bool

	mu        sync.Mutex
	templates map[string]*template
	live      map[string]bool // per-test databases not yet dropped or kept
	kept      []string
	closed    bool
}

// Main is for TestMain: it starts the server for the test binary and stores
// it in *srv, runs the tests, and returns the exit code for os.Exit. When a
// test failed it leaves the embedded server running, prints how to connect
// to it and how to stop it, and returns a failing code; otherwise it stops
// the server and removes its data. When the server cannot be started it
// prints why and returns 1: tests that need a database are never skipped.
func Main(m *testing.M, srv **Server) int {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	s, err := Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	*srv = s
	code := m.Run()
	if keepServer(code, len(s.keptDatabases())) {
		fmt.Fprint(os.Stderr, s.keep())
		if code == 0 {
			code = 1
		}
		return code
	}
	if err := s.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// keepDatabase reports whether a test's database outlives the test: a failed
// test's database is kept so that its state can be inspected.
func keepDatabase(testFailed bool) bool { return testFailed }

// keepServer reports whether Main leaves the server running at exit: it does
// when the tests failed or any database was kept, since a kept database is
// useless on a stopped and removed server.
func keepServer(exitCode, keptDatabases int) bool {
	return exitCode != 0 || keptDatabases > 0
}

// Start starts a temporary embedded server, or connects to the server named
// by LANDLORD_DATABASE_URL when that is set. Before starting one it stops
// and removes servers that crashed test binaries left behind. Close releases
// the server.
func Start(ctx context.Context) (*Server, error) {
	if raw := os.Getenv(EnvDatabaseURL); raw != "" {
		s, err := startExternal(ctx, raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvDatabaseURL, err)
		}
		return s, nil
	}
	s, err := startEmbedded(ctx, os.TempDir())
	if err != nil {
		return nil, fmt.Errorf("start test server: %w", err)
	}
	return s, nil
}

func startEmbedded(ctx context.Context, root string) (*Server, error) {
	cleanStale(ctx, root)
	dir, err := os.MkdirTemp(root, dirPrefix+"*")
	if err != nil {
		return nil, err
	}
	err = writeMarker(dir, marker{PID: os.Getpid()})
	if err == nil {
		// The server's OS user must enter the directory when we are root.
		err = os.Chmod(dir, 0o755)
	}
	var emb *embedded.Server
	if err == nil {
		// Its installations are bootstrapped by a role that is not a
		// superuser (OwnerRole) and cannot close the maintenance databases
		// or revoke PUBLIC's privileges: the server is not Landlord's alone
		// in the sense of provision.OwnServerSetting.
		emb, err = embedded.Start(ctx, embedded.Config{DataDir: filepath.Join(dir, dataSubdir), Temporary: true,
			Settings: map[string]string{"landlord.own_server": "off"}})
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s := newServer(emb.URL(""), "postgres")
	s.emb, s.dir, s.adminSuper = emb, dir, true
	return s, nil
}

func startExternal(ctx context.Context, raw string) (*Server, error) {
	cfg, err := pgconn.ParseConfig(raw)
	if err != nil {
		return nil, err
	}
	s := newServer(raw, cfg.Database)
	if cfg.Password != "" {
		// Derived from the admin password, so that test binaries sharing the
		// server agree on it without storing it anywhere.
		sum := sha256.Sum256([]byte(OwnerRole + "\x00" + cfg.Password))
		s.ownerPassword = hex.EncodeToString(sum[:16])
	}
	var createDB, createRole bool
	var version int
	err = s.withAdmin(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `select rolsuper, rolcreatedb, rolcreaterole, current_setting('server_version_num')::int
			from pg_roles where rolname = current_user`).Scan(&s.adminSuper, &createDB, &createRole, &version)
	})
	switch {
	case err != nil:
		return nil, err
	case version < embedded.MinMajorVersion*10000:
		return nil, fmt.Errorf("%w: server_version_num %d, need %d or newer", embedded.ErrUnsupportedVersion, version, embedded.MinMajorVersion)
	case !s.adminSuper && !(createDB && createRole):
		return nil, fmt.Errorf("%w: role %s needs SUPERUSER, or CREATEDB and CREATEROLE", ErrNotPrivileged, cfg.User)
	}
	return s, nil
}

func newServer(base, adminDB string) *Server {
	return &Server{
		base:      base,
		adminDB:   adminDB,
		templates: make(map[string]*template),
		live:      make(map[string]bool),
	}
}

// AdminURL returns a connection URL for database as the server's admin role:
// the superuser of an embedded server, the role of LANDLORD_DATABASE_URL
// otherwise.
func (s *Server) AdminURL(database string) string {
	return rewriteConnString(s.base, "", "", database)
}

func (s *Server) ownerURL(database string) string {
	return rewriteConnString(s.base, OwnerRole, s.ownerPassword, database)
}

// Embedded returns the embedded server, or nil when the server is the one
// named by LANDLORD_DATABASE_URL.
func (s *Server) Embedded() *embedded.Server { return s.emb }

// Close stops an embedded server and removes all its data. On an external
// server it drops the test databases not kept for failed tests; templates
// stay there for the next test binary to clone. Close is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var live []string
	for name := range s.live {
		live = append(live, name)
	}
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
	defer cancel()
	if s.emb != nil {
		if err := s.emb.Stop(ctx); err != nil {
			return err
		}
		return os.RemoveAll(s.dir)
	}
	var errs []error
	for _, name := range live {
		errs = append(errs, s.dropDatabase(ctx, name))
	}
	return errors.Join(errs...)
}

func (s *Server) keptDatabases() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.kept...)
}

// keep marks the embedded server as deliberately kept, so that later test
// binaries leave it alone, and returns what to tell the developer.
func (s *Server) keep() string {
	var b strings.Builder
	kept := s.keptDatabases()
	if s.emb == nil {
		fmt.Fprintf(&b, "pgtest: kept %d database(s) of failed tests on the %s server: %s\n",
			len(kept), EnvDatabaseURL, strings.Join(kept, ", "))
		if err := s.Close(); err != nil {
			fmt.Fprintf(&b, "pgtest: %v\n", err)
		}
		return b.String()
	}
	if err := writeMarker(s.dir, marker{PID: os.Getpid(), Kept: true}); err != nil {
		fmt.Fprintf(&b, "pgtest: mark server as kept: %v\n", err)
	}
	stop := fmt.Sprintf("%s -D %s stop", filepath.Join(s.emb.BinDir(), "pg_ctl"), s.emb.DataDir())
	if u := s.emb.OSUser(); u != "" {
		stop = fmt.Sprintf("su -s /bin/sh %s -c '%s'", u, stop)
	}
	fmt.Fprintf(&b, "pgtest: tests failed; the server keeps running with %d kept database(s) for inspection\n", len(kept))
	fmt.Fprintf(&b, "pgtest:   connect: psql '%s'\n", s.AdminURL("postgres"))
	fmt.Fprintf(&b, "pgtest:   stop:    %s && rm -rf %s\n", stop, s.dir)
	return b.String()
}

// rewriteConnString returns base with the user (and password) and database
// replaced; empty arguments leave base's values. base is a URL or a
// keyword/value string, in which a later setting overrides an earlier one.
func rewriteConnString(base, user, password, database string) string {
	if u, err := url.Parse(base); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if user != "" {
			u.User = url.User(user)
			if password != "" {
				u.User = url.UserPassword(user, password)
			}
		}
		if database != "" {
			u.Path, u.RawPath = "/"+database, ""
		}
		return u.String()
	}
	parts := []string{base}
	if user != "" {
		parts = append(parts, "user="+quoteValue(user), "password="+quoteValue(password))
	}
	if database != "" {
		parts = append(parts, "dbname="+quoteValue(database))
	}
	return strings.Join(parts, " ")
}

func quoteValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

var passwordSetting = regexp.MustCompile(`password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// redact hides the password in a connection string meant for a log line.
func redact(conn string) string {
	if u, err := url.Parse(conn); err == nil && u.Scheme != "" {
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return passwordSetting.ReplaceAllString(conn, "password=xxxxx")
}
