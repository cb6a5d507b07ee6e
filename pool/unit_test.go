package pool

import (
	"testing"
	"time"
)

// The token bucket, on a clock of its own.
func TestLimiter(t *testing.T) {
	t.Parallel()
	var l limiter
	l.init(10, 2) // 10 a second, 2 saved up
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at   time.Duration // after t0
		want time.Duration // wait before the token is due
	}{
		{0, 0}, {0, 0}, // the burst
		{0, 100 * time.Millisecond}, {0, 200 * time.Millisecond}, // then one per 100 ms, queued
		{time.Second, 0}, // a second later the bucket is full again...
		{time.Second, 0},
		{time.Second, 100 * time.Millisecond}, // ...and holds no more than the burst
	}
	for i, s := range steps {
		if got := l.reserve(t0.Add(s.at)); (got - s.want).Abs() > time.Millisecond {
			t.Errorf("reservation %d at +%s: wait %s, want %s", i, s.at, got, s.want)
		}
	}

	var off limiter
	off.init(-1, 0)
	for range 100 {
		if d := off.reserve(t0); d != 0 {
			t.Fatalf("unlimited bucket made a dial wait %s", d)
		}
	}
}

// Backoff doubles from BackoffMin to BackoffMax, with up to half taken off
// at random.
func TestBackoff(t *testing.T) {
	t.Parallel()
	m := &Manager{cfg: Config{BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond}}
	s := newServer(m, "x")
	for n, full := range []time.Duration{10, 20, 40, 80, 100, 100, 100} {
		full *= time.Millisecond
		lo, hi := full, time.Duration(0)
		for range 200 {
			d := time.Duration(s.backoff(n + 1))
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo < full/2 || hi > full {
			t.Errorf("failure %d: backoff in [%s, %s], want within [%s, %s]", n+1, lo, hi, full/2, full)
		}
		if hi-lo < full/10 {
			t.Errorf("failure %d: backoff in [%s, %s]: no jitter", n+1, lo, hi)
		}
	}
}

// The wait histogram is cumulative, as Prometheus wants it.
func TestHistogram(t *testing.T) {
	t.Parallel()
	h := newHistogram()
	for _, d := range []time.Duration{0, 0, 50 * time.Microsecond, 5 * time.Millisecond, time.Minute} {
		h.observe(d)
	}
	got := h.snapshot()
	want := []uint64{2, 3, 3, 4, 4, 4, 4} // ≤0, ≤100µs, ≤1ms, ≤10ms, ≤100ms, ≤1s, ≤10s
	if got.Count != 5 || got.Sum != time.Minute+5*time.Millisecond+50*time.Microsecond {
		t.Errorf("count %d, sum %s", got.Count, got.Sum)
	}
	for i := range want {
		if got.Counts[i] != want[i] {
			t.Errorf("bucket ≤%s: %d, want %d", got.Bounds[i], got.Counts[i], want[i])
		}
	}
}
