package httptenant

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// DefaultMaxJSONDepth is the nesting JSONLimits allows when MaxDepth is 0.
const DefaultMaxJSONDepth = 64

// JSONLimits bounds what DecodeJSON accepts. The zero value is usable.
type JSONLimits struct {
	// MaxBytes caps the body. 0 or less: DefaultMaxBodyBytes.
	MaxBytes int64
	// MaxDepth caps the nesting of objects and arrays ({"a":[1]} is 2
	// deep). 0 or less: DefaultMaxJSONDepth.
	MaxDepth int
	// DisallowUnknownFields refuses objects with fields the target struct
	// does not have.
	DisallowUnknownFields bool
}

// DecodeJSON decodes one JSON value from body into v within lim (SECURITY.md,
// B07). It reads at most lim.MaxBytes+1 bytes and checks the nesting before
// decoding, so neither a huge body nor a deeply nested one costs more than
// one bounded read and one pass. Errors: ErrBodyTooLarge for a body over
// the limit (also when an http.MaxBytesReader, such as Middleware's, cut
// it short), ErrBadJSON for an empty body, invalid JSON, a value that does
// not fit v, trailing data or nesting deeper than lim.MaxDepth. WriteError
// answers them 413 and 400. A v that cannot be decoded into (not a
// non-nil pointer) is a programming error and matches neither.
func DecodeJSON(body io.Reader, v any, lim JSONLimits) error {
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultMaxBodyBytes
	}
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultMaxJSONDepth
	}
	data, err := io.ReadAll(io.LimitReader(body, lim.MaxBytes+1))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, tooLarge.Limit)
		}
		return fmt.Errorf("%w: read body: %w", ErrBadJSON, err)
	}
	if int64(len(data)) > lim.MaxBytes {
		return fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, lim.MaxBytes)
	}
	if tooDeep(data, lim.MaxDepth) {
		return fmt.Errorf("%w: nested deeper than %d levels", ErrBadJSON, lim.MaxDepth)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if lim.DisallowUnknownFields {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var invalid *json.InvalidUnmarshalError
		switch {
		case errors.As(err, &invalid):
			return fmt.Errorf("decode JSON: %w", err)
		case errors.Is(err, io.EOF):
			return fmt.Errorf("%w: empty body", ErrBadJSON)
		}
		return fmt.Errorf("%w: %w", ErrBadJSON, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the JSON value", ErrBadJSON)
	}
	return nil
}

// tooDeep reports whether objects and arrays in data nest deeper than
// limit. It only counts brackets outside strings; whether data is valid
// JSON is the decoder's business.
func tooDeep(data []byte, limit int) bool {
	depth := 0
	inString, escaped := false, false
	for _, c := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > limit {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}
