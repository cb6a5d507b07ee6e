package httptenant

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Forwarded-host headers a trusted proxy may set; see Config.ForwardedHeader.
const (
	HeaderXForwardedHost = "X-Forwarded-Host"
	HeaderForwarded      = "Forwarded"
)

// maxForwardedInput bounds the forwarded header text looked at, so a huge
// header costs no parsing (net/http bounds all headers together at 1 MB).
const maxForwardedInput = 8 << 10

// peerTrusted reports whether the direct peer, r.RemoteAddr ("ip:port", as
// net/http sets it), is inside one of the trusted networks. A peer that does
// not parse as an address (a Unix socket, an empty value) is not trusted.
func peerTrusted(remoteAddr string, trusted []netip.Prefix) bool {
	if len(trusted) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	// Prefix.Contains is false for any address with a zone, and an IPv4
	// peer may arrive as an IPv4-mapped IPv6 address on a dual-stack socket.
	ip := ap.Addr().WithZone("").Unmap()
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// forwardedHost returns the host the nearest proxy recorded in header, and
// whether it recorded one. Proxies append: the last value (the last
// comma-separated element of the last header line) is the one the direct
// peer wrote; every earlier value came from further away, possibly from the
// client, and is never looked at.
func forwardedHost(h http.Header, header string) (string, bool, error) {
	lines := h.Values(header)
	if len(lines) == 0 {
		return "", false, nil
	}
	last := lines[len(lines)-1]
	if len(last) > maxForwardedInput {
		return "", false, fmt.Errorf("%w: %s header longer than %d bytes", ErrBadHost, header, maxForwardedInput)
	}
	if header == HeaderXForwardedHost {
		i := strings.LastIndexByte(last, ',')
		v := strings.Trim(last[i+1:], " \t")
		if v == "" {
			return "", false, fmt.Errorf("%w: empty last %s value", ErrNoHost, header)
		}
		return v, true, nil
	}
	elems, err := parseForwarded(last)
	if err != nil {
		return "", false, err
	}
	host, ok := elems[len(elems)-1]["host"]
	if !ok {
		// The nearest proxy did not record a host: it passed the Host
		// header through unchanged.
		return "", false, nil
	}
	if host == "" {
		return "", false, fmt.Errorf("%w: empty host in the last %s element", ErrNoHost, header)
	}
	return host, true, nil
}

// parseForwarded parses one Forwarded header value (RFC 7239 §4):
// comma-separated elements of semicolon-separated name=value pairs, each
// value a token or a quoted string. Names are case-insensitive. It returns at
// least one element, or an error.
func parseForwarded(s string) ([]map[string]string, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: malformed %s header: %s", ErrBadHost, HeaderForwarded, why)
	}
	var elems []map[string]string
	elem := map[string]string{}
	i := 0
	for {
		i = skipSpace(s, i)
		start := i
		for i < len(s) && isTokenChar(s[i]) {
			i++
		}
		if i == start {
			return nil, bad("expected a parameter name")
		}
		name := strings.ToLower(s[start:i])
		if i >= len(s) || s[i] != '=' {
			return nil, bad("expected '=' after a parameter name")
		}
		i++
		var value string
		if i < len(s) && s[i] == '"' {
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, bad("unterminated quoted string")
				}
				c := s[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' {
					i++
					if i >= len(s) {
						return nil, bad("unterminated quoted string")
					}
					c = s[i]
				}
				b.WriteByte(c)
				i++
			}
			value = b.String()
		} else {
			start := i
			for i < len(s) && isTokenChar(s[i]) {
				i++
			}
			value = s[start:i]
		}
		if _, dup := elem[name]; dup {
			return nil, bad("parameter repeated in one element")
		}
		elem[name] = value
		i = skipSpace(s, i)
		if i >= len(s) {
			return append(elems, elem), nil
		}
		switch s[i] {
		case ';':
		case ',':
			elems = append(elems, elem)
			elem = map[string]string{}
		default:
			return nil, bad("unexpected character after a value")
		}
		i++
	}
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// isTokenChar reports whether c may appear in an RFC 7230 token.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
