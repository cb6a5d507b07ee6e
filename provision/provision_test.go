package provision

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

func TestConfigRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"owner is app", Config{OwnerRole: "same", AppRole: "same"}, "must differ"},
		{"default owner as app", Config{AppRole: "landlord_owner"}, "must differ"},
		{"tenant prefix owner", Config{OwnerRole: "t_owner"}, "OwnerRole"},
		{"role prefix app", Config{AppRole: "r_app"}, "AppRole"},
		{"quoted owner", Config{OwnerRole: `x"; DROP ROLE y; --`}, "OwnerRole"},
		{"upper-case app", Config{AppRole: "App"}, "AppRole"},
		{"pg_ app", Config{AppRole: "pg_app"}, "AppRole"},
		{"long owner", Config{OwnerRole: strings.Repeat("o", 64)}, "OwnerRole"},
	} {
		// Refused before the pool is used: a nil pool would panic.
		_, err := New(t.Context(), nil, testMigrations(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.name, err, c.want)
		}
	}
	if _, err := New(t.Context(), nil, nil, Config{}); err == nil {
		t.Errorf("New without migrations: no error")
	}
}

func TestBootstrapTwice(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	create(t, e, "alpha", tenant.ModelSchema)
	create(t, e, "bravo", tenant.ModelRow)
	state := func() string {
		var s string
		must(t, e.pool.QueryRow(ctx, `SELECT concat_ws(' | ',
			(SELECT string_agg(concat_ws(',', target, version, applied_at), ';' ORDER BY target, version) FROM landlord.target_migrations),
			(SELECT string_agg(concat_ws(',', id, state, routing_epoch, updated_at), ';' ORDER BY id) FROM landlord.tenants),
			(SELECT string_agg(concat_ws(',', id, database), ';' ORDER BY id) FROM landlord.servers),
			(SELECT concat_ws(',', id, database_oid, md5(secret)) FROM landlord.installation),
			(SELECT count(*) FROM landlord.provisioning_ledger),
			(SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = 'landlord_app'))`).Scan(&s))
		return s
	}
	before := state()
	p2, err := New(ctx, e.pool, testMigrations(), Config{})
	if err != nil {
		t.Fatalf("second bootstrap: %v", err)
	}
	if after := state(); after != before {
		t.Errorf("second bootstrap changed the installation:\nbefore %s\nafter  %s", before, after)
	}
	if p2.Installation().ID != e.p.Installation().ID || !bytes.Equal(p2.Installation().Secret, e.p.Installation().Secret) {
		t.Errorf("second bootstrap changed the installation's identity")
	}
	if p2.Roles().Password("landlord_app") != e.p.Roles().Password("landlord_app") {
		t.Errorf("second bootstrap changed the app role's password")
	}
	// The second Provisioner works on the same directory.
	if _, err := p2.Create(ctx, Request{Slug: "alpha", Model: tenant.ModelRow}); !errors.Is(err, tenant.ErrSlugTaken) {
		t.Errorf("second Provisioner creating a taken slug: %v", err)
	}
}

func TestBootstrapLocksDownControlDatabase(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	for _, c := range []struct {
		role, priv string
		want       bool
	}{
		{"public", "CONNECT", false},
		{"public", "TEMPORARY", false},
		{"landlord_app", "CONNECT", true},
		{"landlord_app", "TEMPORARY", false},
		{"landlord_app", "CREATE", false},
	} {
		if got := queryBool(t, e.pool, `SELECT has_database_privilege($1, current_database(), $2)`, c.role, c.priv); got != c.want {
			t.Errorf("%s has %s on the control database: %t, want %t", c.role, c.priv, got, c.want)
		}
	}
	var super, bypass, inherit, login bool
	must(t, e.pool.QueryRow(t.Context(), `SELECT rolsuper, rolbypassrls, rolinherit, rolcanlogin FROM pg_roles WHERE rolname = 'landlord_app'`).
		Scan(&super, &bypass, &inherit, &login))
	if super || bypass || inherit || !login {
		t.Errorf("landlord_app: superuser=%t bypassrls=%t inherit=%t login=%t", super, bypass, inherit, login)
	}
	if queryBool(t, e.pool, `SELECT pg_has_role('landlord_app', 'landlord_owner', 'MEMBER')`) {
		t.Errorf("landlord_app is a member of the owner role")
	}
	var owner string
	must(t, e.pool.QueryRow(t.Context(), `SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1`, SharedSchema).Scan(&owner))
	if owner != "landlord_owner" {
		t.Errorf("shared schema owned by %s", owner)
	}
}

