package tenantstats

import (
	"errors"
	"testing"
	"time"

	"github.com/landlordhq/landlord/tenant"
)

func TestBucketOf(t *testing.T) {
	for us, want := range map[int64]int{0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 1023: 9, 1024: 10, 1 << 24: 24, 1 << 40: Buckets - 1, -5: 0} {
		if got := bucketOf(us); got != want {
			t.Errorf("bucketOf(%d) = %d, want %d", us, got, want)
		}
	}
}

func TestPercentile(t *testing.T) {
	b := make([]int64, Buckets)
	if got := percentile(b, 0.5); got != 0 {
		t.Errorf("no calls: %s", got)
	}
	b[3] = 98 // [8, 16) µs
	b[10] = 2 // [1024, 2048) µs
	if got := percentile(b, 0.5); got != 16*time.Microsecond {
		t.Errorf("p50 = %s, want 16µs", got)
	}
	if got := percentile(b, 0.99); got != 2048*time.Microsecond {
		t.Errorf("p99 = %s, want 2.048ms", got)
	}
	if got := percentile(b, 0.98); got != 16*time.Microsecond {
		t.Errorf("p98 = %s, want 16µs (the 98th of 100 calls is the last fast one)", got)
	}
}

// A recorder counts each tenant's calls, errors and durations, and a take
// hands them over once.
func TestRecorderCounts(t *testing.T) {
	r := NewRecorder("p", 0, 0)
	a, b := tenant.Tenant{ID: tenant.NewID()}, tenant.Tenant{ID: tenant.NewID()}
	fa, fb := r.TenantCalls(a), r.TenantCalls(b)
	start := time.Now().Add(-3 * time.Millisecond)
	for range 5 {
		fa(start, nil)
	}
	fb(start, errors.New("x"))
	r.TenantConnWaits(a)(1500 * time.Microsecond)
	if r.TenantCalls(a) == nil || len(r.tenants) != 2 {
		t.Fatalf("tenants %d", len(r.tenants))
	}
	got := r.tenants[a.ID].take()
	if got.calls != 5 || got.errors != 0 || got.micros < 5*3000 || got.buckets[bucketOf(3000)] != 5 || got.wait != 1500 {
		t.Errorf("a: %+v", got)
	}
	if again := r.tenants[a.ID].take(); again.calls != 0 || again.buckets[bucketOf(3000)] != 0 {
		t.Errorf("a taken twice: %+v", again)
	}
	if gb := r.tenants[b.ID].take(); gb.calls != 1 || gb.errors != 1 {
		t.Errorf("b: %+v", gb)
	}
}

func TestArrayText(t *testing.T) {
	if got := arrayText([]int64{0, 3, 12}); got != "{0,3,12}" {
		t.Errorf("arrayText = %q", got)
	}
}
