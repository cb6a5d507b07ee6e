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
	if p, q := processName(), processName(); p == q || p == "" {
		t.Errorf("process names %q and %q", p, q)
	}
}
