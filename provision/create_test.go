package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

func TestCreateSchemaTenant(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	tn, err := e.p.Create(ctx, Request{Slug: "Acme-Store", Model: tenant.ModelSchema, DisplayName: "Acme Store ✓"})
	must(t, err)
	other := create(t, e, "other-store", tenant.ModelSchema)
	checkRow(t, e, tn, tenant.ModelSchema, "acme-store", "Acme Store ✓")

	role, schema := tn.ID.RoleName(), tn.ID.SchemaName()
	mark := e.p.marker(tn.ID)
	var login, super, bypass, inherit bool
	var roleComment string
	must(t, e.pool.QueryRow(ctx, `SELECT rolcanlogin, rolsuper, rolbypassrls, rolinherit, coalesce(shobj_description(oid, 'pg_authid'), '')
		FROM pg_roles WHERE rolname = $1`, role).Scan(&login, &super, &bypass, &inherit, &roleComment))
	if login || super || bypass || inherit {
		t.Errorf("role %s: login=%t superuser=%t bypassrls=%t inherit=%t, want all false", role, login, super, bypass, inherit)
	}
	if roleComment != mark {
		t.Errorf("role %s comment %q, want %q", role, roleComment, mark)
	}
	if !queryBool(t, e.pool, `SELECT pg_has_role('landlord_app', $1, 'MEMBER')`, role) {
		t.Errorf("landlord_app is not a member of %s", role)
	}

	var owner, schemaComment string
	must(t, e.pool.QueryRow(ctx, `SELECT nspowner::regrole::text, coalesce(obj_description(oid, 'pg_namespace'), '')
		FROM pg_namespace WHERE nspname = $1`, schema).Scan(&owner, &schemaComment))
	if owner != "landlord_owner" || schemaComment != mark {
		t.Errorf("schema %s: owner %s comment %q, want landlord_owner and %q", schema, owner, schemaComment, mark)
	}

	privs := func(grantee, schema string) string {
		var got []string
		if queryBool(t, e.pool, `SELECT has_schema_privilege($1, $2, 'USAGE')`, grantee, schema) {
			got = append(got, "USAGE")
		}
		if queryBool(t, e.pool, `SELECT has_schema_privilege($1, $2, 'CREATE')`, grantee, schema) {
			got = append(got, "CREATE")
		}
		for _, table := range []string{"parents", "items"} {
			for _, p := range []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"} {
				if queryBool(t, e.pool, `SELECT has_table_privilege($1, format('%I.%I', $2::text, $3::text), $4)`, grantee, schema, table, p) {
					got = append(got, table+":"+p)
				}
			}
		}
		return strings.Join(got, " ")
	}
	want := "USAGE parents:SELECT parents:INSERT parents:UPDATE parents:DELETE items:SELECT items:INSERT items:UPDATE items:DELETE"
	if got := privs(role, schema); got != want {
		t.Errorf("tenant role's privileges on its schema:\n got %s\nwant %s", got, want)
	}
	// landlord_app is NOINHERIT: membership gives it nothing until it
	// switches to the tenant role.
	if got := privs("landlord_app", schema); got != "" {
		t.Errorf("landlord_app has privileges on %s without SET ROLE: %s", schema, got)
	}
	if got := privs(other.ID.RoleName(), schema); got != "" {
		t.Errorf("another tenant's role has privileges on %s: %s", schema, got)
	}
	if got := privs("public", schema); got != "" {
		t.Errorf("PUBLIC has privileges on %s: %s", schema, got)
	}

	var version int
	must(t, e.pool.QueryRow(ctx, `SELECT max(version) FROM landlord.target_migrations WHERE target = $1`, schema).Scan(&version))
	if version != e.p.Migrator().Set().Head() {
		t.Errorf("ledger of %s at version %d, want %d", schema, version, e.p.Migrator().Set().Head())
	}
	checkSteps(t, e, tn.ID, "create intent", "create schema", "create active")
	if got, want := objects(t, e), append(tenantObjects(other.ID, tenant.ModelSchema), tenantObjects(tn.ID, tenant.ModelSchema)...); !sameSet(got, want) {
		t.Errorf("objects of the installation: %v, want %v", got, want)
	}
}

