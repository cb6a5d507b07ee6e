package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

// DrainerConfig holds the settings of NewDrainer. The zero value is usable.
type DrainerConfig struct {
	// Interval is the time between two sweeps over every store, which
	// recover events a crash or a lost poke left behind. Default 1 minute.
	Interval time.Duration
	// Batch is the number of events moved in one transaction. Default 100.
	Batch int
}

// Drainer moves the stores' outbox events into River jobs: at once for a
// store that pokes it (Poke, OnOutbox), and for every active store at
// Start and then every Interval. Each event becomes a job that is unique
// per store and event, inserted before the event is deleted in the same
// store transaction that read it: a crash in between leaves the event,
// whose next drain finds its job there already (River keeps a completed
// job a day) and inserts nothing. Events that are not valid low_stock
// events are logged and dropped, so that one cannot block the outbox.
//
// A Drainer does its work in one goroutine, one store at a time. It is
// safe for concurrent use.
type Drainer struct {
	interval time.Duration
	batch    int
	sweeps   atomic.Int64 // sweeps finished, for tests

	mu      sync.Mutex
	pending map[tenant.ID]struct{}
	deps    *drainerDeps
	cancel  context.CancelFunc
	done    chan struct{}
	wake    chan struct{}
}

// drainerDeps is what Start gives the drainer.
type drainerDeps struct {
	ll     *landlord.Landlord
	db     store.DB
	client *river.Client[pgx.Tx]
	logger *slog.Logger
}

// NewDrainer returns a drainer that does nothing until Start is given it;
// pokes before that wait for it.
func NewDrainer(cfg DrainerConfig) *Drainer {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	return &Drainer{
		interval: cfg.Interval,
		batch:    cfg.Batch,
		pending:  map[tenant.ID]struct{}{},
		wake:     make(chan struct{}, 1),
	}
}

// Poke asks for the outbox of store id to be drained soon. It never blocks.
func (d *Drainer) Poke(id tenant.ID) {
	if id.IsZero() {
		return
	}
	d.mu.Lock()
	d.pending[id] = struct{}{}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// OnOutbox pokes the store in ctx: the store.Options.OnOutbox hook.
func (d *Drainer) OnOutbox(ctx context.Context) {
	if id, ok := tenant.FromContext(ctx); ok {
		d.Poke(id)
	}
}

// Drain moves every outbox event of the store in ctx into jobs now and
// returns how many it moved. It needs the drainer started.
func (d *Drainer) Drain(ctx context.Context) (int, error) {
	deps, err := d.started()
	if err != nil {
		return 0, err
	}
	return d.drain(ctx, deps)
}

// Sweep drains every active store now. Read-only stores keep their events
// until they are active again (their outbox cannot be written), as do
// suspended ones. It returns the first error after trying every store.
func (d *Drainer) Sweep(ctx context.Context) error {
	deps, err := d.started()
	if err != nil {
		return err
	}
	return d.sweep(ctx, deps)
}

func (d *Drainer) started() (*drainerDeps, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.deps == nil {
		return nil, errNotStarted
	}
	return d.deps, nil
}

// start attaches deps and starts the drainer's goroutine.
func (d *Drainer) start(deps drainerDeps) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.deps != nil {
		return errors.New("the drainer is started already")
	}
	d.deps = &deps
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})
	go d.run(ctx, &deps)
	return nil
}

// stop ends the goroutine, after the store it is draining.
func (d *Drainer) stop() {
	d.mu.Lock()
	cancel, done := d.cancel, d.done
	d.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (d *Drainer) run(ctx context.Context, deps *drainerDeps) {
	defer close(d.done)
	tick := time.NewTicker(d.interval)
	defer tick.Stop()
	d.logErr(ctx, deps, d.sweep(ctx, deps), "outbox sweep")
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			d.logErr(ctx, deps, d.sweep(ctx, deps), "outbox sweep")
		case <-d.wake:
			d.mu.Lock()
			ids := make([]tenant.ID, 0, len(d.pending))
			for id := range d.pending {
				ids = append(ids, id)
			}
			clear(d.pending)
			d.mu.Unlock()
			for _, id := range ids {
				if ctx.Err() != nil {
					return
				}
				_, err := d.drain(tenant.WithContext(ctx, id), deps)
				d.logErr(ctx, deps, err, "outbox drain", slog.String("tenant", id.String()))
			}
		}
	}
}

func (d *Drainer) logErr(ctx context.Context, deps *drainerDeps, err error, what string, attrs ...slog.Attr) {
	if err == nil || ctx.Err() != nil {
		return
	}
	deps.logger.LogAttrs(ctx, slog.LevelError, what+" failed", append(attrs, slog.String("error", err.Error()))...)
}

func (d *Drainer) sweep(ctx context.Context, deps *drainerDeps) error {
	defer d.sweeps.Add(1)
	admin, err := deps.ll.Admin(ctx, "drain the stores' outboxes")
	if err != nil {
		return fmt.Errorf("jobs: sweep: %w", err)
	}
	ts, err := admin.Tenants(ctx, directory.Filter{State: tenant.StateActive})
	if err != nil {
		return fmt.Errorf("jobs: sweep: list stores: %w", err)
	}
	var errs []error
	for _, t := range ts {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := d.drain(tenant.WithContext(ctx, t.ID), deps); err != nil {
			errs = append(errs, fmt.Errorf("store %s: %w", t.Slug, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("jobs: sweep: %w", errors.Join(errs...))
	}
	return nil
}

// drain moves the events of the store in ctx, a batch per transaction,
// until its outbox is empty.
func (d *Drainer) drain(ctx context.Context, deps *drainerDeps) (int, error) {
	id, ok := tenant.FromContext(ctx)
	if !ok {
		return 0, fmt.Errorf("jobs: drain: %w", tenant.ErrNoTenant)
	}
	total := 0
	for {
		n, err := store.DrainOutbox(ctx, deps.db, d.batch, func(ctx context.Context, events []store.OutboxEvent) error {
			return insertEvents(ctx, deps, events)
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("jobs: drain the outbox of %s: %w", id, err)
		}
		if n < d.batch {
			return total, nil
		}
	}
}

// insertEvents inserts the jobs of events for the store in ctx. Events that
// are not valid low_stock events are logged and left out (and so dropped
// from the outbox).
func insertEvents(ctx context.Context, deps *drainerDeps, events []store.OutboxEvent) error {
	params := make([]river.InsertManyParams, 0, len(events))
	for _, e := range events {
		args, err := lowStockArgs(e)
		if err != nil {
			deps.logger.LogAttrs(ctx, slog.LevelError, "outbox event dropped", tenantAttr(ctx),
				slog.Int64("event", e.ID), slog.String("kind", e.Kind), slog.String("error", err.Error()))
			continue
		}
		params = append(params, river.InsertManyParams{Args: args})
	}
	if len(params) == 0 {
		return nil
	}
	if _, err := deps.client.InsertMany(ctx, params); err != nil {
		return fmt.Errorf("insert %d jobs: %w", len(params), err)
	}
	return nil
}
