package httptenant

import (
	"errors"
	"strings"
	"testing"
)

// TestNormalizeHost covers the host shapes of B05 (SECURITY.md): missing,
// with port, trailing dot, upper case, IP literals of every form, and what
// the DNS and IDNA rules refuse.
func TestNormalizeHost(t *testing.T) {
	t.Parallel()
	label63 := strings.Repeat("a", 63)
	// 4 labels of 63 + 3 dots = 255; trim to exactly 253 and 254.
	name253 := strings.Join([]string{label63, label63, label63, strings.Repeat("b", 61)}, ".")
	cases := []struct {
		in   string
		want string // "" when an error is expected
		err  error
	}{
		// Missing.
		{"", "", ErrNoHost},
		{":443", "", ErrNoHost},
		// Case, port, trailing dot.
		{"acme.shop.example", "acme.shop.example", nil},
		{"ACME.Shop.EXAMPLE", "acme.shop.example", nil},
		{"acme.shop.example:8443", "acme.shop.example", nil},
		{"acme.shop.example:", "acme.shop.example", nil},
		{"acme.shop.example.", "acme.shop.example", nil},
		{"Acme.Shop.Example.:443", "acme.shop.example", nil},
		{"localhost", "localhost", nil},
		{"acme.shop.example..", "", ErrBadHost},
		{".", "", ErrBadHost},
		{".acme.shop.example", "", ErrBadHost},
		{"acme..shop.example", "", ErrBadHost},
		{"acme.shop.example:http", "", ErrBadHost},
		{"acme.shop.example:123456", "", ErrBadHost},
		{"acme.shop.example:-1", "", ErrBadHost},
		// IP literals: no tenant lives at an address.
		{"127.0.0.1", "", ErrIPHost},
		{"127.0.0.1:8080", "", ErrIPHost},
		{"127.0.0.1.", "", ErrIPHost},
		{"192.0.2.1", "", ErrIPHost},
		{"::1", "", ErrIPHost},
		{"[::1]", "", ErrIPHost},
		{"[::1]:8443", "", ErrIPHost},
		{"2001:db8::1", "", ErrIPHost},
		{"[2001:db8::1]:80", "", ErrIPHost},
		{"fe80::1%eth0", "", ErrIPHost},
		{"[fe80::1%eth0]", "", ErrIPHost},
		{"[fe80::1%25eth0]:443", "", ErrIPHost},
		{"[::ffff:192.0.2.1]", "", ErrIPHost},
		// Forms that URL parsers and inet_aton read as IPv4.
		{"2130706433", "", ErrIPHost},
		{"127.1", "", ErrIPHost},
		{"0x7f.0.0.1", "", ErrIPHost},
		{"0x7F000001", "", ErrIPHost},
		{"shop.example.0x1f", "", ErrIPHost},
		{"１２７.０.０.１", "", ErrIPHost}, // full-width digits map to an address
		{"foo.1e", "foo.1e", nil},    // not a number: a name
		// Malformed brackets.
		{"[::1", "", ErrBadHost},
		{"[acme.shop.example]", "", ErrBadHost},
		{"acme:shop:example", "", ErrBadHost},
		// Characters outside letters, digits and hyphens.
		{"acme_shop.example", "", ErrBadHost},
		{"-acme.shop.example", "", ErrBadHost},
		{"acme-.shop.example", "", ErrBadHost},
		{"ac me.shop.example", "", ErrBadHost},
		{"acme.shop.example/evil", "", ErrBadHost},
		{"evil@acme.shop.example", "", ErrBadHost},
		{"acme.shop.example\r\nX: y", "", ErrBadHost},
		{"ac\x00me.shop.example", "", ErrBadHost},
		{"\xff\xfe.example", "", ErrBadHost},
		{"a'; DROP TABLE t;--.example", "", ErrBadHost},
		// Lengths.
		{label63 + ".example", label63 + ".example", nil},
		{label63 + "a.example", "", ErrBadHost},
		{name253, name253, nil},
		{name253 + "b", "", ErrBadHost},
		{strings.Repeat("a.", 600), "", ErrBadHost},
		// IDNA: Unicode becomes Punycode; widths, case and ideographic dots
		// fold as browsers fold them; invalid Punycode is refused.
		{"bücher.example", "xn--bcher-kva.example", nil},
		{"BÜCHER.example", "xn--bcher-kva.example", nil},
		{"XN--BCHER-KVA.example", "xn--bcher-kva.example", nil},
		{"ａｃｍｅ.shop.example", "acme.shop.example", nil},
		{"acme。shop。example", "acme.shop.example", nil},
		{"аcme.shop.example", "xn--cme-5cd.shop.example", nil}, // Cyrillic а: another name, never acme
		{"xn--zz.example", "", ErrBadHost},
		{"xn--.example", "", ErrBadHost},
		{"ab--cd.example", "", ErrBadHost},
		{"a\u200db.example", "", ErrBadHost},
		{"⒈.example", "", ErrBadHost},
	}
	for _, c := range cases {
		got, err := NormalizeHost(c.in)
		if c.err != nil {
			if !errors.Is(err, c.err) || got != "" {
				t.Errorf("NormalizeHost(%q) = %q, %v; want error %v", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("NormalizeHost(%q) = %q, %v; want %q", c.in, got, err, c.want)
			continue
		}
		if again, err := NormalizeHost(got); err != nil || again != got {
			t.Errorf("NormalizeHost(%q) = %q, but NormalizeHost(%q) = %q, %v", c.in, got, got, again, err)
		}
	}
}

// TestNormalizeHostErrorsStayShort: a huge host is refused before any work
// and its error does not carry it.
func TestNormalizeHostErrorsStayShort(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 1<<20)
	_, err := NormalizeHost(huge)
	if !errors.Is(err, ErrBadHost) {
		t.Fatalf("1 MiB host: %v, want ErrBadHost", err)
	}
	if len(err.Error()) > 200 {
		t.Fatalf("error for a 1 MiB host is %d bytes long", len(err.Error()))
	}
}
