package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/landlordhq/landlord/shop/internal/ratelimit"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

// Cookie names; a store's cookies are scoped to its host, or to its
// /s/<slug>/ path on the platform host.
const (
	sessionCookie   = "session"
	cartCookie      = "cart"
	flashCookie     = "flash"
	operatorCookie  = "operator"
	lastOrderCookie = "last_order"
)

func (s *Server) setCookie(w http.ResponseWriter, sc *storeCtx, name, value string, maxAge int) {
	p := "/"
	if sc != nil {
		p = sc.cookiePath()
	}
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     p,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   s.cfg.Secure,
		SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) clearCookie(w http.ResponseWriter, sc *storeCtx, name string) {
	s.setCookie(w, sc, name, "", -1)
}

// session returns the signed-in user's session in the request's store, nil
// when nobody is signed in (or the cookie belongs to no session of this
// store).
func (s *Server) session(r *http.Request) *store.Session {
	sc := storeOf(r)
	if sc == nil {
		return nil
	}
	if sc.sessLoaded {
		return sc.sess
	}
	sc.sessLoaded = true
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 200 {
		return nil
	}
	sess, err := s.st.SessionOf(r.Context(), c.Value)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			infoOf(r.Context()).err = err
		}
		return nil
	}
	sc.sess = &sess
	return sc.sess
}

// flash sets a message shown once by the next page.
// Without a store the message is for the admin pages.
func (s *Server) flash(w http.ResponseWriter, sc *storeCtx, msg string) {
	s.setFlash(w, sc, url.QueryEscape(msg), 120)
}

func (s *Server) setFlash(w http.ResponseWriter, sc *storeCtx, value string, maxAge int) {
	p := "/admin"
	if sc != nil {
		p = sc.cookiePath()
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: value, Path: p, MaxAge: maxAge,
		HttpOnly: true, Secure: s.cfg.Secure, SameSite: http.SameSiteLaxMode})
}

func (s *Server) takeFlash(w http.ResponseWriter, r *http.Request, sc *storeCtx) string {
	c, err := r.Cookie(flashCookie)
	if err != nil || c.Value == "" {
		return ""
	}
	s.setFlash(w, sc, "", -1)
	msg, err := url.QueryUnescape(c.Value)
	if err != nil || len(msg) > 300 {
		return ""
	}
	return msg
}

// redirect answers a form post with 303 to the store-relative path.
func redirect(w http.ResponseWriter, r *http.Request, sc *storeCtx, p string) {
	if sc != nil {
		p = sc.Base + p
	}
	http.Redirect(w, r, p, http.StatusSeeOther)
}

// randomToken returns n random bytes as base64url.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// orderToken is the unguessable proof that a visitor placed an order.
func (s *Server) orderToken(id tenant.ID, orderID string) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write(id[:])
	m.Write([]byte("order:" + orderID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:24])
}

func (s *Server) checkOrderToken(id tenant.ID, orderID, token string) bool {
	return token != "" && hmac.Equal([]byte(token), []byte(s.orderToken(id, orderID)))
}

// lastOrderValue is the signed record of the visitor's last order and the
// idempotency key that placed it.
func (s *Server) lastOrderValue(id tenant.ID, orderID, key string) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write(id[:])
	m.Write([]byte("last-order:" + orderID + ":" + key))
	return orderID + "." + key + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:24])
}

// lastOrder returns the order the key placed, when the visitor's session
// says so.
func (s *Server) lastOrder(r *http.Request, sc *storeCtx, key string) (string, bool) {
	c, err := r.Cookie(lastOrderCookie)
	if err != nil {
		return "", false
	}
	orderID, rest, _ := strings.Cut(c.Value, ".")
	k, _, _ := strings.Cut(rest, ".")
	if k != key || !uuidPattern.MatchString(orderID) {
		return "", false
	}
	return orderID, hmac.Equal([]byte(c.Value), []byte(s.lastOrderValue(sc.T.ID, orderID, key)))
}

var keyPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{8,100}$`)

// cart is a visitor's cart: product id -> quantity, in a cookie of the store.
type cart struct {
	IDs []string // in the order they were added
	Qty map[string]int
}

const (
	maxCartLines = 50
	maxQuantity  = 999
)

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func readCart(r *http.Request) *cart {
	c := &cart{Qty: map[string]int{}}
	ck, err := r.Cookie(cartCookie)
	if err != nil {
		return c
	}
	for _, item := range strings.Split(ck.Value, ".") {
		id, q, ok := strings.Cut(item, "_")
		n, err := strconv.Atoi(q)
		if !ok || err != nil || n <= 0 || n > maxQuantity || !uuidPattern.MatchString(id) {
			continue
		}
		if _, dup := c.Qty[id]; dup || len(c.IDs) >= maxCartLines {
			continue
		}
		c.IDs = append(c.IDs, id)
		c.Qty[id] = n
	}
	return c
}

func (c *cart) set(id string, n int) {
	if n <= 0 {
		delete(c.Qty, id)
		for i, x := range c.IDs {
			if x == id {
				c.IDs = append(c.IDs[:i:i], c.IDs[i+1:]...)
				break
			}
		}
		return
	}
	if _, ok := c.Qty[id]; !ok {
		c.IDs = append(c.IDs, id)
	}
	c.Qty[id] = min(n, maxQuantity)
}

func (c *cart) count() int {
	n := 0
	for _, q := range c.Qty {
		n += q
	}
	return n
}

func (s *Server) writeCart(w http.ResponseWriter, sc *storeCtx, c *cart) {
	if len(c.IDs) == 0 {
		s.clearCookie(w, sc, cartCookie)
		return
	}
	parts := make([]string, 0, len(c.IDs))
	for _, id := range c.IDs {
		parts = append(parts, id+"_"+strconv.Itoa(c.Qty[id]))
	}
	s.setCookie(w, sc, cartCookie, strings.Join(parts, "."), 30*24*3600)
}

var errRateLimited = errors.New("too many requests")

// limiter is a rate limit per client address.
type limiter struct{ l *ratelimit.Limiter }

func newLimiter(every rate.Limit, burst int) *limiter {
	return &limiter{ratelimit.New(every, burst)}
}

// allow takes one attempt of the request's client address.
func (l *limiter) allow(r *http.Request) bool {
	return l.l.Take(ratelimit.ClientIP(r), time.Now()) == 0
}
