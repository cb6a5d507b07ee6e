package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

// Error codes of the error body's "code".
const (
	CodeBadRequest       = "bad_request"        // malformed JSON, a wrong type, an unknown field, a bad parameter or header
	CodeBodyTooLarge     = "body_too_large"     // body over MaxBodyBytes
	CodeUnsupportedMedia = "unsupported_media"  // a body that is not application/json
	CodeUnauthorized     = "unauthorized"       // no, malformed or unknown bearer token; wrong email or password
	CodeForbidden        = "forbidden"          // the user's role may not do this
	CodeNotFound         = "not_found"          // no such route or object in this store
	CodeMethod           = "method_not_allowed" // the route exists for other methods
	CodeValidation       = "validation_failed"  // fields are invalid; see "fields"
	CodeOutOfStock       = "out_of_stock"       // not enough stock
	CodeConflict         = "conflict"           // the object's state forbids the change
	CodeReadOnly         = "store_read_only"    // the store accepts no changes at the moment
	CodeSuspended        = "store_suspended"    // the store is suspended
	CodeUnavailable      = "store_unavailable"  // the store is briefly unavailable (moving)
	CodeRateLimited      = "rate_limited"       // too many attempts; see Retry-After
	CodeInternal         = "internal"           // anything else; details only in the log
)

// apiError is an answer with a status, a code and a message for the
// client, and fields for a validation failure.
type apiError struct {
	status  int
	code    string
	message string
	fields  map[string]string
	header  http.Header // extra response headers
}

func (e *apiError) Error() string { return e.message }

var (
	errNoRoute = &apiError{status: http.StatusNotFound, code: CodeNotFound, message: "no such route"}
	errMethod  = &apiError{status: http.StatusMethodNotAllowed, code: CodeMethod, message: "method not allowed for this route"}
)

// badRequest is a 400 with message and, when field is not "", that field
// named.
func badRequest(field, message string) *apiError {
	e := &apiError{status: http.StatusBadRequest, code: CodeBadRequest, message: message}
	if field != "" {
		e.fields = map[string]string{field: message}
	}
	return e
}

// notFound is a 404 for an object of kind.
func notFound(kind string) *apiError {
	return &apiError{status: http.StatusNotFound, code: CodeNotFound, message: kind + " not found"}
}

// invalid is a 422 naming bad fields.
func invalid(fields map[string]string) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, code: CodeValidation, message: "invalid input", fields: fields}
}

func rateLimited(wait time.Duration) *apiError {
	secs := int((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return &apiError{
		status:  http.StatusTooManyRequests,
		code:    CodeRateLimited,
		message: "too many attempts: try again in " + strconv.Itoa(secs) + " s",
		header:  http.Header{"Retry-After": {strconv.Itoa(secs)}},
	}
}

// classify maps err to the answer the client gets.
func classify(err error) *apiError {
	var ae *apiError
	var ve *store.ValidationError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &ve):
		e := invalid(ve.Fields)
		if len(ve.Fields) == 0 {
			e.message = err.Error()
		}
		return e
	case errors.Is(err, store.ErrNotFound), errors.Is(err, tenant.ErrNotFound):
		return &apiError{status: http.StatusNotFound, code: CodeNotFound, message: "not found"}
	case errors.Is(err, store.ErrBadCredentials):
		return &apiError{status: http.StatusUnauthorized, code: CodeUnauthorized, message: store.ErrBadCredentials.Error()}
	case errors.Is(err, store.ErrForbidden):
		return &apiError{status: http.StatusForbidden, code: CodeForbidden, message: store.ErrForbidden.Error()}
	case errors.Is(err, store.ErrOutOfStock):
		return &apiError{status: http.StatusConflict, code: CodeOutOfStock, message: store.ErrOutOfStock.Error()}
	case errors.Is(err, store.ErrReadOnly):
		return &apiError{status: http.StatusConflict, code: CodeReadOnly, message: store.ErrReadOnly.Error()}
	case errors.Is(err, store.ErrConflict):
		return &apiError{status: http.StatusConflict, code: CodeConflict, message: store.ErrConflict.Error()}
	case errors.Is(err, tenant.ErrSuspended):
		return &apiError{status: http.StatusForbidden, code: CodeSuspended, message: "the store is suspended"}
	case errors.Is(err, tenant.ErrMoving), errors.Is(err, tenant.ErrNotReady):
		return &apiError{
			status:  http.StatusServiceUnavailable,
			code:    CodeUnavailable,
			message: "the store is briefly unavailable: try again shortly",
			header:  http.Header{"Retry-After": {"5"}},
		}
	}
	return &apiError{status: http.StatusInternalServerError, code: CodeInternal, message: "internal error"}
}

// fail answers r with the error err maps to; an internal error is logged
// with its details, which the client never sees.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := classify(err)
	if e.status == http.StatusInternalServerError {
		a.log.LogAttrs(r.Context(), slog.LevelError, "api internal error",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	}
	for k, v := range e.header {
		w.Header()[k] = v
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
	}
	body := struct {
		Error errorBody `json:"error"`
	}{errorBody{Code: e.code, Message: e.message, Fields: e.fields}}
	writeJSON(w, e.status, body)
}

type errorBody struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// writeJSON answers with status and v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}
