package provision

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

// reserved lists the ids of the reserve entries of model m.
func reserved(t *testing.T, e *env, m tenant.Model) []tenant.ID {
	t.Helper()
	entries, err := e.p.Directory().ListReserved(t.Context(), m, directory.DefaultServer)
	must(t, err)
	var ids []tenant.ID
	for _, x := range entries {
		if !x.Ready {
			t.Errorf("reserve entry %s is not ready", x.ID)
		}
		ids = append(ids, x.ID)
	}
	return ids
}

// reservedObjects lists the objects that carry the reserve marker of e's
// installation, as "kind name", sorted.
func reservedObjects(t *testing.T, e *env) []string {
	t.Helper()
	rows, err := e.pool.Query(t.Context(), `
		SELECT kind || ' ' || name FROM (
			SELECT 'database' AS kind, datname::text AS name FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE $1
			UNION ALL
			SELECT 'schema', nspname::text FROM pg_namespace WHERE obj_description(oid, 'pg_namespace') LIKE $1
			UNION ALL
			SELECT 'role', rolname::text FROM pg_roles WHERE shobj_description(oid, 'pg_authid') LIKE $1
		) o ORDER BY 1`, "landlord pooled tenant % installation "+e.p.Installation().ID.String()+" unclaimed")
	must(t, err)
	var out []string
	for rows.Next() {
		var s string
		must(t, rows.Scan(&s))
		out = append(out, s)
	}
	must(t, rows.Err())
	return out
}

func TestReserveClaim(t *testing.T) {
	t.Parallel()
	for _, m := range []tenant.Model{tenant.ModelSchema, tenant.ModelDatabase} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			e := setupShop(t)
			ctx := t.Context()
			ready, err := e.p.FillReserve(ctx, m, 2)
			if err != nil || ready != 2 {
				t.Fatalf("fill 2: %d ready, %v", ready, err)
			}
			ids := reserved(t, e, m)
			if len(ids) != 2 {
				t.Fatalf("reserve holds %v, want 2 entries", ids)
			}
			var wantReserved []string
			for _, id := range ids {
				wantReserved = append(wantReserved, tenantObjects(id, m)...)
			}
			if got := reservedObjects(t, e); !sameSet(got, wantReserved) {
				t.Errorf("reserved objects %v, want %v", got, wantReserved)
			}
			// Invisible to routing and to Reconcile: no directory row, and
			// not orphans.
			for _, id := range ids {
				if _, err := e.p.Directory().Get(ctx, id); !errors.Is(err, tenant.ErrNotFound) {
					t.Errorf("reserved tenant %s in the directory: %v", id, err)
				}
			}
			if rep, err := e.p.Reconcile(ctx); err != nil || len(rep.Orphans) > 0 {
				t.Errorf("reconcile with a filled reserve: %+v, %v; want nothing dropped", rep, err)
			}
			if got := reservedObjects(t, e); !sameSet(got, wantReserved) {
				t.Errorf("after reconcile, reserved objects %v, want %v", got, wantReserved)
			}
			// Filling again to the same size makes nothing.
			if ready, err := e.p.FillReserve(ctx, m, 2); err != nil || ready != 2 || !slices.Equal(reserved(t, e, m), ids) {
				t.Errorf("second fill: %d ready, %v, reserve %v; want the same 2", ready, err, reserved(t, e, m))
			}

			tn, err := e.p.Create(ctx, Request{Slug: "Claimed", Model: m, DisplayName: "Claimed Store"})
			must(t, err)
			if tn.ID != ids[0] {
				t.Errorf("claimed %s, want the oldest reserved tenant %s", tn.ID, ids[0])
			}
			checkRow(t, e, tn, m, "claimed", "Claimed Store")
			made := []string{"pool intent", "pool schema", "pool ready"}
			if m == tenant.ModelDatabase {
				made = []string{"pool intent", "pool role", "pool database", "pool ready"}
			}
			checkSteps(t, e, tn.ID, append(made, "create intent", "create claimed", "create active")...)
			// The claimed tenant's objects carry its marker now; the other
			// reserved tenant's still carry the reserve's.
			if got, want := objects(t, e), tenantObjects(tn.ID, m); !sameSet(got, want) {
				t.Errorf("tenant objects %v, want %v", got, want)
			}
			if got, want := reservedObjects(t, e), tenantObjects(ids[1], m); !sameSet(got, want) {
				t.Errorf("reserved objects after the claim %v, want %v", got, want)
			}
			if !slices.Equal(reserved(t, e, m), ids[1:]) {
				t.Errorf("reserve after the claim %v, want %v", reserved(t, e, m), ids[1:])
			}
			if m == tenant.ModelDatabase {
				checkLiveDatabase(t, e, tn)
			} else if !queryBool(t, e.pool, `SELECT has_table_privilege($1, $2 || '.orders', 'SELECT, INSERT, UPDATE, DELETE')`, tn.ID.RoleName(), tn.Schema) {
				t.Errorf("the claimed tenant's role cannot use its tables")
			}

			// A claimed tenant is deleted like any other.
			must(t, e.p.Delete(ctx, tn.ID))
			if got := objects(t, e); len(got) != 0 {
				t.Errorf("objects after deleting the claimed tenant: %v", got)
			}
			// Filling to 0 empties the reserve and drops the objects.
			if ready, err := e.p.FillReserve(ctx, m, 0); err != nil || ready != 0 {
				t.Errorf("fill 0: %d, %v", ready, err)
			}
			if got := reservedObjects(t, e); len(got) != 0 || len(reserved(t, e, m)) != 0 {
				t.Errorf("after fill 0: objects %v, entries %v", got, reserved(t, e, m))
			}
		})
	}
}

