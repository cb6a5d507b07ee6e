package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/tenant"
)

// PurgeState is where a purge stands (landlord.purges.state).
type PurgeState string

// The states of a purge.
const (
	// PurgeScheduled: the tenant is deleting and waits for its grace
	// period to end; it can still be restored.
	PurgeScheduled PurgeState = "scheduled"
	// PurgePurging: the purge has begun; only finishing it is left.
	PurgePurging PurgeState = "purging"
	// PurgePurged: everything of the tenant was removed.
	PurgePurged PurgeState = "purged"
)

// Purge is the record of a deleted tenant (landlord.purges): which tenant,
// where it lived, when it may be purged, and what the verifier found.
type Purge struct {
	Tenant     tenant.ID
	Slug       string
	Model      tenant.Model
	Server     string
	Schema     string
	Database   string
	PriorState tenant.State // the state a restore gives back
	State      PurgeState
	DeletedAt  time.Time
	PurgeAfter time.Time
	StartedAt  time.Time // zero until the purge began
	PurgedAt   time.Time // zero until it finished
	VerifiedAt time.Time // zero until the verifier ran after the purge
	// Clean is the verifier's last answer: true when it found nothing of
	// the tenant left and could run every check; meaningful only when
	// VerifiedAt is set.
	Clean bool
	// Verification is the verifier's last report, as JSON; nil before.
	Verification json.RawMessage
	// Due is whether the purge may run, by the database's clock when the
	// record was read: it has begun, or its grace period is over.
	Due bool
}

const purgeColumns = `tenant_id, slug, model, server_id, schema_name, database_name, prior_state, state, deleted_at, purge_after,
	started_at, purged_at, verified_at, coalesce(verified_clean, false), verification,
	state = 'purging' OR (state = 'scheduled' AND purge_after <= now())`

func scanPurge(r pgx.Row) (Purge, error) {
	var p Purge
	var model, prior, state string
	var started, purged, verified *time.Time
	err := r.Scan(&p.Tenant, &p.Slug, &model, &p.Server, &p.Schema, &p.Database, &prior, &state, &p.DeletedAt, &p.PurgeAfter,
		&started, &purged, &verified, &p.Clean, &p.Verification, &p.Due)
	p.Model, p.PriorState, p.State = tenant.Model(model), tenant.State(prior), PurgeState(state)
	for _, tt := range []struct {
		src *time.Time
		dst *time.Time
	}{{started, &p.StartedAt}, {purged, &p.PurgedAt}, {verified, &p.VerifiedAt}} {
		if tt.src != nil {
			*tt.dst = *tt.src
		}
	}
	return p, err
}

