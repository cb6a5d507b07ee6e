package directory

import (
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

// TestReserveRenameKeepsEntries: an installation whose control schema
// predates 004_reserve keeps its reserved tenants through the rename, and
// nothing in the table's catalog is named after the pool any more.
func TestReserveRenameKeepsEntries(t *testing.T) {
	t.Parallel()
	db := srv.NewDB(t, nil)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, db.URL)
	must(t, err)
	defer conn.Close(ctx)
	must(t, prepareOwner(ctx, conn))

	// The control schema as 003_provision left it, with one entry.
	before := fstest.MapFS{}
	must(t, fs.WalkDir(migrationFiles, "migrations", func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || path > "migrations/004" {
			return err
		}
		b, err := fs.ReadFile(migrationFiles, path)
		before[strings.TrimPrefix(path, "migrations/")] = &fstest.MapFile{Data: b}
		return err
	}))
	set, err := migration.Load(before)
	must(t, err)
	if set.Head() != 3 {
		t.Fatalf("control schema before the rename at version %d, want 3", set.Head())
	}
	m, err := migration.New(set, migration.Config{Owner: owner})
	must(t, err)
	_, err = m.Apply(ctx, conn, migration.Target{Schema: Schema, Plain: true})
	must(t, err)
	id := tenant.NewID()
	_, err = conn.Exec(ctx, `INSERT INTO landlord.servers (id, database) VALUES ($1, current_database())`, DefaultServer)
	must(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO landlord.tenant_pool (id, model, server_id, schema_name, database_name, state, schema_version)
		VALUES ($1, 'schema', $2, $3, current_database(), 'ready', 1)`, id, DefaultServer, id.SchemaName())
	must(t, err)

	d := New(openPool(t, db.URL))
	must(t, d.Migrate(ctx, owner))
	got, err := d.ListReserved(ctx, tenant.ModelSchema, DefaultServer)
	must(t, err)
	if len(got) != 1 || got[0].ID != id || !got[0].Ready || got[0].SchemaVersion != 1 {
		t.Errorf("reserve after the rename: %+v, want the ready entry %s", got, id)
	}

	var names []string
	must(t, conn.QueryRow(ctx, `SELECT array_agg(name ORDER BY name) FROM (
			SELECT relname::text AS name FROM pg_class WHERE relnamespace = 'landlord'::regnamespace
			UNION ALL
			SELECT conname::text FROM pg_constraint WHERE connamespace = 'landlord'::regnamespace
		) n WHERE name LIKE 'tenant\_pool%' OR name LIKE 'tenant\_reserve%'`).Scan(&names))
	want := []string{"tenant_reserve", "tenant_reserve_database_name_check", "tenant_reserve_model_check",
		"tenant_reserve_pkey", "tenant_reserve_pkey", "tenant_reserve_ready", "tenant_reserve_schema_name_check",
		"tenant_reserve_server_id_fkey", "tenant_reserve_state_check"}
	if !slices.Equal(names, want) {
		t.Errorf("names of the reserve's table, index and constraints: %v, want %v", names, want)
	}
}
