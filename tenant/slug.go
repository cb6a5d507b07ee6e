package tenant

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Slug limits, as ARCHITECTURE.md sets them (idea 6).
const (
	SlugMinLen = 3
	SlugMaxLen = 40
)

// reserved holds slugs that would be confusing or dangerous as a store name,
// a host name or in an admin URL. Slugs never become identifiers, but names
// like "postgres" or "admin" still mislead people reading logs and URLs.
var reserved = map[string]bool{
	"admin": true, "administrator": true, "api": true, "app": true, "assets": true,
	"auth": true, "billing": true, "cdn": true, "dashboard": true, "default": true,
	"docs": true, "ftp": true, "help": true, "imap": true, "information-schema": true,
	"landlord": true, "localhost": true, "login": true, "logout": true, "mail": true,
	"metrics": true, "null": true, "pop": true, "postgres": true, "postgresql": true,
	"public": true, "root": true, "shared": true, "signup": true, "smtp": true,
	"static": true, "status": true, "superuser": true, "support": true, "system": true,
	"template": true, "template0": true, "template1": true, "tenant": true, "tenants": true,
	"undefined": true, "www": true,
}

// reservedPrefixes are prefixes of PostgreSQL's own names and of the names
// Landlord derives ("t-"/"r-" mirror t_/r_ so no slug looks like one).
var reservedPrefixes = []string{"pg-", "pg_", "t-", "r-", "xn--", "landlord-"}

// NormalizeSlug returns the canonical form of a slug: Unicode NFC, lower
// case. It then checks the result against the slug rules and the reserved
// list, so two slugs that differ only in case or normalization collide in the
// directory's unique index (SECURITY.md, B04). The error names the rule
// broken.
func NormalizeSlug(s string) (string, error) {
	if len(s) > 4*SlugMaxLen {
		return "", fmt.Errorf("slug %q: %w: longer than %d characters", clip(s), ErrBadSlug, SlugMaxLen)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("slug %q: %w: not valid UTF-8", clip(s), ErrBadSlug)
	}
	n := strings.ToLower(norm.NFC.String(s))
	if err := checkSlug(n); err != nil {
		return "", fmt.Errorf("slug %q: %w: %s", clip(s), ErrBadSlug, err.Error())
	}
	return n, nil
}

type slugRule string

func (r slugRule) Error() string { return string(r) }

const slugRules = "use 3-40 characters: a letter first, then lower-case letters a-z, digits or single hyphens, not ending in a hyphen"

func checkSlug(s string) error {
	if s == "" {
		return slugRule("empty; " + slugRules)
	}
	if n := utf8.RuneCountInString(s); n < SlugMinLen || n > SlugMaxLen {
		return slugRule(fmt.Sprintf("%d characters; %s", n, slugRules))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
		case (c >= '0' && c <= '9') || c == '-':
			if i == 0 {
				return slugRule("must start with a letter; " + slugRules)
			}
		default:
			r, _ := utf8.DecodeRuneInString(s[i:])
			return slugRule(fmt.Sprintf("character %U not allowed; %s", r, slugRules))
		}
	}
	if strings.HasSuffix(s, "-") || strings.Contains(s, "--") {
		return slugRule("hyphens must be single and inside the slug; " + slugRules)
	}
	if reserved[s] {
		return slugRule("reserved name; choose another")
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(s, p) {
			return slugRule(fmt.Sprintf("prefix %q is reserved; choose another", p))
		}
	}
	return nil
}