// TestReserveConcurrentClaims: sign-ups racing for a reserve of three get
// three different reserved tenants; the others are created afresh.
func TestReserveConcurrentClaims(t *testing.T) {
	t.Parallel()
	e := setupShop(t)
	ctx := t.Context()
	if _, err := e.p.FillReserve(ctx, tenant.ModelSchema, 3); err != nil {
		t.Fatal(err)
	}
	reserve := reserved(t, e, tenant.ModelSchema)
	const n = 6
	got := make([]tenant.Tenant, n)
	errs := make([]error, n)
	race(n, func(i int) {
		got[i], errs[i] = e.p.Create(ctx, Request{Slug: fmt.Sprintf("racer-%d", i), Model: tenant.ModelSchema})
	})
	seen := map[tenant.ID]bool{}
	fromReserve := 0
	for i, err := range errs {
		if err != nil {
			t.Errorf("create %d: %v", i, err)
			continue
		}
		if seen[got[i].ID] {
			t.Errorf("tenant %s handed out twice", got[i].ID)
		}
		seen[got[i].ID] = true
		if slices.Contains(reserve, got[i].ID) {
			fromReserve++
		}
	}
	if fromReserve != len(reserve) {
		t.Errorf("%d sign-ups got a reserved tenant, want %d", fromReserve, len(reserve))
	}
	if left := reserved(t, e, tenant.ModelSchema); len(left) != 0 {
		t.Errorf("reserve after the race: %v", left)
	}
	all, err := e.p.Directory().List(ctx, directory.Filter{State: tenant.StateActive})
	must(t, err)
	if len(all) != n {
		t.Errorf("%d active tenants, want %d", len(all), n)
	}
}

// TestReserveClaimSlugTaken: a sign-up with a taken slug leaves the reserve
// as it was.
func TestReserveClaimSlugTaken(t *testing.T) {
	t.Parallel()
	e := setupShop(t)
	ctx := t.Context()
	create(t, e, "acme", tenant.ModelRow)
	if _, err := e.p.FillReserve(ctx, tenant.ModelSchema, 1); err != nil {
		t.Fatal(err)
	}
	before := reserved(t, e, tenant.ModelSchema)
	if _, err := e.p.Create(ctx, Request{Slug: "ACME", Model: tenant.ModelSchema}); !errors.Is(err, tenant.ErrSlugTaken) {
		t.Errorf("claim with a taken slug: %v, want ErrSlugTaken", err)
	}
	if after := reserved(t, e, tenant.ModelSchema); !slices.Equal(after, before) {
		t.Errorf("reserve after a refused claim %v, want %v", after, before)
	}
	if got, want := reservedObjects(t, e), tenantObjects(before[0], tenant.ModelSchema); !sameSet(got, want) {
		t.Errorf("reserved objects %v, want %v", got, want)
	}
}

