package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"
)

// userCols are the columns scanUser reads, of users aliased u.
const userCols = `u.id::text, u.email, u.name, u.role, u.password_hash IS NOT NULL, u.created_at`

func scanUser(row pgx.Row, extra ...any) (User, error) {
	var u User
	dest := append([]any{&u.ID, &u.Email, &u.Name, &u.Role, &u.Active, &u.CreatedAt}, extra...)
	err := row.Scan(dest...)
	return u, err
}

// Default lifetimes when a caller passes none.
const (
	defaultSessionTTL = 24 * time.Hour
	defaultInviteTTL  = 7 * 24 * time.Hour
)

// apiTokenPrefix marks the store's API token secrets, so that a leaked one
// is recognisable (and secret scanners can match it).
const apiTokenPrefix = "llst_"

// staffOnly refuses an actor that is not an active user of a store.
func staffOnly(actor User) error {
	if _, ok := parseID(actor.ID); !ok || !actor.Active || (actor.Role != RoleOwner && actor.Role != RoleStaff) {
		return ErrForbidden
	}
	return nil
}

// actorRef is the actor's id for a created_by column, nil when none.
func actorRef(actor User) any {
	if id, ok := parseID(actor.ID); ok {
		return id
	}
	return nil
}

// ownerOnly refuses an actor that is not an active owner.
func ownerOnly(actor User) error {
	if _, ok := parseID(actor.ID); !ok || !actor.Active || actor.Role != RoleOwner {
		return ErrForbidden
	}
	return nil
}

// CreateOwner adds the store's first user, an active owner with a password.
// A store that has users already is ErrConflict.
func (s *Service) CreateOwner(ctx context.Context, email, name, password string) (User, error) {
	f := fields{}
	email = f.email("email", email)
	name = strings.TrimSpace(name)
	f.text("name", name, 1, 200)
	f.password("password", password)
	if err := f.err(); err != nil {
		return User{}, err
	}
	hash, err := s.hashPassword(password)
	if err != nil {
		return User{}, fmt.Errorf("store: hash password: %w", err)
	}
	u, err := scanUser(s.db.QueryRow(ctx, `
		INSERT INTO users AS u (email, name, role, password_hash)
		SELECT $1, $2, 'owner', $3 WHERE NOT EXISTS (SELECT 1 FROM users)
		RETURNING `+userCols, email, name, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, fmt.Errorf("store: the store has its first user already: %w", ErrConflict)
	}
	if isConstraint(err, pgerrcode.UniqueViolation, "users_email_key") {
		return User{}, invalid("email", "is already used by another user")
	}
	return u, dbErr("create owner", err)
}

// Authenticate checks an email and password: ErrBadCredentials if either is wrong
// or the user is not active.
func (s *Service) Authenticate(ctx context.Context, email, password string) (User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var hash []byte
	u, err := scanUser(s.db.QueryRow(ctx, `
		SELECT `+userCols+`, u.password_hash FROM users u
		WHERE u.email = $1 AND u.password_hash IS NOT NULL`, email), &hash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return User{}, dbErr("authenticate", err)
	}
	if err != nil {
		// The same work as for a known email, so that timing does not tell
		// which emails have accounts.
		_ = bcrypt.CompareHashAndPassword(s.dummyHash(), []byte(password))
		return User{}, ErrBadCredentials
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return User{}, ErrBadCredentials
	}
	return u, nil
}

// NewSession starts a session for user; impersonatedBy/reason are set when a
// platform operator acts as the user. It returns the secret token for the
// cookie. A ttl of zero or less is a day; an unknown or inactive user is
// ErrNotFound.
func (s *Service) NewSession(ctx context.Context, userID string, ttl time.Duration, impersonatedBy, reason string) (string, error) {
	id, ok := parseID(userID)
	if !ok {
		return "", ErrNotFound
	}
	f := fields{}
	impersonatedBy, reason = strings.TrimSpace(impersonatedBy), strings.TrimSpace(reason)
	f.text("impersonated_by", impersonatedBy, 0, 200)
	f.text("reason", reason, 0, 500)
	if err := f.err(); err != nil {
		return "", err
	}
	if ttl <= 0 {
		ttl = defaultSessionTTL
	}
	token := newSecret()
	tag, err := s.db.Exec(ctx, `
		INSERT INTO sessions (token_hash, user_id, impersonated_by, reason, expires_at)
		SELECT $1, u.id, $3, $4, $5 FROM users u WHERE u.id = $2 AND u.password_hash IS NOT NULL`,
		hashSecret(token), id, impersonatedBy, reason, s.now().Add(ttl))
	if err != nil {
		return "", dbErr("new session", err)
	}
	if tag.RowsAffected() == 0 {
		return "", ErrNotFound
	}
	return token, nil
}

// SessionOf returns the live session of a token, ErrNotFound if none.
func (s *Service) SessionOf(ctx context.Context, token string) (Session, error) {
	if token == "" {
		return Session{}, ErrNotFound
	}
	var ss Session
	u, err := scanUser(s.db.QueryRow(ctx, `
		SELECT `+userCols+`, s.impersonated_by, s.reason, s.expires_at
		FROM sessions s JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
		WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.password_hash IS NOT NULL`,
		hashSecret(token), s.now()), &ss.ImpersonatedBy, &ss.Reason, &ss.ExpiresAt)
	if err != nil {
		return Session{}, dbErr("session", err)
	}
	ss.User = u
	return ss, nil
}

// EndSession ends the session of token (sign out); an unknown token is no
// error.
func (s *Service) EndSession(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	_, err := s.db.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, hashSecret(token))
	return dbErr("end session", err)
}

