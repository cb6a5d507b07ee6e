package landlord

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/tenant"
)

// TestFanout runs Admin.Fanout over one installation holding tenants of all
// three models, in every state Fanout serves and one it skips.
func TestFanout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var logs syncBuffer
	l, _ := setup(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	// Three tenants of each model; each holds one item whose secret is its
	// slug, so fn can tell which tenant its Querier reaches.
	var all []tenant.Tenant
	for _, m := range tenant.Models {
		for i := range 3 {
			tn := createTenant(t, l, fmt.Sprintf("fan-%s-%d", m, i), m)
			_, err := l.Handle().Exec(WithTenant(ctx, tn.ID), `INSERT INTO items (id, sku, secret) VALUES (1, 'sku-1', $1)`, tn.Slug)
			must(t, err)
			all = append(all, tn)
		}
	}
	admin, err := l.Admin(ctx, "fanout test")
	must(t, err)
	// Fanout serves read-only and suspended tenants too.
	_, err = admin.SetState(ctx, all[1].ID, tenant.StateSuspended)
	must(t, err)
	_, err = admin.SetState(ctx, all[4].ID, tenant.StateReadOnly)
	must(t, err)
	slugs := make([]string, len(all))
	for i, tn := range all {
		slugs[i] = tn.Slug
	}
	slices.Sort(slugs)

	// secretOf reads the one item through q.
	secretOf := func(ctx context.Context, q Querier) (string, error) {
		var s string
		err := q.QueryRow(ctx, `SELECT secret FROM items`).Scan(&s)
		return s, err
	}

	t.Run("all models in one call", func(t *testing.T) {
		var mu sync.Mutex
		var seen []string
		models := map[tenant.Model]int{}
		logs.Reset()
		err := admin.Fanout(ctx, directory.Filter{}, FanoutOptions{}, func(ctx context.Context, tn tenant.Tenant, q Querier) error {
			s, err := secretOf(ctx, q)
			if err != nil {
				return err
			}
			if s != tn.Slug {
				return fmt.Errorf("querier of %s reads the item of %s", tn.Slug, s)
			}
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, tn.Slug)
			models[tn.Model]++
			return nil
		})
		must(t, err)
		slices.Sort(seen)
		if !slices.Equal(seen, slugs) {
			t.Fatalf("fn saw %v, want %v", seen, slugs)
		}
		for _, m := range tenant.Models {
			if models[m] != 3 {
				t.Errorf("model %s: %d tenants, want 3", m, models[m])
			}
		}
		// The reason is logged once, with the count.
		out := logs.String()
		if n := strings.Count(out, "admin: fanout"); n != 1 {
			t.Errorf("fanout logged %d times, want once:\n%s", n, out)
		}
		if !strings.Contains(out, "tenants=9") || !strings.Contains(out, `reason="fanout test"`) {
			t.Errorf("fanout log lacks the count or the reason:\n%s", out)
		}
	})

	t.Run("filter", func(t *testing.T) {
		var n atomic.Int32
		err := admin.Fanout(ctx, directory.Filter{Model: tenant.ModelSchema}, FanoutOptions{}, func(ctx context.Context, tn tenant.Tenant, q Querier) error {
			if tn.Model != tenant.ModelSchema {
				return fmt.Errorf("%s is a %s tenant", tn.Slug, tn.Model)
			}
			n.Add(1)
			return nil
		})
		must(t, err)
		if n.Load() != 3 {
			t.Fatalf("fn ran for %d schema tenants, want 3", n.Load())
		}
	})

	t.Run("skips tenants that are not serving", func(t *testing.T) {
		// A tenant marked deleting by hand is not in the fan-out.
		gone := createTenant(t, l, "fan-gone", tenant.ModelRow)
		_, err := l.dir.SetState(ctx, gone.ID, tenant.StateDeleting, tenant.StateActive)
		must(t, err)
		var calls atomic.Int32
		err = admin.Fanout(ctx, directory.Filter{}, FanoutOptions{}, func(ctx context.Context, tn tenant.Tenant, q Querier) error {
			calls.Add(1)
			if tn.ID == gone.ID {
				return errors.New("called for a deleting tenant")
			}
			return nil
		})
		must(t, err)
		if calls.Load() != int32(len(all)) {
			t.Fatalf("fn ran %d times, want %d", calls.Load(), len(all))
		}
	})

	t.Run("errors joined", func(t *testing.T) {
		errBoom := errors.New("boom")
		failing := map[tenant.ID]bool{all[0].ID: true, all[5].ID: true, all[8].ID: true}
		var calls atomic.Int32
		err := admin.Fanout(ctx, directory.Filter{}, FanoutOptions{Concurrency: 2}, func(ctx context.Context, tn tenant.Tenant, q Querier) error {
			calls.Add(1)
			if failing[tn.ID] {
				return fmt.Errorf("%w in %s", errBoom, tn.Slug)
			}
			_, err := secretOf(ctx, q)
			return err
		})
		if calls.Load() != int32(len(all)) {
			t.Fatalf("fn ran %d times, want %d: an error must not stop the others", calls.Load(), len(all))
		}
		if !errors.Is(err, errBoom) {
			t.Fatalf("err = %v, want one wrapping errBoom", err)
		}
		var joined interface{ Unwrap() []error }
		if !errors.As(err, &joined) || len(joined.Unwrap()) != len(failing) {
			t.Fatalf("err = %v, want %d joined errors", err, len(failing))
		}
		for _, tn := range all {
			named := strings.Contains(err.Error(), fmt.Sprintf("tenant %s (%s)", tn.Slug, tn.ID))
			if named != failing[tn.ID] {
				t.Errorf("error names %s: %v, want %v:\n%v", tn.Slug, named, failing[tn.ID], err)
			}
		}
	})

	t.Run("concurrency bound and progress", func(t *testing.T) {
		const bound = 3
		var cur, peak atomic.Int32
		// The first calls wait until bound of them run at once, so the
		// bound is reached whatever the machine's speed; the others
		// find it taken and must wait for a slot.
		full := make(chan struct{})
		var fullOnce sync.Once
		var progress [][2]int
		var progressMu sync.Mutex
		err := admin.Fanout(ctx, directory.Filter{}, FanoutOptions{
			Concurrency: bound,
			Progress: func(done, total int) {
				progressMu.Lock()
				defer progressMu.Unlock()
				progress = append(progress, [2]int{done, total})
			},
		}, func(ctx context.Context, tn tenant.Tenant, q Querier) error {
			n := cur.Add(1)
			defer cur.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			if n >= bound {
				fullOnce.Do(func() { close(full) })
			}
			select {
			case <-full:
			case <-time.After(30 * time.Second):
				fullOnce.Do(func() { close(full) }) // fail once, not once per call
				return fmt.Errorf("only %d calls ran at once, want %d", cur.Load(), bound)
			}
			_, err := secretOf(ctx, q)
			return err
		})
		must(t, err)
		if p := peak.Load(); p != bound {
			t.Fatalf("at most %d calls ran at once, want exactly %d", p, bound)
		}
		if len(progress) != len(all) {
			t.Fatalf("progress called %d times, want %d: %v", len(progress), len(all), progress)
		}
		for i, p := range progress {
			if p != [2]int{i + 1, len(all)} {
				t.Fatalf("progress call %d = %v, want %v", i, p, [2]int{i + 1, len(all)})
			}
		}
	})

	t.Run("cancellation stops early", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var calls atomic.Int32
		err := admin.Fanout(cctx, directory.Filter{}, FanoutOptions{Concurrency: 1}, func(ctx context.Context, tn tenant.Tenant, q Querier) error {
			if calls.Add(1) == 2 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if n := calls.Load(); n != 2 {
			t.Fatalf("fn ran %d times after the cancel in its second call, want 2", n)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("after 2 of %d tenants", len(all))) {
			t.Fatalf("err = %v, want it to say how far it got", err)
		}
	})

	t.Run("bad options", func(t *testing.T) {
		err := admin.Fanout(ctx, directory.Filter{}, FanoutOptions{Concurrency: -1}, func(context.Context, tenant.Tenant, Querier) error { return nil })
		if err == nil {
			t.Fatal("negative concurrency accepted")
		}
		if err := admin.Fanout(ctx, directory.Filter{}, FanoutOptions{}, nil); err == nil {
			t.Fatal("nil fn accepted")
		}
	})
}

