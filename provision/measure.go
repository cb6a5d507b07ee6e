package provision

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/landlordhq/landlord/tenant"
)

// Method is a way to provision a tenant, for MeasureCreate.
type Method string

// The ways MeasureCreate compares.
const (
	// MethodMigrate runs every migration on each new tenant: how tenants
	// were made before templates, the baseline.
	MethodMigrate Method = "migrate"
	// MethodTemplate clones the template schema or copies the template
	// database: what Create does when the reserve is empty.
	MethodTemplate Method = "template"
	// MethodReserve claims a pre-provisioned tenant: what Create does when
	// FillReserve has left one ready. Not for row tenants, which are never
	// reserved.
	MethodReserve Method = "reserve"
)

// Measurement is what MeasureCreate found.
type Measurement struct {
	N             int           // tenants created
	P50, P99      time.Duration // percentiles of one Create
	Min, Max, Sum time.Duration
}

// MeasureCreate creates n tenants of model m by method how, one after
// another, and returns the distribution of the time each Create took. What
// is not part of one sign-up stays outside the timing: the templates are
// prepared before the first Create, with MethodReserve one tenant is
// pre-provisioned before each, and every tenant it created is deleted at
// the end. Run it on a Provisioner of a scratch installation; the slugs it
// uses are random.
func MeasureCreate(ctx context.Context, p *Provisioner, m tenant.Model, n int, how Method) (Measurement, error) {
	var res Measurement
	if _, err := tenant.ParseModel(string(m)); err != nil {
		return res, err
	}
	if n < 1 {
		return res, fmt.Errorf("measure create: n = %d: want at least one tenant", n)
	}
	var mode method
	switch how {
	case MethodMigrate:
		mode = methodMigrate
	case MethodTemplate:
		mode = methodTemplate
	case MethodReserve:
		if m == tenant.ModelRow {
			return res, fmt.Errorf("measure create: %w: row tenants are never reserved", tenant.ErrBadModel)
		}
		mode = methodAuto
	default:
		return res, fmt.Errorf("measure create: method %q: want migrate, template or reserve", how)
	}
	if how != MethodMigrate {
		if err := p.PrepareTemplates(ctx); err != nil {
			return res, err
		}
	}
	run := make([]byte, 4)
	rand.Read(run)
	var ids []tenant.ID
	var took []time.Duration
	var err error
	for i := range n {
		if how == MethodReserve {
			if _, err = p.FillReserve(ctx, m, 1); err != nil {
				break
			}
		}
		req := Request{Slug: fmt.Sprintf("measure-%s-%d", hex.EncodeToString(run), i), Model: m}
		start := time.Now()
		var t tenant.Tenant
		t, err = p.create(ctx, req, mode)
		d := time.Since(start)
		if err != nil {
			break
		}
		ids = append(ids, t.ID)
		took = append(took, d)
	}
	var cleanup []error
	for _, id := range ids {
		if derr := deleteRetrying(ctx, p, id); derr != nil {
			cleanup = append(cleanup, derr)
		}
	}
	if how == MethodReserve {
		if _, ferr := p.FillReserve(ctx, m, 0); ferr != nil {
			cleanup = append(cleanup, ferr)
		}
	}
	if err != nil {
		return res, fmt.Errorf("measure create: %w", errors.Join(append([]error{err}, cleanup...)...))
	}
	if len(cleanup) > 0 {
		return res, fmt.Errorf("measure create: clean up: %w", errors.Join(cleanup...))
	}
	return summarize(took), nil
}

// summarize returns the distribution of durations (nearest-rank
// percentiles).
func summarize(took []time.Duration) Measurement {
	s := slices.Clone(took)
	slices.Sort(s)
	m := Measurement{N: len(s), Min: s[0], Max: s[len(s)-1]}
	for _, d := range s {
		m.Sum += d
	}
	rank := func(q float64) time.Duration {
		i := int(q*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	m.P50, m.P99 = rank(0.50), rank(0.99)
	return m
}

// deleteRetrying deletes tenant id, trying again after an error: a Delete
// interrupted by a transient one (an autovacuum worker in the database
// being dropped, say) is finished by the next.
func deleteRetrying(ctx context.Context, p *Provisioner, id tenant.ID) error {
	var err error
	for attempt := range 3 {
		if err = p.Delete(ctx, id); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		}
	}
	return err
}
