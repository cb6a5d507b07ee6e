package migration_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/landlordhq/landlord/migration"
)

func TestLoadShop(t *testing.T) {
	t.Parallel()
	set := load(t, shop())
	var versions []int
	for _, mg := range set.Migrations() {
		versions = append(versions, mg.Version)
		b, err := os.ReadFile("testdata/shop/" + mg.Name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if mg.Checksum != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: Checksum = %s, want the sha256 of the file", mg.Name, mg.Checksum)
		}
		if mg.SQL != string(b) {
			t.Errorf("%s: SQL differs from the file", mg.Name)
		}
		if mg.NoTransaction {
			t.Errorf("%s: NoTransaction without the directive", mg.Name)
		}
	}
	// README.md and extra/004_ignored.up.sql are not migrations.
	if !equalInts(versions, []int{1, 2, 3}) {
		t.Fatalf("versions = %v, want [1 2 3]", versions)
	}
	if set.Head() != 3 {
		t.Errorf("Head() = %d, want 3", set.Head())
	}
	if names := []string{set.Migrations()[0].Name, set.Migrations()[2].Name}; names[0] != "001_products.up.sql" || names[1] != "003_product_price.up.sql" {
		t.Errorf("names = %v", names)
	}
}

func TestLoadOrderAndHash(t *testing.T) {
	t.Parallel()
	base := files(
		// Sorted by name these come 10, 2, 9; by version 2, 9, 10.
		"10_c.up.sql", "SELECT 10;",
		"2_a.up.sql", "SELECT 2;",
		"9_b.up.sql", "SELECT 9;",
		"notes.txt", "not a migration",
		"sub/1_x.up.sql", "SELECT 'ignored';",
	)
	set := load(t, base)
	var versions []int
	for _, mg := range set.Migrations() {
		versions = append(versions, mg.Version)
	}
	if !equalInts(versions, []int{2, 9, 10}) {
		t.Fatalf("versions = %v, want [2 9 10]", versions)
	}
	if set.Head() != 10 {
		t.Errorf("Head() = %d, want 10", set.Head())
	}
	if len(set.Hash()) != 64 {
		t.Errorf("Hash() = %q, want 64 hex digits", set.Hash())
	}
	if again := load(t, base); again.Hash() != set.Hash() {
		t.Errorf("Hash() changed between two loads of the same files: %s, %s", set.Hash(), again.Hash())
	}

	changes := map[string]func(fstest.MapFS){
		"one byte of a file": func(f fstest.MapFS) { f["9_b.up.sql"] = &fstest.MapFile{Data: []byte("SELECT 9; ")} },
		"a file added":       func(f fstest.MapFS) { f["11_d.up.sql"] = &fstest.MapFile{Data: []byte("SELECT 11;")} },
		"a file removed":     func(f fstest.MapFS) { delete(f, "2_a.up.sql") },
		"a version changed": func(f fstest.MapFS) {
			f["3_a.up.sql"] = f["2_a.up.sql"]
			delete(f, "2_a.up.sql")
		},
	}
	for name, change := range changes {
		f := fstest.MapFS{}
		for k, v := range base {
			f[k] = v
		}
		change(f)
		if got := load(t, f).Hash(); got == set.Hash() {
			t.Errorf("%s: Hash() did not change", name)
		}
	}
	// Files outside the root and non-SQL files do not count.
	f := fstest.MapFS{}
	for k, v := range base {
		f[k] = v
	}
	f["README.md"] = &fstest.MapFile{Data: []byte("docs")}
	f["sub/1_x.up.sql"] = &fstest.MapFile{Data: []byte("SELECT 'other';")}
	if got := load(t, f).Hash(); got != set.Hash() {
		t.Errorf("Hash() changed when only ignored files changed")
	}
}

func TestLoadNoTransaction(t *testing.T) {
	t.Parallel()
	set := load(t, files(
		"1_a.up.sql", "-- landlord:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS x ON t (a);\n",
		"2_b.up.sql", "-- landlord:no-transaction\r\nCREATE INDEX CONCURRENTLY IF NOT EXISTS y ON t (b);\r\n",
		"3_c.up.sql", "SELECT 1;\n-- landlord:no-transaction\n",
		"4_d.up.sql", "-- landlord:no-transactions\nSELECT 1;",
		"5_e.up.sql", "CREATE TABLE t (a int);",
	))
	want := map[int]bool{1: true, 2: true, 3: false, 4: false, 5: false}
	for _, mg := range set.Migrations() {
		if mg.NoTransaction != want[mg.Version] {
			t.Errorf("%s: NoTransaction = %v, want %v", mg.Name, mg.NoTransaction, want[mg.Version])
		}
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	good := "CREATE TABLE t (tenant_id uuid NOT NULL, PRIMARY KEY (tenant_id));"
	tests := []struct {
		name string
		fsys fstest.MapFS
		want []string // parts of the message: the files named and the rule
	}{
		{"no version", files("1.sql", good), []string{`"1.sql"`, "name must look like"}},
		{"hyphen", files("001-x.up.sql", good), []string{`"001-x.up.sql"`, "name must look like"}},
		{"upper case name", files("001_X.up.sql", good), []string{`"001_X.up.sql"`, "name must look like"}},
		{"down migration", files("001_x.down.sql", good), []string{`"001_x.down.sql"`, "name must look like"}},
		{"letters for version", files("abc_x.up.sql", good), []string{`"abc_x.up.sql"`, "name must look like"}},
		{"no name", files("001_.up.sql", good), []string{`"001_.up.sql"`, "name must look like"}},
		{"too many digits", files("0000000001_x.up.sql", good), []string{`"0000000001_x.up.sql"`, "name must look like"}},
		{"space", files("001_x y.up.sql", good), []string{`"001_x y.up.sql"`, "name must look like"}},
		{"bad one among good ones", files("001_a.up.sql", good, "002_B.up.sql", good), []string{`"002_B.up.sql"`}},
		{"version 0", files("000_x.up.sql", good), []string{`"000_x.up.sql"`, "version must be positive"}},
		{"duplicate version", files("001_a.up.sql", good, "1_b.up.sql", good), []string{`"001_a.up.sql"`, `"1_b.up.sql"`, "both have version 1"}},
		{"empty file", files("001_a.up.sql", ""), []string{`"001_a.up.sql"`, "empty"}},
		{"blank file", files("001_a.up.sql", " \n\t\n"), []string{`"001_a.up.sql"`, "empty"}},
		{"empty among good ones", files("001_a.up.sql", good, "002_b.up.sql", "\n"), []string{`"002_b.up.sql"`, "empty"}},
		{"no files", files(), []string{"no *.up.sql files"}},
		{"only other files", files("README.md", "docs", "sub/001_a.up.sql", good), []string{"no *.up.sql files"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			set, err := migration.Load(tt.fsys)
			if err == nil {
				t.Fatalf("Load = %d migrations, want an error", len(set.Migrations()))
			}
			if !errors.Is(err, migration.ErrBadMigration) {
				t.Errorf("error %v does not wrap ErrBadMigration", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	t.Run("nil fs", func(t *testing.T) {
		t.Parallel()
		_, err := migration.Load(nil)
		if !errors.Is(err, migration.ErrBadMigration) {
			t.Fatalf("Load(nil) = %v, want ErrBadMigration", err)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		t.Parallel()
		if _, err := migration.Load(os.DirFS("testdata/does-not-exist")); err == nil {
			t.Fatal("Load of a missing directory succeeded")
		}
	})
}
