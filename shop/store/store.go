// Package store is one shop's business: its products, stock, staff users,
// sessions, API tokens and orders. Every function runs as the tenant in its
// context through a landlord handle, with the same SQL whatever model the
// store lives in (shared tables, own schema, own database); the database
// keeps stores apart, not this package.
package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is what the store runs its SQL through: *landlord.Handle for a
// request's store, or the handle of an admin scope (Admin.Tenant).
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Migrations returns the store's tenant-table migrations (NNN_name.up.sql),
// the set landlord.Open is given.
func Migrations() fs.FS { return mustSub(migrationFiles, "migrations") }

// Roles of a store user.
const (
	RoleOwner = "owner" // manages staff, tokens and everything else
	RoleStaff = "staff" // products, stock and orders
)

// Kinds of stock movement.
const (
	MoveReceipt    = "receipt"    // goods in (positive)
	MoveAdjustment = "adjustment" // a count corrected (either sign)
	MoveSale       = "sale"       // taken by an order (negative)
	MoveReturn     = "return"     // given back by a cancelled order (positive)
)

// Order states.
const (
	OrderPlaced    = "placed"
	OrderFulfilled = "fulfilled"
	OrderCancelled = "cancelled"
)

// Errors. Handlers map them to statuses: ErrNotFound 404, ErrForbidden 403,
// *ValidationError, ErrOutOfStock and ErrConflict 4xx with their message.
var (
	ErrNotFound       = errors.New("not found")
	ErrForbidden      = errors.New("not allowed for this user")
	ErrBadCredentials = errors.New("wrong email or password")
	ErrOutOfStock     = errors.New("not enough stock")
	ErrConflict       = errors.New("conflicts with the current state")
	// ErrReadOnly: the store is read-only for now (the database refused the
	// write, SQLSTATE 25006); browsing works.
	ErrReadOnly = errors.New("the store is read-only at the moment: browsing works, changes are refused")
)

// ValidationError names each bad field of an input and what is wrong with
// it, for inline messages; nothing was written.
type ValidationError struct {
	Fields map[string]string // field name (as in the form/JSON) -> message
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid input:")
	for k, v := range e.Fields {
		fmt.Fprintf(&b, " %s: %s;", k, v)
	}
	return strings.TrimSuffix(b.String(), ";")
}

// User is a store's staff member.
type User struct {
	ID        string // uuid
	Email     string // lower case
	Name      string
	Role      string // RoleOwner or RoleStaff
	Active    bool   // false until an invited user has accepted
	CreatedAt time.Time
}

// Session is a signed-in user's session.
type Session struct {
	User User
	// ImpersonatedBy is the platform operator acting as User, "" when the
	// user signed in themself; Reason is the operator's stated reason.
	ImpersonatedBy string
	Reason         string
	ExpiresAt      time.Time
}

// Invite is a pending invitation; Token goes into the one-time link and is
// stored only as a hash.
type Invite struct {
	User  User
	Token string
}

// APIToken is a user's token for the JSON API; the secret is shown once.
type APIToken struct {
	ID        string
	UserID    string
	Name      string
	CreatedAt time.Time
	LastUsed  *time.Time
}

// Product is a thing the store sells. Price is in minor units (cents).
type Product struct {
	ID                string
	SKU               string
	Title             string
	Description       string
	PriceCents        int64
	Currency          string // ISO 4217, the store's
	Active            bool
	Stock             int // on hand
	LowStockThreshold int
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// ProductInput is a product to create or the new values of one.
type ProductInput struct {
	SKU               string
	Title             string
	Description       string
	PriceCents        int64
	Active            bool
	LowStockThreshold int
}

// ProductFilter selects products; Page is 1-based, PerPage defaults to 20
// and is at most 100.
type ProductFilter struct {
	Query      string // case-insensitive substring of the title
	ActiveOnly bool
	Page       int
	PerPage    int
}

// Movement is one entry of a product's stock ledger.
type Movement struct {
	ID        int64
	ProductID string
	Kind      string // MoveReceipt, ...
	Quantity  int    // signed
	OrderID   string // for sales and returns
	Note      string
	CreatedAt time.Time
}

// Line is one product and quantity of a checkout.
type Line struct {
	ProductID string
	Quantity  int
}

// CheckoutInput is a customer's checkout. Key is the idempotency key
// (8 to 100 characters of [A-Za-z0-9_-]): the same key returns the first
// order instead of placing another.
type CheckoutInput struct {
	Key     string
	Name    string
	Email   string
	Address string
	Country string // ISO 3166 alpha-2 code of the platform's countries; optional
	Lines   []Line
}

// Country is one of the platform's countries (global.countries).
type Country struct {
	Code, Name string
}

// Order is a placed order with its lines.
type Order struct {
	ID            string
	Number        int64 // per store, from 1
	Status        string
	CustomerName  string
	CustomerEmail string
	Address       string
	Country       string // "" when the customer gave none
	TotalCents    int64
	Currency      string
	Payment       string // "test": no payment provider
	Lines         []OrderLine
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// OrderLine is one line of an order, priced when it was placed.
type OrderLine struct {
	ProductID  string
	SKU        string
	Title      string
	Quantity   int
	PriceCents int64
}

// OrderFilter selects orders; paging as ProductFilter.
type OrderFilter struct {
	Status  string    // "" for all
	Query   string    // customer name or email, or order number
	From    time.Time // created at or after; zero for no bound
	To      time.Time // created before; zero for no bound
	Page    int
	PerPage int
}

// Page is one page of a list.
type Page[T any] struct {
	Items   []T
	Page    int
	PerPage int
	Total   int
}

// Pages is the number of pages.
func (p Page[T]) Pages() int {
	if p.PerPage <= 0 || p.Total == 0 {
		return 1
	}
	return (p.Total + p.PerPage - 1) / p.PerPage
}

// OutboxEvent is an event written in the same transaction as the change
// that caused it (a sale that took a product under its threshold).
type OutboxEvent struct {
	ID        int64
	Kind      string // "low_stock"
	Payload   []byte // JSON
	CreatedAt time.Time
}

// Notification is a message for the store's staff in the back office (a
// low-stock alert, a daily sales summary).
type Notification struct {
	ID        int64
	Kind      string // "low_stock", "daily_summary"
	Message   string
	CreatedAt time.Time
}
