package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// ErrTenantChanged fails a tenant's target whose tenant was moved, deleted
// or taken into another operation while the run waited for it: the target
// the run planned is no longer the tenant's. A new run finds it where it is.
var ErrTenantChanged = errors.New("tenant changed while the run waited for it")

// placementSQL reads a tenant's placement and state from the directory.
const placementSQL = `SELECT model, server_id, database_name, schema_name, state FROM landlord.tenants WHERE id = $1`

// claimTenant claims a tenant's target as claimSQL does, in the same round
// trip as it takes the tenant's provisioning lock
// (provision.TenantLockKeys) on a control database connection of the run,
// and returns that connection, which holds the lock until unlockTenant. So
// no create, purge or move of the tenant runs while its tables are
// migrated and its directory version written, and none starts from a step
// half done. A target whose tenant is busy waits for it. Under the lock
// the directory is read again: a tenant that is no longer at the target,
// or no longer in a state fleet runs migrate, fails with ErrTenantChanged.
// claimErr says the target was not claimed; lockErr that it was, and its
// tenant could not be locked or changed (conn is nil then).
func (r *run) claimTenant(ctx context.Context, it *item) (attempts int, conn *pgxpool.Conn, claimErr, lockErr error) {
	pool, err := r.workPool(ctx)
	if err != nil {
		return 0, nil, err, nil
	}
	if conn, err = pool.Acquire(ctx); err != nil {
		return 0, nil, fmt.Errorf("connect to the control database: %w", err), nil
	}
	k1, k2 := provision.TenantLockKeys(it.Tenant)
	// The directory is read in the statement after the lock, with a
	// snapshot that sees what the last holder committed.
	var locked bool
	var p placement
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_try_advisory_lock($1, $2)`, k1, k2).QueryRow(func(row pgx.Row) error { return row.Scan(&locked) })
	b.Queue(claimSQL, it.Key, r.id).QueryRow(func(row pgx.Row) error { return row.Scan(&attempts) })
	b.Queue(placementSQL, it.Tenant).Query(func(rows pgx.Rows) (err error) {
		p, err = collectPlacement(rows)
		return err
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		r.unlockTenant(ctx, conn, it)
		return 0, nil, err, nil
	}
	if !locked {
		r.f.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "target waits for its tenant: a create, purge or move of it holds the tenant's lock",
			slog.Int("run", r.id), slog.String("target", it.Key), slog.String("slug", it.Slug))
		if _, err = conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, k1, k2); err == nil {
			var rows pgx.Rows
			if rows, err = conn.Query(ctx, placementSQL, it.Tenant); err == nil {
				p, err = collectPlacement(rows)
			}
		}
		if err != nil {
			r.unlockTenant(ctx, conn, it)
			return attempts, nil, nil, fmt.Errorf("take the tenant's lock: %w", err)
		}
	}
	if why := p.differs(it); why != "" {
		r.unlockTenant(ctx, conn, it)
		return attempts, nil, nil, fmt.Errorf("%w: %s", ErrTenantChanged, why)
	}
	return attempts, conn, nil, nil
}

// unlockTenant lets go of what claimTenant took. A connection whose unlock
// failed is closed, which lets go too.
func (r *run) unlockTenant(ctx context.Context, conn *pgxpool.Conn, it *item) {
	if conn == nil {
		return
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	k1, k2 := provision.TenantLockKeys(it.Tenant)
	if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1, $2)`, k1, k2); err != nil {
		_ = conn.Hijack().Close(uctx)
		return
	}
	conn.Release()
}

// placement is where the directory has a tenant, and its state; found is
// false when it has no such tenant.
type placement struct {
	found                    bool
	model                    tenant.Model
	server, database, schema string
	state                    tenant.State
}

func collectPlacement(rows pgx.Rows) (placement, error) {
	var p placement
	defer rows.Close()
	for rows.Next() {
		p.found = true
		if err := rows.Scan(&p.model, &p.server, &p.database, &p.schema, &p.state); err != nil {
			return p, err
		}
	}
	return p, rows.Err()
}

// differs says how the tenant's placement or state no longer matches target
// it, or "" when it does.
func (p placement) differs(it *item) string {
	kind := KindSchema
	if p.model == tenant.ModelDatabase {
		kind = KindDatabase
	}
	switch {
	case !p.found:
		return "it was deleted"
	case excluded(p.state):
		return fmt.Sprintf("it is %s now", p.state)
	case p.model == tenant.ModelRow || kind != it.Kind || p.server != it.Server || p.database != it.Database || p.schema != it.Schema:
		return fmt.Sprintf("it moved to %s on server %s (database %s, schema %s); migrate again to reach it there", p.model, p.server, p.database, p.schema)
	}
	return ""
}