// ScheduleDelete marks tenant id deleting and records its purge, due after
// grace, in one transaction with the ledger's "delete intent": a crash
// leaves either the tenant as it was or both. A tenant that is deleting
// already keeps its record, and its purge is never postponed: the earlier
// of the two times holds. With grace ≤ 0 the purge is recorded as begun.
// A tenant that is not in the directory gets an error wrapping
// tenant.ErrNotFound.
func (d *Directory) ScheduleDelete(ctx context.Context, id tenant.ID, grace time.Duration) (tenant.Tenant, Purge, error) {
	var t tenant.Tenant
	var p Purge
	err := pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		var err error
		t, err = scanTenant(tx.QueryRow(ctx, `SELECT `+tenantColumns+` FROM landlord.tenants WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("tenant %s: %w", id, tenant.ErrNotFound)
		}
		if err != nil {
			return err
		}
		prior := t.State
		if t.State != tenant.StateDeleting {
			if t, err = scanTenant(tx.QueryRow(ctx, `UPDATE landlord.tenants SET state = 'deleting' WHERE id = $1 RETURNING `+tenantColumns, id)); err != nil {
				return err
			}
			if err := logStep(ctx, tx, id, "delete", "intent", string(t.Model)); err != nil {
				return err
			}
		}
		// A record of an earlier life of this id (a tenant re-created
		// with the id of a purged one) gives way to the new deletion.
		if _, err := tx.Exec(ctx, `DELETE FROM landlord.purges WHERE tenant_id = $1 AND state = 'purged'`, id); err != nil {
			return err
		}
		if prior == tenant.StateDeleting {
			// Deleting since before purges were recorded, or again: the
			// state it had before is unknown, or recorded already.
			prior = tenant.StateSuspended
		}
		p, err = scanPurge(tx.QueryRow(ctx, `INSERT INTO landlord.purges AS p
				(tenant_id, slug, model, server_id, schema_name, database_name, prior_state, state, purge_after, started_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8::bigint <= 0 THEN 'purging' ELSE 'scheduled' END,
				now() + $8::bigint * interval '1 microsecond', CASE WHEN $8::bigint <= 0 THEN now() END)
			ON CONFLICT (tenant_id) DO UPDATE SET
				purge_after = least(p.purge_after, EXCLUDED.purge_after),
				state = CASE WHEN p.state = 'scheduled' AND EXCLUDED.state = 'purging' THEN 'purging' ELSE p.state END,
				started_at = CASE WHEN p.state = 'scheduled' AND EXCLUDED.state = 'purging' THEN now() ELSE p.started_at END
			RETURNING `+purgeColumns,
			id, t.Slug, string(t.Model), t.Server, t.Schema, t.Database, string(prior), max(grace.Microseconds(), 0)))
		return err
	})
	if err != nil {
		return t, p, fmt.Errorf("schedule the purge of tenant %s: %w", id, err)
	}
	return t, p, nil
}

// GetPurge returns the purge record of id, or an error wrapping
// tenant.ErrNotFound when the tenant was never deleted.
func (d *Directory) GetPurge(ctx context.Context, id tenant.ID) (Purge, error) {
	p, err := scanPurge(d.db.QueryRow(ctx, `SELECT `+purgeColumns+` FROM landlord.purges WHERE tenant_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("purge of tenant %s: %w", id, tenant.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("look up the purge of tenant %s: %w", id, err)
	}
	return p, nil
}

// GetPurgeBySlug returns the newest purge record of a tenant that had the
// slug (normalized first): a slug may have been used again since.
func (d *Directory) GetPurgeBySlug(ctx context.Context, slug string) (Purge, error) {
	s, err := tenant.NormalizeSlug(slug)
	if err != nil {
		return Purge{}, err
	}
	p, err := scanPurge(d.db.QueryRow(ctx, `SELECT `+purgeColumns+` FROM landlord.purges WHERE slug = $1 ORDER BY deleted_at DESC LIMIT 1`, s))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("purge of tenant %q: %w", s, tenant.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("look up the purge of tenant %q: %w", s, err)
	}
	return p, nil
}

// Purges returns the purge records that are not finished, oldest due
// first, or with all set every record.
func (d *Directory) Purges(ctx context.Context, all bool) ([]Purge, error) {
	rows, err := d.db.Query(ctx, `SELECT `+purgeColumns+` FROM landlord.purges WHERE $1 OR state <> 'purged' ORDER BY purge_after, tenant_id`, all)
	if err != nil {
		return nil, fmt.Errorf("list purges: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Purge, error) { return scanPurge(r) })
}

// StartPurge records that the purge of id begins, and logs it when it was
// only scheduled; from then on the tenant cannot be restored and Reconcile
// finishes it whatever its grace period said. A tenant without a record
// (deleting since before purges were recorded) gets one. It returns the
// record.
func (d *Directory) StartPurge(ctx context.Context, t tenant.Tenant) (Purge, error) {
	var p Purge
	err := pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		var before string
		err := tx.QueryRow(ctx, `SELECT state FROM landlord.purges WHERE tenant_id = $1 FOR UPDATE`, t.ID).Scan(&before)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		p, err = scanPurge(tx.QueryRow(ctx, `INSERT INTO landlord.purges AS p
				(tenant_id, slug, model, server_id, schema_name, database_name, prior_state, state, purge_after, started_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'suspended', 'purging', now(), now())
			ON CONFLICT (tenant_id) DO UPDATE SET state = 'purging', started_at = coalesce(p.started_at, now())
			RETURNING `+purgeColumns, t.ID, t.Slug, string(t.Model), t.Server, t.Schema, t.Database))
		if err != nil || before == string(PurgePurging) {
			return err
		}
		return logStep(ctx, tx, t.ID, "delete", "purge", "")
	})
	if err != nil {
		return p, fmt.Errorf("start the purge of tenant %s: %w", t.ID, err)
	}
	return p, nil
}

// CancelPurge moves tenant id from deleting back to the state it had before
// it was deleted and removes its purge record, in one transaction with the
// ledger's "delete restored". Only a purge that has not begun can be
// cancelled: ok is false, and nothing is changed, otherwise.
func (d *Directory) CancelPurge(ctx context.Context, id tenant.ID) (t tenant.Tenant, ok bool, err error) {
	err = pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		var prior string
		err := tx.QueryRow(ctx, `DELETE FROM landlord.purges WHERE tenant_id = $1 AND state = 'scheduled' RETURNING prior_state`, id).Scan(&prior)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		t, err = scanTenant(tx.QueryRow(ctx, `UPDATE landlord.tenants SET state = $2 WHERE id = $1 AND state = 'deleting' RETURNING `+tenantColumns, id, prior))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("tenant %s: %w", id, tenant.ErrNotFound)
		}
		if err != nil {
			return err
		}
		ok = true
		return logStep(ctx, tx, id, "delete", "restored", prior)
	})
	if err != nil {
		return t, false, fmt.Errorf("restore tenant %s: %w", id, err)
	}
	return t, ok, nil
}

