package landlord

import (
	"context"
	"log/slog"

	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
)

// ContextCheck is how the row-level security policies check the tenant
// context, for the whole installation: ContextSigned (the default) or
// ContextUnsigned. See the README, "The signed tenant context", for what
// each costs and what ContextUnsigned gives up.
type ContextCheck = migration.ContextCheck

const (
	// ContextSigned: SQL inside one tenant's transaction cannot take on
	// another tenant's context (SECURITY.md, I31).
	ContextSigned = migration.ContextSigned
	// ContextUnsigned: the policies trust landlord.tenant_id as set, which
	// saves a key read and two digests per statement, and lets SQL that
	// runs inside a tenant's transaction (an injection, a DO block) set
	// another tenant's id or role and act as that tenant.
	ContextUnsigned = migration.ContextUnsigned
)

// ContextCheckReport is the outcome of Admin.SetContextCheck, database by
// database.
type ContextCheckReport = provision.ContextCheckReport

// ErrContextCheckIncomplete is wrapped by Admin.SetContextCheck's error when
// some database could not be brought to the new check; running it again
// finishes the change.
var ErrContextCheckIncomplete = provision.ErrContextCheckIncomplete

// ContextCheck returns the installation's context check as recorded in the
// directory.
func (l *Landlord) ContextCheck(ctx context.Context) (ContextCheck, error) {
	return l.prov.ContextCheck(ctx)
}

// SetContextCheck makes check the context check of the whole installation:
// it records it, then brings the verifier of every database with tenant
// tables to it (the control database, the template, other servers'
// databases, every tenant database, reserved ones included), a few at a
// time. Traffic goes on throughout: each database switches in one
// transaction, and sessions' cached plans follow. progress, when not nil,
// is called after each database with the number done and the total.
func (a *Admin) SetContextCheck(ctx context.Context, check ContextCheck, progress func(done, total int)) (ContextCheckReport, error) {
	a.log(ctx, "set context check", slog.String("check", string(check)))
	rep, err := a.l.prov.SetContextCheck(ctx, check, progress)
	lvl := slog.LevelInfo
	if err != nil {
		lvl = slog.LevelError
	}
	a.l.cfg.Logger.LogAttrs(ctx, lvl, "context check set", slog.String("check", string(check)),
		slog.Int("changed", rep.Count(provision.ContextCheckChanged)), slog.Int("current", rep.Count(provision.ContextCheckCurrent)),
		slog.Int("failed", rep.Count(provision.ContextCheckFailed)), slog.String("reason", a.reason))
	return rep, err
}
