package store

import (
	"context"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
)

// Limits of product and stock inputs.
const (
	maxPriceCents    = 10_000_000_000 // 100,000,000.00
	maxThreshold     = 1_000_000
	maxMoveQuantity  = 1_000_000
	productFrom      = `products p LEFT JOIN stock_levels l ON l.tenant_id = p.tenant_id AND l.product_id = p.id`
	productCols      = `p.id::text, p.sku, p.title, p.description, p.price_cents, p.active, coalesce(l.on_hand, 0), p.low_stock_threshold, p.created_at, p.updated_at`
	productReturning = `id::text, sku, title, description, price_cents, active, 0, low_stock_threshold, created_at, updated_at`
)

func (s *Service) scanProduct(row pgx.Row, extra ...any) (Product, error) {
	var p Product
	dest := append([]any{&p.ID, &p.SKU, &p.Title, &p.Description, &p.PriceCents, &p.Active,
		&p.Stock, &p.LowStockThreshold, &p.CreatedAt, &p.UpdatedAt}, extra...)
	err := row.Scan(dest...)
	p.Currency = s.opt.Currency
	return p, err
}

// clean trims in and checks it.
func (in ProductInput) clean() (ProductInput, error) {
	in.SKU = strings.TrimSpace(in.SKU)
	in.Title = strings.TrimSpace(in.Title)
	in.Description = strings.TrimSpace(in.Description)
	f := fields{}
	switch {
	case in.SKU == "":
		f.add("sku", "is required")
	case !skuPattern.MatchString(in.SKU):
		f.add("sku", "must be 1 to 64 letters, digits, dots, underscores or hyphens")
	}
	f.text("title", in.Title, 1, 200)
	f.text("description", in.Description, 0, 5000)
	if in.PriceCents < 0 || in.PriceCents > maxPriceCents {
		f.add("price_cents", "must be between 0 and 100000000.00")
	}
	if in.LowStockThreshold < 0 || in.LowStockThreshold > maxThreshold {
		f.add("low_stock_threshold", "must be between 0 and 1000000")
	}
	return in, f.err()
}

// skuTaken is the ValidationError of a SKU another product has.
func skuTaken(err error) error {
	if isConstraint(err, pgerrcode.UniqueViolation, "products_sku_key") {
		return invalid("sku", "is already used by another product")
	}
	return err
}

