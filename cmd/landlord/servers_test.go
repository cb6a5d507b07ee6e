package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/tenant"
)

func TestServersList(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	createTenant(t, db, "row-one", tenant.ModelRow)
	createTenant(t, db, "row-two", tenant.ModelRow)
	createTenant(t, db, "schema-one", tenant.ModelSchema)
	createTenant(t, db, "database-one", tenant.ModelDatabase)
	// A server no one listens on, and a tenant row placed there by hand.
	adminExec(t, db, `INSERT INTO landlord.servers (id, host, port, database) VALUES ('far', '127.0.0.1', 1, 'landlord')`)
	adminExec(t, db, `INSERT INTO landlord.tenants (id, slug, model, server_id, schema_name, database_name, state)
		VALUES ($1, 'far-one', 'schema', 'far', $2, 'landlord', 'active')`, tenant.NewID(), "t_"+strings.Repeat("0", 32))

	var version string
	conn, err := pgx.Connect(t.Context(), db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(t.Context(), `SELECT split_part(current_setting('server_version'), ' ', 1)`).Scan(&version); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, append([]string{"servers", "list", "--json"}, dbFlag(db)...)...)
	lines := slices.Collect(strings.Lines(out))
	if len(lines) != 2 {
		t.Fatalf("servers list --json printed %d lines, want 2:\n%s", len(lines), out)
	}
	wantKeys := []string{"connections", "database", "host", "id", "load", "port", "reachable", "size_bytes", "tenants", "version"}
	var main serverView
	if got := keys(decode(t, lines[1], &main)); !slices.Equal(got, wantKeys) {
		t.Errorf("reachable server's fields: %v, want %v", got, wantKeys)
	}
	// The JSON says where the table says: the control database URL's
	// host and port for the server that has none of its own.
	base, err := pgx.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	if main.ID != "main" || !main.Reachable || main.Version == nil || *main.Version != version || main.Database != db.Name ||
		main.Host != base.Host || main.Port != int(base.Port) || main.Error != "" {
		t.Errorf("main server: %+v; want reachable, version %s, database %s, at %s:%d", main, version, db.Name, base.Host, base.Port)
	}
	table := mustRun(t, append([]string{"servers", "list"}, dbFlag(db)...)...)
	if addr := net.JoinHostPort(base.Host, strconv.Itoa(int(base.Port))); !strings.Contains(table, addr) {
		t.Errorf("table lacks the address %s the JSON gives:\n%s", addr, table)
	}
	if want := map[string]int{"row": 2, "schema": 1, "database": 1}; !maps.Equal(main.Tenants, want) {
		t.Errorf("main server's tenants: %v, want %v", main.Tenants, want)
	}
	if main.Load != 2+5+25 || main.Connections == nil || *main.Connections < 1 || main.SizeBytes == nil || *main.SizeBytes <= 0 {
		t.Errorf("main server's load %d, connections %v, size %v", main.Load, main.Connections, main.SizeBytes)
	}
	var far serverView
	if got := keys(decode(t, lines[0], &far)); !slices.Equal(got, []string{"connections", "database", "error", "host", "id", "load", "port", "reachable", "size_bytes", "tenants", "version"}) {
		t.Errorf("unreachable server's fields: %v", got)
	}
	if far.ID != "far" || far.Reachable || far.Error == "" || far.Version != nil || far.Host != "127.0.0.1" || far.Port != 1 ||
		far.Connections != nil || far.SizeBytes != nil {
		t.Errorf("unreachable server: %+v", far)
	}
	if want := map[string]int{"row": 0, "schema": 1, "database": 0}; !maps.Equal(far.Tenants, want) {
		t.Errorf("far server's tenants: %v, want %v", far.Tenants, want)
	}

	out = mustRun(t, append([]string{"servers", "list"}, dbFlag(db)...)...)
	rows := slices.Collect(strings.Lines(out))
	if len(rows) != 3 || !strings.HasPrefix(rows[0], "SERVER") ||
		!strings.HasPrefix(rows[1], "far") || !strings.Contains(rows[1], "127.0.0.1:1") || !strings.Contains(rows[1], "no: ") ||
		!strings.HasPrefix(rows[2], "main") || !strings.Contains(rows[2], version) || !strings.Contains(rows[2], "yes") {
		t.Errorf("servers list table:\n%s", out)
	}
	if f := strings.Fields(rows[2]); len(f) < 11 || f[4] != "2" || f[5] != "1" || f[6] != "1" || f[7] != "32" {
		t.Errorf("main server's counts in the table: %q", rows[2])
	}
}

// TestServersAdd: a second server is added through the command line, gets
// tenants by name and by load, and the list shows both servers reachable
// with their tenants; bad requests change nothing.
func TestServersAdd(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	srv2 := pgtest.StartExtra(t)
	name := srv2.Database
	url := fmt.Sprintf("postgres:///%s?host=%s&port=%d", name, srv2.Host, srv2.Port)

	for _, args := range [][]string{
		{"servers", "add", url},                           // no --name
		{"servers", "add", url, "--name", "Bad Name"},     // bad id
		{"servers", "add", url, "--name", "main"},         // the control server's
		{"servers", "add", url, "--name", "least-loaded"}, // the placement's
		{"servers", "add", "postgres://someone@" + strings.TrimPrefix(url, "postgres://"), "--name", "two"}, // another user
	} {
		if _, errOut, code := cli(t, "", append(args, dbFlag(db)...)...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, errOut)
		}
	}
	var added addedView
	m := decode(t, mustRun(t, append([]string{"servers", "add", url, "--name", "two", "--json"}, dbFlag(db)...)...), &added)
	if got := strings.Join(keys(m), ","); got != "created_database,database,host,id,port,repaired,superuser,version,wal_level" {
		t.Errorf("servers add --json fields: %s", got)
	}
	if added.ID != "two" || added.Database != name || !added.CreatedDatabase || added.Repaired || added.Port != srv2.Port {
		t.Errorf("added: %+v", added)
	}
	out := mustRun(t, append([]string{"servers", "add", url, "--name", "two"}, dbFlag(db)...)...)
	if !strings.Contains(out, "Checked and repaired server two") {
		t.Errorf("adding it again: %s", out)
	}

	var far tenantView
	decode(t, mustRun(t, append([]string{"tenants", "create", "far-shop", "--model", "database", "--server", "two", "--json"}, dbFlag(db)...)...), &far)
	if far.Server != "two" {
		t.Errorf("tenant placed on %s", far.Server)
	}
	// main holds nothing, two a database tenant: main is the least loaded.
	var near tenantView
	decode(t, mustRun(t, append([]string{"tenants", "create", "near-shop", "--model", "schema", "--server", "least-loaded", "--json"}, dbFlag(db)...)...), &near)
	if near.Server != "main" {
		t.Errorf("least-loaded placed the tenant on %s", near.Server)
	}
	vs := ndjson[serverView](t, mustRun(t, append([]string{"servers", "list", "--json"}, dbFlag(db)...)...))
	if len(vs) != 2 || vs[0].ID != "main" || vs[1].ID != "two" || !vs[1].Reachable || vs[1].Tenants["database"] != 1 || vs[1].Load != 25 ||
		vs[0].Tenants["schema"] != 1 {
		t.Errorf("servers list: %+v", vs)
	}
	mustRun(t, append([]string{"tenants", "delete", "far-shop", "--yes"}, dbFlag(db)...)...)
}
