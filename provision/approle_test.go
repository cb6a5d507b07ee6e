package provision

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

// roleEnv is an installation bootstrapped by the server's superuser, who
// may read pg_authid, with an app role of its own, so that no other test's
// repair touches the roles this one sabotages.
type roleEnv struct {
	*env
	super *pgx.Conn // the superuser, in the control database
}

func setupRoles(t *testing.T) roleEnv {
	t.Helper()
	db := srv.NewDB(t, installed)
	app := "repair_app_" + strings.ReplaceAll(tenant.NewID().Hex()[:12], "-", "")
	pool := openPool(t, db.AdminURL, 0)
	p, err := New(t.Context(), pool, testMigrations(), Config{AppRole: app})
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	super, err := pgx.Connect(t.Context(), db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if !t.Failed() {
			dropInstallationObjects(t, db.AdminURL, p.Installation().ID)
			if _, err := super.Exec(ctx, "DROP OWNED BY "+ident.Quote(app)+"; DROP ROLE "+ident.Quote(app)); err != nil {
				t.Errorf("drop role %s: %v", app, err)
			}
		}
		super.Close(ctx)
	})
	return roleEnv{env: &env{db: db, pool: pool, p: p}, super: super}
}

// as runs sql logged in as role, in database (the control database when
// ""): what SQL injected into that role's tenant transaction can do.
func (e roleEnv) as(t *testing.T, role, database, sql string) {
	t.Helper()
	if database == "" {
		database = e.db.Name
	}
	cc, err := e.p.ConnConfig(t.Context(), directory.DefaultServer, database, role)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(t.Context(), cc)
	if err != nil {
		t.Fatalf("log in as %s: %v", role, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("as %s: %s: %v", role, sql, err)
	}
}

// state is what the repair restores of a role: its stored password's
// agreement with the derived one, its settings, its attributes.
func (e roleEnv) state(t *testing.T, role string) (passwordOK bool, settings int, attrs string) {
	t.Helper()
	var stored *string
	err := e.super.QueryRow(t.Context(), `SELECT rolpassword,
		(SELECT count(*) FROM pg_db_role_setting s WHERE s.setrole = a.oid),
		concat_ws(' ', CASE WHEN rolcanlogin THEN 'LOGIN' END, CASE WHEN rolinherit THEN 'INHERIT' END,
		          CASE WHEN rolcreatedb THEN 'CREATEDB' END, CASE WHEN rolcreaterole THEN 'CREATEROLE' END)
		FROM pg_authid a WHERE rolname = $1`, role).Scan(&stored, &settings, &attrs)
	if err != nil {
		t.Fatal(err)
	}
	return stored != nil && PasswordMatches(*stored, role, e.p.Roles().Password(role)), settings, attrs
}

// TestRepairRoles sabotages the app role and a database tenant's login
// role as tenant SQL can (their own connections change their password and
// settings; the superuser changes attributes, which tenant SQL cannot),
// and expects RepairRoles to report and undo each, and to find nothing
// once all is in order. A repair that skipped any one of them fails here.
func TestRepairRoles(t *testing.T) {
	t.Parallel()
	e := setupRoles(t)
	ctx := t.Context()
	dt, err := e.p.Create(ctx, Request{Slug: "sabotaged", Model: tenant.ModelDatabase})
	if err != nil {
		t.Fatal(err)
	}
	app, tr := e.p.Roles().App, dt.ID.RoleName()
	clean := map[string]string{app: "LOGIN", tr: "LOGIN"}
	for _, c := range []struct {
		name, role, database, sql string
		super                     bool // the superuser sabotages, not the role
		want                      string
	}{
		{"app password", app, "", "ALTER ROLE {r} PASSWORD 'stolen'", false, "password"},
		{"app password removed", app, "", "ALTER ROLE {r} PASSWORD NULL", false, "no password"},
		{"app setting", app, "", "ALTER ROLE {r} SET default_transaction_read_only = on", false, "in every database"},
		{"app setting in database", app, "", "ALTER ROLE {r} IN DATABASE {d} SET statement_timeout = '1ms'", false, "in database"},
		{"app attributes", app, "", "ALTER ROLE {r} INHERIT CREATEROLE", true, "INHERIT CREATEROLE"},
		{"app login", app, "", "ALTER ROLE {r} NOLOGIN", true, "NOLOGIN"},
		{"tenant password", tr, dt.Database, "ALTER ROLE {r} PASSWORD 'stolen'", false, "password"},
		{"tenant setting", tr, dt.Database, "ALTER ROLE {r} SET search_path = public", false, "in every database"},
		{"tenant setting in its database", tr, dt.Database, "ALTER ROLE {r} IN DATABASE {d} SET work_mem = '64kB'", false, "in database " + dt.Database},
		{"tenant attributes", tr, "", "ALTER ROLE {r} CREATEDB", true, "CREATEDB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := c.database
			if db == "" {
				db = e.db.Name
			}
			sql := strings.NewReplacer("{r}", ident.Quote(c.role), "{d}", ident.Quote(db)).Replace(c.sql)
			if c.super {
				if _, err := e.super.Exec(ctx, sql); err != nil {
					t.Fatal(err)
				}
			} else {
				e.as(t, c.role, c.database, sql)
			}
			if pw, n, attrs := e.state(t, c.role); pw && n == 0 && attrs == clean[c.role] {
				t.Fatalf("the sabotage changed nothing: %s", sql)
			}
			repaired, err := e.p.RepairRoles(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(repaired) != 1 || !strings.Contains(repaired[0], c.role) || !strings.Contains(repaired[0], c.want) {
				t.Errorf("repairs %q, want one for %s naming %q", repaired, c.role, c.want)
			}
			if pw, n, attrs := e.state(t, c.role); !pw || n != 0 || attrs != clean[c.role] {
				t.Errorf("after the repair: password verifies %t, %d settings, attributes %q (want %q)", pw, n, attrs, clean[c.role])
			}
			if again, err := e.p.RepairRoles(ctx); err != nil || len(again) != 0 {
				t.Errorf("a second repair: %q, %v; want nothing", again, err)
			}
		})
	}
}

// TestBootstrapRepairsRoles: opening the installation again (New, as Open
// does) undoes a sabotaged app role: a changed password, a setting that
// would fail every one of its sessions, and one per database.
func TestBootstrapRepairsRoles(t *testing.T) {
	t.Parallel()
	e := setupRoles(t)
	ctx := t.Context()
	app := e.p.Roles().App
	e.as(t, app, "", "ALTER ROLE "+ident.Quote(app)+" PASSWORD 'stolen'")
	// One session for both: a later session of the role would run with
	// the 1 ms statement timeout already.
	e.as(t, app, "", "ALTER ROLE "+ident.Quote(app)+" SET statement_timeout = '1ms'; "+
		"ALTER ROLE "+ident.Quote(app)+" IN DATABASE "+ident.Quote(e.db.Name)+" SET default_transaction_read_only = on")
	if pw, n, _ := e.state(t, app); pw || n != 2 {
		t.Fatalf("sabotage: password verifies %t, %d settings; want false, 2", pw, n)
	}
	if _, err := New(ctx, e.pool, testMigrations(), Config{AppRole: app, Install: InstallExisting}); err != nil {
		t.Fatal(err)
	}
	if pw, n, _ := e.state(t, app); !pw || n != 0 {
		t.Errorf("after bootstrap: password verifies %t, %d settings; want true, 0", pw, n)
	}
}

// TestRepairRolesWithoutSuperuser: an administrator that cannot read
// pg_authid still resets settings, and bootstrap sets the app role's
// password again, as it cannot tell whether it changed.
func TestRepairRolesWithoutSuperuser(t *testing.T) {
	t.Parallel()
	e := setupRoles(t)
	ctx := t.Context()
	app := e.p.Roles().App
	owner := openPool(t, e.db.URL, 0) // pgtest_owner: CREATEROLE, no superuser
	p, err := New(ctx, owner, testMigrations(), Config{AppRole: app, Install: InstallExisting})
	if err != nil {
		t.Fatal(err)
	}
	e.as(t, app, "", "ALTER ROLE "+ident.Quote(app)+" PASSWORD 'stolen'")
	e.as(t, app, "", "ALTER ROLE "+ident.Quote(app)+" SET default_transaction_read_only = on")
	repaired, err := p.RepairRoles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(repaired) != 1 || !strings.Contains(repaired[0], "in every database") {
		t.Errorf("repairs %q, want the setting's alone", repaired)
	}
	if pw, n, _ := e.state(t, app); pw || n != 0 {
		t.Errorf("after the repair: password verifies %t, %d settings; want false (unreadable), 0", pw, n)
	}
	if _, err := New(ctx, owner, testMigrations(), Config{AppRole: app, Install: InstallExisting}); err != nil {
		t.Fatal(err)
	}
	if pw, _, _ := e.state(t, app); !pw {
		t.Error("bootstrap did not set the app role's password again")
	}
}

// TestPasswordMatches: the derived password verifies the verifier made
// for it, and nothing else does.
func TestPasswordMatches(t *testing.T) {
	t.Parallel()
	v, err := scramVerifier("right")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		stored, password string
		want             bool
	}{
		{v, "right", true},
		{v, "wrong", false},
		{"", "right", false},
		{"md5" + "0000000000000000000000000000000a", "right", false},
		{"md5eb3a4b53e3d2f3bf6b1fa7b6e1e9e9f8", "x", false},
		{"SCRAM-SHA-256$4096:bad$x:y", "right", false},
	} {
		if got := PasswordMatches(c.stored, "r", c.password); got != c.want {
			t.Errorf("PasswordMatches(%q, %q) = %t, want %t", c.stored, c.password, got, c.want)
		}
	}
}
