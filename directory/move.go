package directory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/tenant"
)

// MovePhase is how far a move has come (landlord.moves.phase).
type MovePhase string

// The phases of a move, in order; aborted ends a move before flipped.
const (
	MovePlanned MovePhase = "planned" // recorded; nothing made yet
	MoveTarget  MovePhase = "target"  // the new placement's objects exist
	MoveCopied  MovePhase = "copied"  // the rows of the snapshot are copied
	MoveFenced  MovePhase = "fenced"  // the old placement refuses new transactions
	MoveFlipped MovePhase = "flipped" // the directory routes to the new placement
	MoveDone    MovePhase = "done"    // the old placement is gone
	MoveAborted MovePhase = "aborted" // undone before the flip; the tenant is where it was
)

// Move is one row of landlord.moves.
type Move struct {
	ID         int64
	Tenant     tenant.ID
	Online     bool
	From, To   tenant.Tenant // the placements: Model, Server, Schema, Database
	Phase      MovePhase
	Feed       string // the slot and publication of an online move
	RowsCopied int64
	Changes    int64
	Pause      time.Duration // fence to flip; 0 until flipped
	// SourceFenced: the old placement may still hold the tenant's fence.
	SourceFenced bool
	Error        string
	StartedAt    time.Time
	UpdatedAt    time.Time
	FlippedAt    time.Time // zero until flipped
	FinishedAt   time.Time // zero until done or aborted
}

// Finished reports whether the move is done or aborted.
func (m Move) Finished() bool { return m.Phase == MoveDone || m.Phase == MoveAborted }

// ErrMoveUnderway is returned by StartMove for a tenant with an unfinished move.
var ErrMoveUnderway = errors.New("the tenant has a move under way")

const moveColumns = `id, tenant_id, mode = 'online', from_model, from_server, from_schema, from_database,
	to_model, to_server, to_schema, to_database, phase, feed, rows_copied, changes, coalesce(pause_ms, 0),
	error, started_at, updated_at, coalesce(finished_at, 'epoch'), source_fenced, coalesce(flipped_at, 'epoch')`

func scanMove(r pgx.Row) (Move, error) {
	var m Move
	var pause float64
	var finished, flipped time.Time
	err := r.Scan(&m.ID, &m.Tenant, &m.Online, &m.From.Model, &m.From.Server, &m.From.Schema, &m.From.Database,
		&m.To.Model, &m.To.Server, &m.To.Schema, &m.To.Database, &m.Phase, &m.Feed, &m.RowsCopied, &m.Changes, &pause,
		&m.Error, &m.StartedAt, &m.UpdatedAt, &finished, &m.SourceFenced, &flipped)
	m.From.ID, m.To.ID = m.Tenant, m.Tenant
	m.Pause = time.Duration(pause * float64(time.Millisecond))
	if finished.Unix() != 0 {
		m.FinishedAt = finished
	}
	if flipped.Unix() != 0 {
		m.FlippedAt = flipped
	}
	return m, err
}

// StartMove records the move of m.Tenant from m.From to m.To, in phase
// planned, and returns it with its id. A tenant with an unfinished move
// gets that move back with ErrMoveUnderway.
func (d *Directory) StartMove(ctx context.Context, m Move) (Move, error) {
	mode := "offline"
	if m.Online {
		mode = "online"
	}
	out, err := scanMove(d.db.QueryRow(ctx, `INSERT INTO landlord.moves (tenant_id, mode, from_model, from_server, from_schema, from_database,
			to_model, to_server, to_schema, to_database, phase, feed)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'planned', $11)
		ON CONFLICT (tenant_id) WHERE phase NOT IN ('done', 'aborted') DO NOTHING
		RETURNING `+moveColumns, m.Tenant, mode, m.From.Model, m.From.Server, m.From.Schema, m.From.Database,
		m.To.Model, m.To.Server, m.To.Schema, m.To.Database, m.Feed))
	if errors.Is(err, pgx.ErrNoRows) {
		cur, ok, gerr := d.UnfinishedMove(ctx, m.Tenant)
		if gerr != nil {
			return cur, gerr
		}
		if ok {
			return cur, fmt.Errorf("move tenant %s: %w (move %d, %s)", m.Tenant, ErrMoveUnderway, cur.ID, cur.Phase)
		}
		return d.StartMove(ctx, m) // it finished in between
	}
	if err != nil {
		return out, fmt.Errorf("record the move of tenant %s: %w", m.Tenant, err)
	}
	return out, logStep(ctx, d.db, m.Tenant, "move", string(MovePlanned), fmt.Sprintf("%d: %s/%s → %s/%s", out.ID, m.From.Model, m.From.Server, m.To.Model, m.To.Server))
}

