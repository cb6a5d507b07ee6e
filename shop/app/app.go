// Package app assembles the shop platform: one Landlord installation whose
// tenants are the stores, the store service, the platform's own tables, the
// River jobs, the JSON API and the web interface, as one http.Handler. The
// shop command serves it; tests and benchmarks build it the same way.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/metrics"
	"github.com/landlordhq/landlord/shop/api"
	"github.com/landlordhq/landlord/shop/jobs"
	"github.com/landlordhq/landlord/shop/platform"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/shop/web"
	"github.com/landlordhq/landlord/tenant"
)

// Config holds the settings of Open.
type Config struct {
	// DatabaseURL is an administrator's URL of the control database.
	DatabaseURL string
	// BaseDomain: stores are served at <slug>.<BaseDomain>; default
	// "localhost".
	BaseDomain string
	// Secure marks cookies Secure (serve over https).
	Secure bool
	// Logger receives the request log and everything else; it is wrapped
	// so that every record carries the tenant of its context.
	Logger *slog.Logger
	// PasswordCost is the bcrypt cost; default bcrypt's default.
	PasswordCost int
	// Reserve is how many pre-provisioned tenants of each model are kept
	// ready so that a sign-up only claims one; default 2 schema and 2
	// database tenants (row tenants cost a row). Negative: none.
	Reserve map[tenant.Model]int
	// NoJobs leaves River stopped (tools that only read).
	NoJobs bool
	// MaxConns is the connection budget per server (landlord.Config);
	// default DefaultMaxConns.
	MaxConns int
	// OwnerRole and AppRole name the installation's roles
	// (landlord.Config); default Landlord's.
	OwnerRole, AppRole string
}

// DefaultMaxConns is the shop's connection budget per server: enterprise
// stores each need connections of their own database, so the toolkit's
// default (four per core) would have them evict each other's connections
// under ordinary traffic.
const DefaultMaxConns = 50

// App is the assembled shop.
type App struct {
	LL       *landlord.Landlord
	Store    *store.Service
	Platform *platform.Platform
	Jobs     *jobs.Jobs // nil with Config.NoJobs
	Web      *web.Server
	Registry *prometheus.Registry

	log     *slog.Logger
	reserve map[tenant.Model]int
	refill  chan struct{}
	stop    context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
}

// Open opens the installation (installing Landlord and the store's tables
// on first use), the platform's tables and River's, and builds the handler.
func Open(ctx context.Context, cfg Config) (*App, error) {
	if cfg.DatabaseURL == "" {
		return nil, landlord.ErrNoDatabaseURL
	}
	if cfg.BaseDomain == "" {
		cfg.BaseDomain = "localhost"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := slog.New(landlord.LogHandler(cfg.Logger.Handler()))
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Reserve == nil {
		cfg.Reserve = map[tenant.Model]int{tenant.ModelSchema: 2, tenant.ModelDatabase: 2}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(metrics.Config{})
	ll, err := landlord.Open(ctx, cfg.DatabaseURL, store.Migrations(), landlord.Config{
		Global:    store.Global(),
		Logger:    log,
		Tracer:    m,
		MaxConns:  cfg.MaxConns,
		OwnerRole: cfg.OwnerRole,
		AppRole:   cfg.AppRole,
		PurgeKeep: platform.PurgeKeep(),
	})
	if err != nil {
		return nil, fmt.Errorf("open the installation: %w", err)
	}
	if err := m.Register(reg, ll); err != nil {
		ll.Close()
		return nil, err
	}
	a := &App{LL: ll, Registry: reg, log: log, reserve: cfg.Reserve, refill: make(chan struct{}, 1)}

	// The store's hooks reach parts built after it; the drainer exists
	// before the store so that a committed sale pokes it.
	var drainer *jobs.Drainer
	if !cfg.NoJobs {
		drainer = jobs.NewDrainer(jobs.DrainerConfig{})
	}
	a.Store = store.New(ll.Handle(), store.Options{
		PasswordCost: cfg.PasswordCost,
		OnProductsChanged: func(ctx context.Context) {
			if a.Web != nil {
				a.Web.ProductsChanged(ctx)
			}
		},
		OnOutbox: func(ctx context.Context) {
			if drainer != nil {
				drainer.OnOutbox(ctx)
			}
		},
	})
	fail := func(err error) (*App, error) {
		a.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	a.Platform, err = platform.Open(ctx, ll, a.Store, platform.Config{Logger: log, PasswordCost: cfg.PasswordCost})
	if err != nil {
		return fail(fmt.Errorf("open the platform: %w", err))
	}
	if !cfg.NoJobs {
		a.Jobs, err = jobs.Start(ctx, jobs.Config{Landlord: ll, Store: a.Store, Drainer: drainer, Logger: log})
		if err != nil {
			return fail(fmt.Errorf("start the jobs: %w", err))
		}
	}
	apiHandler, err := api.New(api.Config{Store: a.Store, Logger: log})
	if err != nil {
		return fail(err)
	}
	a.Web, err = web.New(web.Config{
		Landlord:   ll,
		Store:      a.Store,
		Platform:   a.Platform,
		API:        apiHandler,
		Registry:   reg,
		Logger:     log,
		BaseDomain: cfg.BaseDomain,
		Secure:     cfg.Secure,
	})
	if err != nil {
		return fail(err)
	}

	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.stop = stop
	a.wg.Add(2)
	go a.keepReserve(bg)
	go a.resumePlanChanges(bg)
	a.Refill()
	return a, nil
}

// resumePlanChanges takes over the plan changes of stopped processes
// (platform.ResumePlanChanges) at start and every minute, so that a store
// whose move was cut off does not stay fenced or keep its replication slot.
func (a *App) resumePlanChanges(ctx context.Context) {
	defer a.wg.Done()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		if _, err := a.Platform.ResumePlanChanges(ctx); err != nil && ctx.Err() == nil {
			a.log.LogAttrs(ctx, slog.LevelWarn, "resume the plan changes of stopped processes", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Handler is the shop's HTTP handler.
func (a *App) Handler() http.Handler { return a.Web }

// Refill asks for the reserve of pre-provisioned tenants to be topped up,
// in the background.
func (a *App) Refill() {
	select {
	case a.refill <- struct{}{}:
	default:
	}
}

// keepReserve tops the reserve up when asked and every 10 seconds, so that
// the next sign-up finds a tenant ready.
func (a *App) keepReserve(ctx context.Context) {
	defer a.wg.Done()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.refill:
		case <-tick.C:
		}
		for _, m := range []tenant.Model{tenant.ModelRow, tenant.ModelSchema, tenant.ModelDatabase} {
			n := a.reserve[m]
			if n <= 0 {
				continue
			}
			if _, err := a.LL.FillReserve(ctx, m, n); err != nil && !errors.Is(err, context.Canceled) {
				a.log.LogAttrs(ctx, slog.LevelWarn, "fill the reserve of pre-provisioned tenants",
					slog.String("model", string(m)), slog.Any("error", err))
			}
		}
	}
}

// Close stops the jobs and the background work and closes the
// installation. It may be called more than once.
func (a *App) Close(ctx context.Context) {
	a.once.Do(func() {
		if a.stop != nil {
			a.stop()
		}
		a.wg.Wait()
		if a.Jobs != nil {
			if err := a.Jobs.Stop(ctx); err != nil {
				a.log.LogAttrs(ctx, slog.LevelWarn, "stop the jobs", slog.Any("error", err))
			}
		}
		a.LL.Close()
	})
}
