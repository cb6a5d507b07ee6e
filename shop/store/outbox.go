package store

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
)

// defaultDrain is DrainOutbox's batch when limit is zero or less.
const defaultDrain = 100

// DrainOutbox hands the store's outbox events to fn, oldest first, up to
// limit, and deletes each one fn accepted, in one transaction per batch.
// The events are locked while fn runs (other drainers skip them); an error
// of fn rolls the batch back, keeps the events and is returned. It returns
// how many events were handed over and deleted; fn is not called when the
// outbox is empty.
func DrainOutbox(ctx context.Context, db DB, limit int, fn func(ctx context.Context, events []OutboxEvent) error) (int, error) {
	if limit <= 0 {
		limit = defaultDrain
	}
	n := 0
	err := inTx(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, kind, payload, created_at FROM outbox
			ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
		if err != nil {
			return err
		}
		events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutboxEvent, error) {
			var e OutboxEvent
			err := r.Scan(&e.ID, &e.Kind, &e.Payload, &e.CreatedAt)
			return e, err
		})
		if err != nil || len(events) == 0 {
			return err
		}
		if err := fn(ctx, events); err != nil {
			return &fnError{err}
		}
		ids := make([]int64, len(events))
		for i, e := range events {
			ids[i] = e.ID
		}
		if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE id = ANY($1::bigint[])`, ids); err != nil {
			return err
		}
		n = len(events)
		return nil
	})
	if fe := (*fnError)(nil); errors.As(err, &fe) {
		return 0, fe.err
	}
	if err != nil {
		return 0, dbErr("drain outbox", err)
	}
	return n, nil
}

// fnError carries the error of DrainOutbox's fn out of the transaction
// unchanged.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }
func (e *fnError) Unwrap() error { return e.err }

// Notify adds a notification for the store's staff.
func (s *Service) Notify(ctx context.Context, kind, message string) (Notification, error) {
	kind, message = strings.TrimSpace(kind), strings.TrimSpace(message)
	f := fields{}
	f.text("kind", kind, 1, 50)
	f.text("message", message, 1, 2000)
	if err := f.err(); err != nil {
		return Notification{}, err
	}
	var n Notification
	err := s.db.QueryRow(ctx, `INSERT INTO notifications (kind, message) VALUES ($1, $2)
		RETURNING id, kind, message, created_at`, kind, message).Scan(&n.ID, &n.Kind, &n.Message, &n.CreatedAt)
	if err != nil {
		return Notification{}, dbErr("notify", err)
	}
	return n, nil
}

// Notifications lists the newest notifications, at most limit (20 when
// limit is zero or less, 100 at most).
func (s *Service) Notifications(ctx context.Context, limit int) ([]Notification, error) {
	_, limit = paging(1, limit)
	rows, err := s.db.Query(ctx, `SELECT id, kind, message, created_at FROM notifications
		ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, dbErr("notifications", err)
	}
	ns, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Notification, error) {
		var n Notification
		err := r.Scan(&n.ID, &n.Kind, &n.Message, &n.CreatedAt)
		return n, err
	})
	return ns, dbErr("notifications", err)
}
