package httptenant

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestForwardedHostLimit: a forwarded header line of exactly
// maxForwardedInput bytes is read; one byte more is refused unparsed.
func TestForwardedHostLimit(t *testing.T) {
	t.Parallel()
	const host = "other.shop.example"
	for _, header := range []string{HeaderXForwardedHost, HeaderForwarded} {
		value := host
		if header == HeaderForwarded {
			value = "host=" + host
		}
		h := http.Header{}
		h.Set(header, strings.Repeat(" ", maxForwardedInput-len(value))+value)
		if got, ok, err := forwardedHost(h, header); got != host || !ok || err != nil {
			t.Errorf("%s of %d bytes: %q, %v, %v", header, maxForwardedInput, got, ok, err)
		}
		h.Set(header, " "+h.Get(header))
		if _, _, err := forwardedHost(h, header); !errors.Is(err, ErrBadHost) {
			t.Errorf("%s of %d bytes: %v, want ErrBadHost", header, maxForwardedInput+1, err)
		}
	}
}

// TestParseForwarded: RFC 7239 elements at the edges of the syntax:
// quoted pairs, every token character, names or values cut off at the end.
func TestParseForwarded(t *testing.T) {
	t.Parallel()
	const tchars = "!#$%&'*+-.^_`|~azAZ09"
	for _, c := range []struct {
		in   string
		want []map[string]string // nil: malformed
	}{
		{`host="oth\er.shop.example"`, []map[string]string{{"host": "other.shop.example"}}},
		{`host="a\"b\\"`, []map[string]string{{"host": `a"b\`}}},
		{`for=` + tchars + `;host=h`, []map[string]string{{"for": tchars, "host": "h"}}},
		{`host=`, []map[string]string{{"host": ""}}},
		{`host="x\`, nil},
		{`host`, nil},
		{`for=a@b`, nil},
		{`for=a/b`, nil},
		{`for=a:b`, nil},
		{`for=a[b`, nil},
		{`for=a{b`, nil},
	} {
		got, err := parseForwarded(c.in)
		if c.want == nil {
			if !errors.Is(err, ErrBadHost) {
				t.Errorf("parseForwarded(%q) = %v, %v; want ErrBadHost", c.in, got, err)
			}
		} else if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseForwarded(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}
