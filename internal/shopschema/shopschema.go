// Package shopschema holds a realistic store schema as tenant-table
// migrations: ten tables in five files, with an enum, a trigger function,
// sequences, a view, an extra policy, a dropped column and comments.
// Provisioning tests and the benchmark suite create tenants of it.
package shopschema

import (
	"embed"
	"io/fs"
)

//go:embed *.sql
var files embed.FS

// FS returns the migration files, named NNN_name.up.sql.
func FS() fs.FS { return files }
