package directory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/tenant"
)

// ReserveOperation is the ledger operation of the steps that make and
// remove a reserved tenant, and the detail of the step that claims one. It
// keeps the reserve's earlier name, so that the ledger says the same of a
// reserved tenant whichever version made it.
const ReserveOperation = "pool"

// Reserved is one row of landlord.tenant_reserve: a pre-provisioned tenant
// that nobody has claimed.
type Reserved struct {
	ID            tenant.ID
	Model         tenant.Model
	Server        string
	Schema        string
	Database      string
	Ready         bool // false: the intent is written, the objects may not exist yet
	SchemaVersion int
	CreatedAt     time.Time
}

const reservedColumns = `id, model, server_id, schema_name, database_name, state = 'ready', schema_version, created_at`

func scanReserved(r pgx.Row) (Reserved, error) {
	var e Reserved
	var model string
	err := r.Scan(&e.ID, &model, &e.Server, &e.Schema, &e.Database, &e.Ready, &e.SchemaVersion, &e.CreatedAt)
	e.Model = tenant.Model(model)
	return e, err
}

// AddReserved records the intent to pre-provision e (state filling) and
// logs it, before any of its objects exist.
func (d *Directory) AddReserved(ctx context.Context, e Reserved) error {
	err := pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO landlord.tenant_reserve (id, model, server_id, schema_name, database_name, state)
			VALUES ($1, $2, $3, $4, $5, 'filling')`, e.ID, string(e.Model), e.Server, e.Schema, e.Database); err != nil {
			return err
		}
		return logStep(ctx, tx, e.ID, ReserveOperation, "intent", string(e.Model))
	})
	if err != nil {
		return fmt.Errorf("record reserved tenant %s: %w", e.ID, err)
	}
	return nil
}

// SetReservedReady marks the reserved tenant id ready at schema version
// version: from now on a claim may hand it out.
func (d *Directory) SetReservedReady(ctx context.Context, id tenant.ID, version int) error {
	err := pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE landlord.tenant_reserve SET state = 'ready', schema_version = $2 WHERE id = $1`, id, version)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("reserved tenant %s: %w", id, tenant.ErrNotFound)
		}
		return logStep(ctx, tx, id, ReserveOperation, "ready", "")
	})
	if err != nil {
		return fmt.Errorf("mark reserved tenant %s ready: %w", id, err)
	}
	return nil
}

// ListReserved returns the reserved tenants of model on server, oldest
// first.
func (d *Directory) ListReserved(ctx context.Context, model tenant.Model, server string) ([]Reserved, error) {
	rows, err := d.db.Query(ctx, `SELECT `+reservedColumns+` FROM landlord.tenant_reserve
		WHERE model = $1 AND server_id = $2 ORDER BY created_at, id`, string(model), server)
	if err != nil {
		return nil, fmt.Errorf("list reserved tenants: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Reserved, error) { return scanReserved(r) })
}

// RemoveReserved deletes the reserve entry id, if it is still unclaimed, and
// logs it. removed is false when no such entry exists (a claim took it).
func (d *Directory) RemoveReserved(ctx context.Context, id tenant.ID) (removed bool, err error) {
	err = pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM landlord.tenant_reserve WHERE id = $1`, id)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		removed = true
		return logStep(ctx, tx, id, ReserveOperation, "removed", "")
	})
	if err != nil {
		return false, fmt.Errorf("remove reserved tenant %s: %w", id, err)
	}
	return removed, nil
}

// ClaimRequest is what a sign-up asks of the reserve.
type ClaimRequest struct {
	Model         tenant.Model
	Server        string
	SchemaVersion int // only entries at this version are handed out
	Slug          string
	DisplayName   string
}

// Claim hands out the oldest ready reserved tenant that matches c: in one
// transaction it deletes the reserve entry, inserts the tenant (active, with
// c's slug and display name), logs the steps and runs fn, which rewrites
// what marks the objects as reserved. Concurrent claims skip the entries
// others hold, so no two get the same tenant. ok is false when no entry
// matches; a taken slug returns an error wrapping tenant.ErrSlugTaken and
// leaves the reserve as it was, as does an error from fn.
func (d *Directory) Claim(ctx context.Context, c ClaimRequest, fn func(ctx context.Context, tx pgx.Tx, e Reserved) error) (t tenant.Tenant, ok bool, err error) {
	err = pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		var e Reserved
		var model, state string
		err := tx.QueryRow(ctx, `WITH c AS (
				DELETE FROM landlord.tenant_reserve WHERE id = (
					SELECT id FROM landlord.tenant_reserve
					WHERE state = 'ready' AND model = $1 AND server_id = $2 AND schema_version = $3
					ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
				RETURNING *
			), t AS (
				INSERT INTO landlord.tenants (id, slug, display_name, model, server_id, schema_name, database_name, state, schema_version)
				SELECT id, $4, $5, model, server_id, schema_name, database_name, 'active', schema_version FROM c
				RETURNING `+tenantColumns+`
			), l AS (
				INSERT INTO landlord.provisioning_ledger (tenant_id, operation, step, detail)
				SELECT t.id, 'create', s.step, s.detail FROM t CROSS JOIN LATERAL
					(VALUES (1, 'intent', t.model || ' ' || t.slug), (2, 'claimed', $6::text), (3, 'active', '')) s (n, step, detail)
				ORDER BY s.n
			)
			SELECT t.id, t.slug, t.display_name, t.model, t.server_id, t.schema_name, t.database_name, t.state,
				t.schema_version, t.routing_epoch, t.created_at, t.updated_at, c.created_at FROM t, c`,
			string(c.Model), c.Server, c.SchemaVersion, c.Slug, c.DisplayName, ReserveOperation).
			Scan(&t.ID, &t.Slug, &t.DisplayName, &model, &t.Server, &t.Schema, &t.Database, &state, &t.SchemaVersion, &t.Epoch, &t.CreatedAt, &t.UpdatedAt, &e.CreatedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		t.Model, t.State = tenant.Model(model), tenant.State(state)
		e.ID, e.Model, e.Server, e.Schema, e.Database, e.Ready, e.SchemaVersion = t.ID, t.Model, t.Server, t.Schema, t.Database, true, t.SchemaVersion
		if err := fn(ctx, tx, e); err != nil {
			return err
		}
		ok = true
		return nil
	})
	if slugTaken(err) {
		return tenant.Tenant{}, false, fmt.Errorf("slug %q: %w", c.Slug, tenant.ErrSlugTaken)
	}
	if err != nil {
		return tenant.Tenant{}, false, fmt.Errorf("claim a reserved %s tenant: %w", c.Model, err)
	}
	if !ok {
		return tenant.Tenant{}, false, nil
	}
	return t, true, nil
}
