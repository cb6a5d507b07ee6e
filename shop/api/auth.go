package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/landlordhq/landlord/shop/internal/ratelimit"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

// TokenPrefix starts every API token secret.
const TokenPrefix = "llst_"

var errUnauthorized = &apiError{status: http.StatusUnauthorized, code: CodeUnauthorized, message: "a valid bearer token is required: Authorization: Bearer llst_..."}

// authenticate returns the user of r's bearer token. A token of another
// store is unknown here, like any other wrong token.
func (a *api) authenticate(r *http.Request) (store.User, error) {
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return store.User{}, errUnauthorized
	}
	secret = strings.TrimSpace(secret)
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > 200 {
		return store.User{}, errUnauthorized
	}
	u, err := a.store.TokenUser(r.Context(), secret)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, errUnauthorized
	}
	return u, err
}

type tokenRequest struct {
	Email    *string `json:"email"`
	Password *string `json:"password"`
	Name     *string `json:"name"`
}

type tokenCreated struct {
	Token string `json:"token"`
	ID    string `json:"id"`
	Name  string `json:"name"`
}

type tokenJSON struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func tokenOut(t store.APIToken) tokenJSON {
	return tokenJSON{ID: t.ID, UserID: t.UserID, Name: t.Name, CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsed}
}

// createToken signs in with an email and password and makes a token.
func (a *api) createToken(w http.ResponseWriter, r *http.Request, _ *store.User) error {
	if err := a.limiter.allow(r, a.now()); err != nil {
		return err
	}
	var in tokenRequest
	if err := decode(w, r, &in); err != nil {
		return err
	}
	if err := required(map[string]bool{"email": in.Email != nil, "password": in.Password != nil, "name": in.Name != nil}); err != nil {
		return err
	}
	if n := strings.TrimSpace(*in.Name); n == "" || len(n) > 100 {
		return invalid(map[string]string{"name": "must have 1 to 100 characters"})
	}
	u, err := a.store.Authenticate(r.Context(), *in.Email, *in.Password)
	if err != nil {
		return err
	}
	secret, tok, err := a.store.CreateAPIToken(r.Context(), u, strings.TrimSpace(*in.Name))
	if err != nil {
		return err
	}
	w.Header().Set("Location", Prefix+"/auth/tokens/"+tok.ID)
	writeJSON(w, http.StatusCreated, tokenCreated{Token: secret, ID: tok.ID, Name: tok.Name})
	return nil
}

func (a *api) listTokens(w http.ResponseWriter, r *http.Request, u *store.User) error {
	toks, err := a.store.APITokens(r.Context(), *u)
	if err != nil {
		return err
	}
	items := make([]tokenJSON, 0, len(toks))
	for _, t := range toks {
		items = append(items, tokenOut(t))
	}
	writeJSON(w, http.StatusOK, struct {
		Items []tokenJSON `json:"items"`
	}{items})
	return nil
}

func (a *api) revokeToken(w http.ResponseWriter, r *http.Request, u *store.User) error {
	id, err := pathID(r, "token")
	if err != nil {
		return err
	}
	if err := a.store.RevokeAPIToken(r.Context(), *u, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// limiter keeps a token bucket per store and client address; nil when
// limiting is off.
type limiter struct{ l *ratelimit.Limiter }

func newLimiter(cfg RateLimit) limiter {
	if cfg.Every < 0 {
		return limiter{}
	}
	return limiter{ratelimit.New(rate.Every(cfg.Every), cfg.Burst)}
}

// allow takes one attempt from the bucket of r's store and client address,
// or returns a 429 with the wait when it is empty.
func (l limiter) allow(r *http.Request, now time.Time) error {
	if l.l == nil {
		return nil
	}
	id, _ := tenant.FromContext(r.Context())
	if wait := l.l.Take(id.String()+" "+ratelimit.ClientIP(r), now); wait > 0 {
		return rateLimited(wait)
	}
	return nil
}