// Users lists the store's users, owners first.
func (s *Service) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.Query(ctx, `SELECT `+userCols+` FROM users u
		ORDER BY u.role = 'owner' DESC, u.created_at, u.email`)
	if err != nil {
		return nil, dbErr("users", err)
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	return users, dbErr("users", err)
}

// User returns one user.
func (s *Service) User(ctx context.Context, id string) (User, error) {
	uid, ok := parseID(id)
	if !ok {
		return User{}, ErrNotFound
	}
	u, err := scanUser(s.db.QueryRow(ctx, `SELECT `+userCols+` FROM users u WHERE u.id = $1`, uid))
	return u, dbErr("user", err)
}

// InviteUser invites email with role; actor must be an owner. Inviting a
// pending user again replaces their invitation (and role); the email of an
// active user is a ValidationError. A ttl of zero or less is a week.
func (s *Service) InviteUser(ctx context.Context, actor User, email, role string, ttl time.Duration) (Invite, error) {
	if err := ownerOnly(actor); err != nil {
		return Invite{}, err
	}
	f := fields{}
	email = f.email("email", email)
	role = strings.TrimSpace(role)
	f.role("role", role)
	if err := f.err(); err != nil {
		return Invite{}, err
	}
	if ttl <= 0 {
		ttl = defaultInviteTTL
	}
	token := newSecret()
	var inv Invite
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := lockedOwner(ctx, tx, actor); err != nil {
			return err
		}
		u, err := scanUser(tx.QueryRow(ctx, `
			INSERT INTO users AS u (email, role) VALUES ($1, $2)
			ON CONFLICT (tenant_id, email) DO UPDATE SET role = excluded.role WHERE u.password_hash IS NULL
			RETURNING `+userCols, email, role))
		if errors.Is(err, pgx.ErrNoRows) {
			return invalid("email", "is already used by another user")
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			WITH gone AS (DELETE FROM invitations WHERE user_id = $1)
			INSERT INTO invitations (token_hash, user_id, expires_at) VALUES ($2, $1, $3)`,
			u.ID, hashSecret(token), s.now().Add(ttl)); err != nil {
			return err
		}
		inv = Invite{User: u, Token: token}
		return nil
	})
	if err != nil {
		return Invite{}, dbErr("invite user", err)
	}
	return inv, nil
}

// lockedOwner checks, inside tx, that actor is still an active owner (its
// row read at the moment, not the caller's copy).
func lockedOwner(ctx context.Context, tx pgx.Tx, actor User) error {
	id, ok := parseID(actor.ID)
	if !ok {
		return ErrForbidden
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM users
		WHERE id = $1 AND role = 'owner' AND password_hash IS NOT NULL`, id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return ErrForbidden
	}
	return nil
}

