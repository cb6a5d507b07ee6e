package itemschema

import (
	"testing"

	"github.com/landlordhq/landlord/migration"
)

// The files load as one migration set.
func TestLoads(t *testing.T) {
	set, err := migration.Load(FS())
	if err != nil {
		t.Fatal(err)
	}
	if got := len(set.Migrations()); got != 1 {
		t.Fatalf("%d migrations, want 1", got)
	}
}
