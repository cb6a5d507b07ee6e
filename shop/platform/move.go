package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/move"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// ErrSamePlan is returned by ChangePlan for a store on that plan already.
var ErrSamePlan = errors.New("the store is on that plan already")

// ErrMoving is returned by ChangePlan for a store whose move is under way.
var ErrMoving = errors.New("the store is being moved")

// moves are the plan changes this process runs, by store.
type moves struct {
	mu  sync.Mutex
	run map[tenant.ID]bool
	wg  sync.WaitGroup
}

// ChangePlan puts a store on plan, which moves its data to the plan's
// isolation model (free: shared tables, pro: a schema, enterprise: a
// database) while the store keeps selling; its requests pause only at the
// cutover. It is recorded with the reason in shop.admin_access first, and
// returns once the move has begun: MoveOf reports how far it has come. The
// store's plan changes when the move is done; a move that fails leaves the
// store where it was, on its plan.
func (p *Platform) ChangePlan(ctx context.Context, op Operator, id tenant.ID, plan Plan, reason string) error {
	reason, err := checkAction(op, reason)
	if err != nil {
		return err
	}
	if _, err := ParsePlan(string(plan)); err != nil {
		return err
	}
	t, err := p.tenant(ctx, id)
	if err != nil {
		return err
	}
	if t.Model == plan.Model() {
		return fmt.Errorf("change the plan of %s: %w", t.Slug, ErrSamePlan)
	}
	if _, ok, err := p.ll.Directory().UnfinishedMove(ctx, id); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("change the plan of %s: %w", t.Slug, ErrMoving)
	}
	switch t.State {
	case tenant.StateActive, tenant.StateReadOnly:
	default:
		return fmt.Errorf("change the plan of %s: %w", t.Slug, &tenant.StateError{ID: id, State: t.State})
	}
	if err := p.recordAccess(ctx, op, id, "change_plan", string(plan), reason); err != nil {
		return err
	}
	p.moves.mu.Lock()
	defer p.moves.mu.Unlock()
	if p.moves.run == nil {
		p.moves.run = map[tenant.ID]bool{}
	}
	if p.moves.run[id] {
		return fmt.Errorf("change the plan of %s: %w", t.Slug, ErrMoving)
	}
	p.moves.run[id] = true
	p.moves.wg.Add(1)
	go func() {
		defer p.moves.wg.Done()
		defer func() {
			p.moves.mu.Lock()
			delete(p.moves.run, id)
			p.moves.mu.Unlock()
		}()
		// The request is over; the move is not.
		mctx := context.WithoutCancel(ctx)
		admin, err := p.ll.Admin(mctx, fmt.Sprintf("operator %s: change plan to %s: %s", op.Email, plan, reason))
		if err == nil {
			_, err = admin.MoveTenant(mctx, id, plan.Model(), "", move.Config{Logger: p.log})
		}
		if err == nil {
			err = p.setPlan(mctx, id, plan)
		}
		if err != nil {
			p.log.LogAttrs(mctx, slog.LevelError, "store plan change failed", slog.String("tenant", id.String()),
				slog.String("plan", string(plan)), slog.String("error", err.Error()))
			return
		}
		p.log.LogAttrs(mctx, slog.LevelInfo, "store plan changed", slog.String("tenant", id.String()), slog.String("plan", string(plan)))
	}()
	return nil
}

// planOfTenantSQL is the plan whose stores live where tenant t is (Plan.Model
// the other way round).
const planOfTenantSQL = `CASE t.model WHEN 'row' THEN 'free' WHEN 'schema' THEN 'pro' WHEN 'database' THEN 'enterprise' END`

