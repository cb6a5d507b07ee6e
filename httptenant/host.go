package httptenant

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// DNS limits (RFC 1035 §2.3.4), for the name without its trailing dot.
const (
	MaxHostLen  = 253
	MaxLabelLen = 63
)

// maxHostInput bounds the raw value NormalizeHost looks at. A Unicode name
// takes at most 4 bytes per character before IDNA turns it into ASCII, and a
// port and brackets add a few; anything longer cannot become a valid name, so
// it is refused before any mapping work.
const maxHostInput = 4*MaxHostLen + 16

// NormalizeHost turns a Host header value (or a forwarded host) into the
// canonical name a tenant is looked up by, or fails (SECURITY.md, B05):
//
//   - "" fails with ErrNoHost;
//   - a port (":8443", digits only) is removed;
//   - IPv4 and IPv6 literals, bracketed or not, with or without a zone, and
//     names whose last label is a number (which browsers and URL parsers
//     read as IPv4: "127.1", "0x7f.1") fail with ErrIPHost;
//   - the name is mapped with IDNA's lookup profile (UTS #46: lower case,
//     width and compatibility folding, Punycode for non-ASCII labels, and
//     validation of existing "xn--" labels), then one trailing dot is
//     removed;
//   - the result must be at most 253 bytes of labels of 1-63 letters, digits
//     and hyphens, not starting or ending with a hyphen (no underscores, no
//     empty labels), or it fails with ErrBadHost.
//
// The result is lower-case ASCII and its own normalization, so it can be
// compared byte for byte and used as a map or cache key.
func NormalizeHost(host string) (string, error) {
	if host == "" {
		return "", ErrNoHost
	}
	if len(host) > maxHostInput {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrBadHost, maxHostInput)
	}
	if !utf8.ValidString(host) {
		return "", fmt.Errorf("%w: not valid UTF-8", ErrBadHost)
	}
	name, err := stripPort(host)
	if err != nil {
		return "", err
	}
	ascii, err := idna.Lookup.ToASCII(name)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadHost, err)
	}
	// One trailing dot names the DNS root ("shop.example." is "shop.example");
	// it is removed after mapping, since IDNA turns "。" and alike into ".".
	ascii = strings.TrimSuffix(ascii, ".")
	if err := checkName(ascii); err != nil {
		return "", err
	}
	return ascii, nil
}

// stripPort removes a port from host and refuses IP literals that the port
// syntax would otherwise confuse (brackets, several colons).
func stripPort(host string) (string, error) {
	if host[0] == '[' {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", fmt.Errorf("%w: unclosed bracket", ErrBadHost)
		}
		if _, err := netip.ParseAddr(host[1:end]); err == nil {
			return "", ErrIPHost
		}
		return "", fmt.Errorf("%w: brackets around something that is not an IPv6 address", ErrBadHost)
	}
	switch strings.Count(host, ":") {
	case 0:
		return host, nil
	case 1:
	default:
		if _, err := netip.ParseAddr(host); err == nil {
			return "", ErrIPHost
		}
		return "", fmt.Errorf("%w: more than one colon", ErrBadHost)
	}
	name, port, _ := strings.Cut(host, ":")
	if len(port) > 5 {
		return "", fmt.Errorf("%w: port longer than 5 digits", ErrBadHost)
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", fmt.Errorf("%w: port is not a number", ErrBadHost)
		}
	}
	if name == "" {
		return "", ErrNoHost
	}
	return name, nil
}

// checkName checks a mapped name against the DNS host name rules and
// refuses addresses.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrBadHost)
	}
	if len(name) > MaxHostLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadHost, MaxHostLen)
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return ErrIPHost
	}
	last := ""
	for label := range strings.SplitSeq(name, ".") {
		if err := checkLabel(label); err != nil {
			return err
		}
		last = label
	}
	if endsInNumber(last) {
		return ErrIPHost
	}
	return nil
}

func checkLabel(label string) error {
	switch {
	case label == "":
		return fmt.Errorf("%w: empty label", ErrBadHost)
	case len(label) > MaxLabelLen:
		return fmt.Errorf("%w: label longer than %d bytes", ErrBadHost, MaxLabelLen)
	case label[0] == '-' || label[len(label)-1] == '-':
		return fmt.Errorf("%w: label starts or ends with a hyphen", ErrBadHost)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return fmt.Errorf("%w: character %q not allowed; use letters, digits and hyphens", ErrBadHost, c)
		}
	}
	return nil
}

// endsInNumber reports whether a last label makes URL parsers read the whole
// name as an IPv4 address (WHATWG URL, "ends in a number"): all digits, or
// "0x" and hex digits. No top-level domain looks like that.
func endsInNumber(label string) bool {
	if rest, ok := strings.CutPrefix(label, "0x"); ok {
		for i := 0; i < len(rest); i++ {
			c := rest[i]
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(label); i++ {
		if label[i] < '0' || label[i] > '9' {
			return false
		}
	}
	return true
}
