package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/landlordhq/landlord/shop/store"
)

var errOwnerOnly = errors.New("Only the store's owner, signed in themself, can do this.")

// manageRoutes are the back office's pages.
func (s *Server) manageRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /manage/login", s.loginPage)
	m.HandleFunc("POST /manage/login", s.loginPost)
	m.HandleFunc("POST /manage/logout", s.logout)
	m.HandleFunc("GET /manage/{$}", s.staff(s.dashboard))
	m.HandleFunc("GET /manage/products", s.staff(s.productsPage))
	m.HandleFunc("GET /manage/products/new", s.staff(s.productNew))
	m.HandleFunc("POST /manage/products/new", s.staff(s.productCreate))
	m.HandleFunc("GET /manage/products/{id}", s.staff(s.productEdit))
	m.HandleFunc("POST /manage/products/{id}", s.staff(s.productUpdate))
	m.HandleFunc("GET /manage/products/{id}/stock", s.staff(s.stockPage))
	m.HandleFunc("POST /manage/products/{id}/stock", s.staff(s.stockPost))
	m.HandleFunc("GET /manage/orders", s.staff(s.ordersPage))
	m.HandleFunc("GET /manage/orders/{id}", s.staff(s.orderPage))
	m.HandleFunc("POST /manage/orders/{id}/fulfil", s.staff(s.orderAction))
	m.HandleFunc("POST /manage/orders/{id}/cancel", s.staff(s.orderAction))
	m.HandleFunc("GET /manage/staff", s.owner(s.staffPage))
	m.HandleFunc("POST /manage/staff", s.owner(s.staffInvite))
	m.HandleFunc("POST /manage/staff/{id}/role", s.owner(s.staffRole))
	m.HandleFunc("POST /manage/staff/{id}/remove", s.owner(s.staffRemove))
	m.HandleFunc("GET /manage/tokens", s.self(s.tokensPage))
	m.HandleFunc("POST /manage/tokens", s.self(s.tokenCreate))
	m.HandleFunc("POST /manage/tokens/{id}/revoke", s.self(s.tokenRevoke))
	m.HandleFunc("GET /manage/notifications", s.staff(s.notificationsPage))
}

type staffHandler func(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session)

// staff requires a signed-in user of the request's store: a GET without one
// goes to the sign-in page, anything else is refused.
func (s *Server) staff(h staffHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sc := storeOf(r)
		sess := s.session(r)
		if sess == nil {
			if r.Method == http.MethodGet {
				redirect(w, r, sc, "/manage/login?next="+url.QueryEscape(r.URL.RequestURI()))
				return
			}
			s.errorPage(w, r, sc, http.StatusForbidden, "Sign in first: your session has ended.")
			return
		}
		if r.Method == http.MethodPost {
			if sc.ReadOnly() {
				// The database refuses the write anyway; saying so before
				// asking it also covers the moment before the routing cache
				// has seen the state change.
				s.fail(w, r, sc, store.ErrReadOnly)
				return
			}
			if err := parseForm(w, r); err != nil {
				s.fail(w, r, sc, err)
				return
			}
		}
		h(w, r, sc, sess)
	}
}

// self is staff for what a user does for themself only, never under an
// operator's impersonation (API tokens).
func (s *Server) self(h staffHandler) http.HandlerFunc {
	return s.staff(func(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
		if sess.ImpersonatedBy != "" {
			s.fail(w, r, sc, errOwnerOnly)
			return
		}
		h(w, r, sc, sess)
	})
}

// owner is staff for the owner's actions (staff management), never under
// an operator's impersonation.
func (s *Server) owner(h staffHandler) http.HandlerFunc {
	return s.self(func(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
		if sess.User.Role != store.RoleOwner {
			s.fail(w, r, sc, errOwnerOnly)
			return
		}
		h(w, r, sc, sess)
	})
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.session(r) != nil {
		redirect(w, r, storeOf(r), "/manage/")
		return
	}
	s.render(w, r, http.StatusOK, "login", &view{Title: "Sign in", Form: url.Values{"next": {r.URL.Query().Get("next")}}})
}