// ResumePlanChanges takes over the plan changes whose process stopped
// (the shop runs it at start and every minute): a store's move whose mover
// is gone is finished when it had reached its fence and undone before,
// which also frees its replication slot; a store whose move finished but
// whose plan was not recorded (the process stopped between the two, or an
// operator moved it with the landlord command) gets the plan of the model
// it is in. Moves that this or another live process runs are left alone.
// It returns the stores whose plan it recorded.
func (p *Platform) ResumePlanChanges(ctx context.Context) ([]tenant.ID, error) {
	ms, err := p.ll.Directory().Moves(ctx, tenant.ID{}, true, 1000)
	if err != nil {
		return nil, err
	}
	var errs []error
	if len(ms) > 0 {
		admin, err := p.ll.Admin(ctx, "shop: resume the plan changes of stopped processes")
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if p.Moving(m.Tenant) {
				continue
			}
			// A move whose mover is alive holds the tenant's lock: leave it
			// without a line in the admin log every minute.
			if held, err := p.tenantLocked(ctx, m.Tenant); err != nil || held {
				if err != nil {
					errs = append(errs, err)
				}
				continue
			}
			_, aborted, busy, err := admin.ResumeStoppedMove(ctx, m.Tenant, move.Config{Logger: p.log, Settle: -1})
			switch {
			case err != nil:
				errs = append(errs, err)
			case !busy:
				p.log.LogAttrs(ctx, slog.LevelInfo, "store plan change of a stopped process taken over", slog.String("tenant", m.Tenant.String()),
					slog.String("from", string(m.From.Model)), slog.String("to", string(m.To.Model)), slog.Bool("undone", aborted))
			}
		}
	}
	// A plan is recorded only after its move is done, and a store whose
	// move is under way keeps the plan it had.
	rows, err := p.db.Query(ctx, `UPDATE shop.stores s SET plan = `+planOfTenantSQL+`
		FROM landlord.tenants t
		WHERE t.id = s.tenant_id AND s.plan <> `+planOfTenantSQL+`
		  AND t.state IN ('active', 'read_only', 'suspended')
		  AND NOT EXISTS (SELECT FROM landlord.moves m WHERE m.tenant_id = t.id AND m.phase NOT IN ('done', 'aborted'))
		RETURNING s.tenant_id`)
	if err != nil {
		return nil, errors.Join(append(errs, fmt.Errorf("record the plans of moved stores: %w", err))...)
	}
	changed, err := pgx.CollectRows(rows, pgx.RowTo[tenant.ID])
	if err != nil {
		errs = append(errs, fmt.Errorf("record the plans of moved stores: %w", err))
	}
	for _, id := range changed {
		p.log.LogAttrs(ctx, slog.LevelInfo, "store plan recorded after its move", slog.String("tenant", id.String()))
	}
	return changed, errors.Join(errs...)
}

// tenantLocked reports whether a session holds tenant id's provisioning
// lock (provision.TenantLockKeys): a move, create or purge of it runs.
func (p *Platform) tenantLocked(ctx context.Context, id tenant.ID) (bool, error) {
	k1, k2 := provision.TenantLockKeys(id)
	var held bool
	err := p.db.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid = $1::int4::oid AND objid = $2::int4::oid AND objsubid = 2)`, k1, k2).Scan(&held)
	if err != nil {
		return false, fmt.Errorf("look for the lock of tenant %s: %w", id, err)
	}
	return held, nil
}

// setPlan records the store's plan.
func (p *Platform) setPlan(ctx context.Context, id tenant.ID, plan Plan) error {
	if _, err := p.db.Exec(ctx, `UPDATE shop.stores SET plan = $2 WHERE tenant_id = $1`, id, string(plan)); err != nil {
		return fmt.Errorf("record the plan of %s: %w", id, err)
	}
	return nil
}

// MoveOf returns the store's latest move (ok false when it never moved):
// its phase, rows copied and changes applied, and, when it is done, how
// long the store's requests paused.
func (p *Platform) MoveOf(ctx context.Context, id tenant.ID) (m directory.Move, ok bool, err error) {
	ms, err := p.ll.Directory().Moves(ctx, id, false, 1)
	if err != nil || len(ms) == 0 {
		return m, false, err
	}
	return ms[0], true, nil
}

// Placement returns the store's record (its plan) and directory entry
// (its model) as they are now. A caller that saw Moving report false first
// reads the plan a finished change recorded: ChangePlan records it before
// the store stops counting as moving.
func (p *Platform) Placement(ctx context.Context, id tenant.ID) (StoreRecord, tenant.Tenant, error) {
	t, err := p.tenant(ctx, id)
	if err != nil {
		return StoreRecord{}, t, err
	}
	rec, err := p.StoreBySlug(ctx, t.Slug)
	return rec, t, err
}

// WaitMoves waits for the plan changes this process runs to end.
func (p *Platform) WaitMoves() { p.moves.wg.Wait() }

// Moving reports whether this process is changing the store's plan now.
func (p *Platform) Moving(id tenant.ID) bool {
	p.moves.mu.Lock()
	defer p.moves.mu.Unlock()
	return p.moves.run[id]
}
