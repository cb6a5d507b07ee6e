package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/landlordhq/landlord/shop/store"
)

type orderJSON struct {
	ID            string          `json:"id"`
	Number        int64           `json:"number"`
	Status        string          `json:"status"`
	CustomerName  string          `json:"customer_name"`
	CustomerEmail string          `json:"customer_email"`
	Address       string          `json:"address"`
	Country       string          `json:"country"`
	TotalCents    int64           `json:"total_cents"`
	Currency      string          `json:"currency"`
	Payment       string          `json:"payment"`
	Lines         []orderLineJSON `json:"lines"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
}

type orderLineJSON struct {
	ProductID  string `json:"product_id"`
	SKU        string `json:"sku"`
	Title      string `json:"title"`
	Quantity   int    `json:"quantity"`
	PriceCents int64  `json:"price_cents"`
}

func orderOut(o store.Order) orderJSON {
	out := orderJSON{
		ID: o.ID, Number: o.Number, Status: o.Status, CustomerName: o.CustomerName,
		CustomerEmail: o.CustomerEmail, Address: o.Address, Country: o.Country, TotalCents: o.TotalCents,
		Currency: o.Currency, Payment: o.Payment, Lines: make([]orderLineJSON, 0, len(o.Lines)),
		CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}
	for _, l := range o.Lines {
		out.Lines = append(out.Lines, orderLineJSON{ProductID: l.ProductID, SKU: l.SKU, Title: l.Title, Quantity: l.Quantity, PriceCents: l.PriceCents})
	}
	return out
}

func (a *api) listOrders(w http.ResponseWriter, r *http.Request, _ *store.User) error {
	page, perPage, err := paging(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.OrderFilter{Status: q.Get("status"), Query: q.Get("q"), Page: page, PerPage: perPage}
	switch f.Status {
	case "", store.OrderPlaced, store.OrderFulfilled, store.OrderCancelled:
	default:
		return badRequest("status", "status must be placed, fulfilled or cancelled")
	}
	if len(f.Query) > 200 {
		return badRequest("q", "q must have at most 200 characters")
	}
	if f.From, err = timeParam(q.Get("from"), "from"); err != nil {
		return err
	}
	if f.To, err = timeParam(q.Get("to"), "to"); err != nil {
		return err
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return badRequest("to", "to must not be before from")
	}
	res, err := a.store.Orders(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(res, orderOut))
	return nil
}

func (a *api) getOrder(w http.ResponseWriter, r *http.Request, _ *store.User) error {
	return a.orderOp(w, r, func(id string) (store.Order, error) { return a.store.Order(r.Context(), id) })
}

func (a *api) fulfil(w http.ResponseWriter, r *http.Request, u *store.User) error {
	return a.orderOp(w, r, func(id string) (store.Order, error) { return a.store.Fulfil(r.Context(), *u, id) })
}

func (a *api) cancel(w http.ResponseWriter, r *http.Request, u *store.User) error {
	return a.orderOp(w, r, func(id string) (store.Order, error) { return a.store.Cancel(r.Context(), *u, id) })
}

// orderOp runs op on the order of r's path and answers with the order.
func (a *api) orderOp(w http.ResponseWriter, r *http.Request, op func(id string) (store.Order, error)) error {
	id, err := pathID(r, "order")
	if err != nil {
		return err
	}
	o, err := op(id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, orderOut(o))
	return nil
}

type checkoutRequest struct {
	CustomerName  *string        `json:"customer_name"`
	CustomerEmail *string        `json:"customer_email"`
	Address       *string        `json:"address"`
	Country       string         `json:"country"`
	Lines         []checkoutLine `json:"lines"`
}

type checkoutLine struct {
	ProductID *string `json:"product_id"`
	Quantity  *int    `json:"quantity"`
}

// checkout places an order for the storefront; a key used before returns
// its order, 200 instead of 201.
func (a *api) checkout(w http.ResponseWriter, r *http.Request, _ *store.User) error {
	key := r.Header.Get("Idempotency-Key")
	switch {
	case key == "":
		return badRequest("Idempotency-Key", "the Idempotency-Key header is required: 8 to 100 characters of A-Z, a-z, 0-9, _ and -")
	case !idempotencyKey.MatchString(key):
		return badRequest("Idempotency-Key", "the Idempotency-Key header must have 8 to 100 characters of A-Z, a-z, 0-9, _ and -")
	}
	var body checkoutRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if err := required(map[string]bool{
		"customer_name": body.CustomerName != nil, "customer_email": body.CustomerEmail != nil,
		"address": body.Address != nil, "lines": body.Lines != nil,
	}); err != nil {
		return err
	}
	in := store.CheckoutInput{Key: key, Name: *body.CustomerName, Email: *body.CustomerEmail, Address: *body.Address, Country: body.Country}
	bad := map[string]string{}
	for i, l := range body.Lines {
		if l.ProductID == nil {
			bad[fmt.Sprintf("lines[%d].product_id", i)] = "required"
		}
		if l.Quantity == nil {
			bad[fmt.Sprintf("lines[%d].quantity", i)] = "required"
		}
		if l.ProductID != nil && l.Quantity != nil {
			in.Lines = append(in.Lines, store.Line{ProductID: *l.ProductID, Quantity: *l.Quantity})
		}
	}
	if len(bad) > 0 {
		return invalid(bad)
	}
	o, created, err := a.store.Checkout(r.Context(), in)
	if err != nil {
		return a.unknownProducts(r, in.Lines, err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Location", Prefix+"/orders/"+o.ID)
	writeJSON(w, status, orderOut(o))
	return nil
}

// unknownProducts turns a checkout's validation error on the product of a
// line into 404 when the store has no such product (a malformed id, or one
// of another store): only products the store has are "not for sale".
func (a *api) unknownProducts(r *http.Request, lines []store.Line, err error) error {
	var ve *store.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	missing := map[string]string{}
	for i, l := range lines {
		f := fmt.Sprintf("lines[%d].product_id", i)
		if _, bad := ve.Fields[f]; !bad {
			continue
		}
		if !isUUID(l.ProductID) {
			missing[f] = "no such product"
			continue
		}
		_, perr := a.store.Product(r.Context(), l.ProductID)
		switch {
		case errors.Is(perr, store.ErrNotFound):
			missing[f] = "no such product"
		case perr != nil:
			return perr
		}
	}
	if len(missing) > 0 {
		e := notFound("product")
		e.fields = missing
		return e
	}
	return err
}
