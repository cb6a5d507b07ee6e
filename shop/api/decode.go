package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/landlordhq/landlord/httptenant"
)

// maxJSONDepth bounds the nesting of a body; the deepest one the API takes
// (a checkout's lines) is 3.
const maxJSONDepth = 8

// decode reads r's JSON body into v strictly: at most MaxBodyBytes, no
// unknown fields, no trailing data. Its errors name the field at fault.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return &apiError{status: http.StatusUnsupportedMediaType, code: CodeUnsupportedMedia, message: "the body must be application/json"}
		}
	}
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	err := httptenant.DecodeJSON(body, v, httptenant.JSONLimits{MaxBytes: MaxBodyBytes, MaxDepth: maxJSONDepth, DisallowUnknownFields: true})
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.Is(err, httptenant.ErrBodyTooLarge):
		return &apiError{status: http.StatusRequestEntityTooLarge, code: CodeBodyTooLarge,
			message: fmt.Sprintf("the body is over %d bytes", MaxBodyBytes)}
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return badRequest("", "the body must be a JSON object")
		}
		return badRequest(field, fmt.Sprintf("%s must be %s, not %s", field, jsonType(typeErr.Type.String()), typeErr.Value))
	case errors.As(err, &syntaxErr):
		return badRequest("", fmt.Sprintf("malformed JSON at byte %d: %s", syntaxErr.Offset, syntaxErr.Error()))
	}
	msg := err.Error()
	if i := strings.Index(msg, `json: unknown field "`); i >= 0 {
		field := strings.TrimSuffix(msg[i+len(`json: unknown field "`):], `"`)
		return badRequest(field, fmt.Sprintf("unknown field %q", field))
	}
	if errors.Is(err, httptenant.ErrBadJSON) {
		return badRequest("", strings.TrimPrefix(msg, httptenant.ErrBadJSON.Error()+": "))
	}
	return fmt.Errorf("decode body: %w", err)
}

// jsonType names a Go type as the JSON type it decodes from.
func jsonType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "*int"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string", goType == "*string":
		return "a string"
	case goType == "bool", goType == "*bool":
		return "a boolean"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return "an object"
}

// required returns the names of the fields whose pointers are nil, as a
// validation failure, or nil when all are set.
func required(fields map[string]bool) error {
	bad := map[string]string{}
	for name, set := range fields {
		if !set {
			bad[name] = "required"
		}
	}
	if len(bad) > 0 {
		return invalid(bad)
	}
	return nil
}

// pathID returns the {id} of r's path when it is a uuid; anything else is
// a 404 for kind, as no object has such an id.
func pathID(r *http.Request, kind string) (string, error) {
	id := r.PathValue("id")
	if !isUUID(id) {
		return "", notFound(kind)
	}
	return strings.ToLower(id), nil
}

// isUUID reports whether s is a uuid in its canonical 36-character form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// paging reads page and per_page from r's query: page ≥ 1 (default 1),
// per_page 1 to 100 (default 20).
func paging(r *http.Request) (page, perPage int, err error) {
	q := r.URL.Query()
	page, err = intParam(q.Get("page"), "page", 1, 1, 1<<20)
	if err != nil {
		return 0, 0, err
	}
	perPage, err = intParam(q.Get("per_page"), "per_page", 20, 1, 100)
	return page, perPage, err
}

func intParam(s, name string, def, lo, hi int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, badRequest(name, fmt.Sprintf("%s must be an integer from %d to %d", name, lo, hi))
	}
	return n, nil
}

func boolParam(s, name string) (bool, error) {
	switch s {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, badRequest(name, name+" must be true or false")
}

func timeParam(s, name string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, badRequest(name, name+" must be an RFC 3339 time such as 2026-01-31T00:00:00Z")
	}
	return t, nil
}

var idempotencyKey = regexp.MustCompile(`^[A-Za-z0-9_-]{8,100}$`)
