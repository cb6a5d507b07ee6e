package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"golang.org/x/crypto/bcrypt"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/landlordtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/shop/jobs"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
	"github.com/landlordhq/landlord/tenantjob"
)

// shop is one installation with the jobs running; the subtests share it.
type shop struct {
	ll    *landlord.Landlord
	svc   *store.Service // pokes the drainer after a commit
	quiet *store.Service // does not
	j     *jobs.Jobs
	d     *jobs.Drainer
}

func newShop(t *testing.T) *shop {
	t.Helper()
	ctx := context.Background()
	ll := landlordtest.PgtestKitGlobal(srv, store.Migrations(), store.Global(), nil).Open(t, landlord.Config{})
	s := &shop{ll: ll, d: jobs.NewDrainer(jobs.DrainerConfig{Interval: time.Hour})}
	s.svc = store.New(ll.Handle(), store.Options{OnOutbox: s.d.OnOutbox, PasswordCost: bcrypt.MinCost})
	s.quiet = store.New(ll.Handle(), store.Options{PasswordCost: bcrypt.MinCost})
	j, err := jobs.Start(ctx, jobs.Config{Landlord: ll, Store: s.svc, Drainer: s.d, PollInterval: 50 * time.Millisecond, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	s.j = j
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := j.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s
}

// openStore creates a store of model m with an owner and a mug: 8 in
// stock, threshold 5.
func (s *shop) openStore(t *testing.T, slug string, m tenant.Model) (context.Context, store.User, store.Product) {
	t.Helper()
	tn, err := s.ll.CreateTenant(context.Background(), provision.Request{Slug: slug, Model: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx := landlord.WithTenant(context.Background(), tn.ID)
	owner, err := s.svc.CreateOwner(ctx, "owner@"+slug+".test", "Owner", "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.svc.CreateProduct(ctx, owner, store.ProductInput{SKU: "MUG-1", Title: "Blue mug", PriceCents: 1250, Active: true, LowStockThreshold: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.MoveStock(ctx, owner, p.ID, store.MoveReceipt, 8, "first delivery"); err != nil {
		t.Fatal(err)
	}
	return ctx, owner, p
}

var orderSeq int

func checkout(ctx context.Context, svc *store.Service, productID string, qty int) (store.Order, error) {
	orderSeq++
	o, _, err := svc.Checkout(ctx, store.CheckoutInput{
		Key:     fmt.Sprintf("order-key-%06d", orderSeq),
		Name:    "Ada Customer",
		Email:   "ada@example.test",
		Address: "1 Test Street",
		Lines:   []store.Line{{ProductID: productID, Quantity: qty}},
	})
	return o, err
}

func outboxLen(t *testing.T, s *shop, ctx context.Context) int {
	t.Helper()
	var n int
	if err := s.ll.Handle().QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func notes(t *testing.T, s *shop, ctx context.Context, kind string) []store.Notification {
	t.Helper()
	all, err := s.svc.Notifications(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Notification
	for _, n := range all {
		if n.Kind == kind {
			out = append(out, n)
		}
	}
	return out
}

// jobsOf returns how many jobs of kind the store in ctx has, and how many of
// them are finished (completed, cancelled or discarded).
func jobsOf(t *testing.T, s *shop, ctx context.Context, kind string) (all, finished int) {
	t.Helper()
	id, _ := tenant.FromContext(ctx)
	err := s.ll.Provisioner().Admin().QueryRow(context.Background(), `
		SELECT count(*), count(*) FILTER (WHERE state IN ('completed', 'cancelled', 'discarded'))
		FROM river.river_job WHERE kind = $1 AND metadata->>$2 = $3`,
		kind, tenantjob.MetadataTenant, id.String()).Scan(&all, &finished)
	if err != nil {
		t.Fatal(err)
	}
	return all, finished
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: still waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// settled waits until the store in ctx has want jobs of kind, all finished.
func settled(t *testing.T, s *shop, ctx context.Context, kind string, want int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d finished %s jobs", want, kind), func() bool {
		all, finished := jobsOf(t, s, ctx, kind)
		if all > want {
			t.Fatalf("%d %s jobs, want %d", all, kind, want)
		}
		return all == want && finished == want
	})
}

func TestJobs(t *testing.T) {
	s := newShop(t)
	lowStock := jobs.LowStockArgs{}.Kind()
	type storeOf struct {
		ctx   context.Context
		owner store.User
		mug   store.Product
	}
	stores := map[string]storeOf{}
	for _, m := range []tenant.Model{tenant.ModelRow, tenant.ModelSchema, tenant.ModelDatabase} {
		ctx, owner, mug := s.openStore(t, "shop-"+string(m), m)
		stores[string(m)] = storeOf{ctx, owner, mug}
	}

	for _, m := range []tenant.Model{tenant.ModelRow, tenant.ModelSchema, tenant.ModelDatabase} {
		t.Run("low stock/"+string(m), func(t *testing.T) {
			st := stores[string(m)]
			// Over the stock: refused, and no event.
			if _, err := checkout(st.ctx, s.svc, st.mug.ID, 9); !errors.Is(err, store.ErrOutOfStock) {
				t.Fatalf("checkout of 9 out of 8: %v, want ErrOutOfStock", err)
			}
			// 8 → 6: still at or above the threshold, no event.
			if _, err := checkout(st.ctx, s.svc, st.mug.ID, 2); err != nil {
				t.Fatal(err)
			}
			if n := outboxLen(t, s, st.ctx); n != 0 {
				t.Fatalf("%d outbox events before the threshold was crossed", n)
			}
			// 6 → 3: crosses it.
			if _, err := checkout(st.ctx, s.svc, st.mug.ID, 3); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the low-stock notification", func() bool { return len(notes(t, s, st.ctx, jobs.KindLowStock)) > 0 })
			settled(t, s, st.ctx, lowStock, 1)
			got := notes(t, s, st.ctx, jobs.KindLowStock)
			if len(got) != 1 || got[0].Message != "Only 3 left of Blue mug (SKU MUG-1); threshold 5" {
				t.Errorf("notifications %+v, want one low-stock alert for 3 mugs", got)
			}
			if n := outboxLen(t, s, st.ctx); n != 0 {
				t.Errorf("%d outbox events left after the drain", n)
			}
		})
	}

	t.Run("no alert in the other stores", func(t *testing.T) {
		// Each store's own sale gave it exactly one alert; none reached another.
		for m, st := range stores {
			all, finished := jobsOf(t, s, st.ctx, lowStock)
			if got := notes(t, s, st.ctx, jobs.KindLowStock); len(got) != 1 || all != 1 || finished != 1 {
				t.Errorf("%s: %d low-stock notifications, %d jobs (%d finished); want 1", m, len(got), all, finished)
			}
		}
	})

	t.Run("crash between insert and delete", func(t *testing.T) {
		// No sweep runs after the first (Interval is an hour) and nobody
		// pokes this store: the outbox moves only when the test says.
		waitFor(t, "the drainer's first sweep", func() bool { return s.d.Sweeps() > 0 })
		ctx, _, mug := s.openStore(t, "crashy", tenant.ModelSchema)
		if _, err := checkout(ctx, s.quiet, mug.ID, 6); err != nil {
			t.Fatal(err)
		}
		if n := outboxLen(t, s, ctx); n != 1 {
			t.Fatalf("%d outbox events, want 1", n)
		}
		// The jobs are inserted, then the process dies before the delete.
		errCrash := errors.New("crash")
		var first []river.InsertManyParams
		_, err := store.DrainOutbox(ctx, s.ll.Handle(), 10, func(ctx context.Context, events []store.OutboxEvent) error {
			for _, e := range events {
				var a jobs.LowStockArgs
				if err := json.Unmarshal(e.Payload, &a); err != nil {
					return err
				}
				a.OutboxID = e.ID
				first = append(first, river.InsertManyParams{Args: a})
			}
			res, err := s.j.Client().InsertMany(ctx, first)
			if err != nil {
				return err
			}
			if len(res) != 1 || res[0].UniqueSkippedAsDuplicate {
				t.Errorf("first insert: %d results, skipped %v", len(res), res[0].UniqueSkippedAsDuplicate)
			}
			return errCrash
		})
		if !errors.Is(err, errCrash) {
			t.Fatalf("drain: %v, want the crash", err)
		}
		if n := outboxLen(t, s, ctx); n != 1 {
			t.Fatalf("%d outbox events after the crash, want 1", n)
		}
		settled(t, s, ctx, lowStock, 1)

		// The next drain moves the event again; River finds its job.
		n, err := s.d.Drain(ctx)
		if err != nil || n != 1 {
			t.Fatalf("drain after the crash: %d, %v; want 1 event", n, err)
		}
		if n, err := s.d.Drain(ctx); err != nil || n != 0 {
			t.Fatalf("second drain: %d, %v; want 0 events", n, err)
		}
		if all, _ := jobsOf(t, s, ctx, lowStock); all != 1 {
			t.Fatalf("%d low-stock jobs after the crash and two drains, want 1", all)
		}
		// The same event inserted once more by hand is skipped too.
		res, err := s.j.Client().InsertMany(ctx, first)
		if err != nil || !res[0].UniqueSkippedAsDuplicate {
			t.Fatalf("re-insert: %v, skipped %v", err, err == nil && res[0].UniqueSkippedAsDuplicate)
		}
		settled(t, s, ctx, lowStock, 1)
		if got := notes(t, s, ctx, jobs.KindLowStock); len(got) != 1 {
			t.Errorf("%d low-stock notifications after a crash and two drains, want 1", len(got))
		}
		if n := outboxLen(t, s, ctx); n != 0 {
			t.Errorf("%d outbox events left", n)
		}
		stores["crashy"] = storeOf{ctx: ctx}
	})

	t.Run("daily summary", func(t *testing.T) {
		// Cancelled orders do not count.
		row := stores[string(tenant.ModelRow)]
		o, err := checkout(row.ctx, s.svc, row.mug.ID, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.svc.Cancel(row.ctx, row.owner, o.ID); err != nil {
			t.Fatal(err)
		}
		day := o.CreatedAt.UTC()
		dayStr := day.Format(time.DateOnly)
		want := map[string]store.Summary{}
		for name, st := range stores {
			orders, err := s.svc.Orders(st.ctx, store.OrderFilter{PerPage: 100})
			if err != nil {
				t.Fatal(err)
			}
			sum := store.Summary{Currency: "EUR"}
			for _, o := range orders.Items {
				if o.Status != store.OrderCancelled && o.CreatedAt.UTC().Format(time.DateOnly) == dayStr {
					sum.Orders++
					sum.RevenueCents += o.TotalCents
				}
			}
			want[name] = sum
		}
		if want[string(tenant.ModelRow)].Orders != 2 {
			t.Fatalf("row store: %+v, want the 2 orders of its test", want[string(tenant.ModelRow)])
		}

		res, err := s.j.InsertDailySummary(context.Background(), day)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := s.j.InsertDailySummary(context.Background(), day); err != nil || !again.UniqueSkippedAsDuplicate {
			t.Errorf("second summary of the same day: %v, skipped %v", err, err == nil && again.UniqueSkippedAsDuplicate)
		}
		var meta map[string]any
		if err := json.Unmarshal(res.Job.Metadata, &meta); err != nil || meta[tenantjob.MetadataPlatform] != true {
			t.Errorf("the fan-out job is not a platform job: %s", res.Job.Metadata)
		}
		for name, st := range stores {
			settled(t, s, st.ctx, jobs.StoreSummaryArgs{}.Kind(), 1)
			got := notes(t, s, st.ctx, jobs.KindDailySummary)
			if msg := jobs.SummaryMessage(dayStr, want[name]); len(got) != 1 || got[0].Message != msg {
				t.Errorf("%s: summary notifications %+v, want one %q", name, got, msg)
			}
		}
	})

	t.Run("drainer refuses a context without a store", func(t *testing.T) {
		if _, err := s.d.Drain(context.Background()); !errors.Is(err, tenant.ErrNoTenant) {
			t.Errorf("drain without a store: %v", err)
		}
	})
}

func TestStartRefuses(t *testing.T) {
	ctx := context.Background()
	if _, err := jobs.Start(ctx, jobs.Config{}); err == nil {
		t.Error("Start without a Landlord")
	}
	d := jobs.NewDrainer(jobs.DrainerConfig{})
	if _, err := d.Drain(landlord.WithTenant(ctx, tenant.NewID())); err == nil {
		t.Error("an unstarted drainer drained")
	}
	if err := d.Sweep(ctx); err == nil {
		t.Error("an unstarted drainer swept")
	}
}

func TestSummaryMessage(t *testing.T) {
	for s, want := range map[store.Summary]string{
		{Orders: 3, RevenueCents: 4500, Currency: "EUR"}: "Sales on 2026-12-05 (UTC): 3 orders, 45.00 EUR",
		{Orders: 1, RevenueCents: 1205, Currency: "EUR"}: "Sales on 2026-12-05 (UTC): 1 order, 12.05 EUR",
		{Orders: 0, RevenueCents: 0, Currency: "USD"}:    "Sales on 2026-12-05 (UTC): 0 orders, 0.00 USD",
	} {
		if got := jobs.SummaryMessage("2026-12-05", s); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
