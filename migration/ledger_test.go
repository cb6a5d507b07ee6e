package migration_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/landlordhq/landlord/migration"
)

func TestApplyChecksumMismatch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	target := e.target("app")
	if _, err := e.migrator(t, shopUpTo(t, 1), migration.Config{}).Apply(ctx, e.conn, target); err != nil {
		t.Fatalf("apply 1: %v", err)
	}
	changed := shopUpTo(t, 3)
	changed["001_products.up.sql"].Data = append([]byte("-- edited after it was applied\n"), changed["001_products.up.sql"].Data...)
	m := e.migrator(t, changed, migration.Config{})

	res, err := m.Apply(ctx, e.conn, target)
	if !errors.Is(err, migration.ErrChecksumMismatch) {
		t.Fatalf("Apply = %+v, %v, want ErrChecksumMismatch", res, err)
	}
	if !strings.Contains(err.Error(), "001_products.up.sql") {
		t.Errorf("error %q does not name the changed file", err)
	}
	if len(res.Applied) != 0 {
		t.Errorf("Applied = %v, want nothing", res.Applied)
	}
	if got := e.tables(t, "app"); strings.Join(got, ",") != "products" {
		t.Errorf("tables = %v, want only products", got)
	}
	if got := e.ledger(t, "app"); !equalInts(got, []int{1}) {
		t.Errorf("ledger = %v, want [1]", got)
	}
	if _, err := m.Version(ctx, e.conn, target); !errors.Is(err, migration.ErrChecksumMismatch) {
		t.Errorf("Version = %v, want ErrChecksumMismatch", err)
	}
	// Another target of the same database is not affected.
	e.createSchema(t, "other")
	if _, err := m.Apply(ctx, e.conn, e.target("other")); err != nil {
		t.Errorf("apply to another target: %v", err)
	}
}

func TestApplyUnknownVersion(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	target := e.target("app")
	if _, err := e.migrator(t, shopUpTo(t, 1), migration.Config{}).Apply(ctx, e.conn, target); err != nil {
		t.Fatalf("apply 1: %v", err)
	}
	// The set now starts at 2: file 1 was removed after it was applied.
	later := shopUpTo(t, 3)
	delete(later, "001_products.up.sql")
	later["002_orders.up.sql"].Data = []byte(`CREATE TABLE orders (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));`)
	later["003_product_price.up.sql"].Data = []byte(`CREATE TABLE prices (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));`)
	m := e.migrator(t, later, migration.Config{})

	res, err := m.Apply(ctx, e.conn, target)
	if !errors.Is(err, migration.ErrUnknownVersion) {
		t.Fatalf("Apply = %+v, %v, want ErrUnknownVersion", res, err)
	}
	if !strings.Contains(err.Error(), "version 1") || !strings.Contains(err.Error(), "001_products.up.sql") {
		t.Errorf("error %q does not name the missing version", err)
	}
	if got := e.tables(t, "app"); strings.Join(got, ",") != "products" {
		t.Errorf("tables = %v, want only products", got)
	}
	if got := e.ledger(t, "app"); !equalInts(got, []int{1}) {
		t.Errorf("ledger = %v, want [1]", got)
	}
	if _, err := m.Version(ctx, e.conn, target); !errors.Is(err, migration.ErrUnknownVersion) {
		t.Errorf("Version = %v, want ErrUnknownVersion", err)
	}
}

