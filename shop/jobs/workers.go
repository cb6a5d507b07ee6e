package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

// LowStockArgs is the job of one low-stock alert of the store in the job's
// tenant: the payload of a low_stock outbox event and the event's id, the
// unique key of the job (with the tenant, see tenantjob).
type LowStockArgs struct {
	OutboxID  int64  `json:"outbox_id" river:"unique"`
	ProductID string `json:"product_id"`
	SKU       string `json:"sku"`
	Title     string `json:"title"`
	OnHand    int    `json:"on_hand"`
	Threshold int    `json:"threshold"`
}

// Kind is the job's kind in River.
func (LowStockArgs) Kind() string { return "shop_low_stock" }

// InsertOpts makes the job unique by its outbox event (and tenant).
func (LowStockArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Message is the notification's text.
func (a LowStockArgs) Message() string {
	return fmt.Sprintf("Only %d left of %s (SKU %s); threshold %d", a.OnHand, a.Title, a.SKU, a.Threshold)
}

// lowStockArgs decodes a low_stock outbox event.
func lowStockArgs(e store.OutboxEvent) (LowStockArgs, error) {
	var a LowStockArgs
	if e.Kind != KindLowStock {
		return a, fmt.Errorf("outbox event %d: unknown kind %q", e.ID, e.Kind)
	}
	if err := json.Unmarshal(e.Payload, &a); err != nil {
		return a, fmt.Errorf("outbox event %d: payload: %w", e.ID, err)
	}
	if a.ProductID == "" || a.SKU == "" || a.Title == "" {
		return a, fmt.Errorf("outbox event %d: payload %s lacks the product", e.ID, e.Payload)
	}
	a.OutboxID = e.ID
	return a, nil
}

type lowStockWorker struct {
	river.WorkerDefaults[LowStockArgs]
	store  *store.Service
	logger *slog.Logger
}

// Work writes the alert as a notification of the store in ctx.
func (w *lowStockWorker) Work(ctx context.Context, job *river.Job[LowStockArgs]) error {
	n, err := w.store.Notify(ctx, KindLowStock, job.Args.Message())
	if err != nil {
		return fmt.Errorf("low-stock alert of product %s: %w", job.Args.ProductID, err)
	}
	w.logger.LogAttrs(ctx, slog.LevelInfo, "low-stock alert", tenantAttr(ctx),
		slog.String("product", job.Args.ProductID), slog.String("sku", job.Args.SKU),
		slog.Int("on_hand", job.Args.OnHand), slog.Int("threshold", job.Args.Threshold),
		slog.Int64("notification", n.ID))
	return nil
}

// DailySummaryArgs is the platform job that fans out one StoreSummaryArgs
// job per active or read-only store, for Day.
type DailySummaryArgs struct {
	// Day is the UTC date to sum up, YYYY-MM-DD.
	Day string `json:"day" river:"unique"`
}

// Kind is the job's kind in River.
func (DailySummaryArgs) Kind() string { return "shop_daily_summary" }

// PlatformJob marks the job as about no single store (tenantjob).
func (DailySummaryArgs) PlatformJob() {}

// InsertOpts makes the job unique by day: a periodic run and one by hand,
// or two leaders in turn, fan out once.
func (DailySummaryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// StoreSummaryArgs is the job that writes the sales summary of Day for the
// store in the job's tenant.
type StoreSummaryArgs struct {
	// Day is the UTC date to sum up, YYYY-MM-DD.
	Day string `json:"day" river:"unique"`
}

// Kind is the job's kind in River.
func (StoreSummaryArgs) Kind() string { return "shop_store_summary" }

// InsertOpts makes the job unique by day and store.
func (StoreSummaryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// parseDay parses a summary's day: its [start, end) in UTC.
func parseDay(s string) (time.Time, time.Time, error) {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("day %q is not a date (YYYY-MM-DD): %w", s, err)
	}
	return d, d.AddDate(0, 0, 1), nil
}

type dailySummaryWorker struct {
	river.WorkerDefaults[DailySummaryArgs]
	ll     *landlord.Landlord
	logger *slog.Logger
}

// Work inserts a StoreSummaryArgs job for each active or read-only store,
// with that store's tenant. A retry after a partial run inserts only what
// is missing (the store jobs are unique).
func (w *dailySummaryWorker) Work(ctx context.Context, job *river.Job[DailySummaryArgs]) error {
	if _, _, err := parseDay(job.Args.Day); err != nil {
		return river.JobCancel(err)
	}
	admin, err := w.ll.Admin(ctx, "daily sales summary of "+job.Args.Day)
	if err != nil {
		return err
	}
	ts, err := admin.Tenants(ctx, directory.Filter{})
	if err != nil {
		return fmt.Errorf("list stores: %w", err)
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	inserted := 0
	for _, t := range ts {
		if t.State != tenant.StateActive && t.State != tenant.StateReadOnly {
			continue
		}
		res, err := client.Insert(tenant.WithContext(ctx, t.ID), StoreSummaryArgs{Day: job.Args.Day}, nil)
		if err != nil {
			return fmt.Errorf("summary job of store %s: %w", t.Slug, err)
		}
		if !res.UniqueSkippedAsDuplicate {
			inserted++
		}
	}
	w.logger.LogAttrs(ctx, slog.LevelInfo, "daily summaries queued",
		slog.String("day", job.Args.Day), slog.Int("stores", inserted))
	return nil
}

type storeSummaryWorker struct {
	river.WorkerDefaults[StoreSummaryArgs]
	store  *store.Service
	logger *slog.Logger
	now    func() time.Time
}

// Work sums up the day of the store in ctx and writes it as a notification.
// A read-only store refuses the notification (store.ErrReadOnly): the job
// is retried with River's backoff, so the summary arrives once the store
// is writable again.
func (w *storeSummaryWorker) Work(ctx context.Context, job *river.Job[StoreSummaryArgs]) error {
	from, to, err := parseDay(job.Args.Day)
	if err != nil {
		return river.JobCancel(err)
	}
	sum, err := w.store.SalesSummary(ctx, from, to)
	if err != nil {
		return fmt.Errorf("sales summary of %s: %w", job.Args.Day, err)
	}
	n, err := w.store.Notify(ctx, KindDailySummary, SummaryMessage(job.Args.Day, sum))
	if err != nil {
		return fmt.Errorf("summary notification of %s: %w", job.Args.Day, err)
	}
	w.logger.LogAttrs(ctx, slog.LevelInfo, "daily summary", tenantAttr(ctx),
		slog.String("day", job.Args.Day), slog.Int("orders", sum.Orders),
		slog.Int64("revenue_cents", sum.RevenueCents), slog.Int64("notification", n.ID))
	return nil
}

// SummaryMessage is the text of a daily summary notification, e.g. "Sales
// on 2026-12-05 (UTC): 3 orders, 45.00 EUR". Amounts are written with two
// decimals.
func SummaryMessage(day string, s store.Summary) string {
	orders := "orders"
	if s.Orders == 1 {
		orders = "order"
	}
	return fmt.Sprintf("Sales on %s (UTC): %d %s, %s %s", day, s.Orders, orders, money(s.RevenueCents), s.Currency)
}

func money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

func tenantAttr(ctx context.Context) slog.Attr {
	id, _ := tenant.FromContext(ctx)
	return slog.String("tenant", id.String())
}

// errNotStarted is returned by a Drainer's methods before Start attached it.
var errNotStarted = errors.New("jobs: the drainer is not started (pass it to Start)")
