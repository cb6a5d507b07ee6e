package ratelimit

import (
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestTake(t *testing.T) {
	t.Parallel()
	l := New(rate.Every(10*time.Second), 2)
	now := time.Unix(1_000_000, 0)
	for i := range 2 {
		if wait := l.Take("a", now); wait != 0 {
			t.Fatalf("attempt %d: wait %s, want none", i+1, wait)
		}
	}
	if wait := l.Take("a", now); wait != 10*time.Second {
		t.Fatalf("third attempt: wait %s, want 10s", wait)
	}
	if wait := l.Take("b", now); wait != 0 {
		t.Fatalf("another key: wait %s, want none", wait)
	}
	if wait := l.Take("a", now.Add(10*time.Second)); wait != 0 {
		t.Fatalf("after 10s: wait %s, want none", wait)
	}
	// Full buckets are forgotten at the next sweep.
	l.Take("c", now.Add(time.Hour))
	if n := len(l.buckets); n != 1 {
		t.Fatalf("%d buckets after the sweep, want only c's", n)
	}
	if wait := New(rate.Inf, 1).Take("x", now); wait != 0 {
		t.Fatalf("no limit: wait %s", wait)
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("GET", "/", nil)
	for addr, want := range map[string]string{"192.0.2.1:1234": "192.0.2.1", "[2001:db8::1]:80": "2001:db8::1", "odd": "odd"} {
		r.RemoteAddr = addr
		if got := ClientIP(r); got != want {
			t.Errorf("ClientIP(%q) = %q, want %q", addr, got, want)
		}
	}
}
