package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
)

// Limits of a checkout.
const (
	maxLines        = 50
	maxLineQuantity = 1000
)

// orderCols are the columns scanOrder reads, of orders aliased o, with the
// lines as one JSON array.
const orderCols = `o.id::text, coalesce(o.number, 0), o.status, o.customer_name, o.customer_email, o.address,
	coalesce(o.country, ''), o.total_cents, o.currency, o.payment, o.created_at, o.updated_at,
	(SELECT coalesce(jsonb_agg(jsonb_build_object('product_id', ol.product_id, 'sku', ol.sku, 'title', ol.title,
		'quantity', ol.quantity, 'price_cents', ol.price_cents) ORDER BY ol.line), '[]')
	 FROM order_lines ol WHERE ol.tenant_id = o.tenant_id AND ol.order_id = o.id)`

// lineJSON is an order line as orderCols renders it.
type lineJSON struct {
	ProductID  string `json:"product_id"`
	SKU        string `json:"sku"`
	Title      string `json:"title"`
	Quantity   int    `json:"quantity"`
	PriceCents int64  `json:"price_cents"`
}

func scanOrder(row pgx.Row, extra ...any) (Order, error) {
	var o Order
	var lines []byte
	dest := append([]any{&o.ID, &o.Number, &o.Status, &o.CustomerName, &o.CustomerEmail, &o.Address,
		&o.Country, &o.TotalCents, &o.Currency, &o.Payment, &o.CreatedAt, &o.UpdatedAt, &lines}, extra...)
	if err := row.Scan(dest...); err != nil {
		return Order{}, err
	}
	var ls []lineJSON
	if err := json.Unmarshal(lines, &ls); err != nil {
		return Order{}, fmt.Errorf("order lines: %w", err)
	}
	o.Lines = make([]OrderLine, len(ls))
	for i, l := range ls {
		o.Lines[i] = OrderLine(l)
	}
	return o, nil
}

// checkout is a validated checkout: its lines merged per product, with the
// index of each product's first line in the input (for error fields).
type checkout struct {
	CheckoutInput
	first []int
}

func (in CheckoutInput) clean() (checkout, error) {
	f := fields{}
	in.Key = strings.TrimSpace(in.Key)
	if !keyPattern.MatchString(in.Key) {
		f.add("key", "must be 8 to 100 letters, digits, underscores or hyphens")
	}
	in.Name = strings.TrimSpace(in.Name)
	f.text("customer_name", in.Name, 1, 200)
	in.Email = f.email("customer_email", in.Email)
	in.Address = strings.TrimSpace(in.Address)
	f.text("address", in.Address, 1, 1000)
	in.Country = strings.ToUpper(strings.TrimSpace(in.Country))
	if in.Country != "" && !countryPattern.MatchString(in.Country) {
		f.add("country", "must be a two-letter country code")
	}
	switch {
	case len(in.Lines) == 0:
		f.add("lines", "must have at least one line")
	case len(in.Lines) > maxLines:
		f.add("lines", fmt.Sprintf("must have at most %d lines", maxLines))
	}
	c := checkout{CheckoutInput: in}
	c.Lines = nil
	at := map[string]int{} // product id -> index in c.Lines
	for i, l := range in.Lines {
		if len(in.Lines) > maxLines {
			break
		}
		id, ok := parseID(l.ProductID)
		if !ok {
			f.add(fmt.Sprintf("lines[%d].product_id", i), "is not a product id")
		}
		if l.Quantity < 1 || l.Quantity > maxLineQuantity {
			f.add(fmt.Sprintf("lines[%d].quantity", i), fmt.Sprintf("must be between 1 and %d", maxLineQuantity))
			continue
		}
		if !ok {
			continue
		}
		if j, dup := at[id]; dup {
			c.Lines[j].Quantity += l.Quantity
			if c.Lines[j].Quantity > maxLineQuantity {
				f.add(fmt.Sprintf("lines[%d].quantity", i),
					fmt.Sprintf("makes more than %d of this product in the order", maxLineQuantity))
			}
			continue
		}
		at[id] = len(c.Lines)
		c.Lines = append(c.Lines, Line{ProductID: id, Quantity: l.Quantity})
		c.first = append(c.first, i)
	}
	return c, f.err()
}

