package api

import (
	"net/http"
	"time"

	"github.com/landlordhq/landlord/shop/store"
)

type productJSON struct {
	ID                string    `json:"id"`
	SKU               string    `json:"sku"`
	Title             string    `json:"title"`
	Description       string    `json:"description"`
	PriceCents        int64     `json:"price_cents"`
	Currency          string    `json:"currency"`
	Active            bool      `json:"active"`
	Stock             int       `json:"stock"`
	LowStockThreshold int       `json:"low_stock_threshold"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

func productOut(p store.Product) productJSON {
	return productJSON{
		ID: p.ID, SKU: p.SKU, Title: p.Title, Description: p.Description,
		PriceCents: p.PriceCents, Currency: p.Currency, Active: p.Active, Stock: p.Stock,
		LowStockThreshold: p.LowStockThreshold, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}

// catalogJSON is a product as the storefront shows it.
type catalogJSON struct {
	ID          string `json:"id"`
	SKU         string `json:"sku"`
	Title       string `json:"title"`
	Description string `json:"description"`
	PriceCents  int64  `json:"price_cents"`
	Currency    string `json:"currency"`
	Stock       int    `json:"stock"`
}

// productRequest is the body of POST and PUT /products: PUT replaces every
// field, and the optional ones take their defaults when left out.
type productRequest struct {
	SKU               *string `json:"sku"`
	Title             *string `json:"title"`
	Description       *string `json:"description"`
	PriceCents        *int64  `json:"price_cents"`
	Active            *bool   `json:"active"`
	LowStockThreshold *int    `json:"low_stock_threshold"`
}

func (p productRequest) input() (store.ProductInput, error) {
	if err := required(map[string]bool{"sku": p.SKU != nil, "title": p.Title != nil, "price_cents": p.PriceCents != nil}); err != nil {
		return store.ProductInput{}, err
	}
	in := store.ProductInput{SKU: *p.SKU, Title: *p.Title, PriceCents: *p.PriceCents, Active: true, LowStockThreshold: 5}
	if p.Description != nil {
		in.Description = *p.Description
	}
	if p.Active != nil {
		in.Active = *p.Active
	}
	if p.LowStockThreshold != nil {
		in.LowStockThreshold = *p.LowStockThreshold
	}
	bad := map[string]string{}
	if in.PriceCents < 0 {
		bad["price_cents"] = "must not be negative"
	}
	if in.LowStockThreshold < 0 {
		bad["low_stock_threshold"] = "must not be negative"
	}
	if len(bad) > 0 {
		return store.ProductInput{}, invalid(bad)
	}
	return in, nil
}

// list is one page of a list.
type list[T any] struct {
	Items   []T `json:"items"`
	Page    int `json:"page"`
	PerPage int `json:"per_page"`
	Total   int `json:"total"`
	Pages   int `json:"pages"`
}

func listOf[S, T any](p store.Page[S], conv func(S) T) list[T] {
	items := make([]T, 0, len(p.Items))
	for _, s := range p.Items {
		items = append(items, conv(s))
	}
	return list[T]{Items: items, Page: p.Page, PerPage: p.PerPage, Total: p.Total, Pages: p.Pages()}
}

func (a *api) listProducts(w http.ResponseWriter, r *http.Request, _ *store.User) error {
	page, perPage, err := paging(r)
	if err != nil {
		return err
	}
	active, err := boolParam(r.URL.Query().Get("active"), "active")
	if err != nil {
		return err
	}
	q := r.URL.Query().Get("q")
	if len(q) > 200 {
		return badRequest("q", "q must have at most 200 characters")
	}
	res, err := a.store.Products(r.Context(), store.ProductFilter{Query: q, ActiveOnly: active, Page: page, PerPage: perPage})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(res, productOut))
	return nil
}

func (a *api) catalog(w http.ResponseWriter, r *http.Request, _ *store.User) error {
	page, perPage, err := paging(r)
	if err != nil {
		return err
	}
	q := r.URL.Query().Get("q")
	if len(q) > 200 {
		return badRequest("q", "q must have at most 200 characters")
	}
	res, err := a.store.Products(r.Context(), store.ProductFilter{Query: q, ActiveOnly: true, Page: page, PerPage: perPage})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(res, func(p store.Product) catalogJSON {
		return catalogJSON{ID: p.ID, SKU: p.SKU, Title: p.Title, Description: p.Description, PriceCents: p.PriceCents, Currency: p.Currency, Stock: p.Stock}
	}))
	return nil
}

func (a *api) createProduct(w http.ResponseWriter, r *http.Request, u *store.User) error {
	var body productRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	in, err := body.input()
	if err != nil {
		return err
	}
	p, err := a.store.CreateProduct(r.Context(), *u, in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", Prefix+"/products/"+p.ID)
	writeJSON(w, http.StatusCreated, productOut(p))
	return nil
}

func (a *api) getProduct(w http.ResponseWriter, r *http.Request, _ *store.User) error {
	id, err := pathID(r, "product")
	if err != nil {
		return err
	}
	p, err := a.store.Product(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, productOut(p))
	return nil
}

func (a *api) updateProduct(w http.ResponseWriter, r *http.Request, u *store.User) error {
	id, err := pathID(r, "product")
	if err != nil {
		return err
	}
	var body productRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	in, err := body.input()
	if err != nil {
		return err
	}
	p, err := a.store.UpdateProduct(r.Context(), *u, id, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, productOut(p))
	return nil
}

type movementJSON struct {
	ID        int64     `json:"id"`
	ProductID string    `json:"product_id"`
	Kind      string    `json:"kind"`
	Quantity  int       `json:"quantity"`
	OrderID   *string   `json:"order_id"`
	Note      string    `json:"note"`
	CreatedAt time.Time `json:"created_at"`
}

func movementOut(m store.Movement) movementJSON {
	out := movementJSON{ID: m.ID, ProductID: m.ProductID, Kind: m.Kind, Quantity: m.Quantity, Note: m.Note, CreatedAt: m.CreatedAt}
	if m.OrderID != "" {
		out.OrderID = &m.OrderID
	}
	return out
}

type stockRequest struct {
	Kind     *string `json:"kind"`
	Quantity *int    `json:"quantity"`
	Note     *string `json:"note"`
}

func (a *api) moveStock(w http.ResponseWriter, r *http.Request, u *store.User) error {
	id, err := pathID(r, "product")
	if err != nil {
		return err
	}
	var body stockRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if err := required(map[string]bool{"kind": body.Kind != nil, "quantity": body.Quantity != nil}); err != nil {
		return err
	}
	note := ""
	if body.Note != nil {
		note = *body.Note
	}
	p, err := a.store.MoveStock(r.Context(), *u, id, *body.Kind, *body.Quantity, note)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, productOut(p))
	return nil
}

func (a *api) listMovements(w http.ResponseWriter, r *http.Request, _ *store.User) error {
	id, err := pathID(r, "product")
	if err != nil {
		return err
	}
	page, perPage, err := paging(r)
	if err != nil {
		return err
	}
	// An unknown product has no ledger; say so rather than list nothing.
	if _, err := a.store.Product(r.Context(), id); err != nil {
		return err
	}
	res, err := a.store.Movements(r.Context(), id, page, perPage)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(res, movementOut))
	return nil
}