// safeNext is a store-relative back-office path to go to after signing in.
func safeNext(next string) string {
	if strings.HasPrefix(next, "/manage/") && !strings.ContainsAny(next, "\\\r\n") && !strings.Contains(next, "..") && !strings.Contains(next, "//") {
		return next
	}
	return "/manage/"
}

func (s *Server) loginPost(w http.ResponseWriter, r *http.Request) {
	sc := storeOf(r)
	if !s.loginLimit.allow(r) {
		s.fail(w, r, sc, errRateLimited)
		return
	}
	if err := parseForm(w, r); err != nil {
		s.fail(w, r, sc, err)
		return
	}
	f := r.PostForm
	email, password := strings.TrimSpace(f.Get("email")), f.Get("password")
	shown := url.Values{"email": {email}, "next": {f.Get("next")}}
	errs := map[string]string{}
	if email == "" {
		errs["email"] = "Enter your email address."
	}
	if password == "" {
		errs["password"] = "Enter your password."
	}
	if len(errs) > 0 {
		s.render(w, r, http.StatusUnprocessableEntity, "login", &view{Title: "Sign in", Form: shown, Errors: errs})
		return
	}
	u, err := s.st.Authenticate(r.Context(), email, password)
	if errors.Is(err, store.ErrBadCredentials) {
		s.render(w, r, http.StatusUnauthorized, "login", &view{Title: "Sign in", Form: shown, Message: "Wrong email or password."})
		return
	}
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	token, err := s.st.NewSession(r.Context(), u.ID, SessionTTL, "", "")
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	s.setCookie(w, sc, sessionCookie, token, int(SessionTTL/time.Second))
	s.flash(w, sc, "Signed in as "+u.Email+".")
	redirect(w, r, sc, safeNext(f.Get("next")))
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	sc := storeOf(r)
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" && len(c.Value) <= 200 {
		// A read-only store cannot delete the session; the cookie goes anyway.
		if err := s.st.EndSession(r.Context(), c.Value); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrReadOnly) {
			s.fail(w, r, sc, err)
			return
		}
	}
	s.clearCookie(w, sc, sessionCookie)
	s.flash(w, sc, "Signed out.")
	redirect(w, r, sc, "/manage/login")
}

type dashboardData struct {
	Today         store.Summary
	Notifications []store.Notification
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	now := s.now().UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	sum, err := s.st.SalesSummary(r.Context(), day, day.AddDate(0, 0, 1))
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	ns, err := s.st.Notifications(r.Context(), 5)
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	s.render(w, r, http.StatusOK, "dashboard", &view{Title: "Back office", Data: dashboardData{Today: sum, Notifications: ns}})
}

func (s *Server) productsPage(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	active := r.URL.Query().Get("active") == "1"
	p, err := s.st.Products(r.Context(), store.ProductFilter{Query: q, ActiveOnly: active, Page: pageNumber(r), PerPage: 20})
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	filters := url.Values{}
	if q != "" {
		filters.Set("q", q)
	}
	if active {
		filters.Set("active", "1")
	}
	s.render(w, r, http.StatusOK, "products", &view{Title: "Products", Form: filters, Data: listData[store.Product]{Page: p, Query: filters}})
}

type productForm struct {
	ID      string // "" for a new product
	Product store.Product
}

func productValues(p store.Product) url.Values {
	v := url.Values{
		"sku":                 {p.SKU},
		"title":               {p.Title},
		"description":         {p.Description},
		"price":               {decimal(p.PriceCents)},
		"low_stock_threshold": {strconv.Itoa(p.LowStockThreshold)},
	}
	if p.Active {
		v.Set("active", "1")
	}
	return v
}

func (s *Server) productNew(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	s.render(w, r, http.StatusOK, "product_form", &view{Title: "New product", Form: url.Values{"active": {"1"}, "low_stock_threshold": {"5"}}, Data: productForm{}})
}

