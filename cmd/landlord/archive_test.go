package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/landlordhq/landlord/tenant"
)

// TestExportImportClone runs the archive commands end to end: an export to
// a file, its check, an import under another slug and model, an import over
// a tenant, a clone, and the refusals that change nothing.
func TestExportImportClone(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	src := createTenant(t, db, "acme", tenant.ModelSchema)
	adminExec(t, db, `INSERT INTO `+src.Schema+`.products (tenant_id, id, name, price_cents)
		SELECT $1, i, 'product ' || i, i FROM generate_series(1, 500) i`, src.ID)
	dir := t.TempDir()
	file := filepath.Join(dir, "acme.landlord")
	db_ := dbFlag(db)

	var res archiveResult
	m := decode(t, mustRun(t, append([]string{"tenants", "export", "acme", "--output", file, "--json"}, db_...)...), &res)
	if got := strings.Join(keys(m), ","); got != "bytes,file,manifest" {
		t.Errorf("export --json fields: %s", got)
	}
	if res.Manifest.Rows() != 500 || res.Bytes == 0 || res.File != file {
		t.Fatalf("export: %+v", res)
	}
	// The file is whole, and nothing else was left beside it.
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("export left %d files in its directory", len(entries))
	}
	// An existing file is not overwritten without --force.
	if _, errOut, code := cli(t, "", append([]string{"tenants", "export", "acme", "--output", file}, db_...)...); code != exitUsage || !strings.Contains(errOut, "--force") {
		t.Errorf("export onto an existing file: exit %d: %s", code, errOut)
	}
	out := mustRun(t, "tenants", "import", file, "--check")
	if !strings.Contains(out, "products  500") || !strings.Contains(out, res.Manifest.Tables[0].SHA256) {
		t.Errorf("import --check:\n%s", out)
	}

	decode(t, mustRun(t, append([]string{"tenants", "import", file, "--slug", "acme-copy", "--model", "database", "--json"}, db_...)...), &res)
	if res.Tenant == nil || res.Tenant.Slug != "acme-copy" || res.Tenant.Model != "database" || res.Tenant.State != "active" {
		t.Fatalf("import: %+v", res.Tenant)
	}
	// The archive's slug is taken: the message says what to do.
	if _, errOut, code := cli(t, "", append([]string{"tenants", "import", file}, db_...)...); code != exitError || !strings.Contains(errOut, "--slug") {
		t.Errorf("import onto a taken slug: exit %d: %s", code, errOut)
	}
	// Over an existing tenant: refused without --yes, then done.
	other := createTenant(t, db, "other", tenant.ModelSchema)
	if _, errOut, code := cli(t, "", append([]string{"tenants", "import", file, "--replace", "other"}, db_...)...); code != exitUsage || !strings.Contains(errOut, "--yes") {
		t.Errorf("--replace without --yes: exit %d: %s", code, errOut)
	}
	decode(t, mustRun(t, append([]string{"tenants", "import", file, "--replace", "other", "--yes", "--json"}, db_...)...), &res)
	if res.Tenant.ID != other.ID || res.Manifest.Rows() != 500 {
		t.Errorf("import over other: %+v", res)
	}

	out = mustRun(t, append([]string{"tenants", "clone", "acme", "acme-twin", "--model", "database"}, db_...)...)
	if !strings.Contains(out, "Cloned acme into tenant acme-twin (database") {
		t.Errorf("clone: %s", out)
	}

	// Bad archives: exit 2, a message that says what is wrong, nothing made.
	before := listTenants(t, db)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.landlord")
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, says string }{
		{truncated, "truncated"},
		{filepath.Join(dir, "missing.landlord"), "no such file"},
	} {
		_, errOut, code := cli(t, "", append([]string{"tenants", "import", c.file, "--slug", "never"}, db_...)...)
		if code != exitUsage || !strings.Contains(errOut, c.says) {
			t.Errorf("import %s: exit %d: %s", filepath.Base(c.file), code, errOut)
		}
	}
	if _, errOut, code := cli(t, "", "tenants", "import", truncated, "--check"); code != exitUsage || !strings.Contains(errOut, "truncated") {
		t.Errorf("--check of a truncated archive: exit %d: %s", code, errOut)
	}
	if after := listTenants(t, db); len(after) != len(before) {
		t.Errorf("bad archives changed the tenants: %d before, %d after", len(before), len(after))
	}
	// Bad command lines.
	for _, args := range [][]string{
		{"tenants", "import", file, "--replace", "other", "--slug", "x", "--yes"},
		{"tenants", "import", file, "--model", "table"},
		{"tenants", "clone", "acme", "Not A Slug"},
		{"tenants", "export", "acme", "--output", "-", "--json"},
	} {
		if _, _, code := cli(t, "", append(args, db_...)...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}