func TestApplyTargetAhead(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	target := e.target("app")
	if _, err := e.migrator(t, shop(), migration.Config{}).Apply(ctx, e.conn, target); err != nil {
		t.Fatalf("apply 3: %v", err)
	}
	// Older code, which knows versions 1 and 2 only.
	old := e.migrator(t, shopUpTo(t, 2), migration.Config{})
	res, err := old.Apply(ctx, e.conn, target)
	if err != nil {
		t.Fatalf("apply with an older set: %v", err)
	}
	if res.From != 3 || res.To != 3 || len(res.Applied) != 0 {
		t.Errorf("Apply = %+v, want a no-op at version 3", res)
	}
	if v, err := old.Version(ctx, e.conn, target); err != nil || v != 3 {
		t.Errorf("Version = %d, %v, want 3", v, err)
	}
	if got := e.ledger(t, "app"); !equalInts(got, []int{1, 2, 3}) {
		t.Errorf("ledger = %v, want [1 2 3]", got)
	}
	// Older code still checks what it knows.
	edited := shopUpTo(t, 2)
	edited["002_orders.up.sql"].Data = append(edited["002_orders.up.sql"].Data, '\n')
	if _, err := e.migrator(t, edited, migration.Config{}).Apply(ctx, e.conn, target); !errors.Is(err, migration.ErrChecksumMismatch) {
		t.Errorf("Apply with an edited older set = %v, want ErrChecksumMismatch", err)
	}
}

// TestApplyMissingVersion covers a migration added below the target's
// version, as when two branches each add one: the target must not claim a
// version whose migrations it never ran.
func TestApplyMissingVersion(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	target := e.target("app")
	full := shopUpTo(t, 3)
	skip := shopUpTo(t, 3)
	delete(skip, "002_orders.up.sql")
	if _, err := e.migrator(t, skip, migration.Config{}).Apply(ctx, e.conn, target); err != nil {
		t.Fatalf("apply 1 and 3: %v", err)
	}
	m := e.migrator(t, full, migration.Config{})
	res, err := m.Apply(ctx, e.conn, target)
	if !errors.Is(err, migration.ErrMissingVersion) {
		t.Fatalf("Apply = %+v, %v, want ErrMissingVersion", res, err)
	}
	if !strings.Contains(err.Error(), "002_orders.up.sql") {
		t.Errorf("error %q does not name the missing migration", err)
	}
	if _, err := m.Version(ctx, e.conn, target); !errors.Is(err, migration.ErrMissingVersion) {
		t.Errorf("Version = %v, want ErrMissingVersion", err)
	}
	if got := e.ledger(t, "app"); !equalInts(got, []int{1, 3}) {
		t.Errorf("ledger = %v, want [1 3]", got)
	}
}

// TestEarlierChecksum: a file whose comments were reworded after it was
// applied is accepted where it names the checksum the ledger holds, and
// only there; a malformed claim is refused when the set is loaded.
func TestEarlierChecksum(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	target := e.target("app")
	if _, err := e.migrator(t, shopUpTo(t, 1), migration.Config{}).Apply(ctx, e.conn, target); err != nil {
		t.Fatalf("apply 1: %v", err)
	}
	orig := shopUpTo(t, 1)["001_products.up.sql"].Data
	applied, err := migration.Load(shopUpTo(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	sum := applied.Migrations()[0].Checksum

	for _, c := range []struct {
		name, header string
		want         error
	}{
		{"names the applied checksum", "-- landlord:earlier-checksum " + sum + "\n-- reworded\n", nil},
		{"names another checksum", "-- landlord:earlier-checksum " + strings.Repeat("0", 64) + "\n-- reworded\n", migration.ErrChecksumMismatch},
		{"names none", "-- reworded\n", migration.ErrChecksumMismatch},
	} {
		set := shopUpTo(t, 3)
		set["001_products.up.sql"].Data = append([]byte(c.header), orig...)
		_, err := e.migrator(t, set, migration.Config{}).Version(ctx, e.conn, target)
		if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: Version = %v, want %v", c.name, err, c.want)
		}
	}
	bad := shopUpTo(t, 1)
	bad["001_products.up.sql"].Data = append([]byte("-- landlord:earlier-checksum abc\n"), orig...)
	if _, err := migration.Load(bad); !errors.Is(err, migration.ErrBadMigration) {
		t.Errorf("Load with a malformed earlier checksum = %v, want ErrBadMigration", err)
	}
}
