package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"
)

//go:embed migrations/*.sql global/*.sql
var migrationFiles embed.FS

// Global returns the platform-wide tables the store's tables reference
// (currencies, countries), the set landlord.Config.Global is given.
func Global() fs.FS { return mustSub(migrationFiles, "global") }

func mustSub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}

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
	// Now returns the time; default time.Now. Session, invitation and API
	// token times are measured with it.
	Now func() time.Time
	// PasswordCost is the bcrypt cost of new password hashes; default
	// bcrypt.DefaultCost (tests use bcrypt.MinCost).
	PasswordCost int
}

// Service is the store of the tenant in each call's context.
type Service struct {
	db  DB
	opt Options

	dummyOnce sync.Once
	dummy     []byte // a hash compared when an email is unknown
}

// New returns the store service running on db.
func New(db DB, opt Options) *Service {
	if opt.Currency == "" {
		opt.Currency = "EUR"
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.PasswordCost == 0 {
		opt.PasswordCost = bcrypt.DefaultCost
	}
	return &Service{db: db, opt: opt}
}

// WithDB returns a service with the same options that runs its SQL on db
// instead: the handle of an admin scope (Admin.Tenant), or a wrapper that
// makes every transaction read-only.
func (s *Service) WithDB(db DB) *Service { return &Service{db: db, opt: s.opt} }

// tx runs fn in one transaction of the store in ctx.
func (s *Service) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return inTx(ctx, s.db, fn)
}

func inTx(ctx context.Context, db DB, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, db, pgx.TxOptions{}, fn)
}

// now is the service's clock.
func (s *Service) now() time.Time { return s.opt.Now() }

// productsChanged tells the OnProductsChanged hook about a committed write.
func (s *Service) productsChanged(ctx context.Context) {
	if s.opt.OnProductsChanged != nil {
		s.opt.OnProductsChanged(ctx)
	}
}

// outboxWritten tells the OnOutbox hook that committed events wait.
func (s *Service) outboxWritten(ctx context.Context) {
	if s.opt.OnOutbox != nil {
		s.opt.OnOutbox(ctx)
	}
}

// newSecret returns 32 random bytes, base64url without padding.
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashSecret is how secrets are stored: their SHA-256.
func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// hashPassword returns the bcrypt hash of a validated password.
func (s *Service) hashPassword(password string) ([]byte, error) {
	return bcrypt.GenerateFromPassword([]byte(password), s.opt.PasswordCost)
}

// dummyHash is a hash of the service's cost to compare against when the
// email is unknown, so that Authenticate takes the same time either way.
func (s *Service) dummyHash() []byte {
	s.dummyOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte(newSecret()[:40]), s.opt.PasswordCost)
		if err != nil { // only an invalid cost; fall back to a fixed valid hash
			h, _ = bcrypt.GenerateFromPassword([]byte(newSecret()[:40]), bcrypt.DefaultCost)
		}
		s.dummy = h
	})
	return s.dummy
}

// paging applies the paging defaults: page from 1 (to a million), 20 per
// page, at most 100.
func paging(page, perPage int) (int, int) {
	if page < 1 {
		page = 1
	}
	if page > 1_000_000 {
		page = 1_000_000
	}
	if perPage <= 0 {
		perPage = 20
	}
	if perPage > 100 {
		perPage = 100
	}
	return page, perPage
}