func TestCreateDatabaseTenant(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	tn, err := e.p.Create(ctx, Request{Slug: "BigCo", Model: tenant.ModelDatabase, DisplayName: "Big Co"})
	must(t, err)
	other := create(t, e, "smallco", tenant.ModelDatabase)
	checkRow(t, e, tn, tenant.ModelDatabase, "bigco", "Big Co")

	role, db := tn.ID.RoleName(), tn.ID.DatabaseName()
	mark := e.p.marker(tn.ID)
	var login, super, bypass, inherit bool
	var roleComment string
	must(t, e.pool.QueryRow(ctx, `SELECT rolcanlogin, rolsuper, rolbypassrls, rolinherit, coalesce(shobj_description(oid, 'pg_authid'), '')
		FROM pg_roles WHERE rolname = $1`, role).Scan(&login, &super, &bypass, &inherit, &roleComment))
	if !login || super || bypass || inherit {
		t.Errorf("role %s: login=%t superuser=%t bypassrls=%t inherit=%t, want only login", role, login, super, bypass, inherit)
	}
	if roleComment != mark {
		t.Errorf("role %s comment %q, want %q", role, roleComment, mark)
	}
	if queryBool(t, e.pool, `SELECT pg_has_role('landlord_app', $1, 'MEMBER') OR pg_has_role($1, 'landlord_app', 'MEMBER')`, role) {
		t.Errorf("a database tenant's role %s shares membership with landlord_app", role)
	}

	var owner, dbComment string
	must(t, e.pool.QueryRow(ctx, `SELECT datdba::regrole::text, coalesce(shobj_description(oid, 'pg_database'), '')
		FROM pg_database WHERE datname = $1`, db).Scan(&owner, &dbComment))
	if owner != "landlord_owner" || dbComment != mark {
		t.Errorf("database %s: owner %s comment %q, want landlord_owner and %q", db, owner, dbComment, mark)
	}
	dbPrivs := func(grantee string) string {
		var got []string
		for _, p := range []string{"CONNECT", "TEMPORARY", "CREATE"} {
			if queryBool(t, e.pool, `SELECT has_database_privilege($1, $2, $3)`, grantee, db, p) {
				got = append(got, p)
			}
		}
		return strings.Join(got, " ")
	}
	for grantee, want := range map[string]string{
		"public": "", role: "CONNECT", other.ID.RoleName(): "", "landlord_app": "",
	} {
		if got := dbPrivs(grantee); got != want {
			t.Errorf("%s has %q on database %s, want %q", grantee, got, db, want)
		}
	}
	// The ACL itself, not only what has_database_privilege infers.
	var publicACL int
	must(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM pg_database d, aclexplode(d.datacl) a
		WHERE d.datname = $1 AND a.grantee = 0`, db).Scan(&publicACL))
	if publicACL != 0 {
		t.Errorf("database %s grants PUBLIC %d privileges", db, publicACL)
	}
	if schemaExists(t, e, tn.Schema) {
		t.Errorf("a database tenant's schema %s exists in the control database", tn.Schema)
	}

	admin := connectAs(t, e, db, "")
	var schemas []string
	rows, _ := admin.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname !~ '^(pg_|information_schema)' ORDER BY 1`)
	for rows.Next() {
		var s string
		must(t, rows.Scan(&s))
		schemas = append(schemas, s)
	}
	must(t, rows.Err())
	if want := []string{"landlord", migration.ContextSchema, tn.Schema}; !slices.Equal(schemas, want) {
		t.Errorf("schemas in the tenant database: %v, want %v (no public)", schemas, want)
	}
	var tables []string
	rows, _ = admin.Query(ctx, `SELECT c.relname || ':' || c.relowner::regrole::text FROM pg_class c
		WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r' ORDER BY 1`, tn.Schema)
	for rows.Next() {
		var s string
		must(t, rows.Scan(&s))
		tables = append(tables, s)
	}
	must(t, rows.Err())
	if want := []string{"items:landlord_owner", "parents:landlord_owner"}; !slices.Equal(tables, want) {
		t.Errorf("tables in %s: %v, want %v", tn.Schema, tables, want)
	}
	var version int
	must(t, admin.QueryRow(ctx, `SELECT max(version) FROM landlord.target_migrations WHERE target = $1`, tn.Schema).Scan(&version))
	if version != e.p.Migrator().Set().Head() {
		t.Errorf("ledger of %s at version %d, want %d", tn.Schema, version, e.p.Migrator().Set().Head())
	}

	// The tenant's role uses its tables, under row-level security.
	own := connectAs(t, e, db, role)
	tx, err := own.Begin(ctx)
	must(t, err)
	must(t, enterSigned(ctx, tx, e, tn.ID, "none"))
	_, err = tx.Exec(ctx, `INSERT INTO `+ident.Quote(tn.Schema, "parents")+` (tenant_id, id, name) VALUES ($1, 1, 'p')`, tn.ID)
	must(t, err)
	var n int
	must(t, tx.QueryRow(ctx, `SELECT count(*) FROM `+ident.Quote(tn.Schema, "parents")).Scan(&n))
	must(t, tx.Commit(ctx))
	if n != 1 {
		t.Errorf("tenant role sees %d rows of its own, want 1", n)
	}
	must(t, own.QueryRow(ctx, `SELECT count(*) FROM `+ident.Quote(tn.Schema, "parents")).Scan(&n))
	if n != 0 {
		t.Errorf("tenant role sees %d rows without a tenant context, want 0", n)
	}
	_, err = own.Exec(ctx, `CREATE TEMP TABLE x (a int)`)
	if !isCode(err, pgerrcode.InsufficientPrivilege) {
		t.Errorf("tenant role creating a temporary table: %v, want permission denied", err)
	}

	// Another tenant's role cannot connect.
	if _, err := tryConnectAs(t, e, db, other.ID.RoleName()); !isCode(err, pgerrcode.InsufficientPrivilege) {
		t.Errorf("another tenant's role connecting to %s: %v, want permission denied (42501)", db, err)
	}
	checkSteps(t, e, tn.ID, "create intent", "create role", "create database", "create active")
}