// TestInstallationOfCopies: a copy of a control database is a new
// installation, and its Reconcile leaves the original's objects alone.
func TestInstallationOfCopies(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := srv.NewDB(t, installed)
	pool := openPool(t, db.URL, 0)
	var tplID tenant.ID
	var tplSecret []byte
	must(t, pool.QueryRow(ctx, `SELECT id, secret FROM landlord.installation`).Scan(&tplID, &tplSecret))
	p, err := New(ctx, pool, testMigrations(), Config{})
	must(t, err)
	if p.Installation().ID == tplID {
		t.Errorf("a clone of the template kept the template's installation id %s", tplID)
	}
	if !bytes.Equal(p.Installation().Secret, tplSecret) {
		t.Errorf("a clone of the template got a new secret; existing roles would lose their passwords")
	}
	orig := p.Installation()
	t.Cleanup(func() {
		if !t.Failed() {
			dropInstallationObjects(t, db.AdminURL, orig.ID)
		}
	})
	tn := create(t, &env{db: db, pool: pool, p: p}, "original", tenant.ModelSchema)
	pool.Close()

	// Copy it by hand, as a restore or a test template would.
	clone := db.Name + "_copy"
	admin, err := pgx.Connect(ctx, db.Server.AdminURL("postgres"))
	must(t, err)
	defer admin.Close(context.Background())
	for attempt := 0; ; attempt++ {
		_, err = admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s OWNER pgtest_owner`, ident.Quote(clone), ident.Quote(db.Name)))
		if !isCode(err, pgerrcode.ObjectInUse) || attempt == 20 { // the pool's sessions may not have ended yet
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	must(t, err)
	t.Cleanup(func() {
		admin, err := pgx.Connect(context.Background(), db.Server.AdminURL("postgres"))
		if err == nil {
			admin.Exec(context.Background(), fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, ident.Quote(clone)))
			admin.Close(context.Background())
		}
	})
	cfg, err := pgxpool.ParseConfig(db.URL)
	must(t, err)
	cfg.ConnConfig.Database = clone
	cpool, err := pgxpool.NewWithConfig(ctx, cfg)
	must(t, err)
	defer cpool.Close()
	cp, err := New(ctx, cpool, testMigrations(), Config{})
	if err != nil {
		t.Fatalf("bootstrap the copy: %v", err)
	}
	if cp.Installation().ID == orig.ID {
		t.Fatalf("the copy kept the original's installation id")
	}
	if cp.Roles().Password("landlord_app") != p.Roles().Password("landlord_app") {
		t.Errorf("the copy derives other passwords")
	}
	servers, err := cp.Directory().Servers(ctx)
	must(t, err)
	if len(servers) != 1 || servers[0].Database != clone {
		t.Errorf("the copy's servers: %+v, want %s", servers, clone)
	}
	// In the copy, the tenant's entry is lost; its objects belong to the
	// original installation all the same.
	_, err = cpool.Exec(ctx, `DELETE FROM landlord.tenants WHERE id = $1`, tn.ID)
	must(t, err)
	rep, err := cp.Reconcile(ctx)
	if err != nil || len(rep.Orphans) != 0 || len(rep.Failures) != 0 {
		t.Errorf("reconcile in the copy: %+v, %v; want nothing done", rep, err)
	}
	if !queryBool(t, cpool, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, tn.ID.RoleName()) {
		t.Errorf("reconcile in the copy dropped the original's role")
	}
}

func TestConnConfig(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	a := create(t, e, "alpha", tenant.ModelDatabase)
	b := create(t, e, "bravo", tenant.ModelDatabase)
	role := a.ID.RoleName()

	cfg, err := e.p.ConnConfig(ctx, directory.DefaultServer, a.Database, role)
	must(t, err)
	if cfg.User != role || cfg.Password != e.p.Roles().Password(role) || cfg.Database != a.Database {
		t.Errorf("ConnConfig as %s: user %s database %s, password derived: %t", role, cfg.User, cfg.Database, cfg.Password == e.p.Roles().Password(role))
	}
	adminCfg, err := e.p.ConnConfig(ctx, directory.DefaultServer, a.Database, "")
	must(t, err)
	if adminCfg.User != e.pool.Config().ConnConfig.User || adminCfg.Password != e.pool.Config().ConnConfig.Password {
		t.Errorf("ConnConfig without a role connects as %s, want the administrator", adminCfg.User)
	}
	if _, err := e.p.ConnConfig(ctx, "nowhere", a.Database, role); !errors.Is(err, ErrUnknownServer) {
		t.Errorf("ConnConfig on an unknown server: %v, want ErrUnknownServer", err)
	}
	if e.p.Roles().Password(role) == e.p.Roles().Password(b.ID.RoleName()) {
		t.Errorf("two tenants' roles share a password")
	}
	if NewRoles("landlord_owner", "landlord_app", e.p.Installation().Secret).Password(role) != cfg.Password {
		t.Errorf("the password is not derived from the installation secret alone")
	}
	if NewRoles("landlord_owner", "landlord_app", []byte("another secret of 32 bytes......")).Password(role) == cfg.Password {
		t.Errorf("another secret derives the same password")
	}

	emb := srv.Embedded()
	if emb == nil {
		t.Skip("password logins are checked over the embedded server's TCP listener")
	}
	// A server row reached over TCP, where the embedded server asks for
	// passwords (the unix socket trusts everyone).
	must(t, e.p.Directory().EnsureServer(ctx, directory.Server{ID: "tcp", Host: "127.0.0.1", Port: emb.Port(), Database: e.db.Name}))
	login := func(database, role, password string) error {
		cfg, err := e.p.ConnConfig(ctx, "tcp", database, role)
		must(t, err)
		if cfg.Host != "127.0.0.1" || cfg.Port != uint16(emb.Port()) {
			t.Fatalf("ConnConfig on server tcp: %s:%d", cfg.Host, cfg.Port)
		}
		if password != "" {
			cfg.Password = password
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		var user string
		if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&user); err != nil {
			return err
		}
		if user != role {
			t.Errorf("logged in as %s, want %s", user, role)
		}
		return nil
	}
	if err := login(a.Database, role, ""); err != nil {
		t.Errorf("tenant role with its derived password over TCP: %v", err)
	}
	if err := login(a.Database, role, "wrong"); !isCode(err, pgerrcode.InvalidPassword) {
		t.Errorf("tenant role with a wrong password: %v, want invalid_password (28P01)", err)
	}
	if err := login(a.Database, role, e.p.Roles().Password(b.ID.RoleName())); !isCode(err, pgerrcode.InvalidPassword) {
		t.Errorf("tenant role with another tenant's password: %v, want invalid_password (28P01)", err)
	}
	if err := login(a.Database, b.ID.RoleName(), ""); !isCode(err, pgerrcode.InsufficientPrivilege) {
		t.Errorf("another tenant's role on %s: %v, want permission denied (42501)", a.Database, err)
	}
	if err := login(e.db.Name, "landlord_app", ""); err != nil {
		t.Errorf("app role with its derived password over TCP: %v", err)
	}
	if err := login(e.db.Name, role, ""); !isCode(err, pgerrcode.InsufficientPrivilege) {
		t.Errorf("tenant role on the control database: %v, want permission denied (42501)", err)
	}
}

func TestScramVerifier(t *testing.T) {
	t.Parallel()
	v1, err := scramVerifier("correct horse")
	must(t, err)
	v2, err := scramVerifier("correct horse")
	must(t, err)
	if v1 == v2 {
		t.Errorf("two verifiers of one password are equal: the salt is not random")
	}
	for _, v := range []string{v1, v2} {
		if strings.Contains(v, "correct horse") {
			t.Fatalf("verifier contains the password: %s", v)
		}
		head, keys, ok := strings.Cut(v, "$")
		if !ok || head != "SCRAM-SHA-256" {
			t.Fatalf("verifier %q: want SCRAM-SHA-256$...", v)
		}
		iterSalt, stored, ok := strings.Cut(keys, "$")
		iter, salt, ok2 := strings.Cut(iterSalt, ":")
		storedKey, serverKey, ok3 := strings.Cut(stored, ":")
		if !ok || !ok2 || !ok3 || iter != "4096" {
			t.Fatalf("verifier %q: want SCRAM-SHA-256$4096:<salt>$<stored key>:<server key>", v)
		}
		for name, want := range map[string]int{salt: 16, storedKey: 32, serverKey: 32} {
			b, err := base64.StdEncoding.DecodeString(name)
			if err != nil || len(b) != want {
				t.Errorf("verifier part %q: %d bytes, %v; want %d bytes of base64", name, len(b), err, want)
			}
		}
	}

	// PostgreSQL accepts it as a verifier and checks passwords against it.
	emb := srv.Embedded()
	if emb == nil {
		t.Skip("password logins are checked over the embedded server's TCP listener")
	}
	ctx := t.Context()
	admin, err := pgx.Connect(ctx, srv.AdminURL("postgres"))
	must(t, err)
	defer admin.Close(context.Background())
	role := "scram_" + tenant.NewID().Hex()[:16]
	_, err = admin.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD %s`, ident.Quote(role), ident.Literal(v1)))
	must(t, err)
	t.Cleanup(func() { admin.Exec(context.Background(), `DROP ROLE `+ident.Quote(role)) })
	for pw, ok := range map[string]bool{"correct horse": true, "correct horse ": false, "": false} {
		cfg, err := pgx.ParseConfig(emb.TCPURL("postgres"))
		must(t, err)
		cfg.User, cfg.Password = role, pw
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			conn.Close(context.Background())
		}
		if (err == nil) != ok {
			t.Errorf("login with password %q: %v, want success %t", pw, err, ok)
		}
	}
}

func TestLockKeys(t *testing.T) {
	t.Parallel()
	a, b := tenant.NewID(), tenant.NewID()
	a1, a2 := lockKeys(a)
	b1, b2 := lockKeys(b)
	if a1 != lockNamespace || b1 != lockNamespace {
		t.Errorf("first keys %x, %x; want the namespace %x", a1, b1, lockNamespace)
	}
	if a2 == b2 {
		t.Errorf("two new ids share a lock key")
	}
	if c1, c2 := lockKeys(a); c1 != a1 || c2 != a2 {
		t.Errorf("lockKeys is not stable")
	}
}
