// Package jobs runs the shop's background work on River, through package
// tenantjob: every store job carries its store's tenant and runs as that
// store, whatever model the store lives in.
//
//   - Low-stock alerts. A sale that takes a product under its threshold
//     writes a low_stock outbox event in its own transaction (package
//     store). The Drainer moves outbox events into River jobs, unique per
//     store and outbox event, so that a crash between the insert and the
//     outbox delete never alerts twice; the alert worker writes a
//     notification for the store's staff.
//   - Daily sales summaries. A platform job, daily at 00:05 UTC (and
//     insertable by hand, InsertDailySummary), inserts one summary job per
//     active or read-only store for the previous UTC day; the summary
//     worker writes the store's totals as a notification.
//
// Wiring, with the drainer made first so that the store can call it:
//
//	d := jobs.NewDrainer(jobs.DrainerConfig{})
//	svc := store.New(ll.Handle(), store.Options{OnOutbox: d.OnOutbox})
//	j, err := jobs.Start(ctx, jobs.Config{Landlord: ll, Store: svc, Drainer: d, Logger: logger})
//	if err != nil {
//		return err
//	}
//	defer j.Stop(context.Background())
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenantjob"
)

// Notification kinds the workers write.
const (
	KindLowStock     = "low_stock"
	KindDailySummary = "daily_summary"
)

// Config holds the settings of Start.
type Config struct {
	// Landlord is the open installation; required. River's tables go into
	// its control database (tenantjob.Migrate).
	Landlord *landlord.Landlord
	// Store is the store service the workers write notifications with (a
	// store.New on Landlord.Handle()); required.
	Store *store.Service
	// DB is what the drainer reads the outbox through. Default
	// Landlord.Handle().
	DB store.DB
	// Pool is River's connection pool, to the control database as its
	// administrator. Default: a pool of its own (8 connections) with the
	// settings of Landlord.Provisioner().Admin(), closed by Stop.
	Pool *pgxpool.Pool
	// Drainer moves outbox events into jobs. Default NewDrainer with the
	// zero DrainerConfig.
	Drainer *Drainer
	// Logger receives the alerts and summaries written, and trouble.
	// Default: discard.
	Logger *slog.Logger
	// Workers is the number of jobs worked at once. Default 10.
	Workers int
	// PollInterval is how often River looks for new jobs (its clients poll;
	// see package tenantjob). Default 1 second.
	PollInterval time.Duration
	// Now returns the time (the summary's day). Default time.Now.
	Now func() time.Time
}

// Jobs is the running job system: River's client, its workers and periodic
// job, and the outbox drainer.
type Jobs struct {
	client  *river.Client[pgx.Tx]
	drainer *Drainer
	ownPool *pgxpool.Pool
	now     func() time.Time
}