// UnfinishedMove returns tenant id's move that is neither done nor aborted.
func (d *Directory) UnfinishedMove(ctx context.Context, id tenant.ID) (Move, bool, error) {
	m, err := scanMove(d.db.QueryRow(ctx, `SELECT `+moveColumns+` FROM landlord.moves
		WHERE tenant_id = $1 AND phase NOT IN ('done', 'aborted')`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("read the move of tenant %s: %w", id, err)
	}
	return m, true, nil
}

// Moves returns the moves of tenant id (every tenant's when id is zero),
// newest first, at most limit of them.
func (d *Directory) Moves(ctx context.Context, id tenant.ID, unfinished bool, limit int) ([]Move, error) {
	rows, err := d.db.Query(ctx, `SELECT `+moveColumns+` FROM landlord.moves
		WHERE ($1::uuid IS NULL OR tenant_id = $1) AND (NOT $2 OR phase NOT IN ('done', 'aborted'))
		ORDER BY id DESC LIMIT $3`, nullID(id), unfinished, limit)
	if err != nil {
		return nil, fmt.Errorf("list moves: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Move, error) { return scanMove(r) })
	if err != nil {
		return nil, fmt.Errorf("list moves: %w", err)
	}
	return out, nil
}

func nullID(id tenant.ID) *tenant.ID {
	if id.IsZero() {
		return nil
	}
	return &id
}

// SetMovePhase records that move id has reached phase, with the counts so
// far, and logs it. It refuses to step a finished move.
func (d *Directory) SetMovePhase(ctx context.Context, m Move, phase MovePhase) (Move, error) {
	out, err := scanMove(d.db.QueryRow(ctx, `UPDATE landlord.moves SET phase = $2, rows_copied = $3, changes = $4,
			error = $5, updated_at = now(), finished_at = CASE WHEN $2 IN ('done', 'aborted') THEN now() END
		WHERE id = $1 AND phase NOT IN ('done', 'aborted') RETURNING `+moveColumns, m.ID, phase, m.RowsCopied, m.Changes, m.Error))
	if errors.Is(err, pgx.ErrNoRows) {
		return out, fmt.Errorf("move %d of tenant %s: finished already", m.ID, m.Tenant)
	}
	if err != nil {
		return out, fmt.Errorf("record move %d %s: %w", m.ID, phase, err)
	}
	return out, logStep(ctx, d.db, m.Tenant, "move", string(phase), m.Error)
}

// SetMoving marks the tenant of move m moving (its calls wait at the
// handle) and the move fenced, with m's rows and changes so far, in one
// transaction. The tenant must be
// active or read only, at the move's source placement.
func (d *Directory) SetMoving(ctx context.Context, m Move) (Move, error) {
	var out Move
	err := pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE landlord.tenants SET state = 'moving'
			WHERE id = $1 AND state IN ('active', 'read_only', 'moving')
			  AND model = $2 AND server_id = $3 AND schema_name = $4 AND database_name = $5`,
			m.Tenant, m.From.Model, m.From.Server, m.From.Schema, m.From.Database)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			cur, err := getTenant(ctx, tx, m.Tenant)
			if err != nil {
				return err
			}
			return fmt.Errorf("tenant %s is %s at %s/%s: %w", m.Tenant, cur.State, cur.Model, cur.Server, &tenant.StateError{ID: m.Tenant, State: cur.State})
		}
		if out, err = scanMove(tx.QueryRow(ctx, `UPDATE landlord.moves SET phase = 'fenced', rows_copied = $2, changes = $3, updated_at = now()
			WHERE id = $1 AND phase NOT IN ('done', 'aborted') RETURNING `+moveColumns, m.ID, m.RowsCopied, m.Changes)); err != nil {
			return err
		}
		return logStep(ctx, tx, m.Tenant, "move", string(MoveFenced), "")
	})
	if err != nil {
		return out, fmt.Errorf("fence the move of tenant %s: %w", m.Tenant, err)
	}
	return out, nil
}

// Unmove puts the tenant of move m back to state, at its source placement,
// when a move is aborted after SetMoving.
func (d *Directory) Unmove(ctx context.Context, m Move, state tenant.State) error {
	_, err := d.db.Exec(ctx, `UPDATE landlord.tenants SET state = $2 WHERE id = $1 AND state = 'moving'
		AND model = $3 AND server_id = $4 AND schema_name = $5 AND database_name = $6`,
		m.Tenant, state, m.From.Model, m.From.Server, m.From.Schema, m.From.Database)
	if err != nil {
		return fmt.Errorf("return tenant %s to %s: %w", m.Tenant, state, err)
	}
	return nil
}

// Flip routes the tenant of move m to its new placement, in state, and
// records the move flipped with how long the cutover paused its calls, in
// one transaction: the tenant's routing epoch goes up, and every router
// follows. It is idempotent: a flipped move's tenant is left as it is.
func (d *Directory) Flip(ctx context.Context, m Move, state tenant.State, pause time.Duration) (tenant.Tenant, error) {
	var t tenant.Tenant
	err := pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		var phase MovePhase
		if err := tx.QueryRow(ctx, `SELECT phase FROM landlord.moves WHERE id = $1 FOR UPDATE`, m.ID).Scan(&phase); err != nil {
			return err
		}
		if phase != MoveFenced && phase != MoveFlipped {
			return fmt.Errorf("move %d is %s, not fenced", m.ID, phase)
		}
		var err error
		if phase == MoveFenced {
			t, err = scanTenant(tx.QueryRow(ctx, `UPDATE landlord.tenants SET model = $2, server_id = $3, schema_name = $4,
					database_name = $5, state = $6
				WHERE id = $1 AND state = 'moving' RETURNING `+tenantColumns,
				m.Tenant, m.To.Model, m.To.Server, m.To.Schema, m.To.Database, state))
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("tenant %s is not moving", m.Tenant)
			}
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE landlord.moves SET phase = 'flipped', rows_copied = $2, changes = $3,
					pause_ms = $4, updated_at = now(), flipped_at = now() WHERE id = $1`,
				m.ID, m.RowsCopied, m.Changes, float64(pause)/float64(time.Millisecond)); err != nil {
				return err
			}
			return logStep(ctx, tx, m.Tenant, "move", string(MoveFlipped), fmt.Sprintf("%s/%s", m.To.Model, m.To.Server))
		}
		t, err = getTenant(ctx, tx, m.Tenant)
		return err
	})
	if err != nil {
		return t, fmt.Errorf("flip tenant %s to %s/%s: %w", m.Tenant, m.To.Model, m.To.Server, err)
	}
	return t, nil
}

func getTenant(ctx context.Context, q DBTX, id tenant.ID) (tenant.Tenant, error) {
	t, err := scanTenant(q.QueryRow(ctx, `SELECT `+tenantColumns+` FROM landlord.tenants WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("tenant %s: %w", id, tenant.ErrNotFound)
	}
	return t, err
}

// SetSourceFenced records whether the old placement of move m may hold the
// tenant's fence: set before the fence is placed, cleared once it is gone.
func (d *Directory) SetSourceFenced(ctx context.Context, m Move, fenced bool) error {
	if _, err := d.db.Exec(ctx, `UPDATE landlord.moves SET source_fenced = $2 WHERE id = $1`, m.ID, fenced); err != nil {
		return fmt.Errorf("record the fence of move %d: %w", m.ID, err)
	}
	return nil
}

// FencedSources returns the moves whose old placement may still hold a
// fence, oldest first.
func (d *Directory) FencedSources(ctx context.Context) ([]Move, error) {
	rows, err := d.db.Query(ctx, `SELECT `+moveColumns+` FROM landlord.moves WHERE source_fenced ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list fenced moves: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Move, error) { return scanMove(r) })
	if err != nil {
		return nil, fmt.Errorf("list fenced moves: %w", err)
	}
	return out, nil
}