// CreateProduct adds a product with zero stock.
func (s *Service) CreateProduct(ctx context.Context, actor User, in ProductInput) (Product, error) {
	if err := staffOnly(actor); err != nil {
		return Product{}, err
	}
	in, err := in.clean()
	if err != nil {
		return Product{}, err
	}
	p, err := s.scanProduct(s.db.QueryRow(ctx, `
		INSERT INTO products (sku, title, description, price_cents, active, low_stock_threshold)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+productReturning,
		in.SKU, in.Title, in.Description, in.PriceCents, in.Active, in.LowStockThreshold))
	if err != nil {
		return Product{}, dbErr("create product", skuTaken(err))
	}
	s.productsChanged(ctx)
	return p, nil
}

// UpdateProduct replaces a product's fields.
func (s *Service) UpdateProduct(ctx context.Context, actor User, id string, in ProductInput) (Product, error) {
	if err := staffOnly(actor); err != nil {
		return Product{}, err
	}
	pid, ok := parseID(id)
	if !ok {
		return Product{}, ErrNotFound
	}
	in, err := in.clean()
	if err != nil {
		return Product{}, err
	}
	p, err := s.scanProduct(s.db.QueryRow(ctx, `
		WITH p AS (
			UPDATE products SET sku = $2, title = $3, description = $4, price_cents = $5,
				active = $6, low_stock_threshold = $7, updated_at = now()
			WHERE id = $1 RETURNING *)
		SELECT `+productCols+` FROM p LEFT JOIN stock_levels l ON l.tenant_id = p.tenant_id AND l.product_id = p.id`,
		pid, in.SKU, in.Title, in.Description, in.PriceCents, in.Active, in.LowStockThreshold))
	if err != nil {
		return Product{}, dbErr("update product", skuTaken(err))
	}
	s.productsChanged(ctx)
	return p, nil
}

// Product returns one product with its stock.
func (s *Service) Product(ctx context.Context, id string) (Product, error) {
	pid, ok := parseID(id)
	if !ok {
		return Product{}, ErrNotFound
	}
	p, err := s.scanProduct(s.db.QueryRow(ctx, `SELECT `+productCols+` FROM `+productFrom+` WHERE p.id = $1`, pid))
	return p, dbErr("product", err)
}

// Products lists products, newest first.
func (s *Service) Products(ctx context.Context, f ProductFilter) (Page[Product], error) {
	page, perPage := paging(f.Page, f.PerPage)
	q := strings.TrimSpace(f.Query)
	const where = ` WHERE ($1 = '' OR strpos(lower(p.title), lower($1)) > 0) AND (NOT $2 OR p.active)`
	rows, err := s.db.Query(ctx, `SELECT `+productCols+`, count(*) OVER () FROM `+productFrom+where+`
		ORDER BY p.created_at DESC, p.id DESC LIMIT $3 OFFSET $4`,
		q, f.ActiveOnly, perPage, (page-1)*perPage)
	if err != nil {
		return Page[Product]{}, dbErr("products", err)
	}
	res := Page[Product]{Page: page, PerPage: perPage, Items: []Product{}}
	for rows.Next() {
		p, err := s.scanProduct(rows, &res.Total)
		if err != nil {
			rows.Close()
			return Page[Product]{}, dbErr("products", err)
		}
		res.Items = append(res.Items, p)
	}
	if err := rows.Err(); err != nil {
		return Page[Product]{}, dbErr("products", err)
	}
	if len(res.Items) == 0 && page > 1 { // past the last page: count alone
		err := s.db.QueryRow(ctx, `SELECT count(*) FROM products p`+where, q, f.ActiveOnly).Scan(&res.Total)
		if err != nil {
			return Page[Product]{}, dbErr("products", err)
		}
	}
	return res, nil
}

// MoveStock records a receipt (quantity > 0) or an adjustment (quantity != 0)
// and returns the product with its new level; a level below zero is
// ErrOutOfStock, refused by the database.
func (s *Service) MoveStock(ctx context.Context, actor User, productID, kind string, quantity int, note string) (Product, error) {
	if err := staffOnly(actor); err != nil {
		return Product{}, err
	}
	pid, ok := parseID(productID)
	if !ok {
		return Product{}, ErrNotFound
	}
	f := fields{}
	kind = strings.TrimSpace(kind)
	note = strings.TrimSpace(note)
	switch kind {
	case MoveReceipt:
		if quantity <= 0 {
			f.add("quantity", "must be more than 0 for a receipt")
		}
	case MoveAdjustment:
		if quantity == 0 {
			f.add("quantity", "must not be 0")
		}
	default:
		f.add("kind", "must be receipt or adjustment")
	}
	if quantity > maxMoveQuantity || quantity < -maxMoveQuantity {
		f.add("quantity", "must be between -1000000 and 1000000")
	}
	f.text("note", note, 0, 500)
	if err := f.err(); err != nil {
		return Product{}, err
	}
	actorID := actorRef(actor)
	var p Product
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO stock_movements (product_id, kind, quantity, note, created_by)
			SELECT id, $2, $3, $4, $5 FROM products WHERE id = $1`, pid, kind, quantity, note, actorID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		p, err = s.scanProduct(tx.QueryRow(ctx, `SELECT `+productCols+` FROM `+productFrom+` WHERE p.id = $1`, pid))
		return err
	})
	if err != nil {
		return Product{}, dbErr("move stock", err)
	}
	s.productsChanged(ctx)
	return p, nil
}

// Movements lists a product's stock ledger, newest first.
func (s *Service) Movements(ctx context.Context, productID string, page, perPage int) (Page[Movement], error) {
	pid, ok := parseID(productID)
	if !ok {
		return Page[Movement]{}, ErrNotFound
	}
	page, perPage = paging(page, perPage)
	rows, err := s.db.Query(ctx, `
		SELECT m.id, m.product_id::text, m.kind, m.quantity, coalesce(m.order_id::text, ''), m.note, m.created_at,
			count(*) OVER ()
		FROM stock_movements m WHERE m.product_id = $1
		ORDER BY m.id DESC LIMIT $2 OFFSET $3`, pid, perPage, (page-1)*perPage)
	if err != nil {
		return Page[Movement]{}, dbErr("movements", err)
	}
	res := Page[Movement]{Page: page, PerPage: perPage, Items: []Movement{}}
	var m Movement
	_, err = pgx.ForEachRow(rows, []any{&m.ID, &m.ProductID, &m.Kind, &m.Quantity, &m.OrderID, &m.Note, &m.CreatedAt, &res.Total},
		func() error { res.Items = append(res.Items, m); return nil })
	if err != nil {
		return Page[Movement]{}, dbErr("movements", err)
	}
	if len(res.Items) == 0 {
		// No entries on this page: say whether the product exists, and count.
		var exists bool
		err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT FROM products WHERE id = $1),
			(SELECT count(*) FROM stock_movements WHERE product_id = $1)`, pid).Scan(&exists, &res.Total)
		if err != nil {
			return Page[Movement]{}, dbErr("movements", err)
		}
		if !exists {
			return Page[Movement]{}, ErrNotFound
		}
	}
	return res, nil
}