// Start migrates River's tables, builds and starts a River client with the
// tenantjob middleware, the low-stock, summary fan-out and store summary
// workers and the daily periodic job, and starts the drainer. Stop stops
// them. ctx bounds the start only.
func Start(ctx context.Context, cfg Config) (*Jobs, error) {
	switch {
	case cfg.Landlord == nil:
		return nil, errors.New("jobs: start: Config.Landlord is nil")
	case cfg.Store == nil:
		return nil, errors.New("jobs: start: Config.Store is nil")
	case cfg.Workers < 0:
		return nil, errors.New("jobs: start: Config.Workers must not be negative")
	case cfg.PollInterval < 0:
		return nil, errors.New("jobs: start: Config.PollInterval must not be negative")
	}
	if cfg.DB == nil {
		cfg.DB = cfg.Landlord.Handle()
	}
	if cfg.Drainer == nil {
		cfg.Drainer = NewDrainer(DrainerConfig{})
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Workers == 0 {
		cfg.Workers = 10
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	admin := cfg.Landlord.Provisioner().Admin()
	if err := tenantjob.Migrate(ctx, admin); err != nil {
		return nil, fmt.Errorf("jobs: start: %w", err)
	}
	j := &Jobs{drainer: cfg.Drainer, now: cfg.Now}
	pool := cfg.Pool
	if pool == nil {
		pcfg := admin.Config()
		pcfg.MaxConns = 8
		var err error
		if pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
			return nil, fmt.Errorf("jobs: start: River's pool: %w", err)
		}
		j.ownPool = pool
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &lowStockWorker{store: cfg.Store, logger: cfg.Logger})
	river.AddWorker(workers, &dailySummaryWorker{ll: cfg.Landlord, logger: cfg.Logger})
	river.AddWorker(workers, &storeSummaryWorker{store: cfg.Store, logger: cfg.Logger, now: cfg.Now})
	rc := &river.Config{
		Logger:            cfg.Logger,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}},
		Workers:           workers,
		FetchPollInterval: cfg.PollInterval,
		FetchCooldown:     min(cfg.PollInterval, river.FetchCooldownDefault),
		PeriodicJobs: []*river.PeriodicJob{
			river.NewPeriodicJob(dailyAt{hour: 0, minute: 5}, func() (river.JobArgs, *river.InsertOpts) {
				return DailySummaryArgs{Day: previousDay(cfg.Now())}, nil
			}, &river.PeriodicJobOpts{ID: DailySummaryArgs{}.Kind()}),
		},
	}
	if err := (tenantjob.Config{Logger: cfg.Logger}).Configure(rc); err != nil {
		j.closePool()
		return nil, fmt.Errorf("jobs: start: %w", err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		j.closePool()
		return nil, fmt.Errorf("jobs: start: River client: %w", err)
	}
	// The client outlives ctx: Stop ends it.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		j.closePool()
		return nil, fmt.Errorf("jobs: start: River client: %w", err)
	}
	j.client = client
	if err := cfg.Drainer.start(drainerDeps{ll: cfg.Landlord, db: cfg.DB, client: client, logger: cfg.Logger}); err != nil {
		stopErr := client.Stop(context.WithoutCancel(ctx))
		j.closePool()
		return nil, errors.Join(fmt.Errorf("jobs: start: %w", err), stopErr)
	}
	return j, nil
}

// Stop stops the drainer, then River's client (jobs being worked get until
// ctx ends to finish), and closes River's pool if Start made it.
func (j *Jobs) Stop(ctx context.Context) error {
	j.drainer.stop()
	err := j.client.Stop(ctx)
	j.closePool()
	if err != nil {
		return fmt.Errorf("jobs: stop: %w", err)
	}
	return nil
}

func (j *Jobs) closePool() {
	if j.ownPool != nil {
		j.ownPool.Close()
	}
}

// Client returns River's client, to insert jobs or read them.
func (j *Jobs) Client() *river.Client[pgx.Tx] { return j.client }

// Drainer returns the outbox drainer.
func (j *Jobs) Drainer() *Drainer { return j.drainer }

// InsertDailySummary inserts by hand the job that writes the sales summary
// of day (its UTC date) for every active or read-only store; the zero time
// is the previous UTC day. A second insert for the same day is skipped
// while the first job is kept (River keeps completed jobs a day).
func (j *Jobs) InsertDailySummary(ctx context.Context, day time.Time) (*rivertype.JobInsertResult, error) {
	d := previousDay(j.now())
	if !day.IsZero() {
		d = day.UTC().Format(time.DateOnly)
	}
	res, err := j.client.Insert(ctx, DailySummaryArgs{Day: d}, nil)
	if err != nil {
		return nil, fmt.Errorf("jobs: insert daily summary of %s: %w", d, err)
	}
	return res, nil
}

// previousDay is the UTC date before t's, as YYYY-MM-DD.
func previousDay(t time.Time) string {
	return t.UTC().AddDate(0, 0, -1).Format(time.DateOnly)
}

// dailyAt is a River schedule: every day at hour:minute UTC.
type dailyAt struct{ hour, minute int }

// Next returns the first hour:minute UTC strictly after t.
func (d dailyAt) Next(t time.Time) time.Time {
	t = t.UTC()
	next := time.Date(t.Year(), t.Month(), t.Day(), d.hour, d.minute, 0, 0, time.UTC)
	if !next.After(t) {
		next = next.AddDate(0, 0, 1)
	}
	return next
}
