package httptenant

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func nested(depth int) string {
	return strings.Repeat(`{"a":[`, depth/2) + strings.Repeat("[", depth%2) + "1" + strings.Repeat("]", depth%2) + strings.Repeat(`]}`, depth/2)
}

// TestDecodeJSON covers B07 (SECURITY.md) for JSON bodies: size and depth
// limits, and what else the decoder refuses.
func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	type target struct {
		A any    `json:"a"`
		S string `json:"s"`
	}
	cases := []struct {
		name string
		body string
		lim  JSONLimits
		err  error // nil: decodes
	}{
		{"object", `{"a":1,"s":"x"}`, JSONLimits{}, nil},
		{"64 levels", nested(64), JSONLimits{}, nil},
		{"65 levels", nested(65), JSONLimits{}, ErrBadJSON},
		{"100000 levels", strings.Repeat("[", 100000), JSONLimits{MaxBytes: 1 << 20}, ErrBadJSON},
		{"depth limit 3", nested(3), JSONLimits{MaxDepth: 3}, nil},
		{"over depth limit 3", nested(4), JSONLimits{MaxDepth: 3}, ErrBadJSON},
		{"brackets in strings", `{"s":"` + strings.Repeat("[{", 100) + `"}`, JSONLimits{}, nil},
		{"escaped quote then brackets", `{"s":"\"` + strings.Repeat("[", 100) + `"}`, JSONLimits{}, nil},
		{"escaped backslash ends the string", `{"a":"\\",` + `"s":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`, JSONLimits{}, ErrBadJSON},
		{"at the size limit", `{"s":"` + strings.Repeat("x", 100-8) + `"}`, JSONLimits{MaxBytes: 100}, nil},
		{"over the size limit", `{"s":"` + strings.Repeat("x", 100-7) + `"}`, JSONLimits{MaxBytes: 100}, ErrBodyTooLarge},
		{"empty", ``, JSONLimits{}, ErrBadJSON},
		{"invalid", `{"a":`, JSONLimits{}, ErrBadJSON},
		{"wrong type", `{"s":1}`, JSONLimits{}, ErrBadJSON},
		{"trailing data", `{"a":1} {"a":2}`, JSONLimits{}, ErrBadJSON},
		{"trailing garbage", `{"a":1} x`, JSONLimits{}, ErrBadJSON},
		{"trailing space", "{\"a\":1}\n", JSONLimits{}, nil},
		{"unknown field allowed", `{"zz":1}`, JSONLimits{}, nil},
		{"unknown field refused", `{"zz":1}`, JSONLimits{DisallowUnknownFields: true}, ErrBadJSON},
	}
	for _, c := range cases {
		var v target
		err := DecodeJSON(strings.NewReader(c.body), &v, c.lim)
		if c.err == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
	if err := DecodeJSON(strings.NewReader(`{}`), nil, JSONLimits{}); err == nil || errors.Is(err, ErrBadJSON) || StatusCode(err) != http.StatusInternalServerError {
		t.Errorf("decoding into nil: %v, want a programming error answered 500", err)
	}
}

// TestBodyLimits: through the middleware a declared oversized body is
// answered 413 before the handler runs; a chunked one is cut at the limit
// and DecodeJSON with WriteError answers 413; deep JSON gets 400.
func TestBodyLimits(t *testing.T) {
	t.Parallel()
	res, _ := setup(t, func(c *Config) { c.MaxBodyBytes = 1024 })
	handled := false
	handler := res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled = true
		var v any
		if err := DecodeJSON(r.Body, &v, JSONLimits{}); err != nil {
			WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	huge := `{"s":"` + strings.Repeat("x", 4096) + `"}`
	cases := []struct {
		name    string
		body    io.Reader
		length  int64 // Content-Length; -1 = unknown (chunked)
		code    int
		handled bool
	}{
		{"small", strings.NewReader(`{"a":[1,2,3]}`), 13, http.StatusNoContent, true},
		{"declared huge", strings.NewReader(huge), int64(len(huge)), http.StatusRequestEntityTooLarge, false},
		{"chunked huge", io.MultiReader(strings.NewReader(huge)), -1, http.StatusRequestEntityTooLarge, true},
		{"deep", strings.NewReader(nested(65)), -1, http.StatusBadRequest, true},
		{"malformed", strings.NewReader(`{"a":`), -1, http.StatusBadRequest, true},
	}
	for _, c := range cases {
		handled = false
		r := httptest.NewRequest(http.MethodPost, "/", c.body)
		r.Host = "acme.shop.example"
		r.ContentLength = c.length
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		if w.Code != c.code {
			t.Errorf("%s: status %d, want %d", c.name, w.Code, c.code)
		}
		if body := w.Body.String(); c.code >= 400 && body != http.StatusText(c.code)+"\n" {
			t.Errorf("%s: body %q, want the generic status text", c.name, body)
		}
		if handled != c.handled {
			t.Errorf("%s: handler called: %v, want %v", c.name, handled, c.handled)
		}
	}
}

// TestStatusCode: the edge mapping of every sentinel.
func TestStatusCode(t *testing.T) {
	t.Parallel()
	cases := map[error]int{
		nil:                    http.StatusOK,
		ErrNoHost:              http.StatusBadRequest,
		ErrBadHost:             http.StatusBadRequest,
		ErrBadJSON:             http.StatusBadRequest,
		ErrNoToken:             http.StatusUnauthorized,
		ErrBadToken:            http.StatusUnauthorized,
		ErrTenantClaim:         http.StatusForbidden,
		ErrIPHost:              http.StatusNotFound,
		ErrUnknownHost:         http.StatusNotFound,
		ErrBodyTooLarge:        http.StatusRequestEntityTooLarge,
		&http.MaxBytesError{}:  http.StatusRequestEntityTooLarge,
		ErrLookup:              http.StatusInternalServerError,
		errors.New("anything"): http.StatusInternalServerError,
		io.ErrUnexpectedEOF:    http.StatusInternalServerError,
	}
	for err, want := range cases {
		if got := StatusCode(err); got != want {
			t.Errorf("StatusCode(%v) = %d, want %d", err, got, want)
		}
	}
}