// readProduct reads the product form; errs names each bad field.
func readProduct(f url.Values) (store.ProductInput, map[string]string) {
	in := store.ProductInput{
		SKU:         strings.TrimSpace(f.Get("sku")),
		Title:       strings.TrimSpace(f.Get("title")),
		Description: strings.TrimSpace(f.Get("description")),
		Active:      f.Get("active") == "1",
	}
	errs := map[string]string{}
	if in.SKU == "" {
		errs["sku"] = "Enter a SKU."
	}
	if in.Title == "" {
		errs["title"] = "Enter a title."
	}
	price, err := parsePrice(f.Get("price"))
	if err != nil {
		errs["price"] = capitalize(err.Error()) + "."
	}
	in.PriceCents = price
	if t := strings.TrimSpace(f.Get("low_stock_threshold")); t == "" {
		in.LowStockThreshold = 0
	} else if n, err := strconv.Atoi(t); err != nil || n < 0 || n > 1_000_000 {
		errs["low_stock_threshold"] = "Enter a whole number, 0 or more."
	} else {
		in.LowStockThreshold = n
	}
	return in, errs
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

var productFields = map[string]string{"price_cents": "price", "low_stock": "low_stock_threshold"}

func (s *Server) productCreate(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	in, errs := readProduct(r.PostForm)
	again := func(status int, errs map[string]string, msg string) {
		s.render(w, r, status, "product_form", &view{Title: "New product", Form: r.PostForm, Errors: errs, Message: msg, Data: productForm{}})
	}
	s.saveProduct(w, r, sc, errs, again, "created", func() (store.Product, error) {
		return s.st.CreateProduct(r.Context(), sess.User, in)
	})
}

// saveProduct ends the new and edit forms: the form's own errors, else
// save's (the store's validation, inline), else the product's page with a
// flash saying what was done.
func (s *Server) saveProduct(w http.ResponseWriter, r *http.Request, sc *storeCtx, errs map[string]string,
	again func(status int, errs map[string]string, msg string), done string, save func() (store.Product, error)) {
	if len(errs) > 0 {
		again(http.StatusUnprocessableEntity, errs, "")
		return
	}
	p, err := save()
	if ve := validationErrors(err, productFields); ve != nil {
		again(http.StatusUnprocessableEntity, ve, "")
		return
	}
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	s.flash(w, sc, "Product "+p.Title+" "+done+".")
	redirect(w, r, sc, "/manage/products/"+p.ID)
}

func (s *Server) productEdit(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	p, err := s.st.Product(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, sc, badID(err))
		return
	}
	s.render(w, r, http.StatusOK, "product_form", &view{Title: "Edit " + p.Title, Form: productValues(p), Data: productForm{ID: p.ID, Product: p}})
}

func (s *Server) productUpdate(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	old, err := s.st.Product(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, sc, badID(err))
		return
	}
	in, errs := readProduct(r.PostForm)
	again := func(status int, errs map[string]string, msg string) {
		s.render(w, r, status, "product_form", &view{Title: "Edit " + old.Title, Form: r.PostForm, Errors: errs, Message: msg, Data: productForm{ID: old.ID, Product: old}})
	}
	s.saveProduct(w, r, sc, errs, again, "saved", func() (store.Product, error) {
		return s.st.UpdateProduct(r.Context(), sess.User, old.ID, in)
	})
}

type stockData struct {
	Product store.Product
	List    listData[store.Movement]
}

func (s *Server) stockView(w http.ResponseWriter, r *http.Request, sc *storeCtx, status int, form url.Values, errs map[string]string, msg string) {
	p, err := s.st.Product(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, sc, badID(err))
		return
	}
	mv, err := s.st.Movements(r.Context(), p.ID, pageNumber(r), 20)
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	s.render(w, r, status, "stock", &view{Title: "Stock of " + p.Title, Form: form, Errors: errs, Message: msg, Data: stockData{Product: p, List: listData[store.Movement]{Page: mv, Query: url.Values{}}}})
}

