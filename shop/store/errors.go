package store

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// dbErr turns an error of the database into the store's: a write refused
// because the store is read-only is ErrReadOnly, the stock level's CHECK is
// ErrOutOfStock, no row is ErrNotFound; anything else is wrapped with what
// the store was doing.
func dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrReadOnly) || errors.Is(err, ErrOutOfStock) ||
		errors.Is(err, ErrConflict) || errors.Is(err, ErrForbidden) || errors.Is(err, ErrBadCredentials) {
		return err
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == pgerrcode.ReadOnlySQLTransaction:
			return ErrReadOnly
		case pe.Code == pgerrcode.CheckViolation && pe.ConstraintName == "stock_never_negative":
			return ErrOutOfStock
		}
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// isConstraint reports whether err is the database refusing a write by the
// constraint called name with SQLSTATE code.
func isConstraint(err error, code, name string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code && pe.ConstraintName == name
}

// fields collects the problems of an input, one message per field.
type fields map[string]string

// add records msg for field unless the field already has one.
func (f fields) add(field, msg string) {
	if _, ok := f[field]; !ok {
		f[field] = msg
	}
}

// err returns the *ValidationError of f, nil when f is empty.
func (f fields) err() error {
	if len(f) == 0 {
		return nil
	}
	return &ValidationError{Fields: f}
}

// invalid returns a *ValidationError for one field.
func invalid(field, msg string) error { return &ValidationError{Fields: map[string]string{field: msg}} }

// text checks the length of an already trimmed text in characters.
func (f fields) text(field, v string, min, max int) {
	n := utf8.RuneCountInString(v)
	switch {
	case !utf8.ValidString(v):
		f.add(field, "is not valid text")
	case n < min && min == 1:
		f.add(field, "is required")
	case n < min:
		f.add(field, fmt.Sprintf("must have at least %d characters", min))
	case n > max:
		f.add(field, fmt.Sprintf("must have at most %d characters", max))
	}
}

// email normalizes an email address (trimmed, lower case) and checks that
// it looks like one.
func (f fields) email(field, v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	switch {
	case v == "":
		f.add(field, "is required")
	case len(v) > 254:
		f.add(field, "must have at most 254 characters")
	case !looksLikeEmail(v):
		f.add(field, "is not a valid email address")
	}
	return v
}

func looksLikeEmail(v string) bool {
	a, err := mail.ParseAddress(v)
	if err != nil || a.Address != v || a.Name != "" {
		return false
	}
	at := strings.LastIndexByte(v, '@')
	return at > 0 && at < len(v)-1 && !strings.ContainsAny(v, " \t\r\n<>")
}

// Passwords are 8 to 72 bytes: bcrypt ignores what comes after 72.
const (
	minPassword = 8
	maxPassword = 72
)

func (f fields) password(field, v string) {
	switch {
	case len(v) < minPassword:
		f.add(field, fmt.Sprintf("must have at least %d characters", minPassword))
	case len(v) > maxPassword:
		f.add(field, fmt.Sprintf("must have at most %d bytes", maxPassword))
	}
}

func (f fields) role(field, v string) {
	if v != RoleOwner && v != RoleStaff {
		f.add(field, "must be owner or staff")
	}
}

var (
	skuPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	keyPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{8,100}$`)
)

// parseID returns the canonical form of a uuid, ok false when s is none.
func parseID(s string) (string, bool) {
	u, err := uuid.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// parseNumber returns s as an order number ("42" or "#42").
func parseNumber(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	return n, err == nil && n > 0
}
