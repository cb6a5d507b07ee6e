package tenant_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/landlordhq/landlord/tenant"
)

// maxErrLen bounds the length of an error message about user input: the
// input is clipped, so a megabyte of junk never becomes a megabyte of log.
const maxErrLen = 512

// Distinctive parts of the message of each slug rule.
const (
	ruleTooLong  = "longer than 40 characters"
	ruleLength   = "characters; use 3-40"
	ruleUTF8     = "not valid UTF-8"
	ruleEmpty    = "empty;"
	ruleFirst    = "must start with a letter"
	ruleChar     = "not allowed"
	ruleHyphen   = "hyphens must be single"
	ruleReserved = "reserved name"
	rulePrefix   = "is reserved; choose another"
)

func TestNormalizeSlugValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"min length", "abc", "abc"},
		{"max length", strings.Repeat("a", 40), strings.Repeat("a", 40)},
		{"digits", "shop42", "shop42"},
		{"single hyphens", "my-little-shop", "my-little-shop"},
		{"hyphen then digit", "a-1", "a-1"},
		{"upper case folded", "Acme", "acme"},
		{"all upper case", "ACME-STORE-2", "acme-store-2"},
		{"max length upper case", strings.Repeat("Z", 40), strings.Repeat("z", 40)},
		{"reserved word inside", "my-admin", "my-admin"},
		{"reserved prefix not at start", "shop-pg-t-r", "shop-pg-t-r"},
		{"prefix-like without hyphen", "pgadmin", "pgadmin"},
		{"t without hyphen", "tshop", "tshop"},
		// KELVIN SIGN is canonically equivalent to K, so NFC makes it ASCII:
		// it must collide with the plain spelling, not become a second slug.
		{"kelvin sign is K under NFC", "\u212Aiosk", "kiosk"},
		// Lower-casing maps DOTTED CAPITAL I to plain i: the result is the
		// ASCII slug, so it collides with it instead of imitating it.
		{"dotted capital I lower-cases to i", "\u0130stanbul", "istanbul"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tenant.NormalizeSlug(tt.in)
			if err != nil {
				t.Fatalf("NormalizeSlug(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("NormalizeSlug(%q) = %q, want %q", tt.in, got, tt.want)
			}
			again, err := tenant.NormalizeSlug(got)
			if err != nil || again != got {
				t.Fatalf("NormalizeSlug(%q) = %q, %v; a normalized slug must be its own normalization", got, again, err)
			}
		})
	}
}