// TestFanoutBoundedByPool: a concurrency above the connection budget is
// capped at it.
func TestFanoutBoundedByPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const budget = 2
	l, _ := setup(t, Config{MaxConns: budget})
	for i := range 5 {
		createTenant(t, l, fmt.Sprintf("pool-%d", i), tenant.ModelRow)
	}
	admin, err := l.Admin(ctx, "fanout pool bound test")
	must(t, err)
	var cur, peak atomic.Int32
	full := make(chan struct{})
	var fullOnce sync.Once
	err = admin.Fanout(ctx, directory.Filter{}, FanoutOptions{Concurrency: 8}, func(ctx context.Context, tn tenant.Tenant, q Querier) error {
		n := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if n >= budget {
			fullOnce.Do(func() { close(full) })
		}
		select {
		case <-full:
		case <-time.After(30 * time.Second):
			fullOnce.Do(func() { close(full) }) // fail once, not once per call
			return fmt.Errorf("only %d calls ran at once, want %d", cur.Load(), budget)
		}
		var one int
		return q.QueryRow(ctx, `SELECT 1`).Scan(&one)
	})
	must(t, err)
	if p := peak.Load(); p != budget {
		t.Fatalf("at most %d calls ran at once, want exactly %d (MaxConns)", p, budget)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}
