package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/internal/ident"
)

// Template describes the state every test database starts from.
type Template struct {
	// Name identifies the template on the server: a template is set up once
	// per Name and reused, across test binaries too on an external server.
	// Change it whenever Setup changes, typically by including a hash of the
	// migrations Setup applies.
	Name string

	// Setup brings the template database to its state, connected as
	// pgtest_owner through db.URL. It runs once per server and Name, before
	// the first test using the template gets its clone. It must close every
	// connection it opens: a template with open connections cannot be cloned.
	// When it returns an error, every test using the template fails with it.
	// nil leaves the database empty.
	Setup func(ctx context.Context, db *DB) error
}

// DB is a database made for one test.
type DB struct {
	// Name is the database name.
	Name string
	// URL connects to the database as pgtest_owner, who owns it and is
	// neither superuser nor BYPASSRLS, so that row-level security applies.
	URL string
	// AdminURL connects to the database as the server's admin role.
	AdminURL string
	// Server is the server holding the database.
	Server *Server
}

// template is the once-per-server setup of one Template.
type template struct {
	once sync.Once
	err  error
}

const (
	cloneAttempts = 4
	cloneBackoff  = 250 * time.Millisecond
	lockOwner     = "pgtest: owner role"
)

// NewDB creates a database for the test t, cloned from tmpl (an empty
// database when tmpl is nil), and drops it when the test ends, unless the
// test failed: then it keeps it and logs how to connect to it. It calls
// t.Fatal when the database cannot be made. NewDB is safe for concurrent use
// by parallel tests.
func (s *Server) NewDB(t testing.TB, tmpl *Template) *DB {
	t.Helper()
	if tmpl == nil {
		tmpl = &Template{Name: "pgtest: empty database"}
	}
	if tmpl.Name == "" {
		t.Fatal("pgtest: Template.Name is empty")
	}
	ctx := t.Context()
	if err := s.ensureOwner(ctx); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	tpl, err := s.template(ctx, tmpl)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name := "pgtest_" + randomHex(8)
	if err := s.clone(ctx, name, tpl); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	db := s.db(name)
	t.Cleanup(func() { s.release(t, db) })
	return db
}

func (s *Server) db(name string) *DB {
	return &DB{Name: name, URL: s.ownerURL(name), AdminURL: s.AdminURL(name), Server: s}
}

// release drops the test's database, or keeps it when the test failed.
func (s *Server) release(t testing.TB, db *DB) {
	if keepDatabase(t.Failed()) {
		s.mu.Lock()
		delete(s.live, db.Name)
		s.kept = append(s.kept, db.Name)
		s.mu.Unlock()
		t.Logf("kept database for failed test: psql '%s'", redact(db.URL))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
	defer cancel()
	if err := s.dropDatabase(ctx, db.Name); err != nil {
		t.Errorf("pgtest: %v", err)
	}
}

// templateName derives a valid database name from any Template.Name.
func templateName(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "pgtest_tpl_" + hex.EncodeToString(sum[:8])
}

// template returns the name of the template database for tmpl, setting it up
// the first time.
func (s *Server) template(ctx context.Context, tmpl *Template) (string, error) {
	name := templateName(tmpl.Name)
	s.mu.Lock()
	tpl := s.templates[name]
	if tpl == nil {
		tpl = &template{}
		s.templates[name] = tpl
	}
	s.mu.Unlock()
	tpl.once.Do(func() {
		if err := s.buildTemplate(ctx, name, tmpl); err != nil {
			tpl.err = fmt.Errorf("template %q (%s): %w", tmpl.Name, name, err)
		}
	})
	return name, tpl.err
}

// buildTemplate creates and sets up the template database unless it exists
// already, holding an advisory lock so that test binaries sharing a server
// build each template once.
func (s *Server) buildTemplate(ctx context.Context, name string, tmpl *Template) error {
	return s.withAdvisoryLock(ctx, "pgtest: template "+name, func(conn *pgx.Conn) error {
		var isTemplate bool
		err := conn.QueryRow(ctx, "select datistemplate from pg_database where datname = $1", name).Scan(&isTemplate)
		switch {
		case err == nil && isTemplate:
			return nil
		case err == nil:
			// Left by a binary that crashed during Setup.
			if err := s.dropDatabase(ctx, name); err != nil {
				return err
			}
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if _, err := conn.Exec(ctx, "create database "+ident.Quote(name)+" owner "+ident.Quote(OwnerRole)); err != nil {
			return err
		}
		if err := s.setupTemplate(ctx, s.db(name), tmpl); err != nil {
			cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dropTimeout)
			defer cancel()
			_ = s.dropDatabase(cleanupCtx, name)
			return err
		}
		_, err = conn.Exec(ctx, "alter database "+ident.Quote(name)+" is_template true")
		return err
	})
}

func (s *Server) setupTemplate(ctx context.Context, db *DB, tmpl *Template) error {
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		return err
	}
	// PostgreSQL 15 already revokes it; servers upgraded from older versions
	// and edited template1 databases may not have.
	_, err = conn.Exec(ctx, "revoke create on schema public from public")
	if cerr := conn.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil || tmpl.Setup == nil {
		return err
	}
	if err := tmpl.Setup(ctx, db); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	return nil
}

