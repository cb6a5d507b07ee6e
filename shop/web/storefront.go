package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenantcache"
)

// storeRoutes are a store's pages, with paths relative to its base.
func (s *Server) storeRoutes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", s.home)
	m.HandleFunc("GET /products/{id}", s.productPage)
	m.HandleFunc("GET /cart", s.cartPage)
	m.HandleFunc("POST /cart", s.cartPost)
	m.HandleFunc("GET /checkout", s.checkoutPage)
	m.HandleFunc("POST /checkout", s.checkoutPost)
	m.HandleFunc("GET /orders/{id}", s.receipt)
	m.HandleFunc("GET /invite/{token}", s.invitePage)
	m.HandleFunc("POST /invite/{token}", s.invitePost)
	s.manageRoutes(m)
	m.Handle("GET /assets/", assets())
	m.HandleFunc("GET /favicon.ico", serveFavicon)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { s.notFound(w, r, nil) })
	return m
}

func assets() http.Handler {
	h := http.FileServerFS(assetFiles)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

func serveFavicon(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Write([]byte(favicon))
}

// pageNumber reads ?page=, 1 when absent or bad.
func pageNumber(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || n < 1 || n > 100_000 {
		return 1
	}
	return n
}

type listData[T any] struct {
	Page  store.Page[T]
	Query url.Values // the filters, for the pagination links
}

func (l listData[T]) Prev() int {
	if l.Page.Page > 1 {
		return l.Page.Page - 1
	}
	return 0
}

func (l listData[T]) Next() int {
	if l.Page.Page < l.Page.Pages() {
		return l.Page.Page + 1
	}
	return 0
}

// home is the storefront: the store's active products, searchable by title.
func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	sc := storeOf(r)
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > 100 {
		q = q[:100]
	}
	page := pageNumber(r)
	key, err := tenantcache.Key(r.Context(), "storefront", strconv.Itoa(page), q)
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	p, err := s.products.GetOrLoad(r.Context(), key, func(ctx context.Context) (store.Page[store.Product], error) {
		return s.st.Products(ctx, store.ProductFilter{Query: q, ActiveOnly: true, Page: page, PerPage: 12})
	})
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	filters := url.Values{}
	if q != "" {
		filters.Set("q", q)
	}
	s.render(w, r, http.StatusOK, "home", &view{Title: sc.Name(), Form: url.Values{"q": {q}}, Data: listData[store.Product]{Page: p, Query: filters}})
}

func (s *Server) productPage(w http.ResponseWriter, r *http.Request) {
	p, err := s.st.Product(r.Context(), r.PathValue("id"))
	if err == nil && !p.Active {
		err = store.ErrNotFound
	}
	if err != nil {
		s.fail(w, r, nil, badID(err))
		return
	}
	s.render(w, r, http.StatusOK, "product", &view{Title: p.Title, Data: p, Form: url.Values{"quantity": {"1"}}})
}

// badID turns the store's refusal of a malformed id into not found.
func badID(err error) error {
	var ve *store.ValidationError
	if errors.As(err, &ve) {
		return store.ErrNotFound
	}
	return err
}

type cartLine struct {
	Product  store.Product
	Quantity int
	Cents    int64
}

type cartData struct {
	Lines      []cartLine
	TotalCents int64
	Currency   string
	Removed    int // lines dropped because their product is gone
}

// loadCart prices the cart's lines with the store's products, dropping
// products that are gone or inactive.
func (s *Server) loadCart(r *http.Request, c *cart) (cartData, error) {
	var d cartData
	for _, id := range append([]string(nil), c.IDs...) {
		p, err := s.st.Product(r.Context(), id)
		if err != nil {
			if errors.Is(badID(err), store.ErrNotFound) {
				c.set(id, 0)
				d.Removed++
				continue
			}
			return d, err
		}
		if !p.Active {
			c.set(id, 0)
			d.Removed++
			continue
		}
		q := c.Qty[id]
		d.Lines = append(d.Lines, cartLine{Product: p, Quantity: q, Cents: p.PriceCents * int64(q)})
		d.TotalCents += p.PriceCents * int64(q)
		d.Currency = p.Currency
	}
	return d, nil
}

func (s *Server) cartPage(w http.ResponseWriter, r *http.Request) {
	sc := storeOf(r)
	c := readCart(r)
	d, err := s.loadCart(r, c)
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	if d.Removed > 0 {
		s.writeCart(w, sc, c)
	}
	s.render(w, r, http.StatusOK, "cart", &view{Title: "Your cart", Data: d})
}

// cartPost adds a product to the cart, sets a line's quantity or removes it.
func (s *Server) cartPost(w http.ResponseWriter, r *http.Request) {
	sc := storeOf(r)
	if err := parseForm(w, r); err != nil {
		s.fail(w, r, sc, err)
		return
	}
	c := readCart(r)
	id := r.PostForm.Get("product_id")
	action := r.PostForm.Get("action")
	qty := 1
	if v := r.PostForm.Get("quantity"); v != "" || action == "update" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 || n > maxQuantity || (n == 0 && action != "update") {
			s.fail(w, r, sc, badRequest("The quantity must be a whole number from 1 to 999."))
			return
		}
		qty = n
	}
	switch action {
	case "add", "update":
		p, err := s.st.Product(r.Context(), id)
		if err == nil && !p.Active {
			err = store.ErrNotFound
		}
		if err != nil {
			s.fail(w, r, sc, badID(err))
			return
		}
		if action == "add" {
			if len(c.IDs) >= maxCartLines {
				if _, in := c.Qty[id]; !in {
					s.fail(w, r, sc, badRequest("The cart is full: check out or remove a line first."))
					return
				}
			}
			c.set(id, c.Qty[id]+qty)
			s.flash(w, sc, "Added "+p.Title+" to your cart.")
		} else {
			if _, in := c.Qty[id]; !in {
				s.fail(w, r, sc, store.ErrNotFound)
				return
			}
			c.set(id, qty)
			s.flash(w, sc, "Cart updated.")
		}
	case "remove":
		if _, in := c.Qty[id]; !in {
			s.fail(w, r, sc, store.ErrNotFound)
			return
		}
		c.set(id, 0)
		s.flash(w, sc, "Removed from your cart.")
	default:
		s.fail(w, r, sc, badRequest("Unknown cart action."))
		return
	}
	s.writeCart(w, sc, c)
	redirect(w, r, sc, "/cart")
}