// AcceptInvite sets the invited user's name and password and activates
// them; the token works once. An unknown, used or expired token is
// ErrNotFound.
func (s *Service) AcceptInvite(ctx context.Context, token, name, password string) (User, error) {
	f := fields{}
	name = strings.TrimSpace(name)
	f.text("name", name, 1, 200)
	f.password("password", password)
	if err := f.err(); err != nil {
		return User{}, err
	}
	if token == "" {
		return User{}, ErrNotFound
	}
	hash, err := s.hashPassword(password)
	if err != nil {
		return User{}, fmt.Errorf("store: hash password: %w", err)
	}
	var u User
	err = s.tx(ctx, func(tx pgx.Tx) error {
		var userID string
		var expires time.Time
		if err := tx.QueryRow(ctx, `DELETE FROM invitations WHERE token_hash = $1
			RETURNING user_id::text, expires_at`, hashSecret(token)).Scan(&userID, &expires); err != nil {
			return err
		}
		if !expires.After(s.now()) {
			return ErrNotFound // rolled back: an expired invitation stays until it is replaced
		}
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `UPDATE users AS u SET name = $2, password_hash = $3
			WHERE u.id = $1 AND u.password_hash IS NULL RETURNING `+userCols, userID, name, hash))
		return err
	})
	if err != nil {
		return User{}, dbErr("accept invite", err)
	}
	return u, nil
}

// owners locks the store's owners, in one order so that concurrent
// changes queue instead of deadlocking, and returns the ids of the active
// ones.
func owners(ctx context.Context, tx pgx.Tx) (map[string]bool, error) {
	rows, err := tx.Query(ctx, `SELECT id::text, password_hash IS NOT NULL FROM users
		WHERE role = 'owner' ORDER BY id FOR UPDATE`)
	if err != nil {
		return nil, err
	}
	active := map[string]bool{}
	var id string
	var ok bool
	_, err = pgx.ForEachRow(rows, []any{&id, &ok}, func() error {
		if ok {
			active[id] = true
		}
		return nil
	})
	return active, err
}

// SetRole changes a user's role; actor must be an owner, and the last owner
// stays an owner (ErrConflict).
func (s *Service) SetRole(ctx context.Context, actor User, userID, role string) (User, error) {
	if err := ownerOnly(actor); err != nil {
		return User{}, err
	}
	role = strings.TrimSpace(role)
	if role != RoleOwner && role != RoleStaff {
		return User{}, invalid("role", "must be owner or staff")
	}
	id, ok := parseID(userID)
	if !ok {
		return User{}, ErrNotFound
	}
	var u User
	err := s.tx(ctx, func(tx pgx.Tx) error {
		act, err := owners(ctx, tx)
		if err != nil {
			return err
		}
		if aid, _ := parseID(actor.ID); !act[aid] {
			return ErrForbidden
		}
		if role != RoleOwner && act[id] && len(act) == 1 {
			return fmt.Errorf("store: the last owner stays an owner: %w", ErrConflict)
		}
		u, err = scanUser(tx.QueryRow(ctx, `UPDATE users AS u SET role = $2 WHERE u.id = $1
			RETURNING `+userCols, id, role))
		return err
	})
	if err != nil {
		return User{}, dbErr("set role", err)
	}
	return u, nil
}

// RemoveUser removes a user with their sessions and tokens; actor must be an
// owner; the last owner cannot be removed (ErrConflict).
func (s *Service) RemoveUser(ctx context.Context, actor User, userID string) error {
	if err := ownerOnly(actor); err != nil {
		return err
	}
	id, ok := parseID(userID)
	if !ok {
		return ErrNotFound
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		act, err := owners(ctx, tx)
		if err != nil {
			return err
		}
		if aid, _ := parseID(actor.ID); !act[aid] {
			return ErrForbidden
		}
		if act[id] && len(act) == 1 {
			return fmt.Errorf("store: the last owner cannot be removed: %w", ErrConflict)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return nil
	})
	return dbErr("remove user", err)
}