// clone creates database name from the template tpl. It retries while the
// template still has connections, as right after Setup closed its own,
// when the backends may not have exited yet.
func (s *Server) clone(ctx context.Context, name, tpl string) error {
	sql := fmt.Sprintf("create database %s template %s strategy wal_log owner %s",
		ident.Quote(name), ident.Quote(tpl), ident.Quote(OwnerRole))
	s.mu.Lock()
	s.live[name] = true
	s.mu.Unlock()
	for attempt := 1; ; attempt++ {
		err := s.withAdmin(ctx, func(conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, sql)
			return err
		})
		var pgErr *pgconn.PgError
		if err == nil {
			return nil
		}
		if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.ObjectInUse || attempt == cloneAttempts {
			s.mu.Lock()
			delete(s.live, name)
			s.mu.Unlock()
			if pgErr != nil && pgErr.Code == pgerrcode.ObjectInUse {
				return fmt.Errorf("clone %s: %w (does Template.Setup leave a connection open?)", tpl, err)
			}
			return fmt.Errorf("clone %s: %w", tpl, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(cloneBackoff):
		}
	}
}

func (s *Server) dropDatabase(ctx context.Context, name string) error {
	err := s.withAdmin(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "drop database if exists "+ident.Quote(name)+" with (force)")
		return err
	})
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	s.mu.Lock()
	delete(s.live, name)
	s.mu.Unlock()
	return nil
}

// ensureOwner creates pgtest_owner once per server, under an advisory lock
// so that test binaries sharing a server do not race.
func (s *Server) ensureOwner(ctx context.Context) error {
	s.ownerMu.Lock()
	defer s.ownerMu.Unlock()
	if s.ownerReady {
		return nil
	}
	role := ident.Quote(OwnerRole)
	err := s.withAdvisoryLock(ctx, lockOwner, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "create role "+role+" login createdb createrole nosuperuser nobypassrls")
		var pgErr *pgconn.PgError
		// duplicate_object, or unique_violation when a binary not holding
		// the lock (an older harness) created it at the same moment.
		if errors.As(err, &pgErr) && (pgErr.Code == pgerrcode.DuplicateObject || pgErr.Code == pgerrcode.UniqueViolation) {
			err = nil
		}
		if err != nil {
			return err
		}
		alter := "alter role " + role + " login createdb createrole"
		if s.ownerPassword != "" {
			// A password cannot be a bind parameter in ALTER ROLE.
			alter += " password " + ident.Literal(s.ownerPassword)
		}
		if _, err := conn.Exec(ctx, alter); err != nil {
			return err
		}
		if !s.adminSuper {
			// Creating databases owned by pgtest_owner, and dropping them,
			// takes membership in it.
			if _, err := conn.Exec(ctx, "grant "+role+" to current_user"); err != nil {
				return err
			}
		}
		var super, bypassRLS bool
		if err := conn.QueryRow(ctx, "select rolsuper, rolbypassrls from pg_roles where rolname = $1",
			OwnerRole).Scan(&super, &bypassRLS); err != nil {
			return err
		}
		if super || bypassRLS {
			return fmt.Errorf("%w: rolsuper=%t rolbypassrls=%t; run ALTER ROLE %s NOSUPERUSER NOBYPASSRLS",
				ErrOwnerPrivileged, super, bypassRLS, OwnerRole)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set up role %s: %w", OwnerRole, err)
	}
	s.ownerReady = true
	return nil
}

// withAdmin runs fn on a fresh admin connection: the harness holds no
// connections between calls, so that the tests have the server's
// connection slots to themselves.
func (s *Server) withAdmin(ctx context.Context, fn func(*pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, s.AdminURL(s.adminDB))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return fn(conn)
}

// withAdvisoryLock runs fn holding the session advisory lock named key in
// the admin database.
func (s *Server) withAdvisoryLock(ctx context.Context, key string, fn func(*pgx.Conn) error) error {
	sum := sha256.Sum256([]byte(key))
	id := int64(binary.BigEndian.Uint64(sum[:8]))
	return s.withAdmin(ctx, func(conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, "select pg_advisory_lock($1)", id); err != nil {
			return err
		}
		// Closing the connection releases the lock too; unlocking first
		// lets the next waiter in without waiting for the disconnect.
		defer conn.Exec(context.WithoutCancel(ctx), "select pg_advisory_unlock($1)", id)
		return fn(conn)
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
