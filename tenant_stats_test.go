package landlord

import (
	"errors"
	"testing"
	"time"

	"github.com/landlordhq/landlord/tenant"
)

type countingTracer struct {
	calls, replaced int
	nilCalls        bool
}

func (c *countingTracer) TenantCalls(tenant.Tenant) func(time.Time, error) {
	if c.nilCalls {
		return nil
	}
	return func(time.Time, error) { c.calls++ }
}

func (c *countingTracer) ConnReplaced() { c.replaced++ }

// The tracer the handle gets passes every call to the application's tracer
// and to the statistics recorder, and copes with either observing nothing.
func TestTeeTracer(t *testing.T) {
	a, b := &countingTracer{}, &countingTracer{}
	if got := teeTracer(nil, b); got != Tracer(b) {
		t.Fatalf("teeTracer(nil, b) = %v, want b itself", got)
	}
	tr := teeTracer(a, b)
	f := tr.TenantCalls(tenant.Tenant{ID: tenant.NewID()})
	f(time.Now(), nil)
	f(time.Now(), errors.New("x"))
	tr.ConnReplaced()
	if a.calls != 2 || b.calls != 2 || a.replaced != 1 || b.replaced != 1 {
		t.Errorf("a %+v, b %+v", a, b)
	}
	a.nilCalls = true
	f = tr.TenantCalls(tenant.Tenant{ID: tenant.NewID()})
	f(time.Now(), nil)
	if b.calls != 3 {
		t.Errorf("b without a: %+v", b)
	}
	// Waits reach the side that wants them (the recorder's type), not the
	// other.
	w := &waitTracer{}
	tw := teeTracer(a, w).(ConnWaitTracer).TenantConnWaits(tenant.Tenant{ID: tenant.NewID()})
	tw(3 * time.Millisecond)
	if w.waited != 3*time.Millisecond {
		t.Errorf("waits: %s", w.waited)
	}
	if teeTracer(a, b).(ConnWaitTracer).TenantConnWaits(tenant.Tenant{}) != nil {
		t.Error("a tee of tracers that want no waits asks for them")
	}
	if p, q := processName(), processName(); p == q || p == "" {
		t.Errorf("process names %q and %q", p, q)
	}
}

type waitTracer struct {
	countingTracer
	waited time.Duration
}

func (w *waitTracer) TenantConnWaits(tenant.Tenant) func(time.Duration) {
	return func(d time.Duration) { w.waited += d }
}
