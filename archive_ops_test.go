package landlord

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/landlordhq/landlord/archive"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// TestExportImportThroughHandles: rows written through a tenant's handle
// come back, after an export and an import into another model, through the
// new tenant's handle, and stay invisible to every other tenant.
func TestExportImportThroughHandles(t *testing.T) {
	t.Parallel()
	l, db := setup(t, Config{})
	ctx := t.Context()
	admin, err := l.Admin(ctx, "archive test")
	must(t, err)
	src, err := l.CreateTenant(ctx, provision.Request{Slug: "source", Model: tenant.ModelSchema})
	must(t, err)
	h := l.Handle()
	sctx := WithTenant(ctx, src.ID)
	_, err = h.Exec(sctx, `INSERT INTO parents (id, name) VALUES (1, 'p1'), (2, 'p2')`)
	must(t, err)
	_, err = h.Exec(sctx, `INSERT INTO items (id, parent_id, sku, secret) VALUES (1, 1, 'a', 'source secret'), (2, 2, 'b', 'source secret')`)
	must(t, err)

	var buf bytes.Buffer
	m, err := admin.ExportTenant(ctx, src.ID, &buf, archive.ExportOptions{})
	must(t, err)
	if m.Rows() != 4 {
		t.Fatalf("archive holds %d rows, want 4", m.Rows())
	}
	// This installation's administrator is not a superuser: the row model
	// is refused, the others work.
	if _, _, err := admin.ImportTenant(ctx, bytes.NewReader(buf.Bytes()), archive.ImportOptions{Slug: "copy", Model: tenant.ModelRow}); !errors.Is(err, archive.ErrNotPermitted) {
		t.Fatalf("import into the row model as a non-superuser: %v", err)
	}
	cp, _, err := admin.ImportTenant(ctx, bytes.NewReader(buf.Bytes()), archive.ImportOptions{Slug: "copy", Model: tenant.ModelDatabase})
	must(t, err)
	readSecrets := func(id tenant.ID) []string {
		t.Helper()
		rows, err := h.Query(WithTenant(ctx, id), `SELECT sku || '=' || secret FROM items ORDER BY sku`)
		must(t, err)
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			must(t, rows.Scan(&s))
			out = append(out, s)
		}
		must(t, rows.Err())
		return out
	}
	if got := readSecrets(cp.ID); len(got) != 2 || got[0] != "a=source secret" {
		t.Fatalf("the copy reads %v through its handle", got)
	}
	// Writes to the copy do not reach the source.
	_, err = h.Exec(WithTenant(ctx, cp.ID), `UPDATE items SET secret = 'changed' WHERE sku = 'a'`)
	must(t, err)
	if got := readSecrets(src.ID); got[0] != "a=source secret" {
		t.Errorf("the source reads %v after the copy changed", got)
	}

	// A superuser administrator imports into the shared tables too; the
	// row tenant then reads its rows, and the other tenants do not.
	super, err := Open(ctx, db.AdminURL, testMigrations(), Config{})
	must(t, err)
	defer super.Close()
	sadmin, err := super.Admin(ctx, "archive test")
	must(t, err)
	row, _, err := sadmin.CloneTenant(ctx, src.ID, archive.ImportOptions{Slug: "row-copy", Model: tenant.ModelRow})
	must(t, err)
	if got := readSecrets(row.ID); len(got) != 2 || got[1] != "b=source secret" {
		t.Fatalf("the row copy reads %v", got)
	}
	other, err := l.CreateTenant(ctx, provision.Request{Slug: "other", Model: tenant.ModelRow})
	must(t, err)
	if got := readSecrets(other.ID); len(got) != 0 {
		t.Errorf("another row tenant reads %v", got)
	}
	_ = context.Background
}