func TestCreateRowTenant(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	before := takeSnapshot(t, e)
	tn, err := e.p.Create(t.Context(), Request{Slug: "ROWS-r-us", Model: tenant.ModelRow})
	must(t, err)
	checkRow(t, e, tn, tenant.ModelRow, "rows-r-us", "")
	if tn.Schema != SharedSchema {
		t.Errorf("row tenant schema %q, want %q", tn.Schema, SharedSchema)
	}
	if roleExists(t, e, tn.ID.RoleName()) || schemaExists(t, e, tn.ID.SchemaName()) || databaseExists(t, e, tn.ID.DatabaseName()) {
		t.Errorf("a row tenant got a role, schema or database of its own")
	}
	after := takeSnapshot(t, e)
	if after.tenants != before.tenants+1 || after.schemas != before.schemas || after.objects != before.objects {
		t.Errorf("creating a row tenant: before %v, after %v; want only one more directory row", before, after)
	}
	checkSteps(t, e, tn.ID, "create intent")
	steps, err := e.p.Directory().Steps(t.Context(), tn.ID)
	must(t, err)
	if len(steps) == 0 || steps[0].Detail != "row rows-r-us" {
		t.Errorf("intent %+v, want detail %q", steps, "row rows-r-us")
	}
}

// checkRow compares the tenant Create returned with its directory row and
// with what the request implies.
func checkRow(t *testing.T, e *env, got tenant.Tenant, m tenant.Model, slug, display string) {
	t.Helper()
	row, err := e.p.Directory().Get(t.Context(), got.ID)
	if err != nil {
		t.Fatalf("directory row of %s: %v", got.ID, err)
	}
	if row.State != tenant.StateActive || got.State != tenant.StateActive {
		t.Errorf("state: returned %s, directory %s, want active", got.State, row.State)
	}
	if row.Slug != slug || got.Slug != slug {
		t.Errorf("slug: returned %q, directory %q, want %q", got.Slug, row.Slug, slug)
	}
	if row.Model != m || row.DisplayName != display || row.Server != directory.DefaultServer {
		t.Errorf("directory row %+v, want model %s, display name %q, server %s", row, m, display, directory.DefaultServer)
	}
	if head := e.p.Migrator().Set().Head(); row.SchemaVersion != head || got.SchemaVersion != head {
		t.Errorf("schema version: returned %d, directory %d, want %d", got.SchemaVersion, row.SchemaVersion, head)
	}
	if got.Epoch != row.Epoch {
		t.Errorf("returned epoch %d, directory has %d", got.Epoch, row.Epoch)
	}
	schema, database := SharedSchema, e.db.Name
	switch m {
	case tenant.ModelSchema:
		schema = "t_" + got.ID.Hex()
	case tenant.ModelDatabase:
		schema, database = "t_"+got.ID.Hex(), "t_"+got.ID.Hex()
	}
	if row.Schema != schema || row.Database != database {
		t.Errorf("placement %s/%s, want %s/%s", row.Database, row.Schema, database, schema)
	}
}

