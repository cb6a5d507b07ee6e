package richschema

import (
	"testing"

	"github.com/landlordhq/landlord/migration"
)

// TestLoads: the set loads as a migration set, so the tests that share it
// fail here first when a file is broken.
func TestLoads(t *testing.T) {
	set, err := migration.Load(FS())
	if err != nil {
		t.Fatal(err)
	}
	if set.Head() != 1 {
		t.Errorf("head %d, want 1", set.Head())
	}
}
