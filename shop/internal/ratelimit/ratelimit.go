// Package ratelimit keeps a token bucket per key (a client address, with a
// store when the limit is per store), for the shop's sign-in and sign-up
// limits in the web interface and the API.
package ratelimit

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// sweepEvery is how often the buckets that are full again are dropped, so
// that the map holds only the keys that are limited now.
const sweepEvery = time.Minute

// Limiter is a token bucket per key. It is safe for concurrent use.
type Limiter struct {
	every rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	swept   time.Time
}

// New returns a limiter whose buckets hold burst attempts and regain one at
// the rate every (rate.Inf: no limit).
func New(every rate.Limit, burst int) *Limiter {
	return &Limiter{every: every, burst: burst, buckets: map[string]*rate.Limiter{}}
}

// Take takes one attempt from key's bucket at now. It returns 0 when there
// was one, else how long until there is, and then takes nothing.
func (l *Limiter) Take(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) >= sweepEvery {
		for k, b := range l.buckets {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = rate.NewLimiter(l.every, l.burst)
		l.buckets[key] = b
	}
	res := b.ReserveN(now, 1)
	if wait := res.DelayFrom(now); wait > 0 {
		res.CancelAt(now)
		return wait
	}
	return 0
}

// ClientIP is the address of the request's client, the key of a limit per
// client: RemoteAddr without its port (set it from trusted proxy headers
// before, where there are any).
func ClientIP(r *http.Request) string {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return ip
}
