package tenant_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/tenant"
)

func TestCheckIdent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		ok       bool
		rule     string // distinctive part of the message when !ok
	}{
		{"letter", "a", true, ""},
		{"underscore first", "_a", true, ""},
		{"underscore only", "_", true, ""},
		{"digits after", "t_0123456789abcdef", true, ""},
		{"63 bytes", strings.Repeat("a", 63), true, ""},
		{"pg without underscore", "pgx", true, ""},
		{"pg alone", "pg", true, ""},
		{"pg_ inside", "app_pg_x", true, ""},
		{"upper-case P G prefix is refused for case", "PG_x", false, "only a-z"},

		{"empty", "", false, "1-63 bytes"},
		{"64 bytes", strings.Repeat("a", 64), false, "1-63 bytes"},
		{"1 MB", strings.Repeat("a", 1<<20), false, "1-63 bytes"},
		{"62 bytes and a 2-byte rune", strings.Repeat("a", 62) + "é", false, "1-63 bytes"},
		{"multibyte", "tést", false, "only a-z"},
		{"pg_ prefix", "pg_catalog", false, "pg_ prefix"},
		{"pg_ alone", "pg_", false, "pg_ prefix"},
		{"upper case", "Tenant", false, "only a-z"},
		{"upper case inside", "tenAnt", false, "only a-z"},
		{"double quote", `a"b`, false, "only a-z"},
		{"quote only", `"`, false, "only a-z"},
		{"single quote", "a'b", false, "only a-z"},
		{"nul", "a\x00b", false, "only a-z"},
		{"leading digit", "1abc", false, "start with a digit"},
		{"digit only", "7", false, "start with a digit"},
		{"hyphen", "a-b", false, "only a-z"},
		{"space", "a b", false, "only a-z"},
		{"dot", "public.t", false, "only a-z"},
		{"dollar", "a$b", false, "only a-z"},
		{"semicolon", "a;drop", false, "only a-z"},
		{"cyrillic a", "\u0430bc", false, "only a-z"},
		{"zero-width space", "a\u200bb", false, "only a-z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tenant.CheckIdent(tt.in)
			if tt.ok {
				if err != nil {
					t.Fatalf("CheckIdent(%q): %v", tt.in, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckIdent(%.80q) = nil, want an error", tt.in)
			}
			if !errors.Is(err, tenant.ErrBadIdentifier) {
				t.Errorf("CheckIdent(%.80q) error %v does not wrap ErrBadIdentifier", tt.in, err)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.rule) {
				t.Errorf("CheckIdent(%.80q) error %q does not say %q", tt.in, msg, tt.rule)
			}
			if n := len(err.Error()); n > maxErrLen {
				t.Errorf("CheckIdent: error message is %d bytes, want at most %d", n, maxErrLen)
			}
		})
	}
}

func FuzzCheckIdent(f *testing.F) {
	for _, s := range []string{"a", "_", "t_0123456789abcdef0123456789abcdef", "pg_x", "Tenant", `a"b`, "a\x00b", "1a", strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := tenant.CheckIdent(name)
		if err != nil {
			if !errors.Is(err, tenant.ErrBadIdentifier) {
				t.Fatalf("CheckIdent(%q): error %v does not wrap ErrBadIdentifier", name, err)
			}
			return
		}
		if len(name) < 1 || len(name) > 63 {
			t.Fatalf("CheckIdent accepted %q of %d bytes", name, len(name))
		}
		for i := 0; i < len(name); i++ {
			c := name[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				t.Fatalf("CheckIdent accepted %q with byte %q", name, c)
			}
		}
		if name[0] >= '0' && name[0] <= '9' {
			t.Fatalf("CheckIdent accepted %q, which starts with a digit", name)
		}
		if strings.HasPrefix(name, "pg_") {
			t.Fatalf("CheckIdent accepted %q, which has the pg_ prefix", name)
		}
		if got, want := (pgx.Identifier{name}).Sanitize(), `"`+name+`"`; got != want {
			t.Fatalf("pgx.Identifier{%q}.Sanitize() = %s, want %s: an accepted name must need no escaping", name, got, want)
		}
	})
}
