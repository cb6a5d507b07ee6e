package move

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/changefeed"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// sourceTables lists the tenant tables at t's placement: every table of
// its schema with a tenant_id column, with its primary key.
func sourceTables(ctx context.Context, p *provision.Provisioner, t tenant.Tenant) ([]changefeed.Table, error) {
	conn, err := p.Connect(ctx, t.Server, t.Database)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `
		SELECT c.relname::text,
			array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n)
				JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.n)
		FROM pg_class c
		JOIN pg_namespace s ON s.oid = c.relnamespace
		JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
		WHERE s.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		  AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
		ORDER BY 1`, t.Schema)
	if err != nil {
		return nil, fmt.Errorf("list the tenant's tables: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (changefeed.Table, error) {
		tb := changefeed.Table{Schema: t.Schema}
		err := r.Scan(&tb.Name, &tb.Key)
		return tb, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the tenant's tables: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no tenant tables in schema %s of %s", t.Schema, t.Database)
	}
	return out, nil
}

// feedConfig is the change feed of the move's source.
func (r *run) feedConfig(ctx context.Context, tables []changefeed.Table) (changefeed.Config, error) {
	src := r.m.From
	cfg, err := r.p.ConnConfig(ctx, src.Server, src.Database, "")
	if err != nil {
		return changefeed.Config{}, err
	}
	fc := changefeed.Config{Conn: cfg, Name: r.m.Feed, Tables: tables}
	if src.Model == tenant.ModelRow {
		// Shared tables: this tenant's rows only.
		id := uuid.UUID(src.ID)
		fc.Tenant = &id
	}
	return fc, nil
}

// applier writes the source's changes into the same tables at the new
// placement.
func (r *run) applier(tables []changefeed.Table) (*changefeed.Applier, error) {
	target := make(map[changefeed.TableName]changefeed.TableName, len(tables))
	for _, tb := range tables {
		target[tb.TableName()] = changefeed.TableName{Schema: r.m.To.Schema, Name: tb.Name}
	}
	return &changefeed.Applier{Target: target}, nil
}

// catchUp applies every change committed at the source so far to the new
// placement, one source transaction per transaction, past row-level
// security with triggers off (what the source's triggers made comes with
// the changes), and returns how many changes it applied.
func (r *run) catchUp(ctx context.Context, conn *pgx.Conn, a *changefeed.Applier) (int, error) {
	stats, err := r.feed.CatchUp(ctx, func(ctx context.Context, txn changefeed.Txn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// Without waiting for the commit's flush: a change the target
			// server lost in a crash would fail the comparison at the
			// cutover, and the move with it, never pass unseen.
			if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica; SET LOCAL synchronous_commit = off`); err != nil {
				return err
			}
			if r.touched != nil {
				r.touched.add(txn)
			}
			return a.Apply(ctx, tx, txn)
		})
	}, func(s changefeed.CatchUpStats) {
		if r.cfg.Progress != nil {
			r.cfg.Progress(Progress{Phase: directory.MoveCopied, Rows: r.m.RowsCopied, Changes: r.m.Changes + int64(s.Changes)})
		}
	})
	r.m.Changes += int64(stats.Changes)
	if err != nil {
		return stats.Changes, fmt.Errorf("apply the source's changes: %w", err)
	}
	return stats.Changes, nil
}
