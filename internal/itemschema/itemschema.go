// Package itemschema holds the smallest set of tenant tables the tests of
// several packages share: parents and items, with a unique business key and
// a foreign key between them, every key led by tenant_id.
package itemschema

import (
	"embed"
	"io/fs"
)

//go:embed *.sql
var files embed.FS

// FS returns the migration files, named NNN_name.up.sql.
func FS() fs.FS { return files }