func (s *Server) stockPage(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	s.stockView(w, r, sc, http.StatusOK, url.Values{"kind": {store.MoveReceipt}}, nil, "")
}

func (s *Server) stockPost(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	f := r.PostForm
	kind := f.Get("kind")
	errs := map[string]string{}
	if kind != store.MoveReceipt && kind != store.MoveAdjustment {
		errs["kind"] = "Choose receipt or adjustment."
	}
	qty, err := strconv.Atoi(strings.TrimSpace(f.Get("quantity")))
	switch {
	case err != nil:
		errs["quantity"] = "Enter a whole number."
	case qty == 0:
		errs["quantity"] = "Enter a quantity other than 0."
	case kind == store.MoveReceipt && qty < 0:
		errs["quantity"] = "A receipt adds stock: enter a positive number (use an adjustment to lower it)."
	case qty > 1_000_000 || qty < -1_000_000:
		errs["quantity"] = "The quantity is too large."
	}
	note := strings.TrimSpace(f.Get("note"))
	if len(note) > 500 {
		errs["note"] = "The note has at most 500 characters."
	}
	if len(errs) > 0 {
		s.stockView(w, r, sc, http.StatusUnprocessableEntity, f, errs, "")
		return
	}
	p, err := s.st.MoveStock(r.Context(), sess.User, r.PathValue("id"), kind, qty, note)
	switch {
	case err == nil:
	case validationErrors(err, nil) != nil:
		s.stockView(w, r, sc, http.StatusUnprocessableEntity, f, validationErrors(err, nil), "")
		return
	case errors.Is(err, store.ErrOutOfStock):
		s.stockView(w, r, sc, http.StatusConflict, f, map[string]string{"quantity": "Not enough stock: the level cannot go below zero."}, "")
		return
	default:
		s.fail(w, r, sc, badID(err))
		return
	}
	s.flash(w, sc, "Stock of "+p.Title+" is now "+strconv.Itoa(p.Stock)+".")
	redirect(w, r, sc, "/manage/products/"+p.ID+"/stock")
}

var orderStatuses = []string{store.OrderPlaced, store.OrderFulfilled, store.OrderCancelled}

func (s *Server) ordersPage(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	q := r.URL.Query()
	f := store.OrderFilter{Status: q.Get("status"), Query: strings.TrimSpace(q.Get("q")), Page: pageNumber(r), PerPage: 20}
	errs := map[string]string{}
	if f.Status != "" && f.Status != store.OrderPlaced && f.Status != store.OrderFulfilled && f.Status != store.OrderCancelled {
		errs["status"] = "Choose a status from the list."
	}
	if v := q.Get("from"); v != "" {
		t, err := time.Parse("2006-01-02", v)
		if err != nil {
			errs["from"] = "Enter a date like 2026-01-31."
		}
		f.From = t
	}
	if v := q.Get("to"); v != "" {
		t, err := time.Parse("2006-01-02", v)
		if err != nil {
			errs["to"] = "Enter a date like 2026-01-31."
		}
		f.To = t.AddDate(0, 0, 1) // the whole day
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) && len(errs) == 0 {
		errs["to"] = "The end date is before the start date."
	}
	filters := url.Values{}
	for _, k := range []string{"status", "q", "from", "to"} {
		if v := q.Get(k); v != "" {
			filters.Set(k, v)
		}
	}
	if len(errs) > 0 {
		s.render(w, r, http.StatusBadRequest, "orders", &view{Title: "Orders", Form: filters, Errors: errs, Data: listData[store.Order]{Query: filters}})
		return
	}
	p, err := s.st.Orders(r.Context(), f)
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	s.render(w, r, http.StatusOK, "orders", &view{Title: "Orders", Form: filters, Data: listData[store.Order]{Page: p, Query: filters}})
}

