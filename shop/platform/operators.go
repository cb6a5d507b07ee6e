package platform

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/crypto/bcrypt"

	"github.com/landlordhq/landlord/shop/store"
)

// MaxOperatorSession bounds the lifetime of an operator session.
const MaxOperatorSession = 30 * 24 * time.Hour

// Operator is a person who runs the platform (support, billing,
// engineering): they see every store through the operator tools.
type Operator struct {
	ID, Email, Name string
}

// CreateOperator adds an operator. Bad input is a *store.ValidationError
// (fields email, name, password); an email that is already an operator's
// is store.ErrConflict.
func (p *Platform) CreateOperator(ctx context.Context, email, name, password string) (Operator, error) {
	bad := map[string]string{}
	email, msg := checkEmail(email)
	if msg != "" {
		bad["email"] = msg
	}
	name, msg = checkName(name)
	if msg != "" {
		bad["name"] = msg
	}
	if msg := checkPassword(password); msg != "" {
		bad["password"] = msg
	}
	if len(bad) > 0 {
		return Operator{}, &store.ValidationError{Fields: bad}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), p.cfg.PasswordCost)
	if err != nil {
		return Operator{}, fmt.Errorf("create operator: %w", err)
	}
	op := Operator{Email: email, Name: name}
	err = p.db.QueryRow(ctx, `INSERT INTO shop.operators (email, name, password_hash) VALUES ($1, $2, $3) RETURNING id::text`,
		email, name, string(hash)).Scan(&op.ID)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return Operator{}, fmt.Errorf("operator %s: %w", email, store.ErrConflict)
		}
		return Operator{}, fmt.Errorf("create operator: %w", err)
	}
	return op, nil
}

// AuthenticateOperator checks an operator's email and password:
// store.ErrBadCredentials if either is wrong. An unknown email costs the
// same bcrypt comparison as a known one.
func (p *Platform) AuthenticateOperator(ctx context.Context, email, password string) (Operator, error) {
	email, _ = checkEmail(email)
	var op Operator
	var hash string
	err := p.db.QueryRow(ctx, `SELECT id::text, email, name, password_hash FROM shop.operators WHERE email = $1`, email).
		Scan(&op.ID, &op.Email, &op.Name, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		_ = bcrypt.CompareHashAndPassword(p.fake, []byte(password))
		return Operator{}, store.ErrBadCredentials
	}
	if err != nil {
		return Operator{}, fmt.Errorf("authenticate operator: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return Operator{}, store.ErrBadCredentials
	}
	return op, nil
}

// NewOperatorSession starts a session of op lasting ttl (at most
// MaxOperatorSession) and returns its secret token, which is stored only as
// a SHA-256 hash. The operator's expired sessions are removed on the way.
func (p *Platform) NewOperatorSession(ctx context.Context, op Operator, ttl time.Duration) (string, error) {
	if ttl <= 0 || ttl > MaxOperatorSession {
		return "", fmt.Errorf("operator session: ttl %s must be positive and at most %s", ttl, MaxOperatorSession)
	}
	if op.ID == "" {
		return "", errors.New("operator session: no operator")
	}
	token := newToken()
	hash := tokenHash(token)
	err := pgx.BeginFunc(ctx, p.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM shop.operator_sessions WHERE operator_id = $1 AND expires_at <= now()`, op.ID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO shop.operator_sessions (token_hash, operator_id, expires_at)
			VALUES ($1, $2, now() + $3::interval)`, hash, op.ID, ttl)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("operator session for %s: %w", op.Email, err)
	}
	return token, nil
}

// OperatorSession returns the operator of a live session token;
// store.ErrNotFound when the token is unknown or expired.
func (p *Platform) OperatorSession(ctx context.Context, token string) (Operator, error) {
	if token == "" || len(token) > 100 {
		return Operator{}, fmt.Errorf("operator session: %w", store.ErrNotFound)
	}
	var op Operator
	err := p.db.QueryRow(ctx, `SELECT o.id::text, o.email, o.name
		FROM shop.operator_sessions s JOIN shop.operators o ON o.id = s.operator_id
		WHERE s.token_hash = $1 AND s.expires_at > now()`, tokenHash(token)).Scan(&op.ID, &op.Email, &op.Name)
	if errors.Is(err, pgx.ErrNoRows) {
		return Operator{}, fmt.Errorf("operator session: %w", store.ErrNotFound)
	}
	if err != nil {
		return Operator{}, fmt.Errorf("operator session: %w", err)
	}
	return op, nil
}

// EndOperatorSession ends the session of token (sign out); an unknown token
// is not an error.
func (p *Platform) EndOperatorSession(ctx context.Context, token string) error {
	if _, err := p.db.Exec(ctx, `DELETE FROM shop.operator_sessions WHERE token_hash = $1`, tokenHash(token)); err != nil {
		return fmt.Errorf("end operator session: %w", err)
	}
	return nil
}

// newToken returns 32 random bytes, base64url-encoded.
func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
