package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// tokenCols are the columns scanToken reads, of api_tokens aliased t.
const tokenCols = `t.id::text, t.user_id::text, t.name, t.created_at, t.last_used_at`

func scanToken(row pgx.Row) (APIToken, error) {
	var t APIToken
	err := row.Scan(&t.ID, &t.UserID, &t.Name, &t.CreatedAt, &t.LastUsed)
	return t, err
}

// lastUsedEvery is how often TokenUser records a token's use at most.
const lastUsedEvery = time.Minute

// CreateAPIToken makes a token for actor and returns its secret once (it
// starts with "llst_"); the store keeps only its hash.
func (s *Service) CreateAPIToken(ctx context.Context, actor User, name string) (string, APIToken, error) {
	if err := staffOnly(actor); err != nil {
		return "", APIToken{}, err
	}
	name = strings.TrimSpace(name)
	f := fields{}
	f.text("name", name, 1, 100)
	if err := f.err(); err != nil {
		return "", APIToken{}, err
	}
	uid, ok := parseID(actor.ID)
	if !ok {
		return "", APIToken{}, ErrForbidden
	}
	secret := apiTokenPrefix + newSecret()
	t, err := scanToken(s.db.QueryRow(ctx, `
		INSERT INTO api_tokens AS t (user_id, name, token_hash)
		SELECT u.id, $2, $3 FROM users u WHERE u.id = $1 AND u.password_hash IS NOT NULL
		RETURNING `+tokenCols, uid, name, hashSecret(secret)))
	if errors.Is(err, pgx.ErrNoRows) {
		return "", APIToken{}, ErrForbidden // the actor is no user of this store
	}
	if err != nil {
		return "", APIToken{}, dbErr("create API token", err)
	}
	return secret, t, nil
}

// APITokens lists actor's tokens (an owner sees all), newest first.
func (s *Service) APITokens(ctx context.Context, actor User) ([]APIToken, error) {
	if err := staffOnly(actor); err != nil {
		return nil, err
	}
	uid, ok := parseID(actor.ID)
	if !ok {
		return nil, ErrForbidden
	}
	rows, err := s.db.Query(ctx, `SELECT `+tokenCols+` FROM api_tokens t
		WHERE $2 OR t.user_id = $1 ORDER BY t.created_at DESC, t.id`, uid, actor.Role == RoleOwner)
	if err != nil {
		return nil, dbErr("API tokens", err)
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIToken, error) { return scanToken(r) })
	return ts, dbErr("API tokens", err)
}

// RevokeAPIToken deletes a token; its user or an owner may (ErrForbidden
// for anyone else, ErrNotFound when there is no such token).
func (s *Service) RevokeAPIToken(ctx context.Context, actor User, id string) error {
	if err := staffOnly(actor); err != nil {
		return err
	}
	tid, ok := parseID(id)
	if !ok {
		return ErrNotFound
	}
	uid, ok := parseID(actor.ID)
	if !ok {
		return ErrForbidden
	}
	var deleted, exists bool
	err := s.db.QueryRow(ctx, `
		WITH d AS (DELETE FROM api_tokens WHERE id = $1 AND ($3 OR user_id = $2) RETURNING id)
		SELECT EXISTS (SELECT FROM d), EXISTS (SELECT FROM api_tokens WHERE id = $1)`,
		tid, uid, actor.Role == RoleOwner).Scan(&deleted, &exists)
	switch {
	case err != nil:
		return dbErr("revoke API token", err)
	case deleted:
		return nil
	case exists:
		return ErrForbidden
	default:
		return ErrNotFound
	}
}

// TokenUser returns the active user of an API token secret, ErrNotFound if
// none. It records the token's use at most once a minute (not while the
// store is read-only).
func (s *Service) TokenUser(ctx context.Context, secret string) (User, error) {
	if !strings.HasPrefix(secret, apiTokenPrefix) || len(secret) > 200 {
		return User{}, ErrNotFound
	}
	var tokenID string
	var lastUsed *time.Time
	u, err := scanUser(s.db.QueryRow(ctx, `
		SELECT `+userCols+`, t.id::text, t.last_used_at
		FROM api_tokens t JOIN users u ON u.tenant_id = t.tenant_id AND u.id = t.user_id
		WHERE t.token_hash = $1 AND u.password_hash IS NOT NULL`, hashSecret(secret)), &tokenID, &lastUsed)
	if err != nil {
		return User{}, dbErr("token user", err)
	}
	now := s.now()
	if lastUsed == nil || now.Sub(*lastUsed) >= lastUsedEvery {
		_, err := s.db.Exec(ctx, `UPDATE api_tokens SET last_used_at = $2
			WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $3)`,
			tokenID, now, now.Add(-lastUsedEvery))
		if err = dbErr("record API token use", err); err != nil && !errors.Is(err, ErrReadOnly) {
			return User{}, err
		}
	}
	return u, nil
}
