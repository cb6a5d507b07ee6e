package store

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"time"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

func mustSub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}

var errUnimplemented = errors.New("store: not implemented yet")

// Options are the settings of New.
type Options struct {
	// Currency of the store's prices; default "EUR".
	Currency string
	// OnProductsChanged, when set, is called after a committed write to
	// products or stock of the store in ctx (cache invalidation).
	OnProductsChanged func(ctx context.Context)
	// OnOutbox, when set, is called after a commit that wrote outbox events
	// (so a drainer can move them to the job queue at once).
	OnOutbox func(ctx context.Context)
	// Now returns the time; default time.Now.
	Now func() time.Time
}

// Service is the store of the tenant in each call's context.
type Service struct {
	db  DB
	opt Options
}

// New returns the store service running on db.
func New(db DB, opt Options) *Service { return &Service{db: db, opt: opt} }

// CreateOwner adds the store's first user, an active owner with a password.
func (s *Service) CreateOwner(ctx context.Context, email, name, password string) (User, error) {
	return User{}, errUnimplemented
}

// Authenticate checks an email and password: ErrBadCredentials if either is wrong
// or the user is not active.
func (s *Service) Authenticate(ctx context.Context, email, password string) (User, error) {
	return User{}, errUnimplemented
}

// NewSession starts a session for user; impersonatedBy/reason are set when a
// platform operator acts as the user. It returns the secret token for the cookie.
func (s *Service) NewSession(ctx context.Context, userID string, ttl time.Duration, impersonatedBy, reason string) (string, error) {
	return "", errUnimplemented
}

// SessionOf returns the live session of a token, ErrNotFound if none.
func (s *Service) SessionOf(ctx context.Context, token string) (Session, error) {
	return Session{}, errUnimplemented
}

// EndSession ends the session of token (sign out).
func (s *Service) EndSession(ctx context.Context, token string) error { return errUnimplemented }

// Users lists the store's users, owners first.
func (s *Service) Users(ctx context.Context) ([]User, error) { return nil, errUnimplemented }

// User returns one user.
func (s *Service) User(ctx context.Context, id string) (User, error) { return User{}, errUnimplemented }

// InviteUser invites email with role; actor must be an owner.
func (s *Service) InviteUser(ctx context.Context, actor User, email, role string, ttl time.Duration) (Invite, error) {
	return Invite{}, errUnimplemented
}

// AcceptInvite sets the invited user's name and password and activates
// them; the token works once.
func (s *Service) AcceptInvite(ctx context.Context, token, name, password string) (User, error) {
	return User{}, errUnimplemented
}

// SetRole changes a user's role; actor must be an owner, and the last owner
// stays an owner (ErrConflict).
func (s *Service) SetRole(ctx context.Context, actor User, userID, role string) (User, error) {
	return User{}, errUnimplemented
}

// RemoveUser removes a user with their sessions and tokens; actor must be an
// owner; the last owner cannot be removed (ErrConflict).
func (s *Service) RemoveUser(ctx context.Context, actor User, userID string) error {
	return errUnimplemented
}

// CreateAPIToken makes a token for actor and returns its secret once.
func (s *Service) CreateAPIToken(ctx context.Context, actor User, name string) (string, APIToken, error) {
	return "", APIToken{}, errUnimplemented
}

// APITokens lists actor's tokens (an owner sees all).
func (s *Service) APITokens(ctx context.Context, actor User) ([]APIToken, error) {
	return nil, errUnimplemented
}

// RevokeAPIToken deletes a token; its user or an owner may.
func (s *Service) RevokeAPIToken(ctx context.Context, actor User, id string) error {
	return errUnimplemented
}

// TokenUser returns the active user of an API token secret, ErrNotFound if none.
func (s *Service) TokenUser(ctx context.Context, secret string) (User, error) {
	return User{}, errUnimplemented
}

// CreateProduct adds a product with zero stock.
func (s *Service) CreateProduct(ctx context.Context, actor User, in ProductInput) (Product, error) {
	return Product{}, errUnimplemented
}

// UpdateProduct replaces a product's fields.
func (s *Service) UpdateProduct(ctx context.Context, actor User, id string, in ProductInput) (Product, error) {
	return Product{}, errUnimplemented
}

// Product returns one product with its stock.
func (s *Service) Product(ctx context.Context, id string) (Product, error) {
	return Product{}, errUnimplemented
}

// Products lists products, newest first.
func (s *Service) Products(ctx context.Context, f ProductFilter) (Page[Product], error) {
	return Page[Product]{}, errUnimplemented
}

// MoveStock records a receipt (quantity > 0) or an adjustment (quantity != 0)
// and returns the product with its new level; a level below zero is
// ErrOutOfStock, refused by the database.
func (s *Service) MoveStock(ctx context.Context, actor User, productID, kind string, quantity int, note string) (Product, error) {
	return Product{}, errUnimplemented
}

// Movements lists a product's stock ledger, newest first.
func (s *Service) Movements(ctx context.Context, productID string, page, perPage int) (Page[Movement], error) {
	return Page[Movement]{}, errUnimplemented
}

// Checkout places an order and takes its stock in one transaction. created
// is false when the key had already placed an order (returned unchanged).
// A line over the stock fails the whole order with ErrOutOfStock.
func (s *Service) Checkout(ctx context.Context, in CheckoutInput) (o Order, created bool, err error) {
	return Order{}, false, errUnimplemented
}

// Orders lists orders, newest first.
func (s *Service) Orders(ctx context.Context, f OrderFilter) (Page[Order], error) {
	return Page[Order]{}, errUnimplemented
}

// Order returns one order with its lines.
func (s *Service) Order(ctx context.Context, id string) (Order, error) {
	return Order{}, errUnimplemented
}

// Fulfil marks a placed order fulfilled (ErrConflict otherwise).
func (s *Service) Fulfil(ctx context.Context, actor User, id string) (Order, error) {
	return Order{}, errUnimplemented
}

// Cancel cancels a placed order and returns its stock through the ledger
// (return movements), in one transaction (ErrConflict if not placed).
func (s *Service) Cancel(ctx context.Context, actor User, id string) (Order, error) {
	return Order{}, errUnimplemented
}

// Summary is a store's sales over a period.
type Summary struct {
	Orders       int
	RevenueCents int64
	Currency     string
}

// SalesSummary sums the non-cancelled orders placed in [from, to).
func (s *Service) SalesSummary(ctx context.Context, from, to time.Time) (Summary, error) {
	return Summary{}, errUnimplemented
}

// DrainOutbox hands the store's outbox events to fn, oldest first, up to
// limit, and deletes each one fn accepted, in one transaction per batch.
func DrainOutbox(ctx context.Context, db DB, limit int, fn func(ctx context.Context, events []OutboxEvent) error) (int, error) {
	return 0, errUnimplemented
}

// Notify adds a notification for the store's staff.
func (s *Service) Notify(ctx context.Context, kind, message string) (Notification, error) {
	return Notification{}, errUnimplemented
}

// Notifications lists the newest notifications, at most limit.
func (s *Service) Notifications(ctx context.Context, limit int) ([]Notification, error) {
	return nil, errUnimplemented
}