func (s *Server) orderPage(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	o, err := s.st.Order(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, sc, badID(err))
		return
	}
	s.render(w, r, http.StatusOK, "order", &view{Title: "Order " + strconv.FormatInt(o.Number, 10), Data: o})
}

func (s *Server) orderAction(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	id := r.PathValue("id")
	var o store.Order
	var err error
	var done string
	if strings.HasSuffix(r.URL.Path, "/fulfil") {
		o, err = s.st.Fulfil(r.Context(), sess.User, id)
		done = "fulfilled"
	} else {
		o, err = s.st.Cancel(r.Context(), sess.User, id)
		done = "cancelled; its stock is back"
	}
	if errors.Is(err, store.ErrConflict) {
		s.errorPage(w, r, sc, http.StatusConflict, "This order is not open any more: only a placed order can be fulfilled or cancelled.")
		return
	}
	if err != nil {
		s.fail(w, r, sc, badID(err))
		return
	}
	s.flash(w, sc, "Order "+strconv.FormatInt(o.Number, 10)+" "+done+".")
	redirect(w, r, sc, "/manage/orders/"+o.ID)
}

type staffData struct {
	Users      []store.User
	InviteLink string
}

func (s *Server) staffView(w http.ResponseWriter, r *http.Request, sc *storeCtx, status int, form url.Values, errs map[string]string, link string) {
	us, err := s.st.Users(r.Context())
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	s.render(w, r, status, "staff", &view{Title: "Staff", Form: form, Errors: errs, Data: staffData{Users: us, InviteLink: link}})
}

func (s *Server) staffPage(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	s.staffView(w, r, sc, http.StatusOK, url.Values{"role": {store.RoleStaff}}, nil, "")
}

// origin is the scheme and host the request was sent to.
func (s *Server) origin(r *http.Request) string {
	scheme := "http"
	if s.cfg.Secure || r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) staffInvite(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	f := r.PostForm
	email := strings.TrimSpace(f.Get("email"))
	role := f.Get("role")
	errs := map[string]string{}
	if email == "" || !strings.Contains(email, "@") {
		errs["email"] = "Enter an email address, like someone@example.com."
	}
	if role != store.RoleOwner && role != store.RoleStaff {
		errs["role"] = "Choose owner or staff."
	}
	if len(errs) > 0 {
		s.staffView(w, r, sc, http.StatusUnprocessableEntity, f, errs, "")
		return
	}
	inv, err := s.st.InviteUser(r.Context(), sess.User, email, role, 7*24*time.Hour)
	if ve := validationErrors(err, nil); ve != nil {
		s.staffView(w, r, sc, http.StatusUnprocessableEntity, f, ve, "")
		return
	}
	if errors.Is(err, store.ErrConflict) {
		s.staffView(w, r, sc, http.StatusConflict, f, map[string]string{"email": "This person is already a user of the store."}, "")
		return
	}
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	link := s.origin(r) + sc.Base + "/invite/" + inv.Token
	s.staffView(w, r, sc, http.StatusOK, url.Values{"role": {store.RoleStaff}}, nil, link)
}

func (s *Server) staffRole(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	role := r.PostForm.Get("role")
	if role != store.RoleOwner && role != store.RoleStaff {
		s.fail(w, r, sc, badRequest("Choose owner or staff."))
		return
	}
	u, err := s.st.SetRole(r.Context(), sess.User, r.PathValue("id"), role)
	if errors.Is(err, store.ErrConflict) {
		s.errorPage(w, r, sc, http.StatusConflict, "The store needs at least one owner: make someone else an owner first.")
		return
	}
	if err != nil {
		s.fail(w, r, sc, badID(err))
		return
	}
	s.flash(w, sc, u.Email+" is now "+u.Role+".")
	redirect(w, r, sc, "/manage/staff")
}