// checkSteps checks that the ledger of id starts with the steps want
// ("operation step").
func checkSteps(t *testing.T, e *env, id tenant.ID, want ...string) {
	t.Helper()
	steps, err := e.p.Directory().Steps(t.Context(), id)
	must(t, err)
	var got []string
	for _, s := range steps {
		got = append(got, s.Operation+" "+s.Step)
	}
	if !slices.Equal(got, want) {
		t.Errorf("ledger of %s: %q, want %q", id, got, want)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestCreateBadInputLeavesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	long := strings.Repeat("é", 201)
	cases := []struct {
		name string
		req  Request
		want error
	}{
		{"injection slug", Request{Slug: "x'; DROP TABLE landlord.tenants; --", Model: tenant.ModelSchema}, tenant.ErrBadSlug},
		{"quote slug", Request{Slug: `ab"c`, Model: tenant.ModelDatabase}, tenant.ErrBadSlug},
		{"dollar slug", Request{Slug: "ab$$c", Model: tenant.ModelSchema}, tenant.ErrBadSlug},
		{"NUL slug", Request{Slug: "abc\x00def", Model: tenant.ModelDatabase}, tenant.ErrBadSlug},
		{"too long slug", Request{Slug: strings.Repeat("a", 41), Model: tenant.ModelSchema}, tenant.ErrBadSlug},
		{"huge slug", Request{Slug: strings.Repeat("a", 100000), Model: tenant.ModelDatabase}, tenant.ErrBadSlug},
		{"multibyte slug", Request{Slug: "café", Model: tenant.ModelSchema}, tenant.ErrBadSlug},
		{"zero-width slug", Request{Slug: "ac\u200bme", Model: tenant.ModelSchema}, tenant.ErrBadSlug},
		{"reserved slug", Request{Slug: "postgres", Model: tenant.ModelDatabase}, tenant.ErrBadSlug},
		{"reserved upper-case slug", Request{Slug: "ADMIN", Model: tenant.ModelSchema}, tenant.ErrBadSlug},
		{"reserved prefix", Request{Slug: "pg-stuff", Model: tenant.ModelSchema}, tenant.ErrBadSlug},
		{"tenant-like slug", Request{Slug: "t-0123", Model: tenant.ModelRow}, tenant.ErrBadSlug},
		{"empty slug", Request{Slug: "", Model: tenant.ModelRow}, tenant.ErrBadSlug},
		{"bad model", Request{Slug: "goodslug", Model: "table"}, tenant.ErrBadModel},
		{"no model", Request{Slug: "goodslug"}, tenant.ErrBadModel},
		{"upper-case model", Request{Slug: "goodslug", Model: "SCHEMA"}, tenant.ErrBadModel},
		{"long display name", Request{Slug: "goodslug", Model: tenant.ModelSchema, DisplayName: long}, tenant.ErrBadDisplayName},
		{"NUL display name", Request{Slug: "goodslug", Model: tenant.ModelDatabase, DisplayName: "a\x00b"}, tenant.ErrBadDisplayName},
		{"invalid UTF-8 display name", Request{Slug: "goodslug", Model: tenant.ModelRow, DisplayName: "a\xffb"}, tenant.ErrBadDisplayName},
		{"unknown server", Request{Slug: "goodslug", Model: tenant.ModelSchema, Server: "elsewhere"}, ErrUnknownServer},
		{"unknown server, database", Request{Slug: "goodslug", Model: tenant.ModelDatabase, Server: "elsewhere"}, ErrUnknownServer},
		{"unknown server, row", Request{Slug: "goodslug", Model: tenant.ModelRow, Server: "x'; --"}, ErrUnknownServer},
		{"bad slug with id", Request{Slug: "no", Model: tenant.ModelSchema, ID: tenant.NewID()}, tenant.ErrBadSlug},
	}
	before := takeSnapshot(t, e)
	for _, c := range cases {
		got, err := e.p.Create(t.Context(), c.req)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
		if !got.ID.IsZero() {
			t.Errorf("%s: returned a tenant %+v", c.name, got)
		}
		if err != nil && len(err.Error()) > 400 {
			t.Errorf("%s: error message of %d bytes echoes the input", c.name, len(err.Error()))
		}
	}
	if after := takeSnapshot(t, e); after != before {
		t.Errorf("bad requests left something behind:\nbefore %v\nafter  %v", before, after)
	}
	// The limits themselves are accepted.
	tn, err := e.p.Create(t.Context(), Request{Slug: strings.Repeat("a", 40), Model: tenant.ModelRow, DisplayName: strings.Repeat("é", 200)})
	if err != nil {
		t.Fatalf("a 40-character slug and a 200-character display name: %v", err)
	}
	if tn.DisplayName != strings.Repeat("é", 200) {
		t.Errorf("display name stored as %q", tn.DisplayName)
	}
}

func TestCreateSlugTaken(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	first := create(t, e, "acme", tenant.ModelSchema)
	before := takeSnapshot(t, e)
	for _, req := range []Request{
		{Slug: "acme", Model: tenant.ModelSchema},
		{Slug: "Acme", Model: tenant.ModelSchema},
		{Slug: "ACME", Model: tenant.ModelDatabase},
		{Slug: "acme", Model: tenant.ModelRow},
		{Slug: "aCmE", Model: tenant.ModelDatabase, ID: tenant.NewID()},
	} {
		got, err := e.p.Create(ctx, req)
		if !errors.Is(err, tenant.ErrSlugTaken) {
			t.Errorf("Create(%q, %s): %v, want ErrSlugTaken", req.Slug, req.Model, err)
		}
		if got.ID == first.ID {
			t.Errorf("Create(%q, %s) returned the existing tenant", req.Slug, req.Model)
		}
	}
	// The same id under another slug is refused too, without touching it.
	if _, err := e.p.Create(ctx, Request{ID: first.ID, Slug: "acme-two", Model: tenant.ModelSchema}); !errors.Is(err, tenant.ErrSlugTaken) {
		t.Errorf("Create with an existing id and another slug: %v, want ErrSlugTaken", err)
	}
	if after := takeSnapshot(t, e); after.tenants != before.tenants || after.schemas != before.schemas || after.objects != before.objects {
		t.Errorf("refused creates left something behind:\nbefore %v\nafter  %v", before, after)
	}
	all, err := e.p.Directory().List(ctx, directory.Filter{})
	must(t, err)
	if len(all) != 1 || all[0].ID != first.ID {
		t.Errorf("directory holds %+v, want only %s", all, first.ID)
	}
}

// TestCreateConcurrentSameSlug is F04 (SECURITY.md): requests racing for one
// slug make exactly one tenant.
func TestCreateConcurrentSameSlug(t *testing.T) {
	t.Parallel()
	for _, m := range tenant.Models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			e := setup(t, 0)
			const n = 8
			results := make([]tenant.Tenant, n)
			errs := make([]error, n)
			race(n, func(i int) {
				results[i], errs[i] = e.p.Create(t.Context(), Request{Slug: "contested", Model: m})
			})
			var winner tenant.Tenant
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
					winner = results[i]
				case !errors.Is(err, tenant.ErrSlugTaken):
					t.Errorf("request %d: %v, want success or ErrSlugTaken", i, err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d requests succeeded, want exactly 1", wins)
			}
			all, err := e.p.Directory().List(t.Context(), directory.Filter{})
			must(t, err)
			if len(all) != 1 || all[0].ID != winner.ID || all[0].State != tenant.StateActive {
				t.Errorf("directory holds %+v, want only the active %s", all, winner.ID)
			}
			if got, want := objects(t, e), tenantObjects(winner.ID, m); !sameSet(got, want) {
				t.Errorf("objects %v, want exactly %v", got, want)
			}
		})
	}
}

