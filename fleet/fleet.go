// Package fleet migrates every target of a Landlord installation as one
// durable, resumable, observable operation: the shared schema of each server,
// each tenant schema, the schema inside each tenant database, and the
// provisioning templates (ARCHITECTURE.md, idea 7; SECURITY.md, F01, F02).
//
// The truth about a target's version is the ledger in its own database
// (package migration), where every migration step commits its DDL and its
// ledger row in one transaction. A run records its intent and each target's
// state in the directory (landlord.migration_runs, landlord.migration_targets)
// before it acts, so a run stopped at any point — a failing target, Ctrl-C, a
// killed process — is finished by the next one, which touches only the
// targets that are not done. Two runs at once never migrate the same target
// at the same time: a target belongs to one running run, and the other waits
// for it.
package fleet

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// DefaultParallel is how many targets of one server a run migrates at once
// when Config.Parallel is zero.
//
// Measured on this project's 2-core machine (PostgreSQL 15, fsync off, unix
// socket, server, migrator and other people's test runs sharing the cores:
// load average 10-15, so single figures drift by up to 2x), migrating 1,000
// schema tenants and 200 database tenants by one migration holding ADD
// COLUMN + CREATE INDEX, rounds in the order 1 2 4 8 8 4 2 1:
//
//	go test -run '^$' -bench FleetParallelism -benchtime 1x -timeout 60m ./fleet/
//
//	parallel  200 database tenants  1,000 schema tenants, PerDatabase = parallel
//	1         22.6s  17.4s          31.4s  40.2s
//	2         14.7s   7.9s          20.9s  60.3s
//	4          8.8s   7.8s          16.5s  20.0s
//	8          6.2s   4.4s          10.0s  13.5s
//
// Tenant databases gain the most: each target pays for a new connection and
// a cold backend, which overlap well. The schema-tenant column was measured
// with PerDatabase 1 and PerDatabase = parallel, before the shape check
// stopped scanning every relation of the database; PerDatabase now defaults
// to Parallel (see Config.PerDatabase).
const DefaultParallel = 8

// maxParallel bounds Config.Parallel: each worker holds a server connection.
const maxParallel = 64

// Config holds the optional settings of a Fleet. The zero value migrates
// every target, DefaultParallel at a time per server, and stops at the first
// failure.
type Config struct {
	// Parallel is how many targets of one server are migrated at once, and
	// how many tenant databases are read at once by Status and Plan. Each
	// is a server connection. Default DefaultParallel.
	Parallel int
	// PerDatabase is how many targets of one database are migrated at
	// once (tenant schemas share their server's control database). Default
	// Parallel.
	//
	// It defaulted to 1 while the shape check of every step read the
	// column defaults of every table in the database (pg_get_expr, which
	// locks the table it deparses for) and so queued behind the locks that
	// the other steps held until they committed, and deadlocked. The check
	// now reads only its own schema's tables (migration/secure.go), and
	// concurrent steps in one database no longer wait for each other:
	// 100 schema tenants migrate in 0.55 s at 8 at once, 1.7 s one at a
	// time (landlord bench --quick fleet-migrate). Deadlocks that remain
	// possible are retried (ten times per target).
	PerDatabase int
	// Canary migrates this many targets first (in run order: tenants by
	// slug, then shared schemas, then templates) and stops before the rest
	// if any of them fails, whatever ContinueOnError says.
	Canary int
	// Models keeps only the targets of these models: a tenant's own schema
	// or database, the shared schemas for "row", and the schema template
	// (schema) or the template database (database). Empty: all models.
	Models []tenant.Model
	// Tenants keeps only these tenants, named by id or slug. A row tenant
	// selects the shared schema of its server, which all row tenants of that
	// server share. Templates are not selected. An unknown tenant is an
	// error wrapping tenant.ErrNotFound, before anything is recorded.
	// Empty: every tenant.
	Tenants []string
	// ContinueOnError keeps migrating the other targets after one failed.
	// By default no new target is started after the first failure.
	ContinueOnError bool
	// LockTimeout bounds how long one migration statement waits for a lock,
	// so live traffic never queues behind a migration for longer; a step
	// that hits it is rolled back and retried. Default: the migration
	// package's (3s).
	LockTimeout time.Duration
	// LockRetries is how often a step that hit LockTimeout is retried before
	// its target fails. Default: the migration package's (5).
	LockRetries int
	// Logger receives a line per target migrated or failed and per step
	// applied. Default: discard.
	Logger *slog.Logger
	// OnRun, if set, is called once by Up after the run's intent is recorded
	// and before any target is touched, with the number of targets it will
	// migrate. It runs on Up's goroutine; Up waits for it.
	OnRun func(r Run)
	// OnTarget, if set, is called by Up each time a target finishes, failed
	// or not. It is called from several goroutines at once and must be safe
	// for that; the worker that calls it waits for it to return.
	OnTarget func(r TargetResult)
}

