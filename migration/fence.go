package migration

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
)

// FenceCode is the SQLSTATE with which the verifier refuses a tenant whose
// placement in a database a move has fenced (Fence).
const FenceCode = "LL001"

// Fence closes tenant id's placement in the database conn is connected to,
// for transactions under role ("none" for the row and database models, the
// tenant's role in the schema model) that begin from now on: each of their
// statements that reads the tenant context fails with FenceCode. A
// transaction that began earlier goes on; since is the server's time of the
// fence, for the caller to wait until every transaction that began before
// it has ended. The owner, which copies and removes what is fenced, enters
// a tenant under its own role, which no fence names. Fencing again keeps
// the first fence's time.
func Fence(ctx context.Context, conn Beginner, owner, id, role string) (since time.Time, err error) {
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(owner)); err != nil {
			return err
		}
		// The key row's lock serializes fences: a second fence of the
		// same key finds it there and keeps its time.
		if _, err := tx.Exec(ctx, `UPDATE landlord_context.key
			SET fence_keys = fence_keys || ($1::uuid::text || '|' || $2::text),
			    fence_since = fence_since || clock_timestamp()
			WHERE ($1::uuid::text || '|' || $2::text) <> ALL (fence_keys)`, id, role); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT fence_since[array_position(fence_keys, $1::uuid::text || '|' || $2::text)]
			FROM landlord_context.key`, id, role).Scan(&since)
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("fence tenant %s (%s): %w", id, role, err)
	}
	return since, nil
}

// Unfence opens tenant id's placement under role again in the database conn
// is connected to. Nothing is done when it is not fenced.
func Unfence(ctx context.Context, conn Beginner, owner, id, role string) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(owner)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE landlord_context.key k SET (fence_keys, fence_since) = (
				SELECT coalesce(array_agg(f.key ORDER BY f.n), '{}'), coalesce(array_agg(f.since ORDER BY f.n), '{}')
				FROM unnest(k.fence_keys, k.fence_since) WITH ORDINALITY f(key, since, n)
				WHERE f.key <> ($1::uuid::text || '|' || $2::text))
			WHERE ($1::uuid::text || '|' || $2::text) = ANY (k.fence_keys)`, id, role)
		return err
	})
	if err != nil {
		return fmt.Errorf("unfence tenant %s (%s): %w", id, role, err)
	}
	return nil
}

// Fenced reports the fences in the database conn is connected to, as
// "<tenant id>|<role>" keys with their times.
func Fenced(ctx context.Context, conn Beginner, owner string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(owner)); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT f.key, f.since FROM landlord_context.key, unnest(fence_keys, fence_since) f(key, since)`)
		if err != nil {
			return err
		}
		var k string
		var at time.Time
		_, err = pgx.ForEachRow(rows, []any{&k, &at}, func() error { out[k] = at; return nil })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the fences: %w", err)
	}
	return out, nil
}