func TestNormalizeSlugRejects(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("a", 1<<20)
	tests := []struct {
		name, in, rule string
	}{
		// B01: injection, quotes, dollar quoting, NUL.
		{"sql injection", "a'; DROP TABLE x;--", ruleChar},
		{"sql injection lower", "shop'); delete from tenants; --", ruleChar},
		{"single quote", "o'neil", ruleChar},
		{"double quote", `a"b"c`, ruleChar},
		{"backslash", `abc\`, ruleChar},
		{"dollar quoting", "ab$$c", ruleChar},
		{"dollar tag", "$x$abc$x$", ruleChar},
		{"nul byte", "abc\x00def", ruleChar},
		{"nul byte only", "\x00\x00\x00", ruleChar},
		{"semicolon", "abc;def", ruleChar},
		{"space", "my shop", ruleChar},
		{"underscore", "my_shop", ruleChar},
		{"dot", "my.shop", ruleChar},
		{"slash", "my/shop", ruleChar},
		{"newline", "abc\ndef", ruleChar},
		{"percent", "abc%", ruleChar},

		// B02: length and multibyte.
		{"empty", "", ruleEmpty},
		{"too short", "ab", ruleLength},
		{"one character", "a", ruleLength},
		{"41 characters", strings.Repeat("a", 41), ruleLength},
		{"41 upper case", strings.Repeat("A", 41), ruleLength},
		{"1 MB", huge, ruleTooLong},
		{"1 MB of multibyte", strings.Repeat("é", 1<<19), ruleTooLong},
		{"multibyte", "café", ruleChar},
		{"cjk", "店舗店舗", ruleChar},
		{"emoji", "shop🛒", ruleChar},
		{"invalid utf-8", "abc\xff", ruleUTF8},
		{"truncated rune", "abc\xe2\x82", ruleUTF8},

		// B04: Unicode tricks.
		{"nfc composed", "caf\u00e9", ruleChar},
		{"nfd decomposed", "cafe\u0301", ruleChar},
		{"fullwidth", "\uff41\uff43\uff4d\uff45", ruleChar},
		{"fullwidth upper", "\uff21\uff23\uff2d\uff25", ruleChar},
		{"zero-width joiner", "ac\u200dme", ruleChar},
		{"zero-width space", "ac\u200bme", ruleChar},
		{"zero-width non-joiner", "ac\u200cme", ruleChar},
		{"byte order mark", "\ufeffacme", ruleChar},
		{"soft hyphen", "ac\u00adme", ruleChar},
		{"cyrillic a", "\u0430cme", ruleChar},
		{"cyrillic a inside", "shop\u0430", ruleChar},
		{"greek omicron", "sh\u03bfp", ruleChar},
		{"non-breaking hyphen", "my\u2011shop", ruleChar},
		{"greek question mark is a semicolon under NFC", "abc\u037edef", ruleChar},
		{"greek varia is a backtick under NFC", "abc\u1fefdef", ruleChar},
		{"right-to-left override", "abc\u202edef", ruleChar},

		// Shape.
		{"leading digit", "1shop", ruleFirst},
		{"all digits", "12345", ruleFirst},
		{"leading hyphen", "-shop", ruleFirst},
		{"trailing hyphen", "shop-", ruleHyphen},
		{"double hyphen", "my--shop", ruleHyphen},
		{"triple hyphen", "my---shop", ruleHyphen},
		{"punycode prefix", "xn--80ak6aa92e", ruleHyphen},
		{"punycode prefix upper case", "XN--abc", ruleHyphen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkRejected(t, tt.in, tt.rule)
		})
	}
}

// TestNormalizeSlugReserved covers B03: every reserved name, in any case, and
// every reserved prefix.
func TestNormalizeSlugReserved(t *testing.T) {
	t.Parallel()
	names := []string{
		"admin", "administrator", "api", "app", "assets", "auth", "billing", "cdn",
		"dashboard", "default", "docs", "ftp", "help", "imap", "information-schema",
		"landlord", "localhost", "login", "logout", "mail", "metrics", "null", "pop",
		"postgres", "postgresql", "public", "root", "shared", "signup", "smtp", "static",
		"status", "superuser", "support", "system", "template", "template0", "template1",
		"tenant", "tenants", "undefined", "www",
	}
	for _, name := range names {
		for _, in := range []string{name, strings.ToUpper(name), strings.ToUpper(name[:1]) + name[1:]} {
			t.Run(in, func(t *testing.T) {
				t.Parallel()
				checkRejected(t, in, ruleReserved)
			})
		}
	}
	prefixes := []struct{ in, prefix string }{
		{"pg-shop", `"pg-"`},
		{"PG-shop", `"pg-"`},
		{"t-0123456789abcdef", `"t-"`},
		{"T-shop", `"t-"`},
		{"r-0123456789abcdef", `"r-"`},
		{"landlord-shop", `"landlord-"`},
	}
	for _, p := range prefixes {
		t.Run(p.in, func(t *testing.T) {
			t.Parallel()
			err := checkRejected(t, p.in, rulePrefix)
			if !strings.Contains(err.Error(), p.prefix) {
				t.Errorf("error %q does not name the prefix %s", err, p.prefix)
			}
		})
	}
	// PostgreSQL's own prefix never gets as far as the prefix check, since
	// underscores are refused, but it must be refused all the same.
	for _, in := range []string{"pg_catalog", "pg_shop", "information_schema"} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			checkRejected(t, in, ruleChar)
		})
	}
}

// TestNormalizeSlugCollisions checks B04: spellings of the same text end up as
// the same slug or are all refused, so that the directory's unique index sees
// them as one.
func TestNormalizeSlugCollisions(t *testing.T) {
	t.Parallel()
	groups := [][]string{
		{"acme", "Acme", "ACME", "aCmE"},
		{"kiosk", "KIOSK", "\u212Aiosk"},
		{"istanbul", "ISTANBUL", "\u0130stanbul"},
	}
	for _, g := range groups {
		want, err := tenant.NormalizeSlug(g[0])
		if err != nil {
			t.Fatalf("NormalizeSlug(%q): %v", g[0], err)
		}
		for _, in := range g[1:] {
			got, err := tenant.NormalizeSlug(in)
			if err != nil || got != want {
				t.Errorf("NormalizeSlug(%q) = %q, %v; want %q like %q", in, got, err, want, g[0])
			}
		}
	}
	// NFC and NFD spellings of one non-ASCII name: both refused.
	for _, in := range []string{"caf\u00e9-shop", "cafe\u0301-shop", "CAF\u00c9-shop", "CAFE\u0301-shop"} {
		if got, err := tenant.NormalizeSlug(in); err == nil {
			t.Errorf("NormalizeSlug(%q) = %q, want an error", in, got)
		}
	}
}

// checkRejected asserts that NormalizeSlug refuses in with an error wrapping
// ErrBadSlug whose message names rule and stays short.
func checkRejected(t *testing.T, in, rule string) error {
	t.Helper()
	got, err := tenant.NormalizeSlug(in)
	if err == nil {
		t.Fatalf("NormalizeSlug(%.80q) = %q, want an error", in, got)
	}
	if !errors.Is(err, tenant.ErrBadSlug) {
		t.Errorf("NormalizeSlug(%.80q) error %v does not wrap ErrBadSlug", in, err)
	}
	if got != "" {
		t.Errorf("NormalizeSlug(%.80q) returned %q along with an error", in, got)
	}
	msg := err.Error()
	if !strings.Contains(msg, rule) {
		t.Errorf("NormalizeSlug(%.80q) error %q does not name the rule (want %q)", in, msg, rule)
	}
	if len(msg) > maxErrLen {
		t.Errorf("NormalizeSlug: error message is %d bytes, want at most %d", len(msg), maxErrLen)
	}
	if strings.ContainsRune(msg, 0) {
		t.Errorf("NormalizeSlug(%.80q): error message contains a raw NUL byte", in)
	}
	if !utf8.ValidString(msg) {
		t.Errorf("NormalizeSlug(%.80q): error message %q is not valid UTF-8", in, msg)
	}
	return err
}

var slugPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{2,39}$`)

func FuzzNormalizeSlug(f *testing.F) {
	for _, s := range []string{"acme", "Acme", "my-shop-2", "a'; DROP TABLE x;--", "$$", "a\x00b", "caf\u00e9", "cafe\u0301", "\u212Aiosk"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := tenant.NormalizeSlug(in)
		if err != nil {
			if !errors.Is(err, tenant.ErrBadSlug) {
				t.Fatalf("NormalizeSlug(%q): error %v does not wrap ErrBadSlug", in, err)
			}
			if got != "" {
				t.Fatalf("NormalizeSlug(%q) = %q along with error %v", in, got, err)
			}
			if len(err.Error()) > maxErrLen {
				t.Fatalf("NormalizeSlug(%q): error message is %d bytes", in, len(err.Error()))
			}
			return
		}
		if !slugPattern.MatchString(got) {
			t.Fatalf("NormalizeSlug(%q) = %q, which does not match %s", in, got, slugPattern)
		}
		if strings.Contains(got, "--") || strings.HasSuffix(got, "-") {
			t.Fatalf("NormalizeSlug(%q) = %q: hyphens must be single and inside", in, got)
		}
		again, err := tenant.NormalizeSlug(got)
		if err != nil || again != got {
			t.Fatalf("NormalizeSlug(%q) = %q, but NormalizeSlug(%q) = %q, %v", in, got, got, again, err)
		}
	})
}
