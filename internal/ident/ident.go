// Package ident quotes what Landlord splices into SQL text: the names of
// schemas, databases, roles and tables, which cannot be bind parameters, and
// the few string literals in statements that take none (COMMENT ON, ALTER
// ROLE ... PASSWORD). Every name that reaches a statement built in Go goes
// through Quote, so a reader can check at a glance that none reaches SQL
// unquoted. The names themselves are derived from ids Landlord generates and
// validated where they are made (package tenant); quoting is the second
// fence, not the first.
package ident

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// Quote returns the parts as one SQL identifier, each part double-quoted
// and joined by dots: Quote("t_1a2b", "items") is "t_1a2b"."items". A double
// quote inside a part is doubled and a NUL byte removed, as
// pgx.Identifier.Sanitize does. Quoting keeps a name's case: "Items" and
// items are different tables.
func Quote(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// Literal returns s as an SQL string literal in single quotes, each single
// quote doubled: the standard rule, which holds while
// standard_conforming_strings is on (PostgreSQL's default, and what pgx
// requires). It is for text Landlord composes itself, in statements where
// a bind parameter is not allowed. A NUL byte cannot be part of a
// PostgreSQL string: Literal panics on one rather than change the value.
func Literal(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		panic("ident: NUL byte in an SQL string literal")
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
