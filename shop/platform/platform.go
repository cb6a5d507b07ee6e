// Package platform is what belongs to the shop platform rather than to one
// store: signing stores up on the plan that decides their isolation model,
// the platform's operators and their sessions, and the operators' tools
// (the list of stores with their size, state changes, read-only browsing,
// impersonation of a store's user, sales reports across every store), each
// audited.
//
// Its tables live in schema shop of the Landlord control database, reached
// with the administrator's pool; no tenant traffic role can read or write
// them. Store data is only ever reached through Landlord: a store's own
// handle, or an admin scope with a reason.
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

// Plan is a store's subscription; it decides where the store's data lives.
type Plan string

// The plans.
const (
	PlanFree       Plan = "free"       // shared tables (tenant.ModelRow)
	PlanPro        Plan = "pro"        // a schema of its own (tenant.ModelSchema)
	PlanEnterprise Plan = "enterprise" // a database of its own (tenant.ModelDatabase)
)

// ParsePlan parses a plan name.
func ParsePlan(s string) (Plan, error) {
	switch p := Plan(s); p {
	case PlanFree, PlanPro, PlanEnterprise:
		return p, nil
	}
	return "", fmt.Errorf("plan %q: choose free, pro or enterprise", clip(s))
}

// Model is the isolation model of the plan's stores: free is row, pro is
// schema, enterprise is database. An unknown plan has no model ("").
func (p Plan) Model() tenant.Model {
	switch p {
	case PlanFree:
		return tenant.ModelRow
	case PlanPro:
		return tenant.ModelSchema
	case PlanEnterprise:
		return tenant.ModelDatabase
	}
	return ""
}

// Config holds the optional settings of Open.
type Config struct {
	// Logger receives the platform's log lines (migrations, sign-ups,
	// operator actions, failed clean-ups). Default: discard.
	Logger *slog.Logger
	// PasswordCost is the bcrypt cost of operator passwords. Default
	// bcrypt.DefaultCost.
	PasswordCost int
}

// Platform is the shop platform over one Landlord installation. It is safe
// for concurrent use.
type Platform struct {
	ll   *landlord.Landlord
	st   *store.Service
	db   *pgxpool.Pool // the administrator's pool to the control database
	cfg  Config
	log  *slog.Logger
	fake []byte // a bcrypt hash compared against when an email is unknown
	// moves are the plan changes under way in this process.
	moves moves
}

// Open applies the platform's migrations to the control database of ll
// (schema shop; each file once, under an advisory lock, in a transaction
// with its ledger row in shop.migrations) and returns the platform. st is
// the store service running on ll's handle; sign-ups create their owners
// with it. Open ll with landlord.Config.PurgeKeep set to PurgeKeep(), or a
// purged store takes the operators' records of it along.
func Open(ctx context.Context, ll *landlord.Landlord, st *store.Service, cfg Config) (*Platform, error) {
	if ll == nil || st == nil {
		return nil, errors.New("platform: Open needs a Landlord and a store service")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PasswordCost == 0 {
		cfg.PasswordCost = bcrypt.DefaultCost
	}
	if cfg.PasswordCost < bcrypt.MinCost || cfg.PasswordCost > bcrypt.MaxCost {
		return nil, fmt.Errorf("platform config: PasswordCost %d is outside bcrypt's %d-%d", cfg.PasswordCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		return nil, err
	}
	db := ll.Provisioner().Admin()
	if err := migrate(ctx, db, ms, cfg.Logger); err != nil {
		return nil, err
	}
	fake, err := bcrypt.GenerateFromPassword([]byte("no operator has this password"), cfg.PasswordCost)
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	return &Platform{ll: ll, st: st, db: db, cfg: cfg, log: cfg.Logger, fake: fake}, nil
}

// clip shortens user input before it is quoted in an error message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