// TestCreateConcurrentSameID: retries of one request (the same Request.ID)
// all succeed with the same tenant.
func TestCreateConcurrentSameID(t *testing.T) {
	t.Parallel()
	for _, m := range tenant.Models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			// A pool as small as landlord.Open's: retries waiting for the
			// tenant's lock must not starve the one holding it.
			e := setup(t, 4)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			id := tenant.NewID()
			const n = 8
			results := make([]tenant.Tenant, n)
			errs := make([]error, n)
			race(n, func(i int) {
				results[i], errs[i] = e.p.Create(ctx, Request{ID: id, Slug: "retried", Model: m})
			})
			for i, err := range errs {
				if err != nil {
					t.Errorf("request %d: %v", i, err)
					continue
				}
				if r := results[i]; r.ID != id || r.Slug != "retried" || r.State != tenant.StateActive {
					t.Errorf("request %d returned %+v, want the active tenant %s", i, r, id)
				}
			}
			all, err := e.p.Directory().List(t.Context(), directory.Filter{})
			must(t, err)
			if len(all) != 1 || all[0].ID != id || all[0].State != tenant.StateActive {
				t.Errorf("directory holds %+v, want only the active %s", all, id)
			}
			if got, want := objects(t, e), tenantObjects(id, m); !sameSet(got, want) {
				t.Errorf("objects %v, want exactly %v", got, want)
			}
		})
	}
}

// TestCreateConcurrentSmallPool: concurrent creates of different tenants
// finish even when there are more of them than administrator connections
// (SECURITY.md, F08: an error or a result, never a hang).
func TestCreateConcurrentSmallPool(t *testing.T) {
	t.Parallel()
	e := setup(t, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const n = 6
	errs := make([]error, n)
	race(n, func(i int) {
		_, errs[i] = e.p.Create(ctx, Request{Slug: fmt.Sprintf("store-%d", i), Model: tenant.ModelSchema})
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("create %d: %v", i, err)
		}
	}
	all, err := e.p.Directory().List(t.Context(), directory.Filter{State: tenant.StateActive})
	must(t, err)
	if len(all) != n {
		t.Errorf("%d active tenants, want %d", len(all), n)
	}
}

// race runs fn(0..n-1) in goroutines released at the same moment.
func race(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}