func (s *Server) staffRemove(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	u, err := s.st.User(r.Context(), r.PathValue("id"))
	if err == nil {
		err = s.st.RemoveUser(r.Context(), sess.User, u.ID)
	}
	if errors.Is(err, store.ErrConflict) {
		s.errorPage(w, r, sc, http.StatusConflict, "The store needs at least one owner: the last owner cannot be removed.")
		return
	}
	if err != nil {
		s.fail(w, r, sc, badID(err))
		return
	}
	s.flash(w, sc, u.Email+" was removed.")
	redirect(w, r, sc, "/manage/staff")
}

type tokensData struct {
	Tokens []store.APIToken
	Secret string
}

func (s *Server) tokensView(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session, status int, form url.Values, errs map[string]string, secret string) {
	ts, err := s.st.APITokens(r.Context(), sess.User)
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	s.render(w, r, status, "tokens", &view{Title: "API tokens", Form: form, Errors: errs, Data: tokensData{Tokens: ts, Secret: secret}})
}

func (s *Server) tokensPage(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	s.tokensView(w, r, sc, sess, http.StatusOK, nil, nil, "")
}

func (s *Server) tokenCreate(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if name == "" || len(name) > 100 {
		s.tokensView(w, r, sc, sess, http.StatusUnprocessableEntity, r.PostForm, map[string]string{"name": "Enter a name of 1 to 100 characters."}, "")
		return
	}
	secret, _, err := s.st.CreateAPIToken(r.Context(), sess.User, name)
	if ve := validationErrors(err, nil); ve != nil {
		s.tokensView(w, r, sc, sess, http.StatusUnprocessableEntity, r.PostForm, ve, "")
		return
	}
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	s.tokensView(w, r, sc, sess, http.StatusOK, nil, nil, secret)
}

func (s *Server) tokenRevoke(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	if err := s.st.RevokeAPIToken(r.Context(), sess.User, r.PathValue("id")); err != nil {
		s.fail(w, r, sc, badID(err))
		return
	}
	s.flash(w, sc, "Token revoked.")
	redirect(w, r, sc, "/manage/tokens")
}

func (s *Server) notificationsPage(w http.ResponseWriter, r *http.Request, sc *storeCtx, sess *store.Session) {
	ns, err := s.st.Notifications(r.Context(), 100)
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	s.render(w, r, http.StatusOK, "notifications", &view{Title: "Notifications", Data: ns})
}

func (s *Server) invitePage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "invite", &view{Title: "Join " + storeOf(r).Name()})
}

func (s *Server) invitePost(w http.ResponseWriter, r *http.Request) {
	sc := storeOf(r)
	if err := parseForm(w, r); err != nil {
		s.fail(w, r, sc, err)
		return
	}
	f := r.PostForm
	name, password := strings.TrimSpace(f.Get("name")), f.Get("password")
	shown := url.Values{"name": {name}}
	errs := map[string]string{}
	if name == "" {
		errs["name"] = "Enter your name."
	}
	if len(password) < 8 {
		errs["password"] = "Choose a password of at least 8 characters."
	}
	if len(errs) > 0 {
		s.render(w, r, http.StatusUnprocessableEntity, "invite", &view{Title: "Join " + sc.Name(), Form: shown, Errors: errs})
		return
	}
	u, err := s.st.AcceptInvite(r.Context(), r.PathValue("token"), name, password)
	if ve := validationErrors(err, nil); ve != nil {
		s.render(w, r, http.StatusUnprocessableEntity, "invite", &view{Title: "Join " + sc.Name(), Form: shown, Errors: ve})
		return
	}
	if errors.Is(err, store.ErrNotFound) {
		s.errorPage(w, r, sc, http.StatusNotFound, "This invitation link is not valid: it was used already, it expired, or it belongs to another store.")
		return
	}
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	token, err := s.st.NewSession(r.Context(), u.ID, SessionTTL, "", "")
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	s.setCookie(w, sc, sessionCookie, token, int(SessionTTL/time.Second))
	s.flash(w, sc, "Welcome, "+u.Name+": you are signed in.")
	redirect(w, r, sc, "/manage/")
}
