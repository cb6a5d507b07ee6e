package provision

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

// seedRows writes parents and items (with a foreign key between them) for a
// row tenant into the shared tables, under its context.
func seedRows(t *testing.T, e *env, id tenant.ID, n int) {
	t.Helper()
	must(t, pgx.BeginFunc(t.Context(), e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), `SELECT landlord_context.enter($1)`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(t.Context(), `INSERT INTO shared.parents (tenant_id, id, name) SELECT $1, g, 'p' || g FROM generate_series(1, $2) g`, id, n); err != nil {
			return err
		}
		if _, err := tx.Exec(t.Context(), `INSERT INTO shared.items (tenant_id, id, parent_id, sku, secret) SELECT $1, g, g, 'sku-' || g, 's' FROM generate_series(1, $2) g`, id, n); err != nil {
			return err
		}
		_, err := tx.Exec(t.Context(), `INSERT INTO shared.items (tenant_id, id, parent_id, sku, secret) VALUES ($1, 1000, NULL, 'orphan', 's')`, id)
		return err
	}))
}

// countRows counts a row tenant's parents and items, under its context.
func countRows(t *testing.T, e *env, id tenant.ID) (parents, items int) {
	t.Helper()
	must(t, pgx.BeginFunc(t.Context(), e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), `SELECT landlord_context.enter($1)`, id); err != nil {
			return err
		}
		return tx.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM shared.parents), (SELECT count(*) FROM shared.items)`).Scan(&parents, &items)
	}))
	return parents, items
}

func TestDeleteRowTenant(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	a := create(t, e, "alpha", tenant.ModelRow)
	b := create(t, e, "bravo", tenant.ModelRow)
	seedRows(t, e, a.ID, 5)
	seedRows(t, e, b.ID, 3)
	if p, i := countRows(t, e, a.ID); p != 5 || i != 6 {
		t.Fatalf("seeded A: %d parents, %d items", p, i)
	}
	if err := e.p.Delete(ctx, a.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if p, i := countRows(t, e, a.ID); p != 0 || i != 0 {
		t.Errorf("after delete A has %d parents and %d items, want none", p, i)
	}
	if p, i := countRows(t, e, b.ID); p != 3 || i != 4 {
		t.Errorf("after deleting A, B has %d parents and %d items, want 3 and 4", p, i)
	}
	if _, err := e.p.Directory().Get(ctx, a.ID); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("directory row of A after delete: %v, want ErrNotFound", err)
	}
	if _, err := e.p.Directory().Get(ctx, b.ID); err != nil {
		t.Errorf("directory row of B after deleting A: %v", err)
	}
	checkSteps(t, e, a.ID, "create intent", "delete intent", "delete rows", "delete removed")
	if err := e.p.Delete(ctx, a.ID); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	if err := e.p.Delete(ctx, tenant.NewID()); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("delete of an unknown id: %v, want ErrNotFound", err)
	}
}

func TestDeleteSchemaTenant(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	a := create(t, e, "alpha", tenant.ModelSchema)
	b := create(t, e, "bravo", tenant.ModelSchema)
	if err := e.p.Delete(ctx, a.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if schemaExists(t, e, a.Schema) || roleExists(t, e, a.ID.RoleName()) {
		t.Errorf("schema or role of A still there after delete")
	}
	if queryBool(t, e.pool, `SELECT EXISTS (SELECT FROM landlord.target_migrations WHERE target = $1)`, a.Schema) {
		t.Errorf("migration ledger of A's schema still there")
	}
	if _, err := e.p.Directory().Get(ctx, a.ID); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("directory row of A after delete: %v, want ErrNotFound", err)
	}
	if got, want := objects(t, e), tenantObjects(b.ID, tenant.ModelSchema); !sameSet(got, want) {
		t.Errorf("objects after deleting A: %v, want B's only: %v", got, want)
	}
	checkSteps(t, e, a.ID, "create intent", "create schema", "create active", "delete intent", "delete schema", "delete removed")
}

func TestDeleteDatabaseTenant(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	ctx := t.Context()
	a := create(t, e, "alpha", tenant.ModelDatabase)
	b := create(t, e, "bravo", tenant.ModelDatabase)
	// A session of the tenant's own role, as a tenant pool would hold.
	open := connectAs(t, e, a.Database, a.ID.RoleName())
	must(t, open.Ping(ctx))
	if err := e.p.Delete(ctx, a.ID); err != nil {
		t.Fatalf("delete with a session open: %v", err)
	}
	if databaseExists(t, e, a.Database) || roleExists(t, e, a.ID.RoleName()) {
		t.Errorf("database or role of A still there after delete")
	}
	if err := open.Ping(ctx); err == nil {
		t.Errorf("the session on A's database survived its deletion")
	}
	if _, err := e.p.Directory().Get(ctx, a.ID); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("directory row of A after delete: %v, want ErrNotFound", err)
	}
	if got, want := objects(t, e), tenantObjects(b.ID, tenant.ModelDatabase); !sameSet(got, want) {
		t.Errorf("objects after deleting A: %v, want B's only: %v", got, want)
	}
	checkSteps(t, e, a.ID, "create intent", "create role", "create database", "create active",
		"delete intent", "delete database", "delete removed")
	// B is untouched and still reachable by its role.
	other := connectAs(t, e, b.Database, b.ID.RoleName())
	var n int
	must(t, other.QueryRow(context.Background(), `SELECT count(*) FROM `+ident.Quote(b.Schema, "items")).Scan(&n))
}
