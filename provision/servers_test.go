package provision

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/tenant"
)

// secondServer starts another server for the test and returns its spec
// and a connection to it as its superuser.
func secondServer(t *testing.T) (spec ServerSpec, admin func() *pgx.Conn) {
	t.Helper()
	x := pgtest.StartExtra(t)
	admin = func() *pgx.Conn {
		conn, err := pgx.Connect(context.Background(), x.AdminURL("postgres"))
		must(t, err)
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	return ServerSpec{ID: "second", Host: x.Host, Port: x.Port, Database: x.Database}, admin
}

// TestAddServer: a second server is checked, installed and recorded; bad
// requests change nothing; tenants of every model are made on it (their
// objects there, none on the control server), counted in its load, and
// deleted from it with nothing left.
func TestAddServer(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	spec, admin2 := secondServer(t)

	for _, bad := range []ServerSpec{
		{ID: "Second", Host: spec.Host, Port: spec.Port},
		{ID: "main", Host: spec.Host, Port: spec.Port},
		{ID: "second"},
		{ID: "second", Host: spec.Host, Port: 70000},
		{ID: "second", Host: spec.Host, Port: spec.Port, Database: "Bad Name"},
	} {
		if _, err := e.p.AddServer(ctx, bad); err == nil {
			t.Errorf("AddServer(%+v): no error", bad)
		}
	}
	if _, err := e.p.AddServer(ctx, ServerSpec{ID: "gone", Host: "/nonexistent", Port: 1}); err == nil {
		t.Error("an unreachable server was added")
	}
	if ss, err := e.p.Directory().Servers(ctx); err != nil || len(ss) != 1 {
		t.Fatalf("servers after bad requests: %v %v", ss, err)
	}

	rep, err := e.p.AddServer(ctx, spec)
	must(t, err)
	if !rep.CreatedDatabase || rep.Repaired || rep.Version == "" || rep.WalLevel == "" {
		t.Errorf("report %+v", rep)
	}
	if rep, err := e.p.AddServer(ctx, spec); err != nil || !rep.Repaired || rep.CreatedDatabase {
		t.Errorf("adding it again: %+v %v", rep, err)
	}
	moved := spec
	moved.Database = "elsewhere"
	if _, err := e.p.AddServer(ctx, moved); !errors.Is(err, ErrBadServer) {
		t.Errorf("the same id at another address: %v", err)
	}
	other := spec
	other.ID = "third"
	if _, err := e.p.AddServer(ctx, other); !errors.Is(err, ErrBadServer) {
		t.Errorf("the same address under another id: %v", err)
	}

	on2 := func(kind, name string) bool {
		t.Helper()
		q := map[string]string{
			"database": `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`,
			"role":     `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`,
		}[kind]
		var b bool
		must(t, admin2().QueryRow(ctx, q, name).Scan(&b))
		return b
	}
	schemaOn2 := func(name string) bool {
		t.Helper()
		c, err := pgx.ConnectConfig(ctx, serverConfig(t, e, spec, spec.Database))
		must(t, err)
		defer c.Close(ctx)
		var b bool
		must(t, c.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, name).Scan(&b))
		return b
	}
	if !schemaOn2(SharedSchema) || !on2("role", e.p.Roles().App) {
		t.Fatal("the second server has no shared schema or app role")
	}

	var made []tenant.Tenant
	for _, m := range tenant.Models {
		tn, err := e.p.Create(ctx, Request{Slug: "far-" + string(m), Model: m, Server: "second"})
		if err != nil {
			t.Fatalf("create a %s tenant on the second server: %v", m, err)
		}
		if tn.Server != "second" || tn.State != tenant.StateActive || tn.SchemaVersion != testMigrations().Head() {
			t.Fatalf("tenant %+v", tn)
		}
		made = append(made, tn)
		switch m {
		case tenant.ModelSchema:
			if !schemaOn2(tn.Schema) || !on2("role", tn.ID.RoleName()) || schemaExists(t, e, tn.Schema) {
				t.Errorf("schema tenant: its schema and role belong on the second server only")
			}
		case tenant.ModelDatabase:
			if !on2("database", tn.Database) || !on2("role", tn.ID.RoleName()) || databaseExists(t, e, tn.Database) {
				t.Errorf("database tenant: its database and role belong on the second server only")
			}
		}
	}
	loads, err := e.p.Loads(ctx)
	must(t, err)
	if len(loads) != 2 || loads[0].Server != "main" || loads[1].Server != "second" || loads[1].Load != 1+5+25 {
		t.Errorf("loads %+v", loads)
	}
	least, err := e.p.Create(ctx, Request{Slug: "anywhere", Model: tenant.ModelRow, Server: LeastLoaded})
	must(t, err)
	if least.Server != "main" {
		t.Errorf("the least loaded server is main, the tenant went to %s", least.Server)
	}

	for _, tn := range made {
		must(t, e.p.Delete(ctx, tn.ID))
		rep, err := e.p.VerifyPurge(ctx, tn.ID)
		must(t, err)
		if !rep.Clean() {
			t.Errorf("%s: left behind: %v", tn.Slug, leftovers(rep))
		}
		if on2("role", tn.ID.RoleName()) || on2("database", tn.ID.DatabaseName()) || schemaOn2(tn.ID.SchemaName()) {
			t.Errorf("%s: its objects are still on the second server", tn.Slug)
		}
	}
}

// serverConfig is the administrator's settings for database on spec's
// server.
func serverConfig(t *testing.T, e *env, spec ServerSpec, database string) *pgx.ConnConfig {
	t.Helper()
	cfg := e.pool.Config().ConnConfig.Copy()
	cfg.Host, cfg.Port, cfg.Database, cfg.Fallbacks = spec.Host, uint16(spec.Port), database, nil
	return cfg
}
