package tenant

import "fmt"

// MaxIdentLen is PostgreSQL's identifier limit (NAMEDATALEN-1) in bytes.
const MaxIdentLen = 63

// CheckIdent reports whether name is an identifier Landlord is willing to
// put into SQL: 1-63 bytes of lower-case ASCII letters, digits and
// underscores, starting with a letter or underscore. Identifiers are still
// quoted when used (internal/ident); this check means a name that would
// need quoting to be safe is refused instead of truncated or escaped
// (SECURITY.md, B02, I20).
func CheckIdent(name string) error {
	if name == "" || len(name) > MaxIdentLen {
		return fmt.Errorf("identifier %q: %w: must be 1-%d bytes", clip(name), ErrBadIdentifier, MaxIdentLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case c >= '0' && c <= '9':
			if i == 0 {
				return fmt.Errorf("identifier %q: %w: must not start with a digit", clip(name), ErrBadIdentifier)
			}
		default:
			return fmt.Errorf("identifier %q: %w: only a-z, 0-9 and _ are allowed", clip(name), ErrBadIdentifier)
		}
	}
	if len(name) >= 3 && name[:3] == "pg_" {
		return fmt.Errorf("identifier %q: %w: the pg_ prefix is reserved by PostgreSQL", clip(name), ErrBadIdentifier)
	}
	return nil
}