// RemovePurged removes, on q (the caller's transaction, which also removes
// what the tenant had outside the directory), every record the directory
// holds of tenant id but the provisioning ledger and the purge record: its
// entry, a reserve entry of its id, the migration ledgers of its schema,
// the fleet's records of its targets, the records of its copy of the
// global tables, its call statistics. It marks the purge record purged and
// logs "delete removed".
func RemovePurged(ctx context.Context, q DBTX, id tenant.ID) error {
	_, err := q.Exec(ctx, `
		WITH t AS (DELETE FROM landlord.tenants WHERE id = $1),
		r AS (DELETE FROM landlord.tenant_reserve WHERE id = $1),
		m AS (DELETE FROM landlord.target_migrations WHERE target = $2),
		f AS (DELETE FROM landlord.migration_targets WHERE tenant_id = $1 OR schema_name = $2 OR database_name = $2),
		g AS (DELETE FROM landlord.global_copies WHERE database_name = $2),
		s AS (DELETE FROM landlord.tenant_stats WHERE tenant_id = $1)
		UPDATE landlord.purges SET state = 'purged', purged_at = now(), started_at = coalesce(started_at, now())
		WHERE tenant_id = $1`, id, id.SchemaName())
	if err != nil {
		return fmt.Errorf("remove the directory records of tenant %s: %w", id, err)
	}
	return logStep(ctx, q, id, "delete", "removed", "")
}

// SetPurgeVerified records the verifier's answer for the purge of id:
// clean, and its report as JSON. A tenant without a purge record is left
// alone.
func (d *Directory) SetPurgeVerified(ctx context.Context, id tenant.ID, clean bool, report json.RawMessage) error {
	_, err := d.db.Exec(ctx, `UPDATE landlord.purges SET verified_at = now(), verified_clean = $2, verification = $3 WHERE tenant_id = $1`,
		id, clean, report)
	if err != nil {
		return fmt.Errorf("record the verification of tenant %s: %w", id, err)
	}
	return nil
}