// TestFillReserveRecovers: FillReserve removes what an interrupted fill or
// removal left (an entry still filling with half its objects, objects whose
// entry is gone, an entry made by an older migration set) and tops the
// reserve up.
func TestFillReserveRecovers(t *testing.T) {
	t.Parallel()
	e := setupShop(t)
	ctx := t.Context()
	d := e.p.Directory()

	// Died half way: the intent and the role, no schema.
	half := tenant.NewID()
	must(t, d.AddReserved(ctx, directory.Reserved{ID: half, Model: tenant.ModelSchema, Server: directory.DefaultServer,
		Schema: half.SchemaName(), Database: e.db.Name}))
	_, err := e.pool.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s NOLOGIN; COMMENT ON ROLE %s IS %s`,
		ident.Quote(half.RoleName()), ident.Quote(half.RoleName()), ident.Literal(e.p.reserveMarker(half))))
	must(t, err)
	// Died after removing an entry: marked objects, no entry.
	lost := tenant.NewID()
	_, err = e.pool.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s NOLOGIN; COMMENT ON ROLE %s IS %s;
		CREATE SCHEMA %s; COMMENT ON SCHEMA %s IS %s`,
		ident.Quote(lost.RoleName()), ident.Quote(lost.RoleName()), ident.Literal(e.p.reserveMarker(lost)),
		ident.Quote(lost.SchemaName()), ident.Quote(lost.SchemaName()), ident.Literal(e.p.reserveMarker(lost))))
	must(t, err)
	// Made by an older set: ready, at version 4.
	old := tenant.NewID()
	must(t, d.AddReserved(ctx, directory.Reserved{ID: old, Model: tenant.ModelSchema, Server: directory.DefaultServer,
		Schema: old.SchemaName(), Database: e.db.Name}))
	must(t, d.SetReservedReady(ctx, old, 4))
	// Not ours: another installation's reserved role is left alone.
	foreign := tenant.NewID()
	_, err = e.pool.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s NOLOGIN; COMMENT ON ROLE %s IS %s`, ident.Quote(foreign.RoleName()), ident.Quote(foreign.RoleName()),
		ident.Literal("landlord pooled tenant "+foreign.String()+" installation "+tenant.NewID().String()+" unclaimed")))
	must(t, err)
	t.Cleanup(func() { e.pool.Exec(t.Context(), `DROP ROLE IF EXISTS `+ident.Quote(foreign.RoleName())) })

	// A claim never hands out the half-made or the old entry.
	tn := create(t, e, "early-bird", tenant.ModelSchema)
	if tn.ID == half || tn.ID == old {
		t.Errorf("claimed the unfinished or outdated reserve entry %s", tn.ID)
	}

	ready, err := e.p.FillReserve(ctx, tenant.ModelSchema, 1)
	if err != nil || ready != 1 {
		t.Fatalf("fill: %d ready, %v", ready, err)
	}
	ids := reserved(t, e, tenant.ModelSchema)
	if len(ids) != 1 || ids[0] == half || ids[0] == old {
		t.Fatalf("reserve %v, want one new entry", ids)
	}
	if got, want := reservedObjects(t, e), tenantObjects(ids[0], tenant.ModelSchema); !sameSet(got, want) {
		t.Errorf("reserved objects %v, want only the new entry's %v", got, want)
	}
	if !roleExists(t, e, foreign.RoleName()) {
		t.Errorf("fill dropped another installation's reserved role")
	}
	for _, id := range []tenant.ID{half, old} {
		steps, err := d.Steps(ctx, id)
		must(t, err)
		if len(steps) == 0 || steps[len(steps)-1].Step != "removed" {
			t.Errorf("ledger of removed entry %s: %+v, want it to end with its removal", id, steps)
		}
	}
}

func TestFillReserveRefused(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	for _, c := range []struct {
		m    tenant.Model
		n    int
		want string
	}{
		{tenant.ModelRow, 1, "never reserved"},
		{"table", 1, "model"},
		{tenant.ModelSchema, -1, "n = -1"},
		{tenant.ModelDatabase, 1001, "n = 1001"},
	} {
		if _, err := e.p.FillReserve(t.Context(), c.m, c.n); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("FillReserve(%s, %d): %v, want an error naming %q", c.m, c.n, err, c.want)
		}
	}
	if got := reservedObjects(t, e); len(got) != 0 {
		t.Errorf("refused fills made %v", got)
	}
}