func (s *Server) checkoutPage(w http.ResponseWriter, r *http.Request) {
	sc := storeOf(r)
	c := readCart(r)
	d, err := s.loadCart(r, c)
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	v := &view{Title: "Checkout", Data: d, Form: url.Values{"key": {randomToken(24)}}}
	if v.Countries, err = s.st.Countries(r.Context()); err != nil {
		s.fail(w, r, sc, err)
		return
	}
	if sc.ReadOnly() {
		v.Message = "This store is read-only at the moment: you can browse, but orders cannot be placed."
	}
	s.render(w, r, http.StatusOK, "checkout", v)
}

// checkoutPost places the order of the cart; the form's idempotency key
// makes a repeated submit return the first order.
func (s *Server) checkoutPost(w http.ResponseWriter, r *http.Request) {
	sc := storeOf(r)
	if err := parseForm(w, r); err != nil {
		s.fail(w, r, sc, err)
		return
	}
	f := r.PostForm
	key := f.Get("key")
	if !keyPattern.MatchString(key) {
		s.fail(w, r, sc, badRequest("The checkout form is not valid any more (bad idempotency key): open the checkout page again."))
		return
	}
	c := readCart(r)
	d, err := s.loadCart(r, c)
	if err != nil {
		s.fail(w, r, sc, err)
		return
	}
	in := store.CheckoutInput{
		Key:     key,
		Name:    strings.TrimSpace(f.Get("name")),
		Email:   strings.TrimSpace(f.Get("email")),
		Address: strings.TrimSpace(f.Get("address")),
		Country: f.Get("country"),
	}
	errs := map[string]string{}
	if in.Name == "" {
		errs["name"] = "Enter your name."
	}
	if in.Email == "" || !strings.Contains(in.Email, "@") {
		errs["email"] = "Enter an email address, like you@example.com."
	}
	if in.Address == "" {
		errs["address"] = "Enter the address to ship to."
	}
	for _, l := range d.Lines {
		in.Lines = append(in.Lines, store.Line{ProductID: l.Product.ID, Quantity: l.Quantity})
	}
	again := func(status int, msg string, errs map[string]string) {
		v := &view{Title: "Checkout", Data: d, Form: f, Errors: errs, Message: msg}
		if v.Countries, err = s.st.Countries(r.Context()); err != nil {
			s.fail(w, r, sc, err)
			return
		}
		s.render(w, r, status, "checkout", v)
	}
	if sc.ReadOnly() {
		again(http.StatusConflict, "This store is read-only at the moment: you can browse, but orders cannot be placed.", nil)
		return
	}
	if len(errs) > 0 {
		again(http.StatusUnprocessableEntity, "", errs)
		return
	}
	if len(in.Lines) == 0 {
		// The same form sent again after its order emptied the cart.
		if id, ok := s.lastOrder(r, sc, key); ok {
			redirect(w, r, sc, "/orders/"+id+"?t="+s.orderToken(sc.T.ID, id))
			return
		}
		again(http.StatusUnprocessableEntity, "Your cart is empty: add a product first.", nil)
		return
	}
	o, _, err := s.st.Checkout(r.Context(), in)
	switch {
	case err == nil:
	case validationErrors(err, nil) != nil:
		again(http.StatusUnprocessableEntity, "", validationErrors(err, map[string]string{"customer_name": "name", "customer_email": "email"}))
		return
	case errors.Is(err, store.ErrOutOfStock):
		again(http.StatusConflict, "Some products do not have enough stock for your order: lower the quantities in your cart.", nil)
		return
	case errors.Is(err, store.ErrReadOnly):
		again(http.StatusConflict, "This store is read-only at the moment: you can browse, but orders cannot be placed.", nil)
		return
	default:
		s.fail(w, r, sc, err)
		return
	}
	s.clearCookie(w, sc, cartCookie)
	s.setCookie(w, sc, lastOrderCookie, s.lastOrderValue(sc.T.ID, o.ID, key), 24*3600)
	s.flash(w, sc, "Thank you: your order is placed.")
	redirect(w, r, sc, "/orders/"+o.ID+"?t="+s.orderToken(sc.T.ID, o.ID))
}

// receipt is an order's thank-you page, shown only with the order's token.
func (s *Server) receipt(w http.ResponseWriter, r *http.Request) {
	sc := storeOf(r)
	id := r.PathValue("id")
	if !s.checkOrderToken(sc.T.ID, id, r.URL.Query().Get("t")) {
		s.notFound(w, r, sc)
		return
	}
	o, err := s.st.Order(r.Context(), id)
	if err != nil {
		s.fail(w, r, sc, badID(err))
		return
	}
	s.render(w, r, http.StatusOK, "receipt", &view{Title: "Order " + strconv.FormatInt(o.Number, 10), Data: o})
}