func (c *Config) validate() error {
	switch {
	case c.Parallel < 0 || c.Parallel > maxParallel:
		return fmt.Errorf("fleet config: Parallel must be between 0 and %d: %w", maxParallel, ErrBadConfig)
	case c.PerDatabase < 0 || c.PerDatabase > maxParallel:
		return fmt.Errorf("fleet config: PerDatabase must be between 0 and %d: %w", maxParallel, ErrBadConfig)
	case c.Canary < 0:
		return fmt.Errorf("fleet config: Canary must not be negative: %w", ErrBadConfig)
	case c.LockTimeout < 0:
		return fmt.Errorf("fleet config: LockTimeout must not be negative: %w", ErrBadConfig)
	case c.LockRetries < 0:
		return fmt.Errorf("fleet config: LockRetries must not be negative: %w", ErrBadConfig)
	}
	for _, m := range c.Models {
		if _, err := tenant.ParseModel(string(m)); err != nil {
			return fmt.Errorf("fleet config: Models: %w", err)
		}
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Parallel == 0 {
		c.Parallel = DefaultParallel
	}
	if c.PerDatabase == 0 {
		c.PerDatabase = c.Parallel
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Fleet migrates, plans and reports on the targets of one installation. Its
// methods are safe for concurrent use, and several Fleets, in one process or
// in several, may run at once.
type Fleet struct {
	admin *pgxpool.Pool
	prov  *provision.Provisioner
	set   *migration.Set
	mig   *migration.Migrator
	cfg   Config
	refs  []tenantRef

	byVersion map[int]migration.Migration

	// The global tables' migrations (nil without global tables): a run
	// brings the global schema of every database outside the control
	// database to their head, before the tenant tables of that database.
	global          *migration.Migrator
	globalByVersion map[int]migration.Migration
}

// New returns a Fleet for the installation that prov manages, through its
// administrator pool (provision.Provisioner.Admin) and with its migrations
// (provision.Provisioner.Migrator); landlord.Landlord.Fleet passes its own. A bad
// Config or a malformed tenant in Config.Tenants is an error wrapping
// ErrBadConfig, tenant.ErrBadSlug or tenant.ErrBadID.
func New(prov *provision.Provisioner, cfg Config) (*Fleet, error) {
	if prov == nil {
		return nil, errors.New("fleet: a provisioner is required")
	}
	admin := prov.Admin()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	refs := make([]tenantRef, 0, len(cfg.Tenants))
	for _, arg := range cfg.Tenants {
		ref, err := parseTenantRef(arg)
		if err != nil {
			return nil, fmt.Errorf("fleet config: Tenants: %w", err)
		}
		refs = append(refs, ref)
	}
	set := prov.Migrator().Set()
	mig, err := migration.New(set, migration.Config{
		Owner:       prov.Roles().Owner,
		LockTimeout: cfg.LockTimeout,
		LockRetries: cfg.LockRetries,
		Logger:      cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	byVersion := make(map[int]migration.Migration, len(set.Migrations()))
	for _, m := range set.Migrations() {
		byVersion[m.Version] = m
	}
	f := &Fleet{admin: admin, prov: prov, set: set, mig: mig, cfg: cfg, refs: refs, byVersion: byVersion}
	if g := prov.GlobalMigrator(); g != nil {
		if f.global, err = migration.New(g.Set(), migration.Config{
			Owner:       prov.Roles().Owner,
			LockTimeout: cfg.LockTimeout,
			LockRetries: cfg.LockRetries,
			Logger:      cfg.Logger,
		}); err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
		f.globalByVersion = make(map[int]migration.Migration, len(g.Set().Migrations()))
		for _, m := range g.Set().Migrations() {
			f.globalByVersion[m.Version] = m
		}
	}
	return f, nil
}

// Head is the version every target is migrated to.
func (f *Fleet) Head() int { return f.set.Head() }
