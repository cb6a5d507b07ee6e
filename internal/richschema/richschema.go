// Package richschema holds tenant tables with every kind of column that
// copying a tenant must carry exactly (an enum, identity columns, jsonb,
// bytea, arrays, numeric, timestamps, a generated column, text with tabs,
// newlines and backslashes), foreign keys, and a trigger that keeps derived
// rows, which a copy must not run again. The archive and move tests share
// it.
package richschema

import (
	"embed"
	"io/fs"
)

//go:embed *.sql
var files embed.FS

// FS returns the migration files, named NNN_name.up.sql.
func FS() fs.FS { return files }
