package web

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed assets
var assetFiles embed.FS

// favicon is a small SVG icon: a shopping bag.
const favicon = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect x="5" y="10" width="22" height="19" rx="3" fill="#1f5fbf"/><path d="M11 12V8a5 5 0 0 1 10 0v4" stroke="#1f5fbf" stroke-width="3" fill="none"/></svg>`

// pages holds one template per page, each with the layout.
type pages struct {
	byName map[string]*template.Template
}

var funcs = template.FuncMap{
	"money":   money,
	"decimal": decimal,
	"date":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
	"day":     func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"field":   newField,
	"add":     func(a, b int) int { return a + b },
	"bytes":   humanBytes,
	"ms": func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	},
	"query":  pageQuery,
	"button": func(v *view, label string) submitButton { return submitButton{Label: label, ReadOnly: v.ReadOnly()} },
}

// submitButton is a form's submit button, disabled with a note while the
// store is read-only.
type submitButton struct {
	Label    string
	ReadOnly bool
}

func loadPages() (*pages, error) {
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", base, err)
		}
		p.byName[strings.TrimSuffix(base, ".html")] = t
	}
	return p, nil
}

// view is what every page template gets.
type view struct {
	Title    string
	Status   int
	Base     string // prefix of every link: "" or "/s/<slug>" for a store, "" for the platform
	Store    *storeCtx
	Session  *store.Session
	Operator string // the signed-in platform operator's name, on platform pages
	Flash    string
	Message  string            // the error page's message, or a form's general error
	Errors   map[string]string // field name -> message
	Form     url.Values        // the user's input, kept when a form is shown again
	Data     any
	// Countries are the platform's countries, for the checkout's address.
	Countries []store.Country
	// Refresh, when set, reloads the page after that many seconds: a
	// page that follows work under way.
	Refresh int
}

// ReadOnly reports whether the page's store refuses changes now.
func (v *view) ReadOnly() bool { return v.Store != nil && v.Store.ReadOnly() }

// StoreName is the name in the page's header.
func (v *view) StoreName() string {
	if v.Store == nil {
		return "Shops"
	}
	return v.Store.Name()
}

// Impersonation is the banner of a session an operator is acting in.
func (v *view) Impersonation() string {
	if v.Session == nil || v.Session.ImpersonatedBy == "" {
		return ""
	}
	return fmt.Sprintf("Operator %s is acting as %s: %s — ends at %s", v.Session.ImpersonatedBy, v.Session.User.Email, v.Session.Reason, v.Session.ExpiresAt.UTC().Format("15:04 MST, 2 Jan"))
}

// HasErrors reports whether the page shows an error summary.
func (v *view) HasErrors() bool { return len(v.Errors) > 0 || v.Message != "" }

// field is one labelled input of a form.
type field struct {
	Name, Label, Type, Value, Err, Hint string
	Required                            bool
	Options                             []string
	Disabled                            bool
}

// newField is the template function {{template "field" field $ "name" "Label" "type" "required"}};
// the type is an input type, "textarea", or "select:a,b,c".
func newField(v *view, name, label, typ string, opts ...string) field {
	f := field{Name: name, Label: label, Type: typ, Value: v.Form.Get(name), Err: v.Errors[name], Disabled: v.ReadOnly()}
	if opt, ok := strings.CutPrefix(typ, "select:"); ok {
		f.Type = "select"
		f.Options = strings.Split(opt, ",")
	}
	for _, o := range opts {
		switch {
		case o == "required":
			f.Required = true
		case o == "enabled":
			f.Disabled = false
		case strings.HasPrefix(o, "hint:"):
			f.Hint = strings.TrimPrefix(o, "hint:")
		}
	}
	return f
}

// render writes page name with status.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	t, ok := s.pages.byName[name]
	if !ok {
		s.fail(w, r, v.Store, fmt.Errorf("web: no page %q", name))
		return
	}
	if v.Store == nil {
		v.Store = storeOf(r)
	}
	if v.Store != nil {
		v.Base = v.Store.Base
		if v.Session == nil {
			v.Session = s.session(r)
		}
	}
	if v.Form == nil {
		v.Form = url.Values{}
	}
	if v.Errors == nil {
		v.Errors = map[string]string{}
	}
	v.Status = status
	if v.Flash == "" {
		v.Flash = s.takeFlash(w, r, v.Store)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		infoOf(r.Context()).err = err
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("Something went wrong on our side."))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// errorPage renders the error page with status and message.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, sc *storeCtx, status int, msg string) {
	title := http.StatusText(status)
	switch status {
	case http.StatusNotFound:
		title = "Not found"
	case http.StatusForbidden:
		title = "Not allowed"
	}
	if status == http.StatusForbidden && msg == "This store is suspended." {
		title = "This store is suspended"
	}
	v := &view{Title: title, Message: msg, Store: sc}
	if sc != nil && sc.T.State == tenant.StateSuspended {
		sc.sessLoaded = true // a suspended store's tables are not read
	}
	s.render(w, r, status, "error", v)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request, sc *storeCtx) {
	s.errorPage(w, r, sc, http.StatusNotFound, "There is nothing at this address.")
}

// fail maps an error of the store or the directory to its page; anything
// unexpected is a 500, logged with the request.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, sc *storeCtx, err error) {
	if sc == nil {
		sc = storeOf(r)
	}
	status, msg := statusOf(err)
	if status == http.StatusInternalServerError {
		infoOf(r.Context()).err = err
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "30")
	}
	s.errorPage(w, r, sc, status, msg)
}

// badRequest is a 400 with msg as the page's message.
type badRequest string

func (e badRequest) Error() string { return string(e) }

// statusOf maps an error to an HTTP status and a message for the page.
func statusOf(err error) (int, string) {
	var ve *store.ValidationError
	var br badRequest
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "The form sent too much data."
	case errors.As(err, &br):
		return http.StatusBadRequest, string(br)
	case errors.As(err, &ve):
		msgs := make([]string, 0, len(ve.Fields))
		for k, m := range ve.Fields {
			msgs = append(msgs, k+": "+m)
		}
		return http.StatusUnprocessableEntity, "Some of the input is not valid: " + strings.Join(msgs, "; ")
	case errors.Is(err, errRateLimited):
		return http.StatusTooManyRequests, "Too many attempts from your address. Wait a minute and try again."
	case errors.Is(err, tenant.ErrSuspended):
		return http.StatusForbidden, "This store is suspended."
	case errors.Is(err, store.ErrNotFound), errors.Is(err, tenant.ErrNotFound):
		return http.StatusNotFound, "There is nothing at this address."
	case errors.Is(err, store.ErrForbidden), errors.Is(err, errOwnerOnly):
		return http.StatusForbidden, forbiddenMessage(err)
	case errors.Is(err, store.ErrReadOnly):
		return http.StatusConflict, "This store is read-only at the moment: browsing works, changes are refused."
	case errors.Is(err, store.ErrOutOfStock):
		return http.StatusConflict, "Not enough stock for this."
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, "This conflicts with the current state: " + err.Error()
	case errors.Is(err, store.ErrBadCredentials):
		return http.StatusUnauthorized, "Wrong email or password."
	case errors.Is(err, tenant.ErrMoving), errors.Is(err, tenant.ErrNotReady):
		return http.StatusServiceUnavailable, "This store is not available at the moment; try again in a minute."
	}
	return http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment."
}

func forbiddenMessage(err error) string {
	if errors.Is(err, errOwnerOnly) {
		return err.Error()
	}
	return "You are not allowed to do this."
}

// money formats minor units as "12.50 EUR".
func money(cents int64, currency string) string {
	return strings.TrimSpace(decimal(cents) + " " + currency)
}

// decimal formats minor units as "12.50".
func decimal(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

// parsePrice reads a decimal amount ("12", "12.5", "12.50") as minor units.
func parsePrice(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("enter a price, like 12.50")
	}
	if strings.HasPrefix(s, "-") {
		return 0, errors.New("the price cannot be negative")
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" || !digits(whole) || (hasFrac && (frac == "" || !digits(frac))) {
		return 0, errors.New("enter the price as a number, like 12.50")
	}
	if len(frac) > 2 {
		return 0, errors.New("the price has at most two decimals")
	}
	for len(frac) < 2 {
		frac += "0"
	}
	if len(whole) > 12 {
		return 0, errors.New("the price is too large")
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, errors.New("the price is too large")
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	return w*100 + f, nil
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// pageQuery is the query string of list page n with the other filters kept.
func pageQuery(q url.Values, n int) string {
	c := url.Values{}
	for k, v := range q {
		c[k] = v
	}
	c.Set("page", strconv.Itoa(n))
	return "?" + c.Encode()
}

// parseForm reads a form body of at most MaxFormBytes.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("The form could not be read.")
	}
	return nil
}

// fieldLabels name the fields of the store's validation errors in messages.
var fieldLabels = map[string]string{
	"sku": "The SKU", "title": "The title", "description": "The description", "price": "The price",
	"low_stock_threshold": "The low-stock threshold", "quantity": "The quantity", "kind": "The movement",
	"note": "The note", "name": "The name", "email": "The email address", "address": "The address",
	"role": "The role", "password": "The password", "key": "The idempotency key", "slug": "The address",
	"plan": "The plan", "lines": "The cart", "reason": "The reason",
}

// validationErrors returns the fields of a *store.ValidationError with the
// store's names mapped to the form's and messages made sentences, or nil.
func validationErrors(err error, rename map[string]string) map[string]string {
	var ve *store.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	out := make(map[string]string, len(ve.Fields))
	for k, m := range ve.Fields {
		if n, ok := rename[k]; ok {
			k = n
		}
		label, ok := fieldLabels[k]
		if !ok {
			label = "The field " + k
		}
		out[k] = label + " " + strings.TrimSuffix(m, ".") + "."
	}
	return out
}