// lowStock is the payload of a low_stock outbox event.
type lowStock struct {
	ProductID string `json:"product_id"`
	SKU       string `json:"sku"`
	Title     string `json:"title"`
	OnHand    int    `json:"on_hand"`
	Threshold int    `json:"threshold"`
}

// Checkout places an order and takes its stock in one transaction. created
// is false when the key had already placed an order (returned unchanged).
// A line over the stock fails the whole order with ErrOutOfStock.
//
// Lines of the same product are merged; each product must be active
// (a ValidationError on lines[i].product_id otherwise). A sale that takes a
// product from its low-stock threshold or above to below it writes a
// low_stock outbox event in the same transaction.
func (s *Service) Checkout(ctx context.Context, in CheckoutInput) (o Order, created bool, err error) {
	c, err := in.clean()
	if err != nil {
		return Order{}, false, err
	}
	events := 0
	err = s.tx(ctx, func(tx pgx.Tx) error {
		events = 0
		// The key first: a concurrent checkout with the same key waits here
		// on the unique index until the first one commits, then finds its order.
		var id string
		err := tx.QueryRow(ctx, `
			INSERT INTO orders (customer_name, customer_email, address, country, total_cents, currency, idempotency_key)
			VALUES ($1, $2, $3, nullif($6, ''), 0, $4, $5)
			ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING id::text`,
			c.Name, c.Email, c.Address, s.opt.Currency, c.Key, c.Country).Scan(&id)
		if isConstraint(err, pgerrcode.ForeignKeyViolation, "orders_country_fkey") {
			return &ValidationError{Fields: map[string]string{"country": "is not one of the platform's countries"}}
		}
		if errors.Is(err, pgx.ErrNoRows) {
			created = false
			o, err = scanOrder(tx.QueryRow(ctx, `SELECT `+orderCols+` FROM orders o WHERE o.idempotency_key = $1`, c.Key))
			return err
		}
		if err != nil {
			return err
		}
		created = true

		ids := make([]string, len(c.Lines))
		for i, l := range c.Lines {
			ids[i] = l.ProductID
		}
		type product struct {
			sku, title string
			price      int64
			active     bool
			threshold  int
		}
		products := map[string]product{}
		rows, err := tx.Query(ctx, `SELECT id::text, sku, title, price_cents, active, low_stock_threshold
			FROM products WHERE id = ANY($1::uuid[])`, ids)
		if err != nil {
			return err
		}
		var pid string
		var p product
		if _, err := pgx.ForEachRow(rows, []any{&pid, &p.sku, &p.title, &p.price, &p.active, &p.threshold},
			func() error { products[pid] = p; return nil }); err != nil {
			return err
		}

		f := fields{}
		o = Order{ID: id, Status: OrderPlaced, CustomerName: c.Name, CustomerEmail: c.Email, Address: c.Address, Country: c.Country,
			Currency: s.opt.Currency, Payment: "test", Lines: make([]OrderLine, len(c.Lines))}
		nums, skus, titles, qtys, prices := make([]int, len(c.Lines)), make([]string, len(c.Lines)),
			make([]string, len(c.Lines)), make([]int, len(c.Lines)), make([]int64, len(c.Lines))
		for i, l := range c.Lines {
			p, ok := products[l.ProductID]
			if !ok || !p.active {
				f.add(fmt.Sprintf("lines[%d].product_id", c.first[i]), "is not for sale")
				continue
			}
			o.Lines[i] = OrderLine{ProductID: l.ProductID, SKU: p.sku, Title: p.title, Quantity: l.Quantity, PriceCents: p.price}
			o.TotalCents += p.price * int64(l.Quantity)
			nums[i], skus[i], titles[i], qtys[i], prices[i] = i+1, p.sku, p.title, l.Quantity, p.price
		}
		if err := f.err(); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO order_lines (order_id, line, product_id, sku, title, quantity, price_cents)
			SELECT $1, * FROM unnest($2::int[], $3::uuid[], $4::text[], $5::text[], $6::int[], $7::bigint[])`,
			id, nums, ids, skus, titles, qtys, prices); err != nil {
			return err
		}

		// One sale per line, in product id order so that concurrent
		// transactions lock stock levels in one order. The database refuses
		// a level below zero (stock_never_negative).
		sorted := slices.Clone(c.Lines)
		slices.SortFunc(sorted, func(a, b Line) int { return strings.Compare(a.ProductID, b.ProductID) })
		sids, sqty := make([]string, len(sorted)), make([]int, len(sorted))
		for i, l := range sorted {
			sids[i], sqty[i] = l.ProductID, -l.Quantity
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO stock_movements (product_id, kind, quantity, order_id)
			SELECT x.p, 'sale', x.q, $1 FROM unnest($2::uuid[], $3::int[]) WITH ORDINALITY AS x(p, q, n)
			ORDER BY x.n`, id, sids, sqty); err != nil {
			return err
		}

		// The new levels: this transaction holds their rows until it commits,
		// so the level before the sale is the new one plus the quantity.
		var payloads [][]byte
		rows, err = tx.Query(ctx, `SELECT product_id::text, on_hand FROM stock_levels WHERE product_id = ANY($1::uuid[])`, ids)
		if err != nil {
			return err
		}
		var onHand int
		if _, err := pgx.ForEachRow(rows, []any{&pid, &onHand}, func() error {
			p := products[pid]
			for _, l := range c.Lines {
				if l.ProductID == pid && onHand+l.Quantity >= p.threshold && onHand < p.threshold {
					b, err := json.Marshal(lowStock{ProductID: pid, SKU: p.sku, Title: p.title, OnHand: onHand, Threshold: p.threshold})
					if err != nil {
						return err
					}
					payloads = append(payloads, b)
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if len(payloads) > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO outbox (kind, payload)
				SELECT 'low_stock', x FROM unnest($1::jsonb[]) x`, payloads); err != nil {
				return err
			}
			events = len(payloads)
		}

		// The number last: the counter's row is the one every checkout of the
		// store waits for, so it is held for the shortest time.
		return tx.QueryRow(ctx, `
			WITH c AS (
				INSERT INTO counters AS c (name, value) VALUES ('orders', 1)
				ON CONFLICT (tenant_id, name) DO UPDATE SET value = c.value + 1 RETURNING value)
			UPDATE orders SET number = (SELECT value FROM c), total_cents = $2
			WHERE id = $1 RETURNING number, created_at, updated_at`, id, o.TotalCents).Scan(&o.Number, &o.CreatedAt, &o.UpdatedAt)
	})
	if err != nil {
		return Order{}, false, dbErr("checkout", err)
	}
	if created {
		s.productsChanged(ctx)
	}
	if events > 0 {
		s.outboxWritten(ctx)
	}
	return o, created, nil
}

// Orders lists orders, newest first, each with its lines.
func (s *Service) Orders(ctx context.Context, f OrderFilter) (Page[Order], error) {
	page, perPage := paging(f.Page, f.PerPage)
	status := strings.TrimSpace(f.Status)
	switch status {
	case "", OrderPlaced, OrderFulfilled, OrderCancelled:
	default:
		return Page[Order]{}, invalid("status", "must be placed, fulfilled or cancelled")
	}
	q := strings.TrimSpace(f.Query)
	var number *int64
	if n, ok := parseNumber(q); ok {
		number = &n
	}
	var from, to *time.Time
	if !f.From.IsZero() {
		from = &f.From
	}
	if !f.To.IsZero() {
		to = &f.To
	}
	const where = ` WHERE ($1 = '' OR o.status = $1)
		AND ($2 = '' OR strpos(lower(o.customer_name), lower($2)) > 0 OR strpos(lower(o.customer_email), lower($2)) > 0
			OR o.number = $3)
		AND ($4::timestamptz IS NULL OR o.created_at >= $4) AND ($5::timestamptz IS NULL OR o.created_at < $5)
		AND o.number IS NOT NULL`
	args := []any{status, q, number, from, to}
	rows, err := s.db.Query(ctx, `SELECT `+orderCols+`, count(*) OVER () FROM orders o`+where+`
		ORDER BY o.created_at DESC, o.number DESC LIMIT $6 OFFSET $7`, append(args, perPage, (page-1)*perPage)...)
	if err != nil {
		return Page[Order]{}, dbErr("orders", err)
	}
	res := Page[Order]{Page: page, PerPage: perPage, Items: []Order{}}
	for rows.Next() {
		o, err := scanOrder(rows, &res.Total)
		if err != nil {
			rows.Close()
			return Page[Order]{}, dbErr("orders", err)
		}
		res.Items = append(res.Items, o)
	}
	if err := rows.Err(); err != nil {
		return Page[Order]{}, dbErr("orders", err)
	}
	if len(res.Items) == 0 && page > 1 {
		if err := s.db.QueryRow(ctx, `SELECT count(*) FROM orders o`+where, args...).Scan(&res.Total); err != nil {
			return Page[Order]{}, dbErr("orders", err)
		}
	}
	return res, nil
}

// Order returns one order with its lines.
func (s *Service) Order(ctx context.Context, id string) (Order, error) {
	oid, ok := parseID(id)
	if !ok {
		return Order{}, ErrNotFound
	}
	o, err := scanOrder(s.db.QueryRow(ctx, `SELECT `+orderCols+` FROM orders o WHERE o.id = $1`, oid))
	return o, dbErr("order", err)
}

// notPlaced tells apart an order in another state (ErrConflict) and none.
func notPlaced(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, id string) error {
	var status string
	err := q.QueryRow(ctx, `SELECT status FROM orders WHERE id = $1`, id).Scan(&status)
	if err != nil {
		return err
	}
	return fmt.Errorf("store: the order is %s, not placed: %w", status, ErrConflict)
}

// Fulfil marks a placed order fulfilled (ErrConflict otherwise).
func (s *Service) Fulfil(ctx context.Context, actor User, id string) (Order, error) {
	if err := staffOnly(actor); err != nil {
		return Order{}, err
	}
	oid, ok := parseID(id)
	if !ok {
		return Order{}, ErrNotFound
	}
	o, err := scanOrder(s.db.QueryRow(ctx, `
		WITH o AS (UPDATE orders SET status = 'fulfilled', updated_at = now()
			WHERE id = $1 AND status = 'placed' RETURNING *)
		SELECT `+orderCols+` FROM o`, oid))
	if errors.Is(err, pgx.ErrNoRows) {
		err = notPlaced(ctx, s.db, oid)
	}
	return o, dbErr("fulfil order", err)
}

// Cancel cancels a placed order and returns its stock through the ledger
// (return movements), in one transaction (ErrConflict if not placed).
func (s *Service) Cancel(ctx context.Context, actor User, id string) (Order, error) {
	if err := staffOnly(actor); err != nil {
		return Order{}, err
	}
	oid, ok := parseID(id)
	if !ok {
		return Order{}, ErrNotFound
	}
	var o Order
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE orders SET status = 'cancelled', updated_at = now()
			WHERE id = $1 AND status = 'placed'`, oid)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notPlaced(ctx, tx, oid)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO stock_movements (product_id, kind, quantity, order_id, created_by)
			SELECT product_id, 'return', quantity, order_id, $2 FROM order_lines
			WHERE order_id = $1 ORDER BY product_id`, oid, actorRef(actor)); err != nil {
			return err
		}
		o, err = scanOrder(tx.QueryRow(ctx, `SELECT `+orderCols+` FROM orders o WHERE o.id = $1`, oid))
		return err
	})
	if err != nil {
		return Order{}, dbErr("cancel order", err)
	}
	s.productsChanged(ctx)
	return o, nil
}

// Summary is a store's sales over a period.
type Summary struct {
	Orders       int
	RevenueCents int64
	Currency     string
}

// SalesSummary sums the non-cancelled orders placed in [from, to).
func (s *Service) SalesSummary(ctx context.Context, from, to time.Time) (Summary, error) {
	sum := Summary{Currency: s.opt.Currency}
	err := s.db.QueryRow(ctx, `SELECT count(*), coalesce(sum(total_cents), 0)::bigint FROM orders
		WHERE status <> 'cancelled' AND number IS NOT NULL AND created_at >= $1 AND created_at < $2`,
		from, to).Scan(&sum.Orders, &sum.RevenueCents)
	if err != nil {
		return Summary{}, dbErr("sales summary", err)
	}
	return sum, nil
}

var countryPattern = regexp.MustCompile(`^[A-Z]{2}$`)

// Countries lists the platform's countries by name: the same query in
// every model (a synchronized copy in stores with their own database).
func (s *Service) Countries(ctx context.Context) ([]Country, error) {
	rows, err := s.db.Query(ctx, `SELECT code, name FROM global.countries ORDER BY name`)
	if err != nil {
		return nil, dbErr("countries", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Country])
}
